import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { PHOTO_TIMEOUT_MS } from "../lib/api";
import { SearchProvider } from "../lib/searchState";
import { SearchPage } from "./SearchPage";
import { drag, json, showPhoto, stubObjectUrls } from "../testing";

function mockApi(search: () => Promise<Response>) {
  const fetchMock = vi.fn(async (url: RequestInfo | URL, _init?: RequestInit) =>
    String(url).startsWith("/v1/dogs?") ? json(200, { items: [], next: null, total: 0 }) : search(),
  );
  vi.stubGlobal("fetch", fetchMock);
  return fetchMock;
}

async function pickPhoto(name = "dog.jpg", type = "image/jpeg", label = "Choose a photo") {
  const input = screen.getByLabelText(label);
  // applyAccept off: a user can pick "All files" in the chooser, so the API must judge the file
  await userEvent.setup({ applyAccept: false }).upload(input, new File(["xx"], name, { type }));
}

describe("SearchPage upload errors", () => {
  beforeEach(() => {
    stubObjectUrls("blob:preview");
  });

  it("says why a file is refused in words, the API's detail under it, and offers nothing to do with it", async () => {
    mockApi(async () => json(415, { detail: "not an image: cannot identify image file", code: "image_unsupported" }));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto("notes.txt", "text/plain");
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent(/^This file is not a photo the server can read: choose a JPEG, PNG, HEIC or WebP photo\./);
    expect(within(alert).getByTestId("error-details")).toHaveTextContent("Details: not an image: cannot identify image file");
    // no dog to mark in it, no dog to add photos of
    expect(screen.queryByRole("button", { name: /Mark the dog yourself/ })).not.toBeInTheDocument();
    expect(screen.queryByLabelText("Add more photos of the same dog to the search")).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Search again" })).not.toBeInTheDocument(); // the same refusal again
  });

  it("offers to search again only once there is a search to repeat", async () => {
    mockApi(async () => json(200, { took_ms: 5, results: [] }));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await userEvent.type(screen.getByLabelText("Breed"), "beagle");
    expect(screen.queryByRole("button", { name: "Search again" })).not.toBeInTheDocument();
    await pickPhoto();
    expect(await screen.findByRole("button", { name: "Search again" })).toBeEnabled();
  });

  it("offers to mark the dog in a photo where the detector found none", async () => {
    mockApi(async () => json(422, { detail: "no dog found in this photo", code: "no_dog_found", seems: [] }));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    expect(await screen.findByRole("alert")).toHaveTextContent("No dog found");
    expect(screen.getByRole("button", { name: /Mark the dog yourself/ })).toBeInTheDocument();
  });

  it("shows a too-large rejection", async () => {
    mockApi(async () => json(413, { detail: "request too large: 30000000 bytes, limit 21233664" }));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    expect(await screen.findByRole("alert")).toHaveTextContent("request too large");
  });

  it("says the server cannot be reached when the request fails", async () => {
    mockApi(async () => {
      throw new TypeError("Failed to fetch");
    });
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    expect(await screen.findByRole("alert")).toHaveTextContent("Cannot reach the dogsearch server");
  });

  it("sends the breed and field filters with the photo and shows the results", async () => {
    const fetchMock = mockApi(async () =>
      json(200, {
        took_ms: 12,
        results: [{ id: "a", score: 0.8, payload: { breed: "beagle" }, image_url: "/i", thumbnail_url: "/t" }],
      }),
    );
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await userEvent.type(screen.getByLabelText("Breed"), "beagle");
    await userEvent.type(screen.getByLabelText("Other fields"), "color=brown");
    await pickPhoto();
    expect(await screen.findAllByTestId("result")).toHaveLength(1);
    const [, init] = fetchMock.mock.calls.find(([u]) => u === "/v1/search")!;
    const form = init!.body as FormData;
    expect(form.get("breed")).toBe("beagle");
    expect(form.get("filter")).toBe(JSON.stringify({ color: "brown" }));
    expect(form.get("image")).toBeInstanceOf(File);
  });

  it("sends the lost & found filter and says which reports it searched among", async () => {
    const fetchMock = mockApi(async () =>
      json(200, {
        took_ms: 5,
        statuses: ["found", "sighted", "shelter"],
        results: [
          {
            id: "a",
            score: 0.8,
            payload: { name: "Bo", status: "found", location: { lat: 52.39, lon: 13.065 } },
            distance_km: 27.04,
            seen_at: "2026-12-01T09:00:00+00:00",
            image_url: "/i",
            thumbnail_url: "/t",
          },
        ],
      }),
    );
    render(<SearchProvider><SearchPage /></SearchProvider>);
    const section = within(screen.getByRole("group", { name: "Lost & found" }));
    await userEvent.selectOptions(section.getByLabelText("I have"), "lost");
    expect(section.getByLabelText("Status")).toBeDisabled(); // the counterparts decide
    await userEvent.type(section.getByLabelText("Near"), "52.52, 13.405");
    await userEvent.type(section.getByLabelText("Within (km)"), "50");
    await userEvent.type(section.getByLabelText("Seen after"), "2026-11-29");
    await pickPhoto();
    expect(await screen.findByTestId("report")).toHaveTextContent("Found27.0 km awayseen 1 Dec 2026, 10:00 CET");
    expect(screen.getByText(/among dogs reported found, sighted or in a shelter/)).toBeInTheDocument();
    const form = fetchMock.mock.calls.find(([u]) => u === "/v1/search")![1]!.body as FormData;
    expect([...form.entries()].filter(([k]) => k !== "image")).toEqual([
      ["k", "12"],
      ["for_status", "lost"],
      ["near", "52.52,13.405"],
      ["radius_km", "50"],
      ["seen_after", "2026-11-29T00:00:00+01:00"], // the reader's day (Berlin), not the day in UTC
    ]);
  });

  it("searches near where the photo was taken when asked", async () => {
    const taken = { seen_at: null, location: { lat: 52.39, lon: 13.065 }, unknown: { seen_at: "no time" } };
    const fetchMock = vi.fn(async (url: RequestInfo | URL, _init?: RequestInit) =>
      url === "/v1/taken" ? json(200, taken) : json(200, { took_ms: 5, statuses: null, results: [] }),
    );
    vi.stubGlobal("fetch", fetchMock);
    render(<SearchProvider><SearchPage /></SearchProvider>);
    const section = within(screen.getByRole("group", { name: "Lost & found" }));
    expect(section.queryByRole("button", { name: "Near where the photo was taken" })).toBeNull(); // no photo yet
    await pickPhoto();
    await userEvent.click(await section.findByRole("button", { name: "Near where the photo was taken" }));
    expect(await section.findByText("Near where the photo was taken.")).toBeInTheDocument();
    expect(section.getByLabelText("Near")).toHaveValue("52.39, 13.065");
    await userEvent.type(section.getByLabelText("Within (km)"), "30");
    await userEvent.click(screen.getByRole("button", { name: "Search again" }));
    const searches = fetchMock.mock.calls.filter(([u]) => u === "/v1/search");
    const form = searches[searches.length - 1][1]!.body as FormData;
    expect([form.get("near"), form.get("radius_km")]).toEqual(["52.39,13.065", "30"]);
  });

  it("says so when the photo does not tell where it was taken", async () => {
    const taken = { seen_at: null, location: null,
                    unknown: { location: "the photo does not say where it was taken (no GPS position)" } };
    vi.stubGlobal("fetch", vi.fn(async (url: RequestInfo | URL) =>
      url === "/v1/taken" ? json(200, taken) : json(200, { took_ms: 5, statuses: null, results: [] })));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    const section = within(screen.getByRole("group", { name: "Lost & found" }));
    await pickPhoto();
    await userEvent.click(await section.findByRole("button", { name: "Near where the photo was taken" }));
    expect(await section.findByText("The photo does not say where it was taken (no GPS position).")).toBeInTheDocument();
    expect(section.getByLabelText("Near")).toHaveValue("");
  });

  it("refuses a radius without a place before calling the API", async () => {
    const fetchMock = mockApi(async () => json(200, { results: [], took_ms: 1 }));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await userEvent.type(screen.getByLabelText("Within (km)"), "5");
    await pickPhoto();
    expect(await screen.findByRole("alert")).toHaveTextContent("A radius needs a place");
    expect(fetchMock.mock.calls.some(([u]) => u === "/v1/search")).toBe(false);
  });

  it("refuses a malformed field filter before calling the API", async () => {
    const fetchMock = mockApi(async () => json(200, { results: [], took_ms: 1 }));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await userEvent.type(screen.getByLabelText("Other fields"), "brown");
    await pickPhoto();
    expect(await screen.findByRole("alert")).toHaveTextContent('Filter "brown": write it as field=value');
    expect(fetchMock.mock.calls.some(([u]) => u === "/v1/search")).toBe(false);
  });
});

