import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { GalleryPage } from "./GalleryPage";
import { json } from "../testing";

const dog = (id: string, box: [number, number, number, number] | null) => ({
  id,
  payload: { breed: "Australian terrier", width: 200, height: 100, ...(box ? { box } : {}) },
  photo_id: "p1",
  image_url: `/v1/dogs/${id}/image`,
  thumbnail_url: `/v1/dogs/${id}/image?size=thumbnail`,
});

describe("GalleryPage", () => {
  it("outlines each dog of a photo of two on its own card, the square cropped around it", async () => {
    const page = { items: [dog("a", [0, 0, 100, 100]), dog("b", [100, 0, 200, 100]), dog("c", null)], next: null, total: 3 };
    vi.stubGlobal("fetch", vi.fn(async () => json(200, page)));
    render(<GalleryPage limit={12} />);
    const cards = await screen.findAllByTestId("gallery-dog");
    expect(cards).toHaveLength(3);
    const boxes = cards.map((c) => within(c).queryAllByTestId("dog-box"));
    expect(boxes.map((b) => b.length)).toEqual([1, 1, 0]); // a dog stored before boxes: its photo alone
    // a centre crop would cut each dog in half: the square is the left half for dog a, the right half for dog b
    expect(boxes[0][0]).toHaveStyle({ left: "0%", width: "100%" });
    expect(boxes[1][0]).toHaveStyle({ left: "0%", width: "100%" });
    const photos = cards.map((c) => within(c).getByRole("img"));
    expect(photos.map((img) => img.style.objectPosition)).toEqual(["0% 50%", "100% 50%", ""]);
    expect(screen.getByText("Dogs 1–3 of 3")).toBeInTheDocument();
  });

  it("offers no pages to go through where every dog fits on the first one", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => json(200, { items: [], next: null, total: 0 })));
    const { unmount } = render(<GalleryPage limit={12} />);
    expect(await screen.findByText("No dogs yet.")).toBeInTheDocument();
    expect(screen.queryByRole("navigation", { name: "Gallery pages" })).toBeNull();
    unmount();
    vi.stubGlobal("fetch", vi.fn(async () => json(200, { items: [dog("a", null)], next: "c1", total: 13 })));
    render(<GalleryPage limit={12} />);
    expect(await screen.findByText("Dogs 1–1 of 13")).toBeInTheDocument();
    expect(screen.getByRole("navigation", { name: "Gallery pages" })).toBeInTheDocument();
  });

  it("keeps the page in the address, so that Back from a dog's page comes back to it", async () => {
    const fetchMock = vi.fn(async () => json(200, { items: [dog("x", null)], next: "c3", total: 30 }));
    vi.stubGlobal("fetch", fetchMock);
    window.location.hash = "#/gallery?limit=4&status=found";
    render(<GalleryPage limit={4} status="found" cursors={["c1", "c2"]} />);
    expect(await screen.findByText("Dogs 9–9 of 30")).toBeInTheDocument();
    expect(screen.getByText("Page 3")).toBeInTheDocument();
    const asked = new URL(String((fetchMock.mock.calls[0] as unknown[])[0]), "http://x").searchParams;
    expect(asked.get("cursor")).toBe("c2");
    await userEvent.click(screen.getByRole("button", { name: "Next page" }));
    expect(window.location.hash).toBe("#/gallery?limit=4&status=found&cursors=c1%2Cc2%2Cc3");
    await userEvent.click(screen.getByRole("button", { name: "Previous page" }));
    expect(window.location.hash).toBe("#/gallery?limit=4&status=found&cursors=c1");
  });

  it("shows only the dogs reported with a status, and another status is another address", async () => {
    const found = { ...dog("a", null), payload: { ...dog("a", null).payload, status: "found" } };
    const fetchMock = vi.fn(async () => json(200, { items: [found], next: null, total: 1 }));
    vi.stubGlobal("fetch", fetchMock);
    render(<GalleryPage limit={12} status="found" />);
    const [card] = await screen.findAllByTestId("gallery-dog");
    expect(within(card).getByTestId("report")).toHaveTextContent("Found"); // each card says its report
    const asked = new URL(String((fetchMock.mock.calls[0] as unknown[])[0]), "http://x").searchParams;
    expect(Object.fromEntries(asked)).toEqual({ limit: "12", filter: '{"status":"found"}' });
    const show = screen.getByRole("combobox", { name: "Show" });
    expect(show).toHaveValue("found");
    await userEvent.selectOptions(show, "lost");
    expect(window.location.hash).toBe("#/gallery?limit=12&status=lost");
  });

  it("shows a page that failed to load as failed, not the page before it, and asks it again", async () => {
    const page1 = { items: Array.from({ length: 12 }, (_, i) => dog(`a${i}`, null)), next: "c1", total: 57 };
    const page2 = { items: Array.from({ length: 12 }, (_, i) => dog(`b${i}`, null)), next: "c2", total: 57 };
    let down = false;
    const fetchMock = vi.fn(async (url: RequestInfo | URL) => {
      if (down) throw new TypeError("Failed to fetch");
      return json(200, new URL(String(url), "http://x").searchParams.get("cursor") === "c1" ? page2 : page1);
    });
    vi.stubGlobal("fetch", fetchMock);
    window.location.hash = "#/gallery?limit=12";
    const { rerender } = render(<GalleryPage limit={12} />);
    expect(await screen.findByText("Dogs 1–12 of 57")).toBeInTheDocument();
    down = true; // the connection drops as "Next" is pressed
    await userEvent.click(screen.getByRole("button", { name: "Next page" }));
    expect(window.location.hash).toBe("#/gallery?limit=12&cursors=c1");
    rerender(<GalleryPage limit={12} cursors={["c1"]} />);
    expect(await screen.findByRole("alert")).toHaveTextContent("Cannot reach the dogsearch server");
    // page 1's dogs and range are gone, and "Next" cannot go on from a page that did not load
    expect(screen.queryAllByTestId("gallery-dog")).toHaveLength(0);
    expect(screen.queryByText(/^Dogs /)).toBeNull();
    const next = screen.getByRole("button", { name: "Next page" });
    expect(next).toHaveAttribute("aria-disabled", "true");
    await userEvent.click(next);
    expect(window.location.hash).toBe("#/gallery?limit=12&cursors=c1");
    down = false; // the connection is back
    await userEvent.click(screen.getByRole("button", { name: "Try again" }));
    expect(await screen.findByText("Dogs 13–24 of 57")).toBeInTheDocument();
    expect(screen.queryByRole("alert")).toBeNull();
    const [card] = screen.getAllByTestId("gallery-dog"); // page 2's dogs, as the range says
    expect(within(card).getAllByRole("link")[0]).toHaveAttribute("href", "#/dogs/b0");
    await userEvent.click(screen.getByRole("button", { name: "Next page" }));
    expect(window.location.hash).toBe("#/gallery?limit=12&cursors=c1%2Cc2");
  });

  it("says a stale or edited address is no longer valid, and goes back to the first page", async () => {
    const refused = { detail: "search: offset: not the `next` of a page in this order", code: "invalid_store_input" };
    vi.stubGlobal("fetch", vi.fn(async () => json(422, refused)));
    window.location.hash = "#/gallery?limit=12&cursors=abcdef";
    render(<GalleryPage limit={12} cursors={["abcdef"]} />);
    expect(await screen.findByRole("alert")).toHaveTextContent(
      "This gallery page's address is no longer valid: start again from the first page.",
    );
    expect(screen.queryByText(/offset/)).toBeNull();
    await userEvent.click(screen.getByRole("button", { name: "Go to the first page" }));
    expect(window.location.hash).toBe("#/gallery?limit=12");
  });

  it("offers the first page for an empty page past it, and never an impossible range", async () => {
    // a cursor of another status filter: past the end of this one
    vi.stubGlobal("fetch", vi.fn(async () => json(200, { items: [], next: null, total: 2 })));
    window.location.hash = "#/gallery?limit=12&status=found&cursors=c1";
    render(<GalleryPage limit={12} status="found" cursors={["c1"]} />);
    expect(await screen.findByText(/No dogs on this page/)).toBeInTheDocument();
    expect(screen.queryByText(/Dogs 13–12/)).toBeNull();
    await userEvent.click(screen.getByRole("button", { name: "Go to the first page" }));
    expect(window.location.hash).toBe("#/gallery?limit=12&status=found");
  });

  it("says when no dog has the status", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => json(200, { items: [], next: null, total: 0 })));
    render(<GalleryPage limit={12} status="sighted" />);
    expect(await screen.findByText("No dogs reported sighted.")).toBeInTheDocument();
  });
});
