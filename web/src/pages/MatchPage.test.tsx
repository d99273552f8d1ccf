import { render, screen, within } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { SearchProvider, type SearchState } from "../lib/searchState";
import type { Dog, Pose } from "../lib/types";
import { json, stubObjectUrls } from "../testing";
import { MatchPage } from "./MatchPage";

const POSE: Pose = {
  model: "test",
  width: 100,
  height: 100,
  dogs: [
    {
      box: [0, 0, 50, 50],
      score: 0.9,
      keypoints: Array.from({ length: 17 }, (_, i) => ({ name: `k${i}`, x: 1, y: 1, score: 0.9 })),
      analysis: {
        proportions: {
          leg_to_body: { value: 0.5, confidence: 0.9 },
          head_to_body: { value: 0.3, confidence: 0.9 },
          tail_to_body: { value: 0.4, confidence: 0.9 },
        },
        posture: { label: "standing", confidence: 0.9 },
        visible_share: { value: 0.9, confidence: 0.9 },
      },
    },
  ],
};

// Rex has two photos: the cover, and the one a search matched
const REX: Dog = {
  id: "m",
  payload: { name: "Rex", box: [50, 50, 100, 100], width: 100, height: 100 },
  image_url: "/v1/dogs/m/photos/p1/image",
  thumbnail_url: "/v1/dogs/m/photos/p1/image?size=thumbnail",
  photos: [
    { id: "p1", cover: true, box: [50, 50, 100, 100], width: 100, height: 100, image_url: "/v1/dogs/m/photos/p1/image", thumbnail_url: "" },
    { id: "p2", cover: false, box: [0, 0, 50, 50], width: 200, height: 100, image_url: "/v1/dogs/m/photos/p2/image", thumbnail_url: "" },
  ],
};

/** A server with Rex and the pose service; `overlay`: the answer of the overlays. */
function mockApi(overlay: () => Response = () => new Response("png", { status: 200 })) {
  const fetchMock = vi.fn(async (input: RequestInfo | URL) => {
    const url = String(input);
    if (url === "/v1/dogs/m") return json(200, REX);
    if (url.includes(".png") || url.includes("render=true")) return overlay();
    if (url.startsWith("/v1/dogs/m/pose") || url === "/v1/pose") return json(200, POSE);
    return json(404, { detail: "Not Found" });
  });
  vi.stubGlobal("fetch", fetchMock);
  return fetchMock;
}

const searched = (search: string, verdict: "likely" | "unlikely" = "likely"): SearchState => ({
  query: { kind: "photo", file: new File(["x"], "query.jpg", { type: "image/jpeg" }), url: "blob:query" },
  results: [{ ...REX, photo_id: "p2", box: [0, 0, 50, 50], score: 0.71, same_dog: verdict === "likely" ? 0.9 : 0.01, verdict }],
  filters: {},
  fieldText: "",
  k: 12,
  search,
});

function renderMatch(state: SearchState | undefined, params: { photo?: string; search?: string }) {
  return render(
    <SearchProvider initialState={state}>
      <MatchPage id="m" from={null} photo={params.photo ?? null} search={params.search ?? null} />
    </SearchProvider>,
  );
}

const urls = (fetchMock: ReturnType<typeof mockApi>) => fetchMock.mock.calls.map(([u]) => String(u));
/** The match's side, once the dog is loaded. */
const matchSide = async () => within((await screen.findByRole("heading", { name: "Match: Rex" })).closest("figure")!);

