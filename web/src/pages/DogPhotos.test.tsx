import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { Scope } from "../lib/types";
import { json, renderApp, stubObjectUrls } from "../testing";

const photo = (id: string, cover = false, box: [number, number, number, number] | null = null) => ({
  id,
  cover,
  box,
  width: 400,
  height: 200,
  image_url: `/v1/dogs/d1/photos/${id}/image`,
  thumbnail_url: `/v1/dogs/d1/photos/${id}/image?size=thumbnail`,
});

/** A gateway holding dog d1 with photos p1 (cover) and p2, for a visitor `name` with `scope`; a photo added reads
 * `added` (its same_dog and verdict). */
function mockApi(name: string, scope: Scope, added: { same_dog: number; verdict: string } | null = null) {
  const dog = {
    id: "d1",
    owner: "shelter",
    payload: { name: "Rex", width: 400, height: 200 },
    image_url: "/v1/dogs/d1/image",
    thumbnail_url: "/v1/dogs/d1/image?size=thumbnail",
    photos: [photo("p1", true), photo("p2", false, [200, 0, 300, 200])],
  };
  const fetchMock = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
    const path = String(url);
    if (path === "/v1/me") return json(200, { name, scope, scopes: [], open: false, anonymous_search: false });
    if (path === "/v1/dogs/d1/photos" && init?.method === "POST") {
      dog.photos = [...dog.photos, photo("p3")];
      return json(201, { ...dog, photo_id: "p3", ...(added ?? { same_dog: null, verdict: null }) });
    }
    if (path.startsWith("/v1/dogs/d1/photos/") && init?.method === "DELETE") {
      const gone = path.split("/").pop();
      dog.photos = dog.photos.filter((p) => p.id !== gone);
      if (!dog.photos.some((p) => p.cover)) dog.photos[0] = { ...dog.photos[0], cover: true };
      return new Response(null, { status: 204 });
    }
    if (path === "/v1/dogs/d1") return json(200, dog);
    return new Response("jpeg", { status: 200 });
  });
  vi.stubGlobal("fetch", fetchMock);
  return fetchMock;
}

/** The whole app at dog d1's page, signed in: the page shows once the server said who the visitor is. */
const renderPage = () => renderApp("#/dogs/d1", "dgs_some_key");

describe("DogPage photos", () => {
  beforeEach(() => {
    stubObjectUrls();
  });

  it("lists every photo and lets the owner add one and remove one", async () => {
    const fetchMock = mockApi("shelter", "write");
    renderPage();
    expect(await screen.findAllByTestId("dog-photo")).toHaveLength(2);
    expect(screen.getByRole("heading", { name: "2 photos" })).toBeInTheDocument();
    // each photo outlines where this dog is in it (p2: the right half of a 2:1 photo, shown as a centred square)
    const strip = screen.getAllByTestId("dog-photo");
    expect(within(strip[0]).queryAllByTestId("dog-box")).toHaveLength(0);
    expect(within(strip[1]).getByTestId("dog-box")).toHaveStyle({ left: "50%", width: "50%", top: "0%", height: "100%" });

    const added = new File(["x"], "rex-3.jpg", { type: "image/jpeg" });
    await userEvent.upload(screen.getByLabelText("Add a photo of this dog"), added);
    expect(await screen.findByRole("status")).toHaveTextContent("Photo added.");
    expect(screen.getAllByTestId("dog-photo")).toHaveLength(3);
    const post = fetchMock.mock.calls.find(([u, i]) => u === "/v1/dogs/d1/photos" && i?.method === "POST")!;
    expect((post[1]!.body as FormData).get("image")).toBeInstanceOf(File);

    await userEvent.click(screen.getByRole("button", { name: "Remove photo 1" }));
    expect(await screen.findByText("Photo removed.")).toBeInTheDocument();
    expect(fetchMock.mock.calls.some(([u, i]) => u === "/v1/dogs/d1/photos/p1" && i?.method === "DELETE")).toBe(true);
    const left = screen.getAllByTestId("dog-photo");
    expect(left).toHaveLength(2);
    expect(within(left[0]).getByText("cover")).toBeInTheDocument(); // another photo is the cover now
  });

  it("says when a photo added looks unlike the dog's other photos", async () => {
    mockApi("shelter", "write", { same_dog: 0.004, verdict: "unlikely" });
    renderPage();
    await screen.findAllByTestId("dog-photo");
    await userEvent.upload(screen.getByLabelText("Add a photo of this dog"), new File(["x"], "cat.jpg", { type: "image/jpeg" }));
    expect(await screen.findByRole("status")).toHaveTextContent(
      "Photo added. It looks unlike this dog's other photos: unlikely to be the same dog (<1 %). " +
        "Check that it shows this dog (another pose or light can do that too).",
    );
  });

  it("offers no add or remove to a key that may not change the dog, and no remove of a last photo", async () => {
    mockApi("someone-else", "write");
    renderPage();
    expect(await screen.findAllByTestId("dog-photo")).toHaveLength(2);
    expect(screen.queryByRole("button", { name: /Remove photo/ })).toBeNull();
    expect(screen.queryByLabelText("Add a photo of this dog")).toBeNull();
  });
});
