import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { SearchProvider } from "../lib/searchState";
import { SearchPage } from "./SearchPage";

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

function mockApi(search: () => Promise<Response>) {
  const fetchMock = vi.fn(async (url: RequestInfo | URL, _init?: RequestInit) =>
    String(url).startsWith("/v1/dogs?") ? json(200, { items: [], next: null, total: 0 }) : search(),
  );
  vi.stubGlobal("fetch", fetchMock);
  return fetchMock;
}

async function pickPhoto(name = "dog.jpg", type = "image/jpeg") {
  const input = screen.getByLabelText("Choose a photo");
  // applyAccept off: a user can pick "All files" in the chooser, so the API must judge the file
  await userEvent.setup({ applyAccept: false }).upload(input, new File(["xx"], name, { type }));
}

describe("SearchPage upload errors", () => {
  beforeEach(() => {
    URL.createObjectURL = vi.fn(() => "blob:preview");
    URL.revokeObjectURL = vi.fn();
  });
  afterEach(() => vi.unstubAllGlobals());

  it("shows the API's detail for a rejected file", async () => {
    mockApi(async () => json(415, { detail: "not an image: cannot identify image file" }));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await pickPhoto("notes.txt", "text/plain");
    expect(await screen.findByRole("alert")).toHaveTextContent("not an image: cannot identify image file");
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

  it("refuses a malformed field filter before calling the API", async () => {
    const fetchMock = mockApi(async () => json(200, { results: [], took_ms: 1 }));
    render(<SearchProvider><SearchPage /></SearchProvider>);
    await userEvent.type(screen.getByLabelText("Other fields"), "brown");
    await pickPhoto();
    expect(await screen.findByRole("alert")).toHaveTextContent('Filter "brown": write it as field=value');
    expect(fetchMock.mock.calls.some(([u]) => u === "/v1/search")).toBe(false);
  });
});
