import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { Scope } from "../lib/types";
import { drag, json, renderApp, showPhoto, stubObjectUrls } from "../testing";

const GUESSED = {
  id: "d1",
  owner: "shelter",
  payload: {
    name: "Rex",
    owner: "shelter",
    width: 400,
    height: 200,
    box: [100, 50, 300, 150],
    breed_guess: [{ breed: "beagle", p: 0.81 }, { breed: "basset", p: 0.1 }],
  },
  image_url: "/v1/dogs/d1/image",
  thumbnail_url: "/v1/dogs/d1/image?size=thumbnail",
};

/** A gateway where the visitor is `name` with `scope`; PATCH merges the fields into the dog (null: removed) and
 * answers it without photos; the list of dogs answers `copies`. */
function mockApi(name: string, scope: Scope, extra: Record<string, unknown> = {}, copies: object | null = null) {
  let dog = structuredClone(GUESSED) as typeof GUESSED & { payload: Record<string, unknown> };
  dog.payload = { ...dog.payload, ...extra };
  const fetchMock = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
    if (url === "/v1/me") return json(200, { name, scope, scopes: [], open: false, anonymous_search: false });
    if (url === "/v1/dogs/d1" && init?.method === "PATCH") {
      const payload: Record<string, unknown> = { ...dog.payload, ...JSON.parse(String(init.body)) };
      for (const [k, v] of Object.entries(payload)) if (v === null) delete payload[k];
      dog = { ...dog, payload: payload as typeof dog.payload };
      return json(200, dog);
    }
    if (url === "/v1/dogs/d1/photos/d1/box" && init?.method === "PUT") {
      const box = (JSON.parse(String(init.body)).box as string).split(",").map(Number);
      dog = { ...dog, payload: { ...dog.payload, box, marked: true } };
      return json(200, dog);
    }
    if (url === "/v1/dogs/d1") return json(200, dog);
    if (String(url).startsWith("/v1/dogs?") && copies) return json(200, copies);
    return new Response("jpeg", { status: 200 });
  });
  vi.stubGlobal("fetch", fetchMock);
  return fetchMock;
}

/** The whole app at dog d1's page, signed in: the page shows once the server said who the visitor is. */
const renderPage = () => renderApp("#/dogs/d1", "dgs_some_key");

