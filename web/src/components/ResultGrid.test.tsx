import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import type { SearchResult } from "../lib/types";
import { ResultGrid } from "./ResultGrid";

const result = (id: string, score: number, payload: Record<string, string>): SearchResult => ({
  id,
  score,
  payload,
  image_url: `/v1/dogs/${id}/image`,
  thumbnail_url: `/v1/dogs/${id}/image?size=thumbnail`,
});

describe("ResultGrid", () => {
  const results = [
    result("a", 0.912, { name: "Rex", breed: "beagle" }),
    result("b", 0.2, { breed: "dingo" }),
  ];

  it("shows each match in order with its score, band, thumbnail and links", () => {
    render(<ResultGrid results={results} matchHref={(r) => `#/match/${r.id}`} onMoreLike={() => {}} />);
    const cards = screen.getAllByTestId("result");
    expect(cards).toHaveLength(2);
    const first = within(cards[0]);
    expect(first.getByText("0.912")).toBeInTheDocument();
    expect(first.getByText("very close")).toBeInTheDocument();
    expect(first.getByRole("link", { name: "Rex" })).toHaveAttribute("href", "#/dogs/a");
    expect(first.getByRole("img", { name: "Match 1: Rex" })).toHaveAttribute("src", "/v1/dogs/a/image?size=thumbnail");
    expect(first.getByRole("link", { name: "Why it matches" })).toHaveAttribute("href", "#/match/a");
    // no name: the breed is the title
    expect(within(cards[1]).getByRole("link", { name: "dingo" })).toBeInTheDocument();
    expect(within(cards[1]).getByText("weak")).toBeInTheDocument();
  });

  it("asks for more like the chosen result, by keyboard too", async () => {
    const onMoreLike = vi.fn();
    render(<ResultGrid results={results} matchHref={() => "#"} onMoreLike={onMoreLike} />);
    const button = within(screen.getAllByTestId("result")[1]).getByRole("button", { name: "More like this" });
    button.focus();
    await userEvent.keyboard("{Enter}");
    expect(onMoreLike).toHaveBeenCalledWith(results[1]);
  });

  it("draws the matched dog's box on its thumbnail where the photo's size is known", () => {
    const boxed: SearchResult[] = [
      // 400 x 200 shown as a centre-cropped square: x 100..300 shows
      { ...result("a", 0.9, { breed: "beagle" }), box: [150, 50, 250, 150], payload: { breed: "beagle", width: 400, height: 200 } },
      { ...result("b", 0.8, { breed: "dingo" }), box: [0, 0, 10, 10] }, // no size in the payload: no box
      { ...result("c", 0.7, { breed: "pug" }), box: null, payload: { width: 400, height: 200 } }, // the whole photo
    ];
    render(<ResultGrid results={boxed} matchHref={() => "#"} onMoreLike={() => {}} />);
    const cards = screen.getAllByTestId("result");
    expect(within(cards[0]).getByTestId("dog-box")).toHaveStyle({ left: "25%", top: "25%", width: "50%", height: "50%" });
    expect(within(cards[1]).queryByTestId("dog-box")).toBeNull();
    expect(within(cards[2]).queryByTestId("dog-box")).toBeNull();
  });

  it("shows each report's status, distance and time, and nothing for a dog without one", () => {
    const reported: SearchResult[] = [
      {
        ...result("a", 0.9, {}),
        payload: { name: "Rex", status: "lost", location: { lat: 52.52, lon: 13.405 }, seen_at: "2026-11-30T17:05:00+00:00" },
        distance_km: 27.04,
        seen_at: "2026-11-30T17:05:00+00:00",
      },
      { ...result("b", 0.8, { name: "Bo", status: "found" }), distance_km: null },
      result("c", 0.7, { name: "Plain" }),
    ];
    render(<ResultGrid results={reported} matchHref={() => "#"} onMoreLike={() => {}} />);
    const cards = screen.getAllByTestId("result");
    expect(within(cards[0]).getByTestId("report")).toHaveTextContent("Lost27.0 km awayseen 30 Nov 2026, 18:05 CET");
    expect(within(cards[1]).getByTestId("report")).toHaveTextContent(/^Found$/); // no place known: no distance
    expect(within(cards[2]).queryByTestId("report")).toBeNull();
  });

  it("says which match a match's photo is a copy of, when both are among the results", () => {
    const copies = [
      result("a", 0.99, { name: "Rex" }),
      result("c", 0.5, { breed: "dingo", near_duplicate_of: "elsewhere" }),
      result("b", 0.98, { name: "Rex again", near_duplicate_of: "a" }),
    ];
    render(<ResultGrid results={copies} matchHref={(r) => `#/match/${r.id}`} onMoreLike={() => {}} />);
    const cards = screen.getAllByTestId("result");
    expect(within(cards[2]).getByTestId("copy-of")).toHaveTextContent("Its photo is a copy of #1's");
    expect(screen.getAllByTestId("copy-of")).toHaveLength(1); // not for a copy of a dog not shown
  });

  it("says which result copies the photo of the dog they are more like", () => {
    const like = { id: "elsewhere", payload: { name: "Buddy" }, image_url: "", thumbnail_url: "" };
    const results = [
      result("c", 0.99, { name: "Found retriever", near_duplicate_of: "elsewhere" }),
      result("d", 0.7, { breed: "dingo" }),
    ];
    render(<ResultGrid results={results} matchHref={() => "#"} onMoreLike={() => {}} likeDog={like} />);
    const cards = screen.getAllByTestId("result");
    expect(within(cards[0]).getByTestId("copy-of")).toHaveTextContent("Its photo is a copy of Buddy's");
    expect(within(cards[1]).queryByTestId("copy-of")).toBeNull();
  });

  it("says so when nothing matches", () => {
    render(<ResultGrid results={[]} matchHref={() => "#"} onMoreLike={() => {}} />);
    expect(screen.getByText(/No dogs match/)).toBeInTheDocument();
  });

  it("shows how likely each match is the same dog instead of a bare score, where the server says", () => {
    const judged: SearchResult[] = [
      { ...result("a", 0.93, { name: "Rex" }), same_dog: 0.934, verdict: "likely" },
      { ...result("b", 0.8, { name: "Max" }), same_dog: 0.55, verdict: "possible" },
      { ...result("c", 0.4, { name: "Bo" }), same_dog: 0.004, verdict: "unlikely" },
    ];
    render(<ResultGrid results={judged} matchHref={() => "#"} onMoreLike={() => {}} />);
    const cards = screen.getAllByTestId("result");
    expect(within(cards[0]).getByTestId("same-dog")).toHaveTextContent("likely the same dog (93 %)");
    expect(within(cards[0]).getByTestId("same-dog")).toHaveTextContent("similarity 0.930");
    expect(within(cards[0]).queryByText("very close")).toBeNull(); // not the bare cosine's band
    expect(within(cards[1]).getByText("possibly the same dog (55 %)")).toBeInTheDocument();
    expect(within(cards[2]).getByText("unlikely to be the same dog (<1 %)")).toBeInTheDocument();
  });
});


