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

  it("says when no dog has the status", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => json(200, { items: [], next: null, total: 0 })));
    render(<GalleryPage limit={12} status="sighted" />);
    expect(await screen.findByText("No dogs reported sighted.")).toBeInTheDocument();
  });
});