describe("DogPage with a suggested breed", () => {
  beforeEach(() => {
    stubObjectUrls();
  });

  it("lets the dog's owner accept the suggestion, then shows the new breed", async () => {
    const fetchMock = mockApi("shelter", "write");
    renderPage();
    expect(await screen.findByTestId("suggested-breed")).toHaveTextContent("Suggested breed: beagle (81 %)");
    // the dog's box on its photo, from the photo's recorded size
    expect(screen.getByTestId("dog-box")).toHaveStyle({ left: "25%", top: "25%", width: "50%", height: "50%" });
    expect(screen.getByText("beagle 81 %, basset 10 %")).toBeInTheDocument(); // recorded by the server, in words

    await userEvent.click(await screen.findByRole("button", { name: "Accept the suggested breed beagle" }));
    expect(await screen.findByRole("status")).toHaveTextContent("Breed set to beagle.");
    const patch = fetchMock.mock.calls.find(([, init]) => init?.method === "PATCH")!;
    expect(patch[0]).toBe("/v1/dogs/d1");
    expect(JSON.parse(String(patch[1]!.body))).toEqual({ breed: "beagle" });
    expect(screen.getByText("breed").nextSibling).toHaveTextContent("beagle");
    expect(screen.queryByTestId("suggested-breed")).toBeNull();
  });

  it("keeps what the server recorded with its fields, and links the dog whose photo this one copies", async () => {
    mockApi("shelter", "write", { phash: "c0303313930b17ab", near_duplicate_of: "d2", job: "j1" });
    renderPage();
    await screen.findByTestId("suggested-breed");
    for (const key of ["phash", "near_duplicate_of", "width", "job"]) {
      expect(screen.getByText(key).closest("details"), key).not.toBeNull();
    }
    expect(screen.getByText("name").closest("details")).toBeNull();
    expect(screen.getByTestId("copy-of")).toHaveTextContent("Its photo looks like a copy of another dog's");
    expect(screen.getByRole("link", { name: "another dog's" })).toHaveAttribute("href", "#/dogs/d2");
  });

  it("says a bulk job added the dog, linked for who may see the job, and folds the photo's hashes away", async () => {
    const id = "5f0c6f1e-0d7c-4c2e-9f5e-3b1e2a9c8d7f";
    const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    mockApi("shelter", "write", { job: id, sha256: sha, phash: "c0303313930b17ab" });
    const { unmount } = renderPage();
    await screen.findByTestId("suggested-breed");
    const recorded = screen.getByText("Recorded by the server").closest("details")!;
    expect(within(recorded).getByText("job").nextSibling).toHaveTextContent(/^Added by a bulk job$/);
    expect(within(recorded).getByRole("link", { name: "a bulk job" })).toHaveAttribute("href", `#/jobs?job=${id}`);
    expect(recorded).not.toHaveTextContent(id); // no id read out
    // the hashes: in a disclosure of their own, inside this one
    const fingerprints = within(recorded).getByText("The photo's fingerprints").closest("details")!;
    expect(fingerprints).not.toBe(recorded);
    expect(fingerprints).not.toHaveAttribute("open");
    expect(within(fingerprints).getByText("sha256").nextSibling).toHaveTextContent(sha);
    expect(within(fingerprints).getByText("phash")).toBeInTheDocument();
    unmount();

    // another write key does not see the job: words, no link
    mockApi("someone-else", "write", { job: id });
    renderPage();
    await screen.findByTestId("suggested-breed");
    expect(screen.getByText("job").nextSibling).toHaveTextContent(/^Added by a bulk job$/);
    expect(screen.queryByRole("link", { name: "a bulk job" })).toBeNull();
    expect(screen.queryByText("The photo's fingerprints")).toBeNull(); // no hashes recorded: no disclosure
  });

  it("says what the server recorded in words a person reads: no dog's id, the time on the reader's clock", async () => {
    const copied = "0b3e6f4c-9d2a-4c1e-8f7b-2a5d6c9e1f30";
    mockApi("shelter", "write", { near_duplicate_of: copied, created_at: "2026-12-03T10:00:00+00:00" });
    renderPage();
    await screen.findByTestId("suggested-breed");
    const recorded = screen.getByText("Recorded by the server").closest("details")!;
    expect(within(recorded).getByText("created_at").nextSibling).toHaveTextContent(/^3 Dec 2026, 11:00 CET$/);
    const copy = within(recorded).getByText("near_duplicate_of").nextSibling as HTMLElement;
    expect(copy).toHaveTextContent(/^the dog it copies$/);
    expect(within(copy).getByRole("link")).toHaveAttribute("href", `#/dogs/${copied}`);
  });

  it("names the other dogs whose photo looks like a copy of this one's", async () => {
    const copy = (id: string, name?: string) => ({ id, payload: name ? { name } : {}, image_url: "", thumbnail_url: "" });
    const fetchMock = mockApi("shelter", "write", { phash: "c0303313930b17ab" }, {
      items: [copy("d7", "Rexie"), copy("d8")],
      next: "d8",
      total: 7,
    });
    renderPage();
    expect(await screen.findByTestId("copies")).toHaveTextContent(
      "7 other dogs' photos look like a copy of this one's: Rexie, Unnamed dog and 5 more. If one is the same dog, " +
        "it can go.",
    );
    expect(screen.getByRole("link", { name: "Rexie" })).toHaveAttribute("href", "#/dogs/d7");
    const listed = fetchMock.mock.calls.map(([url]) => String(url)).find((url) => url.startsWith("/v1/dogs?"))!;
    expect(Object.fromEntries(new URL(listed, "http://x").searchParams)).toEqual({
      limit: "5",
      filter: '{"near_duplicate_of":"d1"}',
    });
  });

  it("does not look for copies of a photo without its hash", async () => {
    const fetchMock = mockApi("shelter", "write", {}, { items: [], next: null, total: 0 });
    renderPage();
    await screen.findByTestId("suggested-breed");
    expect(fetchMock.mock.calls.some(([url]) => String(url).startsWith("/v1/dogs?"))).toBe(false);
    expect(screen.queryByTestId("copies")).toBeNull();
  });

  it("says nothing of copies for a photo that copies none", async () => {
    mockApi("shelter", "write", { phash: "c0303313930b17ab" });
    renderPage();
    await screen.findByTestId("suggested-breed");
    expect(screen.queryByTestId("copy-of")).toBeNull();
  });

  it("shows the suggestion without Accept to a key that may not change the dog", async () => {
    mockApi("kiosk", "search");
    renderPage();
    expect(await screen.findByTestId("suggested-breed")).toHaveTextContent("Suggested breed: beagle (81 %)");
    expect(screen.getByTestId("signed-in-as")).toHaveTextContent("kiosk (search)");
    expect(screen.queryByRole("button", { name: /Accept/ })).toBeNull();
  });

  it("shows another write key's dog without Accept or Edit", async () => {
    mockApi("someone-else", "write");
    renderPage();
    await screen.findByTestId("suggested-breed");
    expect(screen.getByTestId("signed-in-as")).toHaveTextContent("someone-else (write)");
    expect(screen.queryByRole("button", { name: /Accept/ })).toBeNull();
    expect(screen.queryByRole("button", { name: /^Edit/ })).toBeNull();
  });
});

