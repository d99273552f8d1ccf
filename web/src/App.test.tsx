import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { json, renderApp, stubObjectUrls } from "./testing";

const KEYS: Record<string, { name: string; scope: "search" | "write" | "admin" }> = {
  dgs_admin: { name: "ops", scope: "admin" },
  dgs_writer: { name: "shelter", scope: "write" },
  dgs_viewer: { name: "kiosk", scope: "search" },
};
const RANK = { search: 1, write: 2, admin: 3 };
const dog = (id: string, owner: string) => ({
  id,
  payload: { name: `Dog ${id}`, breed: "beagle", owner },
  image_url: `/v1/dogs/${id}/image`,
  thumbnail_url: `/v1/dogs/${id}/image?size=thumbnail`,
});
const DOGS = { mine: dog("mine", "shelter"), theirs: dog("theirs", "someone-else") };

/** A fake gateway with the access contract: /v1/me, 401 without a key, 403 without the scope. */
function fakeServer({ open = false, anonymousSearch = false } = {}) {
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input);
    const key = new Headers(init?.headers).get("X-API-Key");
    const who = key ? KEYS[key] : undefined;
    if (key && !who) return json(401, { detail: "invalid API key", code: "unauthenticated" });
    const scope = open ? "admin" : (who?.scope ?? (anonymousSearch ? "search" : null));
    if (url === "/v1/me") {
      return json(200, {
        name: who?.name ?? null,
        scope: open ? "admin" : (who?.scope ?? null),
        scopes: [],
        open,
        anonymous_search: anonymousSearch,
      });
    }
    const needed = init?.method === "DELETE" ? "admin" : init?.method === "POST" && url !== "/v1/search" ? "write" : "search";
    if (!scope) return json(401, { detail: "an API key is needed", code: "unauthenticated" });
    if (RANK[scope] < RANK[needed]) return json(403, { detail: `needs ${needed}`, code: "forbidden" });
    if (url.includes("/image")) return new Response("jpeg", { status: 200 });
    if (url.startsWith("/v1/dogs?")) return json(200, { items: Object.values(DOGS), next: null, total: 2 });
    const one = /^\/v1\/dogs\/(\w+)$/.exec(url);
    if (one) return json(200, DOGS[one[1] as keyof typeof DOGS]);
    if (url === "/v1/jobs") return json(200, { items: [] });
    return json(404, { detail: "Not Found" });
  });
  vi.stubGlobal("fetch", fetchMock);
  return fetchMock;
}

const nav = () => within(screen.getByRole("navigation", { name: "Main" }));

async function signInWith(key: string) {
  const prompt = await screen.findByTestId("sign-in-prompt");
  await userEvent.type(within(prompt).getByLabelText("API key"), key);
  await userEvent.click(within(prompt).getByRole("button", { name: "Sign in" }));
}

