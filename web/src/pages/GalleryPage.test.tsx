import { render, screen, within } from "@testing-library/react";
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
  it("outlines each dog of a photo of two on its own card", async () => {
    const page = { items: [dog("a", [0, 0, 100, 100]), dog("b", [100, 0, 200, 100]), dog("c", null)], next: null, total: 3 };
    vi.stubGlobal("fetch", vi.fn(async () => json(200, page)));
    render(<GalleryPage limit={12} />);
    const cards = await screen.findAllByTestId("gallery-dog");
    expect(cards).toHaveLength(3);
    const boxes = cards.map((c) => within(c).queryAllByTestId("dog-box"));
    expect(boxes.map((b) => b.length)).toEqual([1, 1, 0]); // a dog stored before boxes: its photo alone
    expect(boxes[0][0]).toHaveStyle({ left: "0%", width: "50%" });
    expect(boxes[1][0]).toHaveStyle({ left: "50%", width: "50%" });
    expect(screen.getByText("Dogs 1–3 of 3")).toBeInTheDocument();
  });
});