describe("DogPage: changing the dog", () => {
  beforeEach(() => {
    stubObjectUrls();
  });

  it("lets the owner change its name, notes and report, sending only what changed, an emptied field as null", async () => {
    const fetchMock = mockApi("shelter", "write", {
      breed: "beagle",
      notes: "shy",
      status: "found",
      location: { lat: 52.52, lon: 13.405 },
      seen_at: "2026-11-30T17:05:09+00:00",
    });
    renderPage();
    await userEvent.click(await screen.findByRole("button", { name: "Edit name, breed, notes and report" }));
    const form = screen.getByRole("form", { name: "Edit this dog" });
    const name = within(form).getByLabelText("Name");
    expect(name).toHaveFocus();
    expect(name).toHaveValue("Rex");
    expect(within(form).getByLabelText("Notes")).toHaveValue("shy");
    expect(within(form).getByLabelText("Where it was seen")).toHaveValue("52.52, 13.405");
    expect(within(form).queryByRole("button", { name: "Where and when from the photo" })).toBeNull(); // no photo here
    await userEvent.clear(name);
    await userEvent.type(name, "Rexy");
    await userEvent.clear(within(form).getByLabelText("Notes"));
    await userEvent.selectOptions(within(form).getByLabelText("Status"), "home"); // found → home again
    await userEvent.click(within(form).getByRole("button", { name: "Save" }));

    expect(await screen.findByRole("heading", { name: "Rexy" })).toBeInTheDocument();
    const patch = fetchMock.mock.calls.find(([, init]) => init?.method === "PATCH")!;
    expect(JSON.parse(String(patch[1]!.body))).toEqual({ name: "Rexy", notes: null, status: "home" });
    expect(screen.getByText("Saved.")).toBeInTheDocument();
    expect(screen.getByTestId("report")).toHaveTextContent("Home again");
    expect(screen.queryByText("notes")).toBeNull();
    expect(document.title).toBe("Rexy · dogsearch");
    expect(screen.getByRole("button", { name: "Edit name, breed, notes and report" })).toHaveFocus();
  });

  it("keeps what was typed when the server refuses it, and Escape leaves the dog as it was", async () => {
    const fetchMock = mockApi("shelter", "write");
    const gateway = fetchMock.getMockImplementation()!;
    fetchMock.mockImplementation(async (url, init) =>
      init?.method === "PATCH"
        ? json(422, { detail: "field 'seen_at': 2030-01-01T00:00:00+00:00 is in the future: when was the dog seen?" })
        : gateway(url, init),
    );
    renderPage();
    await userEvent.click(await screen.findByRole("button", { name: "Edit name, breed, notes and report" }));
    const form = screen.getByRole("form", { name: "Edit this dog" });
    await userEvent.type(within(form).getByLabelText("When it was seen"), "2030-01-01T01:00");
    await userEvent.click(within(form).getByRole("button", { name: "Save" }));
    expect(await within(form).findByRole("alert")).toHaveTextContent("is in the future: when was the dog seen?");
    expect(within(form).getByLabelText("When it was seen")).toHaveValue("2030-01-01T01:00");
    await userEvent.keyboard("{Escape}");
    expect(screen.queryByRole("form", { name: "Edit this dog" })).toBeNull();
    expect(screen.queryByText("seen_at")).toBeNull();
  });

  it("names the dog in the browser's tab", async () => {
    mockApi("shelter", "write");
    renderPage();
    await screen.findByRole("heading", { name: "Rex" });
    expect(document.title).toBe("Rex · dogsearch");
  });

  it("cancels the delete confirmation with Escape, back on its button", async () => {
    const fetchMock = mockApi("shelter", "write");
    renderPage();
    await userEvent.click(await screen.findByRole("button", { name: "Delete…" }));
    expect(screen.getByRole("button", { name: "Yes, delete" })).toHaveFocus();
    await userEvent.keyboard("{Escape}");
    expect(screen.queryByRole("group", { name: "Confirm delete" })).toBeNull();
    expect(screen.getByRole("button", { name: "Delete…" })).toHaveFocus();
    expect(fetchMock.mock.calls.some(([, init]) => init?.method === "DELETE")).toBe(false);
  });
});

