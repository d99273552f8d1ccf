import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { deliveryText } from "./WatchesPage";
import { json, renderApp, stubObjectUrls } from "../testing";

const LOST = {
  id: "d1",
  owner: "alice",
  payload: { name: "Rex", status: "lost", width: 400, height: 200 },
  image_url: "/v1/dogs/d1/image",
  thumbnail_url: "/v1/dogs/d1/image?size=thumbnail",
};
const WATCH = {
  id: "w1",
  dog_id: "d1",
  min_probability: 0.5,
  status: ["found", "sighted", "shelter"],
  near: null,
  radius_km: null,
  webhook_url: null,
  created_at: "2026-12-03T10:00:00+00:00",
  photos: 1,
  matches_url: "/v1/watches/w1/matches",
};
const FOUND = {
  id: "d2",
  payload: { breed: "beagle", status: "found" },
  image_url: "/v1/dogs/d2/image",
  thumbnail_url: "/v1/dogs/d2/image?size=thumbnail",
};

/** A gateway where alice (write) watches her lost dog, and a found dog has matched it (`found`); `deleted`: the
 * lost dog has been deleted since, which ended its watch. */
function mockApi(found: object = FOUND, watching = false, deleted = false) {
  const watches: (typeof WATCH & { ended_at?: string })[] = watching
    ? [deleted ? { ...WATCH, ended_at: "2026-12-04T09:00:00+00:00" } : WATCH]
    : [];
  const fetchMock = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
    if (url === "/v1/me") return json(200, { name: "alice", scope: "write", scopes: [], open: false, anonymous_search: false });
    if (url === "/v1/dogs/d1") return deleted ? json(404, { detail: "no dog d1", code: "dog_not_found" }) : json(200, LOST);
    if (url === "/v1/watches" && init?.method === "POST") {
      watches.push(WATCH);
      return json(201, { ...WATCH, secret: "whsec_x" });
    }
    if (url === "/v1/watches") return json(200, { items: watches });
    if (url === "/v1/watches/w1/matches") {
      return json(200, {
        items: [{ dog: found, probability: 0.93, score: 0.91, matched_at: "2026-12-03T11:00:00+00:00", delivery: null }],
      });
    }
    return new Response("jpeg", { status: 200 });
  });
  vi.stubGlobal("fetch", fetchMock);
  return fetchMock;
}

const RETRYING = { state: "pending", attempts: 2, last_status: 503, last_error: "HTTP 503", delivered_at: null };

/** A gateway where alice's watch, with a webhook, ended at 19:30 CET; its end's delivery is `end` (undefined: an older
 * server, which does not say), and `match`, when given, the delivery of a dog that matched before it ended. */
function endedApi(end: object | undefined, match: object | null = null) {
  const hook = "https://example.org/hook";
  const ended = { ...WATCH, webhook_url: hook, ended_at: "2026-12-03T18:30:00+00:00", ended_delivery: end };
  const fetchMock = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
    if (url === "/v1/me") return json(200, { name: "alice", scope: "write", scopes: [], open: false, anonymous_search: false });
    if (url === "/v1/watches") return json(200, { items: [ended] });
    if (url === "/v1/watches/w1/matches") {
      const found = { dog: FOUND, probability: 0.93, score: 0.91, matched_at: "2026-12-03T11:00:00+00:00", delivery: match };
      return json(200, { items: match ? [found] : [] });
    }
    if (url === "/v1/watches/w1/secret" && init?.method === "POST") return json(200, { id: "w1", secret: "whsec_new" });
    if (url === "/v1/watches/w1" && init?.method === "DELETE") return new Response(null, { status: 204 });
    if (url.toString().startsWith("/v1/dogs/d2")) return new Response("jpeg", { status: 200 });
    return json(404, { detail: "no dog d1", code: "dog_not_found" });
  });
  vi.stubGlobal("fetch", fetchMock);
  return fetchMock;
}

