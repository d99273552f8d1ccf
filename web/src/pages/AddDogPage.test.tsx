import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { AddDogPage } from "./AddDogPage";
import { localInput } from "../lib/reports";
import { drag, json, showPhoto, stubObjectUrls } from "../testing";

const TWO_DOGS = {
  width: 400,
  height: 200,
  dogs: [
    { index: 0, box: [0, 0, 200, 100], score: 0.93, breed_guess: [{ breed: "beagle", p: 0.81 }] },
    { index: 1, box: [300, 100, 400, 200], score: 0.7, breed_guess: [{ breed: "Samoyed", p: 0.9 }] },
  ],
  seems: [{ label: "beagle", p: 0.6 }],
};
const ONE_DOG = { ...TWO_DOGS, dogs: TWO_DOGS.dogs.slice(0, 1) };
const NO_DOG = { width: 400, height: 200, dogs: [], seems: [{ label: "golf ball", p: 0.71 }] };
const ADDED = { id: "d1", payload: { name: "Rex", breed: "Samoyed" }, image_url: "/i", thumbnail_url: "/t" };

/** A gateway whose /v1/detect answers `detect` (a status and body); adding a dog answers 201. */
function mockApi(detect: [number, unknown]) {
  const fetchMock = vi.fn(async (url: RequestInfo | URL, _init?: RequestInit) =>
    url === "/v1/detect" ? json(...detect) : json(201, ADDED),
  );
  vi.stubGlobal("fetch", fetchMock);
  return fetchMock;
}

const addForm = (fetchMock: ReturnType<typeof mockApi>) =>
  fetchMock.mock.calls.find(([u]) => u === "/v1/dogs")?.[1]?.body as FormData | undefined;

async function pickPhoto() {
  await userEvent.upload(screen.getByLabelText("Choose a photo"), new File(["xx"], "dog.jpg", { type: "image/jpeg" }));
}