const TWO_DOGS = {
  took_ms: 9,
  width: 400,
  height: 200,
  dogs: [
    { index: 0, box: [0, 0, 200, 100], score: 0.93, breed_guess: [{ breed: "beagle", p: 0.81 }, { breed: "basset", p: 0.1 }] },
    { index: 1, box: [300, 100, 400, 200], score: 0.7, breed_guess: [{ breed: "Samoyed", p: 0.9 }] },
  ],
  results: [{ id: "a", score: 0.8, payload: { breed: "beagle" }, image_url: "/i", thumbnail_url: "/t", box: null }],
};

/** The answer of a search with `dog` (the form's field; none: the largest). */
const answerFor = (dog: number) => ({
  ...TWO_DOGS,
  dog,
  breed_guess: TWO_DOGS.dogs[dog].breed_guess,
  results: [{ ...TWO_DOGS.results[0], id: `for-${dog}` }],
});

const searchCalls = (fetchMock: ReturnType<typeof mockApi>) =>
  fetchMock.mock.calls.filter(([u]) => u === "/v1/search").map(([, init]) => init!.body as FormData);

describe("SearchPage with the dogs found in the photo", () => {
  beforeEach(() => {
    stubObjectUrls("blob:preview");
  });

  it("draws the boxes of the dogs found, says what the searched one looks like, and searches another", async () => {
    const fetchMock = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
      if (String(url).startsWith("/v1/dogs?")) return json(200, { items: [], next: null, total: 0 });
      const dog = (init!.body as FormData).get("dog");
      return json(200, answerFor(dog === null ? 0 : Number(dog)));
    });
    vi.stubGlobal("fetch", fetchMock);
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    expect(await screen.findByText("Looks like: beagle 81 %, basset 10 %", { exact: false })).toBeInTheDocument();
    expect(screen.getByText(/Searching with dog 1 of 2/)).toBeInTheDocument();
    const boxes = screen.getAllByTestId("dog-box");
    expect(boxes).toHaveLength(2);
    expect(boxes[0]).toHaveAttribute("data-current");
    expect(boxes[1]).toHaveStyle({ left: "75%", top: "50%", width: "25%", height: "50%" });
    expect(screen.getByRole("img", { name: /2 dogs found/ })).toHaveAttribute("src", "blob:preview");
    expect(searchCalls(fetchMock)[0].get("dog")).toBeNull(); // a new photo: the server's default, the largest

    await userEvent.click(within(screen.getByRole("group", { name: "Which dog" })).getByRole("button", { name: "Dog 2" }));
    expect(await screen.findByText(/Looks like: Samoyed 90 %/)).toBeInTheDocument();
    expect(searchCalls(fetchMock)[1].get("dog")).toBe("1");
    expect(searchCalls(fetchMock)[1].get("image")).toBeInstanceOf(File);
    expect(screen.getAllByTestId("dog-box")[1]).toHaveAttribute("data-current");
    expect(screen.getByRole("button", { name: "Dog 2" })).toHaveAttribute("aria-pressed", "true");
    expect(screen.getByRole("link", { name: /Why match 1/ })).toHaveAttribute("href", expect.stringMatching(/^#\/match\/for-1\?search=\w+\.\d+$/));

    // new filters keep the dog chosen
    await userEvent.click(screen.getByRole("button", { name: "Search again" }));
    await vi.waitFor(() => expect(searchCalls(fetchMock)).toHaveLength(3));
    expect(searchCalls(fetchMock)[2].get("dog")).toBe("1");
  });

  it("keeps the dogs of the photo when searching with another one fails", async () => {
    let calls = 0;
    mockApi(async () => {
      if (calls++ === 0) return json(200, answerFor(0));
      throw new TypeError("Failed to fetch");
    });
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    await userEvent.click(await screen.findByRole("button", { name: "Dog 2" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Cannot reach the dogsearch server");
    expect(screen.getAllByTestId("dog-box")).toHaveLength(2);
    expect(screen.getByRole("button", { name: "Dog 1" })).toHaveAttribute("aria-pressed", "true"); // still the one searched
  });

  it("says there is no dog in the photo, and what it seems to show", async () => {
    mockApi(async () =>
      json(422, {
        detail: "no dog found in this photo",
        code: "no_dog_found",
        seems: [{ label: "golf ball", p: 0.71 }, { label: "tennis ball", p: 0.05 }],
      }),
    );
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    expect(await screen.findByRole("alert")).toHaveTextContent(
      "No dog found in this photo. It seems to show: golf ball (71 %), tennis ball (5 %).",
    );
    expect(screen.queryByTestId("dog-box")).toBeNull();
    expect(screen.queryByTestId("result")).toBeNull();
  });

  it("shows the server's reason for a dog that is not in the photo", async () => {
    mockApi(async () => json(422, { detail: "dog 3 asked for: the photo shows 2 dogs", code: "no_such_dog" }));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    expect(await screen.findByRole("alert")).toHaveTextContent("the photo shows 2 dogs");
  });

  it("shows the plain photo and no suggestion from a server without the detector", async () => {
    mockApi(async () => json(200, { took_ms: 3, results: [] }));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    expect(await screen.findByText(/No dogs match/)).toBeInTheDocument();
    expect(screen.getByRole("img", { name: "The photo you picked" })).toBeInTheDocument();
    expect(screen.queryByTestId("dog-box")).toBeNull();
    expect(screen.queryByTestId("breed-guess")).toBeNull();
  });

  it("says plainly when no result is likely the same dog", async () => {
    const hit = { id: "a", score: 0.71, payload: { breed: "beagle" }, image_url: "/i", thumbnail_url: "/t" };
    mockApi(async () =>
      json(200, { took_ms: 5, best_verdict: "possible", results: [{ ...hit, same_dog: 0.62, verdict: "possible" }] }),
    );
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    expect(await screen.findByRole("status")).toHaveTextContent("No likely match");
    expect(screen.getByText("possibly the same dog (62 %)")).toBeInTheDocument();
  });

  it("says nothing of the kind when the best result is likely, or the server has no calibration", async () => {
    const hit = { id: "a", score: 0.95, payload: { breed: "beagle" }, image_url: "/i", thumbnail_url: "/t" };
    mockApi(async () =>
      json(200, { took_ms: 5, best_verdict: "likely", results: [{ ...hit, same_dog: 0.934, verdict: "likely" }] }),
    );
    const { unmount } = render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    expect(await screen.findByText("likely the same dog (93 %)")).toBeInTheDocument();
    expect(screen.queryByText(/No likely match/)).toBeNull();
    unmount();
    mockApi(async () => json(200, { took_ms: 5, results: [{ ...hit, same_dog: null, verdict: null }] }));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    expect(await screen.findByText("0.950")).toBeInTheDocument();
    expect(screen.queryByText(/No likely match/)).toBeNull();
    expect(screen.queryByTestId("same-dog")).toBeNull();
  });
});

describe("SearchPage with several photos of one dog", () => {
  beforeEach(() => {
    stubObjectUrls("blob:preview");
  });

  it("sends the added photos with the first and can go back to the first alone", async () => {
    const fetchMock = mockApi(async () =>
      json(200, {
        took_ms: 7,
        query_photos: 1,
        results: [{ id: "a", score: 0.8, payload: { breed: "beagle" }, image_url: "/i", thumbnail_url: "/t" }],
      }),
    );
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto("front.jpg");
    await screen.findAllByTestId("result");
    const more = screen.getByLabelText("Add more photos of the same dog to the search");
    const jpeg = (name: string) => new File([name], name, { type: "image/jpeg" });
    await userEvent.upload(more, [jpeg("side.jpg"), jpeg("back.jpg")]);
    expect(await screen.findByTestId("query-photos")).toHaveTextContent("Searching with 3 photos of this dog");
    const searches = () => fetchMock.mock.calls.filter(([u]) => u === "/v1/search").map(([, i]) => i!.body as FormData);
    expect(searches().map((f) => (f.getAll("image") as File[]).map((p) => p.name))).toEqual([
      ["front.jpg"],
      ["front.jpg", "side.jpg", "back.jpg"],
    ]);
    await userEvent.click(screen.getByRole("button", { name: "Use the first photo only" }));
    await screen.findAllByTestId("result");
    expect((searches().at(-1)!.getAll("image") as File[]).map((p) => p.name)).toEqual(["front.jpg"]);
    expect(screen.queryByTestId("query-photos")).toBeNull();
  });

  it("adds no more photos than the server combines", async () => {
    const fetchMock = mockApi(async () => json(200, { took_ms: 1, results: [] }));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto("1.jpg");
    await screen.findByText(/0 matches/);
    const files = ["2", "3", "4", "5", "6", "7"].map((n) => new File([n], `${n}.jpg`, { type: "image/jpeg" }));
    await userEvent.upload(screen.getByLabelText("Add more photos of the same dog to the search"), files);
    expect(await screen.findByTestId("query-photos")).toHaveTextContent("Searching with 5 photos");
    expect(screen.getByTestId("photos-left-out")).toHaveTextContent(
      "A search combines at most 5 photos: 2 of those you chose were left out.",
    );
    const last = fetchMock.mock.calls.filter(([u]) => u === "/v1/search").at(-1)![1]!.body as FormData;
    expect(last.getAll("image")).toHaveLength(5);
    expect(screen.queryByLabelText("Add more photos of the same dog to the search")).toBeNull();
  });
});

describe("SearchPage with a dog the user marks", () => {
  beforeEach(() => {
    stubObjectUrls("blob:preview");
  });

  it("marks the dog the detector missed and searches with that box", async () => {
    const marked = {
      took_ms: 9,
      dog: 0,
      width: 800,
      height: 600,
      dogs: [{ index: 0, box: [80, 120, 480, 400], score: null, marked: true, breed_guess: [{ breed: "beagle", p: 0.8 }] }],
      breed_guess: [{ breed: "beagle", p: 0.8 }],
      results: [{ id: "a", score: 0.8, payload: { breed: "beagle" }, image_url: "/i", thumbnail_url: "/t" }],
    };
    const fetchMock = mockApi(async () => json(422, { detail: "no dog found in this photo", code: "no_dog_found", seems: [] }));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    expect(await screen.findByRole("alert")).toHaveTextContent("No dog found in this photo");
    fetchMock.mockImplementation(async () => json(200, marked));
    await userEvent.click(screen.getByRole("button", { name: "Mark the dog yourself" }));
    showPhoto();
    drag([30, 50], [130, 120]);
    await userEvent.click(screen.getByRole("button", { name: "Search for this dog" }));
    expect(await screen.findAllByTestId("result")).toHaveLength(1);
    const sent = searchCalls(fetchMock).at(-1)!;
    expect(sent.get("box")).toBe("80,120,480,400");
    expect(sent.get("dog")).toBeNull();
    expect(screen.getByTestId("breed-guess")).toHaveTextContent("Searching with the dog you marked.");
    expect(screen.queryByTestId("mark-area")).toBeNull();
    expect(screen.queryByRole("button", { name: /Back to the/ })).toBeNull(); // the detector found no dog to go back to
    // "Search again" keeps the box
    await userEvent.click(screen.getByRole("button", { name: "Search again" }));
    await vi.waitFor(() => expect(searchCalls(fetchMock).at(-1)!.get("box")).toBe("80,120,480,400"));
    expect(screen.getByRole("button", { name: "Not the right dog? Mark it yourself" })).toBeInTheDocument();
  });

  it("goes back from the marked dog to the dogs the detector found, the one searched before, in one action", async () => {
    // the answer of a search with a box: the marked dog alone
    const marked = { ...answerFor(0), dogs: [{ index: 0, box: [100, 50, 300, 150], score: null, marked: true, breed_guess: [] }] };
    const fetchMock = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
      if (String(url).startsWith("/v1/dogs?")) return json(200, { items: [], next: null, total: 0 });
      const form = init!.body as FormData;
      if (form.get("box")) return json(200, marked);
      return json(200, answerFor(form.get("dog") === null ? 0 : Number(form.get("dog"))));
    });
    vi.stubGlobal("fetch", fetchMock);
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    await userEvent.click(await screen.findByRole("button", { name: "Dog 2" }));
    expect(await screen.findByText(/Looks like: Samoyed 90 %/)).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /Back to the/ })).toBeNull(); // nothing marked yet

    await userEvent.click(screen.getByRole("button", { name: "Not the right dog? Mark it yourself" }));
    showPhoto();
    drag([30, 50], [130, 120]);
    await userEvent.click(screen.getByRole("button", { name: "Search for this dog" }));
    expect(await screen.findByTestId("breed-guess")).toHaveTextContent("Searching with the dog you marked.");
    expect(screen.getAllByTestId("dog-box")).toHaveLength(1); // the answer has the marked dog alone

    await userEvent.click(screen.getByRole("button", { name: "Back to the 2 dogs found" }));
    expect(await screen.findByText(/Searching with dog 2 of 2/)).toBeInTheDocument();
    expect(screen.getAllByTestId("dog-box")).toHaveLength(2);
    const sent = searchCalls(fetchMock).at(-1)!;
    expect(sent.get("box")).toBeNull();
    expect(sent.get("dog")).toBe("1"); // the dog searched before the mark
    expect(sent.get("image")).toBe(searchCalls(fetchMock)[0].get("image")); // the same photo, not picked again
    expect(screen.queryByRole("button", { name: /Back to the/ })).toBeNull();
  });
});

