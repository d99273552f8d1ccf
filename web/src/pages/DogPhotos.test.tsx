import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { Scope } from "../lib/types";
import { drag, json, renderApp, showPhoto, stubObjectUrls } from "../testing";

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
 * `added` (its same_dog and verdict) and is listed after the cover, as ids sort; PATCH answers without the photos. */
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
      const file = (init.body as FormData).get("image") as File;
      if (file.name.endsWith(".txt")) {
        return json(415, { detail: "not an image: cannot identify image file", code: "image_unsupported" });
      }
      if (file.name === "fido.jpg") {
        // dog d2's photo already: the refusal names it (a server before dog_id said it in the detail only)
        const detail = "dog 0 of this photo is dog d2, not dog d1";
        return json(409, { detail, code: "photo_of_another_dog", ...(added === null && { dog_id: "d2" }) });
      }
      const id = `p${dog.photos.length + 1}`;
      dog.photos = [dog.photos[0], photo(id), ...dog.photos.slice(1)];
      return json(201, { ...dog, photo_id: id, ...(added ?? { same_dog: null, verdict: null }) });
    }
    if (path.startsWith("/v1/dogs/d1/photos/") && path.endsWith("/box") && init?.method === "PUT") {
      const box = (JSON.parse(String(init.body)).box as string).split(",").map(Number) as [number, number, number, number];
      const marked = path.split("/")[5];
      dog.photos = dog.photos.map((p) => (p.id === marked ? { ...p, box } : p));
      return json(200, dog);
    }
    if (path === "/v1/dogs/d1" && init?.method === "PATCH") {
      const { photos: _, ...rest } = dog;
      dog.payload = { ...dog.payload, ...JSON.parse(String(init.body)) };
      return json(200, { ...rest, payload: dog.payload });
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
  /** The dog's page, a photo `name` added on it: what the page says of it. */
  async function addOne(name: string) {
    renderPage();
    await screen.findAllByTestId("dog-photo");
    await userEvent.upload(screen.getByLabelText("Add photos of this dog"), new File(["x"], name, { type: "image/jpeg" }));
    return screen.findByTestId("photo-added");
  }

  beforeEach(() => {
    stubObjectUrls();
  });

  it("lists every photo and lets the owner add one and remove one", async () => {
    const fetchMock = mockApi("shelter", "write");
    renderPage();
    expect(await screen.findAllByTestId("dog-photo")).toHaveLength(2);
    expect(screen.getByRole("heading", { name: "2 photos" })).toBeInTheDocument();
    // each photo outlines where this dog is in it (p2: x 200..300 of a 2:1 photo, shown as a square centred on it)
    const strip = screen.getAllByTestId("dog-photo");
    expect(within(strip[0]).queryAllByTestId("dog-box")).toHaveLength(0);
    expect(within(strip[1]).getByTestId("dog-box")).toHaveStyle({ left: "25%", width: "50%", top: "0%", height: "100%" });

    const added = new File(["x"], "rex-3.jpg", { type: "image/jpeg" });
    await userEvent.upload(screen.getByLabelText("Add photos of this dog"), added);
    expect(await screen.findByRole("status")).toHaveTextContent("Photo added.");
    expect(screen.getAllByTestId("dog-photo")).toHaveLength(3);
    const post = fetchMock.mock.calls.find(([u, i]) => u === "/v1/dogs/d1/photos" && i?.method === "POST")!;
    expect((post[1]!.body as FormData).get("image")).toBeInstanceOf(File);

    await userEvent.click(screen.getByRole("button", { name: "Remove photo 1" }));
    expect(await screen.findByText("Photo removed.")).toBeInTheDocument();
    expect(fetchMock.mock.calls.some(([u, i]) => u === "/v1/dogs/d1/photos/p1" && i?.method === "DELETE")).toBe(true);
    const left = screen.getAllByTestId("dog-photo");
    expect(left).toHaveLength(2);
    expect(within(left[1]).getByText("cover")).toBeInTheDocument(); // another photo is the cover now (the one just added, still last)
  });

  it("warns, not in a success box, which photo added looks unlike the dog's other photos", async () => {
    mockApi("shelter", "write", { same_dog: 0.004, verdict: "unlikely" });
    const said = await addOne("cat.jpg");
    expect(said).toHaveTextContent(
      "cat.jpg: Photo added, but this photo looks unlike the dog's other photos: unlikely to be the same dog (<1 %). " +
        "Check that it shows this dog (another pose or light can do that too); if not, remove it.",
    );
    expect(said).toHaveClass("warning");
    expect(said).not.toHaveClass("success");
    // its thumbnail beside the warning, and the photo itself last in the strip, marked
    expect(await within(said).findByRole("img", { name: "The photo just added" })).toHaveAttribute("src", "blob:photo");
    const strip = screen.getAllByTestId("dog-photo");
    expect(strip[2]).toHaveClass("just-added");
    expect(within(strip[2]).getByRole("img")).toHaveAccessibleName("Photo 3 of Rex (just added)");
  });

  it("links to the dog a photo is already, where the server names it", async () => {
    mockApi("shelter", "write");
    const said = await addOne("fido.jpg");
    expect(said).toHaveTextContent("fido.jpg: This photo is already another dog's: it cannot be a photo of this one too.");
    expect(said).toHaveClass("error");
    expect(within(said).getByRole("link", { name: "another dog's" })).toHaveAttribute("href", "#/dogs/d2");
  });

  it("says a photo is another dog's without a link where the server does not name it", async () => {
    mockApi("shelter", "write", { same_dog: 0.9, verdict: "likely" });
    const said = await addOne("fido.jpg");
    expect(said).toHaveTextContent("The dog in this photo is stored already, as another dog");
    expect(within(said).queryByRole("link")).toBeNull();
  });

  it("adds several photos one after another, each with its own result, the new ones last", async () => {
    const fetchMock = mockApi("shelter", "write");
    renderPage();
    await screen.findAllByTestId("dog-photo");
    const input = screen.getByLabelText("Add photos of this dog");
    expect(input).toHaveAttribute("multiple");
    await userEvent.upload(input, [
      new File(["x"], "rex-3.jpg", { type: "image/jpeg" }),
      new File(["x"], "notes.txt", { type: "image/jpeg" }),
      new File(["x"], "rex-4.jpg", { type: "image/jpeg" }),
    ]);
    await vi.waitFor(() => expect(screen.getAllByTestId("photo-added")).toHaveLength(3));
    expect(screen.getAllByTestId("photo-added").map((p) => p.textContent)).toEqual([
      "rex-3.jpg: Photo added.",
      "notes.txt: This file is not a photo the server can read: choose a JPEG, PNG, HEIC or WebP photo. " +
        "Details: not an image: cannot identify image file",
      "rex-4.jpg: Photo added.",
    ]);
    // the server's reason in small print under the sentence, as in an error banner
    const refused = screen.getAllByTestId("photo-added")[1];
    expect(within(refused).getByTestId("error-details")).toHaveTextContent("Details: not an image: cannot identify image file");
    const posts = fetchMock.mock.calls.filter(([u, i]) => u === "/v1/dogs/d1/photos" && i?.method === "POST");
    expect(posts.map(([, i]) => ((i!.body as FormData).get("image") as File).name)).toEqual(["rex-3.jpg", "notes.txt", "rex-4.jpg"]);
    // the server lists them after the cover; here they come last, marked, and p2 (the one with a box) stays second
    const strip = screen.getAllByTestId("dog-photo");
    expect(strip.map((li) => li.classList.contains("just-added"))).toEqual([false, false, true, true]);
    expect(within(strip[1]).getByTestId("dog-box")).toBeInTheDocument();
  });

  it("keeps the keyboard's focus in the photos after one is removed", async () => {
    mockApi("shelter", "write");
    renderPage();
    await screen.findAllByTestId("dog-photo");
    screen.getByRole("button", { name: "Remove photo 2" }).focus();
    await userEvent.keyboard("{Enter}");
    await screen.findByText("Photo removed.");
    expect(screen.getByRole("heading", { name: "1 photo" })).toHaveFocus();
  });

  it("keeps the photos when the suggested breed is accepted (the answer lists none)", async () => {
    mockApi("shelter", "write");
    const fetchMock = vi.mocked(fetch);
    const listed = fetchMock.getMockImplementation()!;
    fetchMock.mockImplementation(async (url, init) => {
      const answer = await listed(url, init);
      if (url !== "/v1/dogs/d1" || init?.method) return answer;
      const dog = await answer.json();
      return json(200, { ...dog, payload: { ...dog.payload, breed_guess: [{ breed: "beagle", p: 0.8 }] } });
    });
    renderPage();
    await userEvent.click(await screen.findByRole("button", { name: "Accept the suggested breed beagle" }));
    await screen.findByText("Breed set to beagle.");
    expect(screen.getByRole("heading", { name: "2 photos" })).toBeInTheDocument();
    expect(screen.getAllByTestId("dog-photo")).toHaveLength(2);
  });

  it("lets the owner mark the dog in any of its photos", async () => {
    const fetchMock = mockApi("shelter", "write");
    renderPage();
    await screen.findAllByTestId("dog-photo");
    await userEvent.click(screen.getByRole("button", { name: "Mark the dog in photo 2" }));
    expect(await screen.findByText("Marking photo 2 of 2.")).toBeInTheDocument();
    const shown = screen.getByAltText("Your photo: drag a box around the dog");
    expect(shown).toHaveAttribute("src", "blob:photo"); // that photo, fetched with the key
    expect(screen.getByTestId("mark-area")).toHaveFocus(); // the keyboard goes on to the photo
    showPhoto(400, 200); // shown at 200x150 from (10, 20): two photo pixels to one of the page's
    drag([10, 20], [110, 120]);
    await userEvent.click(screen.getByRole("button", { name: "Save this box" }));
    await screen.findByText(/The dog's box is saved/);
    const put = fetchMock.mock.calls.find(([, init]) => init?.method === "PUT")!;
    expect(put[0]).toBe("/v1/dogs/d1/photos/p2/box");
    expect(JSON.parse(String(put[1]!.body))).toEqual({ box: "0,0,200,133" });
    expect(screen.getByRole("button", { name: "Mark the dog in photo 2" })).toHaveFocus(); // back where it was
  });

  it("offers no add or remove to a key that may not change the dog, and no remove of a last photo", async () => {
    mockApi("someone-else", "write");
    renderPage();
    expect(await screen.findAllByTestId("dog-photo")).toHaveLength(2);
    expect(screen.queryByRole("button", { name: /Remove photo/ })).toBeNull();
    expect(screen.queryByRole("button", { name: /Mark/ })).toBeNull();
    expect(screen.queryByLabelText("Add photos of this dog")).toBeNull();
  });
});