describe("AddDogPage with the dogs found in the photo", () => {
  beforeEach(() => {
    stubObjectUrls("blob:preview");
  });

  it("shows the dogs found, adds the one picked, and offers its breed as a one-click suggestion", async () => {
    const fetchMock = mockApi([200, TWO_DOGS]);
    render(<AddDogPage />);
    await pickPhoto();
    expect(await screen.findAllByTestId("dog-box")).toHaveLength(2);
    expect(fetchMock.mock.calls[0][0]).toBe("/v1/detect");
    expect(screen.getAllByTestId("dog-box")[0]).toHaveAttribute("data-current"); // the largest by default
    // nothing pre-filled: the suggestion is a button
    expect(screen.getByLabelText("Breed")).toHaveValue("");
    expect(screen.getByRole("button", { name: "Use suggestion: beagle (81 %)" })).toBeInTheDocument();

    await userEvent.click(screen.getByRole("button", { name: "Dog 2" }));
    expect(screen.getByText(/adding dog 2/)).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: "Use suggestion: Samoyed (90 %)" }));
    expect(screen.getByLabelText("Breed")).toHaveValue("Samoyed");
    expect(screen.queryByRole("button", { name: /Use suggestion/ })).toBeNull(); // taken
    await userEvent.type(screen.getByLabelText("Name"), "Rex");
    await userEvent.click(screen.getByRole("button", { name: "Add dog" }));

    expect(await screen.findByText(/^Added/)).toHaveTextContent(/^Added Rex\./);
    const form = addForm(fetchMock)!;
    expect(form.get("dog")).toBe("1");
    expect(form.get("breed")).toBe("Samoyed");
    expect(form.get("name")).toBe("Rex");
    expect(form.get("image")).toBeInstanceOf(File);
  });

  it("moves the keyboard's focus to what the add came to, the form it was sent from being emptied", async () => {
    mockApi([200, ONE_DOG]);
    render(<AddDogPage />);
    await pickPhoto();
    await screen.findByTestId("dog-box");
    await userEvent.type(screen.getByLabelText("Name"), "Rex");
    await userEvent.click(screen.getByRole("button", { name: "Add dog" }));
    const said = await screen.findByRole("status");
    expect(said).toHaveTextContent(/^Added Rex\.$/);
    expect(said).toHaveFocus();
  });

  it("goes on to the photo's other dog once one is added, without the photo picked again", async () => {
    const fetchMock = mockApi([200, TWO_DOGS]);
    render(<AddDogPage />);
    await pickPhoto();
    await screen.findAllByTestId("dog-box");
    await userEvent.type(screen.getByLabelText("Name"), "Rex");
    await userEvent.selectOptions(screen.getByLabelText("Status"), "found");
    await userEvent.click(screen.getByRole("button", { name: "Add dog" }));
    const said = await screen.findByText(/^Added/);
    expect(said).toHaveTextContent("Added Rex. Next, dog 2 of this photo: add it too, or choose another photo.");
    expect(said).toHaveFocus();
    // the same photo with its other dog chosen; the first dog's name gone, the sighting of both kept
    expect(screen.getByRole("button", { name: "Dog 2" })).toHaveAttribute("aria-pressed", "true");
    expect(screen.getByText(/^2 dogs in this photo: adding dog 2 \(added: dog 1\)\./)).toBeInTheDocument();
    expect(screen.getByLabelText("Name")).toHaveValue("");
    expect(screen.getByLabelText("Status")).toHaveValue("found");

    await userEvent.type(screen.getByLabelText("Name"), "Bo");
    await userEvent.click(screen.getByRole("button", { name: "Add dog" }));
    expect(await screen.findByLabelText("Choose a photo")).toBeInTheDocument(); // both added: done with the photo
    expect(screen.getByLabelText("Status")).toHaveValue("");
    const adds = fetchMock.mock.calls.filter(([u]) => u === "/v1/dogs").map(([, init]) => init!.body as FormData);
    expect(adds.map((f) => [f.get("dog"), f.get("name"), f.get("status")])).toEqual([
      ["0", "Rex", "found"],
      ["1", "Bo", "found"],
    ]);
    expect(adds[1].get("image")).toBe(adds[0].get("image"));
    expect(fetchMock.mock.calls.filter(([u]) => u === "/v1/detect")).toHaveLength(1);
  });

  it("says there is no dog in the photo and keeps Add disabled with the reason", async () => {
    const fetchMock = mockApi([200, NO_DOG]);
    render(<AddDogPage />);
    await pickPhoto();
    const reason = await screen.findByText(/No dog found in this photo\. It seems to show: golf ball \(71 %\)\./);
    const add = screen.getByRole("button", { name: "Add dog" });
    expect(add).toBeDisabled();
    expect(add).toHaveAccessibleDescription(reason.textContent!);
    expect(screen.queryByTestId("dog-box")).toBeNull();
    expect(screen.queryByRole("button", { name: /Use suggestion/ })).toBeNull();
    await userEvent.click(add);
    expect(addForm(fetchMock)).toBeUndefined();
  });

  it("says what is wrong with the photo right under it, before the fields a phone shows below", async () => {
    const before = (shown: HTMLElement) =>
      expect(shown.compareDocumentPosition(screen.getByLabelText("Name")) & Node.DOCUMENT_POSITION_FOLLOWING).toBeTruthy();
    mockApi([200, NO_DOG]);
    const { unmount } = render(<AddDogPage />);
    await pickPhoto();
    before(await screen.findByText(/^No dog found in this photo\./));
    unmount();
    mockApi([422, { detail: "truncated or corrupt image: image file is truncated", code: "image_rejected" }]);
    render(<AddDogPage />);
    await pickPhoto();
    before(await screen.findByRole("alert"));
    before(screen.getByText("This file cannot be added: choose a photo of the dog."));
  });

  it("adds the dog the user marks where none was found, with its breed suggestion", async () => {
    const guess = [{ breed: "Samoyed", p: 0.9 }];
    const marked = { ...NO_DOG, dogs: [{ index: 0, box: [80, 120, 480, 400], score: null, marked: true, breed_guess: guess }] };
    const fetchMock = mockApi([200, NO_DOG]);
    fetchMock.mockImplementation(async (url: RequestInfo | URL, init?: RequestInit) => {
      if (url !== "/v1/detect") return json(201, ADDED);
      return json(200, (init!.body as FormData).get("box") ? marked : NO_DOG); // the marked dog's guesses
    });
    render(<AddDogPage />);
    await pickPhoto();
    await screen.findByText(/No dog found in this photo\..*or mark the dog yourself\./);
    await userEvent.click(screen.getByRole("button", { name: "Mark the dog yourself" }));
    showPhoto();
    drag([30, 50], [130, 120]);
    await userEvent.click(screen.getByRole("button", { name: "Use this box" }));
    expect(screen.getByRole("status")).toHaveTextContent("Adding the dog you marked.");
    expect(screen.getAllByTestId("dog-box")).toHaveLength(1);
    await userEvent.click(await screen.findByRole("button", { name: "Use suggestion: Samoyed (90 %)" }));
    await userEvent.type(screen.getByLabelText("Name"), "Rex");
    await userEvent.click(screen.getByRole("button", { name: "Add dog" }));
    expect(await screen.findByText(/Added/)).toBeInTheDocument();
    const form = addForm(fetchMock)!;
    expect(form.get("box")).toBe("80,120,480,400");
    expect(form.get("dog")).toBeNull();
    expect(form.get("breed")).toBe("Samoyed");
  });

  it("forgets a marked box for the dogs found", async () => {
    const fetchMock = mockApi([200, TWO_DOGS]);
    render(<AddDogPage />);
    await pickPhoto();
    await userEvent.click(await screen.findByRole("button", { name: "Not the right dog? Mark it yourself" }));
    showPhoto();
    drag([30, 50], [130, 120]);
    await userEvent.click(screen.getByRole("button", { name: "Use this box" }));
    const forget = screen.getByRole("button", { name: "Forget the box" });
    expect(forget).toHaveClass("button"); // looks like the button it is, not like the text around it
    await userEvent.click(forget);
    expect(screen.getAllByTestId("dog-box")).toHaveLength(2);
    await userEvent.click(screen.getByRole("button", { name: "Add dog" }));
    await screen.findByText(/Added/);
    expect(addForm(fetchMock)!.get("box")).toBeNull();
    expect(addForm(fetchMock)!.get("dog")).toBe("0");
  });

  /** Adds a photo on a server without /v1/detect whose add answers `status` and `dog`; what the page then says. */
  async function added(status: number, dog: unknown) {
    vi.stubGlobal("fetch", vi.fn(async (url: RequestInfo | URL) =>
      url === "/v1/detect" ? json(404, { detail: "Not Found" }) : json(status, dog),
    ));
    render(<AddDogPage />);
    await pickPhoto();
    const add = screen.getByRole("button", { name: "Add dog" });
    await vi.waitFor(() => expect(add).toBeEnabled());
    await userEvent.click(add);
    return screen.findByRole("status");
  }

  it("says which stored dog's photo the new one looks like a copy of", async () => {
    const copy = { ...ADDED, id: "d2", payload: { ...ADDED.payload, phash: "0f0f", near_duplicate_of: "d1" } };
    const status = await added(201, copy);
    expect(status).toHaveTextContent("Added Rex. The photo looks like a copy of one stored before");
    expect(screen.getByRole("link", { name: "one stored before" })).toHaveAttribute("href", "#/dogs/d1");
    expect(screen.getByRole("link", { name: "Rex" })).toHaveAttribute("href", "#/dogs/d2");
  });

  it("says a photo already stored has what was typed (the server fills in what its dog lacked)", async () => {
    const status = await added(200, ADDED);
    expect(status).toHaveTextContent("This photo was already stored as Rex. It has everything you entered.");
    expect(screen.getByRole("link", { name: "Rex" })).toHaveAttribute("href", "#/dogs/d1");
  });

  it("keeps what was typed when the photo is stored already with other details, and links that dog", async () => {
    const detail =
      "this photo is stored already as dog d1, with other values than those sent (name: 'Rex' stored, 'Max' sent): adding it again changes no dog; change that dog's fields instead";
    vi.stubGlobal("fetch", vi.fn(async (url: RequestInfo | URL) =>
      url === "/v1/detect"
        ? json(404, { detail: "Not Found" })
        : json(409, { detail, code: "photo_stored_already", dog_id: "d1" }),
    ));
    render(<AddDogPage />);
    await pickPhoto();
    await userEvent.type(screen.getByLabelText("Name"), "Max");
    const add = screen.getByRole("button", { name: "Add dog" });
    await vi.waitFor(() => expect(add).toBeEnabled());
    await userEvent.click(add);
    expect(await screen.findByRole("alert")).toHaveTextContent(
      "This photo is stored already, as a dog whose details differ from what you entered: nothing was added or changed.",
    );
    expect(screen.getByRole("link", { name: "Open that dog" })).toHaveAttribute("href", "#/dogs/d1");
    expect(screen.getByLabelText("Name")).toHaveValue("Max");
  });

  it("adds without a choice on a server without /v1/detect", async () => {
    const fetchMock = mockApi([404, { detail: "Not Found" }]);
    render(<AddDogPage />);
    await pickPhoto();
    const add = screen.getByRole("button", { name: "Add dog" });
    await vi.waitFor(() => expect(add).toBeEnabled());
    expect(screen.queryByRole("alert")).toBeNull();
    await userEvent.click(add);
    await screen.findByText(/Added/);
    expect(addForm(fetchMock)!.get("dog")).toBeNull();
  });

  it("shows at once why a file that is no photo is refused, and offers neither adding nor marking it", async () => {
    const fetchMock = mockApi([415, { detail: "not an image: cannot identify image file" }]);
    render(<AddDogPage />);
    await pickPhoto();
    expect(await screen.findByRole("alert")).toHaveTextContent("not an image");
    const add = screen.getByRole("button", { name: "Add dog" });
    expect(add).toBeDisabled();
    expect(add).toHaveAccessibleDescription("This file cannot be added: choose a photo of the dog.");
    expect(screen.queryByRole("button", { name: /Mark/ })).toBeNull();
    await userEvent.click(add);
    expect(addForm(fetchMock)).toBeUndefined();
  });

  it("takes no other photo and no typing while adding, and keeps what was typed when the add fails", async () => {
    let answer: (r: Response) => void = () => {};
    const fetchMock = vi.fn(async (url: RequestInfo | URL, _init?: RequestInit) =>
      url === "/v1/detect" ? json(200, TWO_DOGS) : new Promise<Response>((resolve) => (answer = resolve)),
    );
    vi.stubGlobal("fetch", fetchMock);
    render(<AddDogPage />);
    await pickPhoto();
    await screen.findAllByTestId("dog-box");
    await userEvent.type(screen.getByLabelText("Name"), "Rex");
    await userEvent.type(screen.getByLabelText("Notes"), "friendly");
    await userEvent.click(screen.getByRole("button", { name: "Add dog" }));
    const adding = await screen.findByRole("button", { name: "Adding…" });
    expect(adding).toHaveAttribute("aria-disabled", "true");
    expect(adding).toBeEnabled(); // not disabled: it keeps the keyboard's focus, there when the add fails

    const picker = screen.getByLabelText("Choose another photo");
    expect(picker).toHaveAttribute("aria-disabled", "true");
    expect(picker).toBeEnabled(); // not disabled: it keeps the keyboard's focus
    await userEvent.upload(picker, new File(["yy"], "other.jpg", { type: "image/jpeg" }));
    expect(fetchMock.mock.calls.filter(([u]) => u === "/v1/detect")).toHaveLength(1); // not taken
    for (const field of ["Name", "Breed", "Notes"]) expect(screen.getByLabelText(field)).toHaveAttribute("readonly");
    await userEvent.type(screen.getByLabelText("Notes"), " and shy");
    expect(screen.getByLabelText("Notes")).toHaveValue("friendly");

    answer(json(503, { detail: "the embedder is not ready" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("the embedder is not ready");
    expect(screen.getByLabelText("Name")).toHaveValue("Rex");
    expect(screen.getByLabelText("Notes")).toHaveValue("friendly");
    expect(screen.getByLabelText("Notes")).not.toHaveAttribute("readonly");
    expect(screen.getAllByTestId("dog-box")).toHaveLength(2); // the photo too
  });
});

describe("AddDogPage with a lost & found report", () => {
  beforeEach(() => {
    stubObjectUrls("blob:preview");
  });

  it("sends the status, the place typed as lat, lon and the time in UTC", async () => {
    const fetchMock = mockApi([200, ONE_DOG]);
    render(<AddDogPage />);
    await pickPhoto();
    await screen.findAllByTestId("dog-box");
    await userEvent.selectOptions(screen.getByLabelText("Status"), "found");
    await userEvent.type(screen.getByLabelText("Where it was seen"), "52.52, 13.405");
    await userEvent.type(screen.getByLabelText("When it was seen"), "2026-11-30T18:05");
    await userEvent.click(screen.getByRole("button", { name: "Add dog" }));
    expect(await screen.findByRole("status")).toHaveTextContent("Added Rex.");
    const form = addForm(fetchMock)!;
    expect(form.get("status")).toBe("found");
    expect(form.get("location")).toBe("52.52,13.405");
    expect(form.get("seen_at")).toBe(new Date("2026-11-30T18:05").toISOString());
    expect(screen.getByLabelText("Status")).toHaveValue(""); // the form is cleared for the next dog
  });

  it("fills in where and when from the photo when asked, for the user to check before adding", async () => {
    const taken = { seen_at: "2026-11-30T17:05:09+00:00", location: { lat: 52.52, lon: 13.405 }, unknown: {} };
    const fetchMock = vi.fn(async (url: RequestInfo | URL, _init?: RequestInit) =>
      url === "/v1/detect" ? json(200, ONE_DOG) : url === "/v1/taken" ? json(200, taken) : json(201, ADDED),
    );
    vi.stubGlobal("fetch", fetchMock);
    render(<AddDogPage />);
    const fromPhoto = screen.getByRole("button", { name: "Where and when from the photo" });
    expect(fromPhoto).toBeDisabled(); // no photo yet
    await pickPhoto();
    await screen.findByTestId("dog-box");
    expect(fetchMock.mock.calls.map(([u]) => u)).not.toContain("/v1/taken"); // not read unless asked
    await userEvent.click(fromPhoto);
    expect(await screen.findByText("Filled in from the photo: where and when it was taken.")).toBeInTheDocument();
    expect(screen.getByLabelText("Where it was seen")).toHaveValue("52.52, 13.405");
    expect(screen.getByLabelText("When it was seen")).toHaveValue(localInput("2026-11-30T17:05:09Z"));
    await userEvent.click(screen.getByRole("button", { name: "Add dog" }));
    expect(await screen.findByRole("status")).toHaveTextContent("Added Rex.");
    const form = addForm(fetchMock)!;
    expect(form.get("location")).toBe("52.52,13.405");
    expect(form.get("seen_at")).toBe(new Date(localInput("2026-11-30T17:05:09Z")).toISOString());
  });

  it("says what the photo does not tell and keeps what the user typed", async () => {
    const taken = { seen_at: null, location: null, unknown: {
      seen_at: "the photo says it was taken at 2026-11-30 18:05:09 but not in which time zone",
      location: "the photo does not say where it was taken (no GPS position)" } };
    vi.stubGlobal("fetch", vi.fn(async (url: RequestInfo | URL) =>
      url === "/v1/detect" ? json(200, TWO_DOGS) : json(200, taken)));
    render(<AddDogPage />);
    await pickPhoto();
    await screen.findAllByTestId("dog-box");
    await userEvent.type(screen.getByLabelText("Where it was seen"), "48.1, 11.6");
    await userEvent.click(screen.getByRole("button", { name: "Where and when from the photo" }));
    expect(await screen.findByText(/The photo does not say where it was taken \(no GPS position\)\./)).toHaveTextContent(
      "The photo says it was taken at 2026-11-30 18:05:09 but not in which time zone.",
    );
    expect(screen.getByLabelText("Where it was seen")).toHaveValue("48.1, 11.6");
  });

  it("says what is wrong with a place before uploading", async () => {
    const fetchMock = mockApi([200, TWO_DOGS]);
    render(<AddDogPage />);
    await pickPhoto();
    await screen.findAllByTestId("dog-box");
    await userEvent.type(screen.getByLabelText("Where it was seen"), "Berlin");
    await userEvent.click(screen.getByRole("button", { name: "Add dog" }));
    expect(await screen.findByRole("alert")).toHaveTextContent('Place "Berlin": write it as latitude, longitude');
    expect(addForm(fetchMock)).toBeUndefined();
  });
});