describe("Alerts", () => {
  beforeEach(() => {
    stubObjectUrls();
  });

  it("watches a dog from its page, then shows the dog that matched in the inbox", async () => {
    const fetchMock = mockApi();
    renderApp("#/dogs/d1", "dgs_some_key");
    await userEvent.click(await screen.findByRole("button", { name: "Watch for matches" }));
    const said = await screen.findByRole("status");
    expect(said).toHaveTextContent("Watching");
    const post = fetchMock.mock.calls.find(([u, i]) => u === "/v1/watches" && i?.method === "POST");
    expect(JSON.parse(String(post?.[1]?.body))).toEqual({ dog_id: "d1", min_probability: 0.5 });
    expect(screen.queryByRole("button", { name: "Watch for matches" })).toBeNull();

    await userEvent.click(within(said).getByRole("link", { name: "Alerts" }));
    const watch = await screen.findByTestId("watch");
    // named by its dog, with its photo; the statuses in words
    expect(await within(watch).findByRole("heading", { name: /^Dogs like Rex/ })).toHaveTextContent(
      "Dogs like Rex, found, sighted or in a shelter, at least 50 % likely the same dog",
    );
    expect(within(watch).getByRole("link", { name: /^Dogs like Rex/ })).toHaveAttribute("href", "#/dogs/d1");
    expect(await within(watch).findByRole("img", { name: "Photo of Rex" })).toBeInTheDocument();
    expect(fetchMock.mock.calls.map(([u]) => u)).toContain("/v1/dogs/d1/image?size=thumbnail");
    const match = await within(watch).findByTestId("watch-match");
    expect(match).toHaveTextContent("beagle");
    expect(match).toHaveTextContent("93 % likely the same dog");
    expect(within(match).getByRole("link")).toHaveAttribute("href", "#/dogs/d2");
    expect(within(match).queryByTestId("copy-of-watched")).toBeNull();
  });

  it("moves the keyboard's focus to the confirmation that takes the place of the button", async () => {
    mockApi();
    renderApp("#/dogs/d1", "dgs_some_key");
    await userEvent.click(await screen.findByRole("button", { name: "Watch for matches" }));
    expect(await screen.findByText(/^Watching:/)).toHaveFocus();
  });

  it("names each watch by what it watches for, and says its times on the reader's clock", async () => {
    mockApi(FOUND, true);
    renderApp("#/alerts", "dgs_some_key");
    const watch = await screen.findByRole("article", { name: /^Dogs like Rex, found/ }); // not by its id, w1
    expect(within(watch).getByText(/^Since/)).toHaveTextContent("Since 3 Dec 2026, 11:00 CET");
    expect(await within(watch).findByTestId("watch-match")).toHaveTextContent("· matched 3 Dec 2026, 12:00 CET");
    expect(within(watch).queryByTestId("watch-webhook")).toBeNull(); // no webhook: no secret to renew
  });

  it("makes a new webhook secret after a confirmation, and shows it once", async () => {
    const hooked = { ...WATCH, webhook_url: "https://example.org/hook" };
    const fetchMock = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
      if (url === "/v1/me") return json(200, { name: "alice", scope: "write", scopes: [], open: false, anonymous_search: false });
      if (url === "/v1/dogs/d1") return json(200, LOST);
      if (url === "/v1/watches") return json(200, { items: [hooked] });
      if (url === "/v1/watches/w1/matches") return json(200, { items: [] });
      if (url === "/v1/watches/w1/secret" && init?.method === "POST") return json(200, { id: "w1", secret: "whsec_new" });
      return new Response("jpeg", { status: 200 });
    });
    vi.stubGlobal("fetch", fetchMock);
    const renewals = () => fetchMock.mock.calls.filter(([u]) => u === "/v1/watches/w1/secret");
    renderApp("#/alerts", "dgs_some_key");
    const hook = await screen.findByTestId("watch-webhook");
    expect(hook).toHaveTextContent("Matches are sent to https://example.org/hook, signed with this watch's secret");
    await userEvent.click(within(hook).getByRole("button", { name: "New secret…" }));
    expect(renewals()).toHaveLength(0); // not before the confirmation
    await userEvent.click(within(hook).getByRole("button", { name: "Cancel" }));
    await userEvent.click(within(hook).getByRole("button", { name: "New secret…" }));
    await userEvent.click(within(hook).getByRole("button", { name: "Yes, a new secret" }));
    expect(await within(hook).findByTestId("new-secret")).toHaveTextContent(
      "The new secret, shown only now: copy it to your webhook's receiver. whsec_new",
    );
    expect(renewals()).toHaveLength(1);
    expect(renewals()[0][1]?.method).toBe("POST");
  });

  it("says when the dog that matched was added with a copy of the watched dog's own photo", async () => {
    mockApi({ ...FOUND, payload: { ...FOUND.payload, near_duplicate_of: "d1" } }, true);
    renderApp("#/alerts", "dgs_some_key");
    const match = await screen.findByTestId("watch-match");
    expect(match).toHaveTextContent("93 % likely the same dog · Found · its photo looks like a copy of this dog's own");
  });

  it("says so when the watched dog was deleted, and links no page that is gone", async () => {
    const fetchMock = mockApi(FOUND, true, true);
    renderApp("#/alerts", "dgs_some_key");
    const watch = await screen.findByTestId("watch");
    expect(await within(watch).findByTestId("watch-match")).toHaveTextContent("beagle");
    expect(within(watch).getByTestId("watched-dog-deleted")).toHaveTextContent(
      "Ended 4 Dec 2026, 10:00 CET: its dog was deleted, so this watch looks for no more dogs and no more alerts " +
        "come. The matches below stay until you delete the watch.",
    );
    expect(within(watch).getByText(/^Watched from/)).toHaveTextContent(
      "Watched from 3 Dec 2026, 11:00 CET to 4 Dec 2026, 10:00 CET",
    );
    expect(within(watch).queryByText(/^Since/)).toBeNull();
    expect(within(watch).getByRole("button", { name: "Delete this watch" })).toBeInTheDocument(); // it watches no more
    expect(within(watch).getByRole("heading")).toHaveTextContent(/^Dogs like a deleted dog, /);
    expect(within(watch).queryByRole("link", { name: /^Dogs like/ })).toBeNull();
    expect(fetchMock.mock.calls.map(([u]) => u)).not.toContain("/v1/dogs/d1/image?size=thumbnail");
    expect(fetchMock.mock.calls.map(([u]) => u)).not.toContain("/v1/dogs/d1"); // the watch says it is gone
  });

  it("says an ended watch's webhook was told of its end, offers no new secret, and says no match will come", async () => {
    const fetchMock = endedApi({ ...RETRYING, state: "delivered", last_error: null, delivered_at: "2026-12-03T18:30:02Z" });
    renderApp("#/alerts", "dgs_some_key");
    const watch = await screen.findByTestId("watch");
    expect(within(watch).getByTestId("watched-dog-deleted")).toHaveTextContent(
      /^Ended 3 Dec 2026, 19:30 CET: its dog was deleted, so this watch looks for no more dogs and no more alerts come\.$/,
    );
    expect(within(watch).getByText(/^Watched from/)).toHaveTextContent("Watched from 3 Dec 2026, 11:00 CET to 19:30 CET");
    expect(within(watch).getByTestId("watch-webhook").textContent).toBe(
      "Its matches went to https://example.org/hook, which gets no new match. Its end was told to your webhook (the " +
        "event watch.ended) on 3 Dec 2026, 19:30 CET.",
    );
    expect(within(watch).queryByRole("button", { name: "New secret…" })).toBeNull(); // nothing left to sign
    expect(await within(watch).findByText("No dog matched it before it ended.")).toBeInTheDocument();
    expect(within(watch).queryByText(/yet/)).toBeNull();
    await userEvent.click(within(watch).getByRole("button", { name: "Delete this watch" }));
    expect(fetchMock.mock.calls.some(([u, i]) => u === "/v1/watches/w1" && i?.method === "DELETE")).toBe(true);
  });

  it("says when an ended watch's end could not be told to its webhook", async () => {
    endedApi({ state: "failed", attempts: 6, last_status: 500, last_error: "HTTP 500", delivered_at: null });
    renderApp("#/alerts", "dgs_some_key");
    expect((await screen.findByTestId("watch-webhook")).textContent).toBe(
      "Its matches went to https://example.org/hook, which gets no new match. Its end could not be told to your " +
        "webhook (the event watch.ended): it failed after 6 attempts (HTTP 500).",
    );
    expect(screen.queryByRole("button", { name: "New secret…" })).toBeNull();
  });

  it("says what an older server does not: that the webhook is told of the end", async () => {
    endedApi(undefined);
    renderApp("#/alerts", "dgs_some_key");
    expect(await screen.findByTestId("watch-webhook")).toHaveTextContent(
      "Its matches went to https://example.org/hook, which is told once that the watch ended (the event watch.ended) " +
        "and gets no new match.",
    );
  });

  it.each([
    { what: "its end", end: RETRYING, match: null, said: "Its end is being told to your webhook (the event watch.ended): retrying (2 attempts, HTTP 503)." },
    { what: "a match found before it", end: { ...RETRYING, state: "delivered", delivered_at: "2026-12-03T18:31:00Z" }, match: RETRYING, said: "(the event watch.ended) on 3 Dec 2026, 19:31 CET." },
  ])("offers a new secret on an ended watch while $what is still being sent", async ({ end, match, said }) => {
    const fetchMock = endedApi(end, match);
    renderApp("#/alerts", "dgs_some_key");
    const hook = await screen.findByTestId("watch-webhook");
    expect(hook).toHaveTextContent(`${said} What is still being sent is signed with this watch's secret, shown once, when the watch was made.`);
    await userEvent.click(within(hook).getByRole("button", { name: "New secret…" }));
    await userEvent.click(within(hook).getByRole("button", { name: "Yes, a new secret" }));
    expect(await within(hook).findByTestId("new-secret")).toHaveTextContent("whsec_new");
    expect(fetchMock.mock.calls.filter(([u, i]) => u === "/v1/watches/w1/secret" && i?.method === "POST")).toHaveLength(1);
  });

  it("says a dog watched already is watched when the server refuses a second watch of it", async () => {
    // the list of watches did not load, so the button was offered; another tab had watched the dog meanwhile
    const fetchMock = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
      if (url === "/v1/me") return json(200, { name: "alice", scope: "write", scopes: [], open: false, anonymous_search: false });
      if (url === "/v1/dogs/d1") return json(200, LOST);
      if (url === "/v1/watches" && init?.method === "POST") {
        return json(409, {
          detail: "this key watches dog d1 on these conditions already: watch w1",
          code: "already_watching",
          watch_id: "w1",
          watch_url: "/v1/watches/w1",
        });
      }
      if (url === "/v1/watches") return json(503, { detail: "busy", code: "unavailable" });
      return new Response("jpeg", { status: 200 });
    });
    vi.stubGlobal("fetch", fetchMock);
    renderApp("#/dogs/d1", "dgs_some_key");
    await userEvent.click(await screen.findByRole("button", { name: "Watch for matches" }));
    expect(await screen.findByTestId("watched")).toHaveTextContent("Watched: dogs added later that are likely this one");
    expect(screen.getByTestId("watched")).toHaveFocus(); // in the place of the button pressed
    expect(screen.queryByRole("alert")).toBeNull();
    expect(screen.queryByRole("button", { name: "Watch for matches" })).toBeNull();
  });

  it("remembers on the dog's page, after a reload, that the dog is watched", async () => {
    const fetchMock = mockApi(FOUND, true);
    renderApp("#/dogs/d1", "dgs_some_key");
    expect(await screen.findByTestId("watched")).toHaveTextContent("Watched: dogs added later that are likely this one");
    expect(within(screen.getByTestId("watched")).getByRole("link", { name: "Alerts" })).toHaveAttribute("href", "#/alerts");
    expect(screen.queryByRole("button", { name: "Watch for matches" })).toBeNull();
    expect(fetchMock.mock.calls.some(([u, i]) => u === "/v1/watches" && i?.method === "POST")).toBe(false);
  });

  it("offers no watch to a visitor who may only search", async () => {
    mockApi();
    vi.stubGlobal(
      "fetch",
      vi.fn(async (url: RequestInfo | URL) =>
        url === "/v1/me"
          ? json(200, { name: "eve", scope: "search", scopes: [], open: false, anonymous_search: false })
          : url === "/v1/dogs/d1"
            ? json(200, LOST)
            : new Response("jpeg", { status: 200 }),
      ),
    );
    renderApp("#/dogs/d1", "dgs_some_key");
    await screen.findByRole("button", { name: "More like this" });
    expect(screen.queryByRole("button", { name: "Watch for matches" })).toBeNull();
    expect(screen.queryByRole("link", { name: "Alerts" })).toBeNull();
  });
});

describe("deliveryText", () => {
  it("says what became of a webhook delivery", () => {
    expect(deliveryText(null)).toBeNull();
    const base = { attempts: 1, last_status: 200, last_error: null, delivered_at: "x" };
    expect(deliveryText({ ...base, state: "delivered" })).toBe("sent to your webhook");
    expect(deliveryText({ ...base, state: "failed", attempts: 6, last_error: "HTTP 500" })).toBe(
      "webhook failed after 6 attempts (HTTP 500)",
    );
    expect(deliveryText({ ...base, state: "pending", attempts: 2, last_error: "HTTP 503" })).toBe(
      "webhook: retrying (2 attempts, HTTP 503)",
    );
  });
});