describe("signing in with an API key", () => {
  beforeEach(() => stubObjectUrls());

  it("asks an anonymous visitor to sign in to search, and offers no write actions", async () => {
    fakeServer();
    renderApp("#/search");
    expect(await screen.findByTestId("sign-in-prompt")).toHaveTextContent(
      "This server needs an API key. Sign in with your key to search.",
    );
    expect(screen.queryByLabelText("Choose a photo")).toBeNull();
    expect(nav().queryByRole("link", { name: "Add a dog" })).toBeNull();
    expect(nav().queryByRole("link", { name: "Bulk jobs" })).toBeNull();
    expect(within(screen.getByRole("banner")).getByRole("button", { name: "Sign in" })).toBeInTheDocument();
  });

  it("keeps a good key in the session, sends it with every call, and forgets it on sign-out", async () => {
    const fetchMock = fakeServer();
    renderApp("#/search");
    await signInWith("dgs_admin");
    expect(await screen.findByTestId("signed-in-as")).toHaveTextContent("signed in as ops (admin)");
    expect(window.sessionStorage.getItem("dogsearch.apiKey")).toBe("dgs_admin");
    expect(window.localStorage.length).toBe(0);
    expect(await screen.findByLabelText("Choose a photo")).toBeInTheDocument();
    expect(nav().getByRole("link", { name: "Add a dog" })).toBeInTheDocument();
    // the breed suggestions load after sign-in, with the key
    await vi.waitFor(() => {
      const call = fetchMock.mock.calls.find(([u]) => String(u).startsWith("/v1/dogs?"));
      expect(new Headers(call?.[1]?.headers).get("X-API-Key")).toBe("dgs_admin");
    });

    await userEvent.click(screen.getByRole("button", { name: "Sign out" }));
    expect(await screen.findByTestId("sign-in-prompt")).toBeInTheDocument();
    expect(window.sessionStorage.getItem("dogsearch.apiKey")).toBeNull();
    expect(screen.queryByTestId("signed-in-as")).toBeNull();
  });

  it("says clearly when a key is refused, and keeps nothing", async () => {
    fakeServer();
    renderApp("#/search");
    await signInWith("dgs_made_up");
    expect(await screen.findByRole("alert")).toHaveTextContent("That key was not accepted");
    expect(window.sessionStorage.getItem("dogsearch.apiKey")).toBeNull();
    expect(screen.queryByTestId("signed-in-as")).toBeNull();
  });

  it("signs in from the header too: in the form the page shows, not a second one", async () => {
    fakeServer();
    renderApp("#/gallery");
    const prompt = await screen.findByTestId("sign-in-prompt");
    const header = within(screen.getByRole("banner")).getByRole("button", { name: "Sign in" });
    expect(header).not.toHaveAttribute("aria-expanded"); // it opens nothing: it leads to the page's form
    await userEvent.click(header);
    expect(screen.getAllByRole("form", { name: "Sign in" })).toHaveLength(1);
    expect(within(prompt).getByLabelText("API key")).toHaveFocus();
    await userEvent.keyboard("dgs_viewer{Enter}");
    expect(await screen.findByTestId("signed-in-as")).toHaveTextContent("signed in as kiosk (search)");
    expect(await screen.findAllByTestId("gallery-dog")).toHaveLength(2);
    // the photos come with the key, as object URLs (an <img> cannot send the header)
    expect(await screen.findByAltText("Dog mine")).toHaveAttribute("src", "blob:photo");
  });

  it("opens the header's sign-in where the page shows none, and Escape closes it", async () => {
    fakeServer({ anonymousSearch: true });
    renderApp("#/search");
    await screen.findByLabelText("Choose a photo");
    const button = within(screen.getByRole("banner")).getByRole("button", { name: "Sign in" });
    expect(button).toHaveAttribute("aria-expanded", "false");
    await userEvent.click(button);
    expect(button).toHaveAttribute("aria-expanded", "true");
    const form = within(screen.getByRole("banner")).getByRole("form", { name: "Sign in" });
    expect(within(form).getByLabelText("API key")).toHaveFocus();
    await userEvent.keyboard("{Escape}");
    expect(screen.queryByRole("form", { name: "Sign in" })).toBeNull();
    expect(button).toHaveAttribute("aria-expanded", "false");
    expect(button).toHaveFocus();
  });

  it("names each page in the browser's tab", async () => {
    fakeServer({ open: true });
    renderApp("#/gallery");
    await screen.findAllByTestId("gallery-dog");
    expect(document.title).toBe("Gallery · dogsearch");
    window.location.hash = "#/dogs/mine";
    await screen.findByRole("heading", { name: "Dog mine" });
    expect(document.title).toBe("Dog mine · dogsearch");
    window.location.hash = "#/jobs";
    await screen.findByRole("heading", { name: "Bulk jobs" });
    expect(document.title).toBe("Bulk jobs · dogsearch");
  });

  it("drops a key the server stops accepting and asks to sign in again", async () => {
    const fetchMock = fakeServer();
    renderApp("#/gallery", "dgs_admin");
    expect(await screen.findAllByTestId("gallery-dog")).toHaveLength(2);
    const revoked = KEYS.dgs_admin;
    delete KEYS.dgs_admin; // every later call with the key is a 401
    try {
      await userEvent.click(screen.getAllByRole("link", { name: "Dog mine" })[0]);
      expect(await screen.findByTestId("sign-in-prompt")).toHaveTextContent("no longer accepts your key");
      expect(window.sessionStorage.getItem("dogsearch.apiKey")).toBeNull();
      expect(fetchMock.mock.calls.some(([u]) => u === "/v1/dogs/mine")).toBe(true);
    } finally {
      KEYS.dgs_admin = revoked;
    }
  });
});