describe("ResultGrid's way to a match", () => {
  it("offers to compare an unlikely match, not to say why it matches", () => {
    const judged: SearchResult[] = [
      { ...result("a", 0.93, { name: "Rex" }), same_dog: 0.61, verdict: "possible" },
      { ...result("b", 0.4, { name: "Bo" }), same_dog: 0.004, verdict: "unlikely" },
    ];
    render(<ResultGrid results={judged} matchHref={(r) => `#/match/${r.id}`} onMoreLike={() => {}} />);
    const [possible, unlikely] = screen.getAllByTestId("result");
    expect(within(possible).getByRole("link", { name: "Why it matches" })).toHaveAttribute("href", "#/match/a");
    expect(within(possible).getByRole("link", { name: "Why match 1 (Rex) matches" })).toBeInTheDocument();
    expect(within(unlikely).queryByRole("link", { name: /matches/ })).toBeNull();
    expect(within(unlikely).getByRole("link", { name: "Compare" })).toHaveAttribute("href", "#/match/b");
    expect(within(unlikely).getByRole("link", { name: "Compare match 2 (Bo)" })).toBeInTheDocument();
  });

  it("says what to try when nothing matches, as the page knows it", () => {
    render(<ResultGrid results={[]} matchHref={() => "#"} onMoreLike={() => {}} emptyHint="Add some dogs first." />);
    expect(screen.getByText("No dogs match. Add some dogs first.")).toBeInTheDocument();
  });
});