/** A promise settled by hand: an answer that comes when the test says. */
function later<T>() {
  let settle!: (value: T) => void;
  const promise = new Promise<T>((ok) => (settle = ok));
  return { promise, settle };
}

const hit = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  score: 0.8,
  payload: { name: id },
  image_url: `/v1/dogs/${id}/image`,
  thumbnail_url: `/v1/dogs/${id}/image?size=thumbnail`,
  ...extra,
});

const answerWith = (id: string, extra: Record<string, unknown> = {}) =>
  json(200, { took_ms: 3, results: [hit(id)], ...extra });

describe("SearchPage with answers that come late", () => {
  beforeEach(() => {
    stubObjectUrls("blob:preview");
  });

  it("shows only the latest search's answer, not an earlier one that comes after it", async () => {
    const answers = [later<Response>(), later<Response>()];
    let n = 0;
    const fetchMock = mockApi(() => answers[n++].promise);
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto("first.jpg");
    const twoDogs = { ...answerFor(0), results: [hit("of-first")] };
    await userEvent.upload(screen.getByLabelText("Choose another photo"), new File(["y"], "second.jpg", { type: "image/jpeg" }));
    await vi.waitFor(() => expect(searchCalls(fetchMock)).toHaveLength(2));
    expect((searchCalls(fetchMock)[0].get("image") as File).name).toBe("first.jpg");
    // the first photo's search was given up: its upload aborted
    expect((fetchMock.mock.calls.find(([u]) => u === "/v1/search")![1]!.signal as AbortSignal).aborted).toBe(true);
    answers[1].settle(answerWith("of-second"));
    expect(await screen.findByRole("link", { name: "of-second" })).toBeInTheDocument();
    answers[0].settle(json(200, twoDogs)); // late: it must not land
    await new Promise((ok) => setTimeout(ok, 20));
    expect(screen.getByRole("link", { name: "of-second" })).toBeInTheDocument();
    expect(screen.queryByRole("link", { name: "of-first" })).toBeNull();
    expect(screen.queryByTestId("dog-box")).toBeNull(); // nor the boxes of the first photo
    expect(screen.queryByTestId("breed-guess")).toBeNull();
  });

  it("clears the results of the last photo when another is picked, and still says it searches after a visit elsewhere", async () => {
    const second = later<Response>();
    let n = 0;
    mockApi(async () => (n++ === 0 ? answerWith("old") : second.promise));
    const page = (shown: boolean) => <SearchProvider>{shown ? <SearchPage /> : <p>Gallery</p>}</SearchProvider>;
    const { rerender } = render(page(true));
    await pickPhoto("first.jpg");
    expect(await screen.findByRole("link", { name: "old" })).toBeInTheDocument();
    await userEvent.upload(screen.getByLabelText("Choose another photo"), new File(["y"], "second.jpg", { type: "image/jpeg" }));
    expect(screen.getByTestId("searching")).toHaveTextContent("Searching with second.jpg…");
    expect(screen.queryByRole("link", { name: "old" })).toBeNull();
    rerender(page(false)); // another page, and back while the upload goes on
    rerender(page(true));
    expect(screen.getByTestId("searching")).toHaveTextContent("Searching with second.jpg…");
    expect(screen.queryByRole("link", { name: "old" })).toBeNull();
    expect(screen.getByRole("button", { name: "Search again" })).toBeDisabled();
    second.settle(answerWith("new"));
    expect(await screen.findByRole("link", { name: "new" })).toBeInTheDocument();
    expect(screen.queryByTestId("searching")).toBeNull();
  });

  it("moves the focus to what the search came to, which a phone shows below the filters", async () => {
    mockApi(async () => answerWith("a"));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    await screen.findAllByTestId("result");
    await vi.waitFor(() => expect(screen.getByTestId("search-outcome")).toHaveFocus());
    expect(screen.getByTestId("search-outcome")).toHaveTextContent(/1 match in \d+ ms \(server: 3 ms\)/);
  });

  it("keeps the live region to the status line: the results are not announced one by one", async () => {
    mockApi(async () => answerWith("a"));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    const [card] = await screen.findAllByTestId("result");
    expect(card.closest("[aria-live], [role=status]")).toBeNull();
    expect(screen.getByRole("status")).toHaveTextContent(/1 match in \d+ ms \(server: 3 ms\)/);
  });

  it("links a match to its search and the photo of it that matched", async () => {
    mockApi(async () => json(200, { took_ms: 3, results: [hit("a", { photo_id: "p2" })] }));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    const href = (await screen.findByRole("link", { name: "Why it matches" })).getAttribute("href")!;
    expect(href).toMatch(/^#\/match\/a\?photo=p2&search=\w+\.\d+$/);
    await pickPhoto("another.jpg", "image/jpeg", "Choose another photo");
    await vi.waitFor(() => expect(screen.getByRole("link", { name: "Why it matches" })).not.toHaveAttribute("href", href));
  });
});

describe("SearchPage's words on the results", () => {
  beforeEach(() => {
    stubObjectUrls("blob:preview");
  });

  it("says the server's message rather than one that contradicts a possible match", async () => {
    const message = "No likely match: the best may be the same dog; compare its photos with yours.";
    mockApi(async () =>
      json(200, {
        took_ms: 5,
        best_verdict: "possible",
        message,
        results: [hit("a", { same_dog: 0.61, verdict: "possible" })],
      }),
    );
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    expect(await screen.findByText(message)).toBeInTheDocument();
    expect(screen.queryByText(/none of these is likely the same dog/)).toBeNull();
  });

  it("says a dog not marked likely may still be the one searched for, where the server could not check for one dog stored twice", async () => {
    const fetchMock = mockApi(async () =>
      json(200, {
        took_ms: 5,
        best_verdict: "unlikely",
        message: "No likely match: none of these is likely the same dog.",
        verdicts_unchecked: true,
        results: [hit("Bo", { same_dog: 0.41, verdict: "unlikely" }), hit("Max", { same_dog: 0.38, verdict: "unlikely" })],
      }),
    );
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    expect(await screen.findByTestId("verdicts-unchecked")).toHaveTextContent(
      "The chances shown may be too low this time: the server could not check whether two of the results are one dog " +
        "reported twice. A dog not marked likely may still be yours: compare its photos with yours.",
    );
    expect(screen.getByRole("status")).toHaveTextContent("No likely match"); // beside the server's word, not instead
    // more like this: of a stored dog, not the user's
    await userEvent.click(within(screen.getAllByTestId("result")[0]).getByRole("button", { name: "More like this" }));
    expect(await screen.findByText(/A dog not marked likely may still be the same dog: compare their photos\.$/)).toBeInTheDocument();
    expect(fetchMock.mock.calls.some(([u]) => String(u).startsWith("/v1/dogs/Bo/similar"))).toBe(true);
    // verdicts checked: nothing to say
    fetchMock.mockImplementation(async () =>
      json(200, { took_ms: 5, best_verdict: "likely", results: [hit("Max", { same_dog: 0.95, verdict: "likely" })] }),
    );
    await userEvent.click(screen.getByRole("button", { name: "Search again" }));
    expect(await screen.findByText("likely the same dog (95 %)")).toBeInTheDocument();
    expect(screen.queryByTestId("verdicts-unchecked")).toBeNull();
  });

  it("leaves out breed guesses that round to 0 %", async () => {
    mockApi(async () =>
      json(200, {
        ...answerFor(0),
        breed_guess: [{ breed: "beagle", p: 0.81 }, { breed: "keeshond", p: 0.004 }],
      }),
    );
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    expect(await screen.findByTestId("breed-guess")).toHaveTextContent(/Looks like: beagle 81 %$/);
    expect(screen.queryByText(/keeshond/)).toBeNull();
  });

  it("marks the results out of date once the filters change, until searched again", async () => {
    mockApi(async () => answerWith("a"));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    const [card] = await screen.findAllByTestId("result");
    expect(screen.queryByTestId("filters-changed")).toBeNull();
    await userEvent.type(screen.getByLabelText("Breed"), "pug");
    expect(screen.getByTestId("filters-changed")).toHaveTextContent("Filters changed: search again to apply them.");
    expect(card.closest(".outdated")).not.toBeNull();
    await userEvent.click(screen.getByRole("button", { name: "Search again" }));
    const [again] = await screen.findAllByTestId("result");
    expect(screen.queryByTestId("filters-changed")).toBeNull();
    expect(again.closest(".outdated")).toBeNull();
  });

  it("shows what “I have” fixes the status to, in words short enough to read", async () => {
    mockApi(async () => answerWith("a"));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    const section = within(screen.getByRole("group", { name: "Lost & found" }));
    await userEvent.selectOptions(section.getByLabelText("I have"), "lost");
    expect(section.getByLabelText("I have")).toHaveDisplayValue("my lost dog");
    expect(section.getByLabelText("Status")).toBeDisabled();
    expect(section.getByLabelText("Status")).toHaveDisplayValue("found, sighted or in a shelter");
    await userEvent.selectOptions(section.getByLabelText("I have"), "found");
    expect(section.getByLabelText("Status")).toHaveDisplayValue("lost");
    await userEvent.selectOptions(section.getByLabelText("I have"), "");
    expect(section.getByLabelText("Status")).toHaveDisplayValue("any status");
  });
});

describe("SearchPage's more like a dog with a report", () => {
  beforeEach(() => {
    stubObjectUrls("blob:preview");
  });

  const found = { id: "f1", payload: { name: "Found pup", status: "found" }, image_url: "/i", thumbnail_url: "/t" };
  const start = { query: { kind: "dog" as const, dog: found }, results: null, filters: {}, fieldText: "", k: 12 };

  it("says it searched only lost dogs, not to remove a filter nobody set, and searches all when asked", async () => {
    const fetchMock = mockApi(async () => json(200, { took_ms: 2, statuses: ["lost"], results: [] }));
    render(<SearchProvider initialState={start}><SearchPage /></SearchProvider>);
    expect(await screen.findByTestId("implied-status")).toHaveTextContent(
      "As Found pup is reported found, only dogs reported lost are searched.",
    );
    expect(screen.getByText(/No dogs match/)).toHaveTextContent("Search all dogs to look beyond those reported lost.");
    expect(screen.queryByText(/removing a filter/)).toBeNull();
    fetchMock.mockImplementation(async () => json(200, { took_ms: 2, statuses: null, results: [hit("a")] }));
    await userEvent.click(screen.getByRole("button", { name: "Search all dogs" }));
    await screen.findAllByTestId("result");
    const similar = fetchMock.mock.calls.map(([u]) => String(u)).filter((u) => u.startsWith("/v1/dogs/f1/similar"));
    expect(similar).toHaveLength(2);
    expect(new URL(similar[0], "http://x").searchParams.get("counterparts")).toBeNull();
    expect(new URL(similar[1], "http://x").searchParams.get("counterparts")).toBe("false");
    expect(screen.queryByTestId("implied-status")).toBeNull();
  });

  it("advises removing a filter only where the user set one", async () => {
    mockApi(async () => json(200, { took_ms: 2, statuses: null, results: [] }));
    render(<SearchProvider initialState={{ ...start, query: { kind: "dog", dog: { ...found, payload: { name: "Pup" } } } }}><SearchPage /></SearchProvider>);
    expect(await screen.findByText(/No dogs match/)).toHaveTextContent("No dogs match. Add some dogs first.");
    await userEvent.type(screen.getByLabelText("Breed"), "pug");
    await userEvent.click(screen.getByRole("button", { name: "Search again" }));
    await vi.waitFor(() => expect(screen.getByText(/No dogs match/)).toHaveTextContent("Try removing a filter"));
  });
});

describe("SearchPage with several photos, one without a dog", () => {
  beforeEach(() => {
    stubObjectUrls("blob:preview");
  });

  const jpeg = (name: string) => new File([name], name, { type: "image/jpeg" });
  const names = (form: FormData) => (form.getAll("image") as File[]).map((p) => p.name);

  it("says which photo has no dog, and searches without it or another one", async () => {
    const fetchMock = mockApi(async () => answerWith("a"));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto("front.jpg");
    await screen.findAllByTestId("result");
    fetchMock.mockImplementation(async () =>
      json(422, { detail: "photo 2 of 3: no dog found in this photo", code: "no_dog_found", photo: 1, seems: [] }),
    );
    await userEvent.upload(screen.getByLabelText("Add more photos of the same dog to the search"), [jpeg("wall.jpg"), jpeg("side.jpg")]);
    expect(await screen.findByRole("alert")).toHaveTextContent("Photo 2 of 3: no dog found in this photo.");
    fetchMock.mockImplementation(async () => answerWith("b"));
    await userEvent.click(screen.getByRole("button", { name: "Search without photo 2" }));
    await screen.findAllByTestId("result");
    expect(names(searchCalls(fetchMock).at(-1)!)).toEqual(["front.jpg", "side.jpg"]);
    expect(screen.queryByRole("alert")).toBeNull();
    // any photo of the set can go, the first too
    await userEvent.click(screen.getByRole("button", { name: "Remove photo 1 from the search" }));
    await vi.waitFor(() => expect(names(searchCalls(fetchMock).at(-1)!)).toEqual(["side.jpg"]));
  });
});

/** A search the server never answers (stopped): its fetch fails only when aborted, as a browser's does. */
function hang(_url: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  return new Promise((_, fail) => init?.signal?.addEventListener("abort", () => fail(new DOMException("aborted", "AbortError"))));
}

describe("SearchPage with a server that does not answer", () => {
  beforeEach(() => {
    stubObjectUrls("blob:preview");
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("gives up after a minute, says so, and lets the user search again", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const fetchMock = mockApi(() => Promise.resolve(json(500, {})));
    fetchMock.mockImplementation(async (url, init) =>
      String(url).startsWith("/v1/dogs?") ? json(200, { items: [], next: null, total: 0 }) : hang(url, init),
    );
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    expect(screen.getByTestId("searching")).toHaveTextContent("Searching with dog.jpg…");
    await vi.advanceTimersByTimeAsync(10_000);
    expect(screen.getByTestId("searching")).toHaveTextContent(/\(1\d s so far\)/); // a slow search says how long
    await vi.advanceTimersByTimeAsync(PHOTO_TIMEOUT_MS);
    expect(await screen.findByRole("alert")).toHaveTextContent("The server did not answer within 60 seconds");
    expect(screen.queryByTestId("searching")).toBeNull();
    expect(screen.getByRole("button", { name: "Search again" })).toBeEnabled();
    expect(screen.getByLabelText("Add more photos of the same dog to the search")).toBeEnabled();
    expect(screen.getByRole("button", { name: "Mark the dog yourself" })).toBeEnabled();
  });

  it("stops a search when asked", async () => {
    const fetchMock = mockApi(() => Promise.resolve(json(500, {})));
    fetchMock.mockImplementation(async (url, init) =>
      String(url).startsWith("/v1/dogs?") ? json(200, { items: [], next: null, total: 0 }) : hang(url, init),
    );
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    await userEvent.click(screen.getByRole("button", { name: "Stop searching" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Search cancelled.");
    expect((searchInit(fetchMock).signal as AbortSignal).aborted).toBe(true);
    expect(screen.getByRole("button", { name: "Search again" })).toBeEnabled();
  });

  it("searches with another photo picked while one hangs, and gives up the first", async () => {
    const answer = later<Response>();
    let n = 0;
    const fetchMock = mockApi(() => Promise.resolve(json(500, {})));
    fetchMock.mockImplementation(async (url, init) =>
      String(url).startsWith("/v1/dogs?")
        ? json(200, { items: [], next: null, total: 0 })
        : n++ === 0
          ? hang(url, init)
          : answer.promise,
    );
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto("first.jpg");
    await userEvent.upload(screen.getByLabelText("Choose another photo"), new File(["y"], "second.jpg", { type: "image/jpeg" }));
    expect(screen.getByTestId("searching")).toHaveTextContent("Searching with second.jpg…");
    await vi.waitFor(() => expect(searchCalls(fetchMock)).toHaveLength(2));
    expect((searchCalls(fetchMock)[1].get("image") as File).name).toBe("second.jpg");
    expect((searchInit(fetchMock).signal as AbortSignal).aborted).toBe(true);
    answer.settle(answerWith("of-second"));
    expect(await screen.findByRole("link", { name: "of-second" })).toBeInTheDocument();
    expect(screen.queryByRole("alert")).toBeNull(); // the first one given up is no error
  });

  it("says what the user waited, and the server's own time as the server's", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const answer = later<Response>();
    mockApi(() => answer.promise);
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    await vi.advanceTimersByTimeAsync(10_000);
    answer.settle(json(200, { took_ms: 89, results: [hit("a"), hit("b")] }));
    expect(await screen.findByTestId("search-summary")).toHaveTextContent(/^2 matches in 10(\.\d)? s \(server: 89 ms\)$/);
  });

  it("says a proxy's status line in words", async () => {
    const answers = [
      new Response("504 Gateway Time-out", { status: 504, statusText: "Gateway Timeout" }),
      new Response("<html><body><h1>502 Bad Gateway</h1></body></html>", { status: 502, statusText: "Bad Gateway" }),
      new Response("Internal Server Error", { status: 500, statusText: "Internal Server Error" }),
    ];
    let n = 0;
    mockApi(async () => answers[n++]);
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    expect(await screen.findByRole("alert")).toHaveTextContent(
      /^The server did not answer in time \(504\)\. Try again in a moment\.✕$/,
    );
    await userEvent.click(screen.getByRole("button", { name: "Search again" }));
    await vi.waitFor(() => expect(screen.getByRole("alert")).toHaveTextContent(/^The server could not be reached \(502\)/));
    await userEvent.click(screen.getByRole("button", { name: "Search again" }));
    await vi.waitFor(() => expect(screen.getByRole("alert")).toHaveTextContent(/^The server had a problem \(500\)/));
  });

  it("says the gateway's 503 in words first, and keeps its reason as details", async () => {
    mockApi(async () => json(503, { detail: "embedder unavailable: unreachable: ConnectError: refused" }));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto();
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent(/^The search service is busy or restarting\. Try again in a moment\./);
    expect(within(alert).getByTestId("error-details")).toHaveTextContent(
      "Details: embedder unavailable: unreachable: ConnectError: refused",
    );
  });
});

const searchInit = (fetchMock: ReturnType<typeof mockApi>) =>
  fetchMock.mock.calls.find(([u]) => u === "/v1/search")![1]!;