describe("the actions a scope allows", () => {
  beforeEach(() => stubObjectUrls());

  it("a search key: no add, no bulk jobs, no delete", async () => {
    fakeServer();
    renderApp("#/dogs/mine", "dgs_viewer");
    await screen.findByRole("heading", { name: "Dog mine" });
    expect(screen.getByRole("button", { name: "More like this" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Delete…" })).toBeNull();
    expect(nav().queryByRole("link", { name: "Add a dog" })).toBeNull();
    expect(nav().queryByRole("link", { name: "Bulk jobs" })).toBeNull();
    window.location.hash = "#/add"; // typed in by hand
    expect(await screen.findByTestId("sign-in-prompt")).toHaveTextContent(
      "Your key (kiosk, search) cannot do this. Sign in with a key with the write scope to add dogs.",
    );
    expect(screen.queryByRole("button", { name: "Add dog" })).toBeNull();
  });

  it("a write key: adds dogs and runs jobs, deletes only the dogs it added", async () => {
    fakeServer();
    renderApp("#/dogs/mine", "dgs_writer");
    await screen.findByRole("heading", { name: "Dog mine" });
    expect(screen.getByRole("button", { name: "Delete…" })).toBeInTheDocument();
    expect(nav().getByRole("link", { name: "Add a dog" })).toBeInTheDocument();
    expect(nav().getByRole("link", { name: "Bulk jobs" })).toBeInTheDocument();
    window.location.hash = "#/dogs/theirs";
    await screen.findByRole("heading", { name: "Dog theirs" });
    expect(screen.queryByRole("button", { name: "Delete…" })).toBeNull();
  });

  it("an admin key deletes any dog", async () => {
    fakeServer();
    renderApp("#/dogs/theirs", "dgs_admin");
    await screen.findByRole("heading", { name: "Dog theirs" });
    expect(screen.getByRole("button", { name: "Delete…" })).toBeInTheDocument();
  });

  it("anonymous search, where the operator allows it: search without a key, nothing more", async () => {
    fakeServer({ anonymousSearch: true });
    renderApp("#/search");
    expect(await screen.findByLabelText("Choose a photo")).toBeInTheDocument();
    expect(nav().queryByRole("link", { name: "Add a dog" })).toBeNull();
    expect(within(screen.getByRole("banner")).getByRole("button", { name: "Sign in" })).toBeInTheDocument();
  });

  it("an open server (the demo): everything, without signing in", async () => {
    fakeServer({ open: true });
    renderApp("#/dogs/theirs");
    await screen.findByRole("heading", { name: "Dog theirs" });
    expect(screen.getByRole("button", { name: "Delete…" })).toBeInTheDocument();
    expect(nav().getByRole("link", { name: "Add a dog" })).toBeInTheDocument();
    expect(nav().getByRole("link", { name: "Bulk jobs" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Sign in" })).toBeNull();
    // photos load straight from their URLs: no key to send
    expect(screen.getByAltText("Photo of Dog theirs")).toHaveAttribute("src", "/v1/dogs/theirs/image");
  });

  it("a server from before API keys (no /v1/me) is open, as before", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async (u: RequestInfo | URL) =>
        String(u) === "/v1/me" ? json(404, { detail: "Not Found" }) : json(200, { items: [], next: null, total: 0 }),
      ),
    );
    renderApp("#/add");
    expect(await screen.findByRole("button", { name: "Add dog" })).toBeInTheDocument();
  });
});