describe("DogPage with a report", () => {
  it("shows the status, the place and the time in words, not as raw fields", async () => {
    mockApi("shelter", "write", {
      status: "sighted",
      location: { lat: 52.52, lon: 13.405 },
      seen_at: "2026-11-30T17:05:00+00:00",
    });
    renderPage();
    expect(await screen.findByTestId("report")).toHaveTextContent(
      "Sightedat 52.5200, 13.4050seen 30 Nov 2026, 18:05 CET",
    );
    expect(screen.queryByText("[object Object]")).toBeNull();
    expect(screen.queryByText("location")).toBeNull(); // not repeated among the other fields
  });
});

describe("DogPage: marking where the dog is", () => {
  beforeEach(() => {
    stubObjectUrls();
  });

  it("lets the owner mark the dog in its photo, and draws the new box", async () => {
    const fetchMock = mockApi("shelter", "write");
    renderPage();
    await userEvent.click(await screen.findByRole("button", { name: "Not the right dog? Mark it" }));
    showPhoto(); // 800x600 shown at 200x150
    drag([30, 50], [130, 120]);
    await userEvent.click(screen.getByRole("button", { name: "Save this box" }));
    expect(await screen.findByText(/The dog's box is saved/)).toBeInTheDocument();
    const put = fetchMock.mock.calls.find(([, init]) => init?.method === "PUT")!;
    expect(put[0]).toBe("/v1/dogs/d1/photos/d1/box");
    expect(JSON.parse(String(put[1]!.body))).toEqual({ box: "80,120,480,400" });
    expect(screen.getByTestId("dog-box")).toHaveStyle({ left: "20%", top: "60%" }); // on the 400x200 photo
    expect(screen.getByRole("button", { name: "Mark the dog again" })).toBeInTheDocument();
  });

  it("offers no marking to a key that may not change the dog", async () => {
    mockApi("kiosk", "search");
    renderPage();
    await screen.findByTestId("suggested-breed");
    expect(screen.queryByRole("button", { name: /Mark it/ })).toBeNull();
  });
});