describe("MatchPage", () => {
  beforeEach(() => stubObjectUrls("blob:overlay"));

  it("compares with the photo of the match that matched: its image, its box and its pose", async () => {
    const fetchMock = mockApi();
    renderMatch(searched("s.1"), { photo: "p2", search: "s.1" });
    await (await matchSide()).findByTestId("pose-overlay");
    expect(urls(fetchMock)).toEqual(expect.arrayContaining(["/v1/dogs/m/pose?photo=p2", "/v1/dogs/m/pose.png?photo=p2"]));
    expect(urls(fetchMock).some((u) => u.startsWith("/v1/dogs/m/pose") && !u.includes("photo=p2"))).toBe(false);
    expect((await matchSide()).getByTestId("dog-box")).toHaveStyle({ left: "0%", top: "0%", width: "25%", height: "50%" });
  });

  it("says when the keypoints could not be drawn rather than show none beside their count", async () => {
    mockApi(() => json(500, { detail: "the renderer failed" }));
    renderMatch(searched("s.1"), { photo: "p2", search: "s.1" });
    await vi.waitFor(() => expect(screen.getAllByTestId("overlay-failed")).toHaveLength(2)); // the query's and the match's
    const side = await matchSide();
    expect(side.getByTestId("overlay-failed")).toHaveTextContent("The keypoints could not be drawn: the renderer failed");
    expect(side.getByText("17 of 17 found")).toBeInTheDocument();
    expect(side.getByAltText(/^Photo of Rex/)).toHaveAttribute("src", "/v1/dogs/m/photos/p2/image"); // the one matched
    expect(screen.queryByTestId("pose-overlay")).toBeNull();
  });

  it("says the searched photo is not in this tab, without comparing poses forever, when opened afresh", async () => {
    const fetchMock = mockApi();
    renderMatch(undefined, { photo: "p2", search: "s.3" });
    expect(await screen.findByTestId("no-query")).toHaveTextContent(
      "The searched photo is not in this tab any more. Search again to compare.",
    );
    expect(screen.queryByText(/reloaded/)).toBeNull();
    await (await matchSide()).findByTestId("pose-overlay");
    expect(
      screen.getByText("Posture and proportions cannot be compared here: there is no searched photo to compare with."),
    ).toBeInTheDocument();
    expect(screen.queryByText("Comparing poses…")).toBeNull();
    expect(urls(fetchMock)).not.toContain("/v1/pose");
  });

  it("does not compare a match of an earlier search with the latest search's photo", async () => {
    const fetchMock = mockApi();
    renderMatch(searched("s.2"), { photo: "p2", search: "s.1" });
    expect(await screen.findByTestId("other-search")).toHaveTextContent("This match is not from your latest search");
    await (await matchSide()).findByTestId("pose-overlay");
    expect(urls(fetchMock)).not.toContain("/v1/pose");
    expect(screen.queryByAltText("Your query photo")).toBeNull();
    expect(screen.getByText(/The score is not known here/)).toBeInTheDocument(); // not the latest search's score
  });

  it("compares a match of the latest search, and calls an unlikely one compared, not matching", async () => {
    const fetchMock = mockApi();
    renderMatch(searched("s.4", "unlikely"), { photo: "p2", search: "s.4" });
    expect(await screen.findByRole("heading", { name: "How Rex compares" })).toBeInTheDocument();
    expect(await screen.findByTestId("same-dog-sentence")).toHaveTextContent(/unlikely to be the same dog \(1 %\)/i);
    await vi.waitFor(() => expect(urls(fetchMock)).toContain("/v1/pose"));
    expect(screen.getByAltText(/^Your query photo/)).toBeInTheDocument();
  });

  it("says an unlikely match's chance may be too low where the search could not check for one dog stored twice", async () => {
    mockApi();
    const { unmount } = renderMatch({ ...searched("s.5", "unlikely"), verdictsUnchecked: true }, { photo: "p2", search: "s.5" });
    expect(await screen.findByTestId("verdicts-unchecked")).toHaveTextContent(
      "This chance may be too low: the server could not check whether two of the results are one dog reported " +
        "twice. Compare the photos: it may still be the same dog.",
    );
    unmount();
    renderMatch({ ...searched("s.6", "likely"), verdictsUnchecked: true }, { photo: "p2", search: "s.6" });
    expect(await screen.findByTestId("same-dog-sentence")).toHaveTextContent(/likely the same dog/i);
    expect(screen.queryByTestId("verdicts-unchecked")).toBeNull(); // nothing more to find
  });
});
