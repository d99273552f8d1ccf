import { act, render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { JobsPage, RETRY_MS } from "./JobsPage";
import { json, renderApp } from "../testing";

const job = { id: "j1", state: "running", path: "/data", total: 10, indexed: 3, duplicates: 0, failed: 1, errors: [{ file: "x.jpg", reason: "truncated" }] };

describe("JobsPage", () => {

  it("says bulk jobs are unavailable when the server has no jobs API", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => json(404, { detail: "Not Found" })));
    render(<JobsPage />);
    const notice = await screen.findByTestId("jobs-unavailable");
    expect(notice).toHaveTextContent("this server has no bulk jobs API");
    expect(notice).toHaveTextContent("Use dogsearch index DIR from a terminal instead.");
    expect(screen.queryByRole("button", { name: "Start indexing" })).toBeNull();
  });

  it("says a server that does not answer is unreachable, not that jobs need a terminal, and tries again", async () => {
    let down = true;
    vi.stubGlobal("fetch", vi.fn(async () => {
      if (down) throw new TypeError("Failed to fetch");
      return json(200, { items: [] });
    }));
    render(<JobsPage />);
    const notice = await screen.findByTestId("jobs-unavailable");
    expect(notice).toHaveTextContent("Cannot reach the dogsearch server");
    expect(notice).toHaveTextContent("tries again by itself");
    expect(notice.textContent).not.toMatch(/terminal|`|\.\./);
    down = false;
    await userEvent.click(screen.getByRole("button", { name: "Try again" }));
    expect(await screen.findByText("No jobs yet.")).toBeInTheDocument();
    expect(screen.queryByTestId("jobs-unavailable")).toBeNull();
  });

  it("asks again by itself while the server does not answer", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    let down = true;
    vi.stubGlobal("fetch", vi.fn(async () => (down ? json(503, { detail: "broker unavailable" }) : json(200, { items: [] }))));
    render(<JobsPage />);
    await screen.findByTestId("jobs-unavailable");
    down = false;
    await act(async () => vi.advanceTimersByTime(RETRY_MS));
    expect(await screen.findByText("No jobs yet.")).toBeInTheDocument();
    vi.useRealTimers();
  });

  it("outlines the job a dog's page links to, and shows it on its own where the list has it no more", async () => {
    const done = { ...job, state: "done", errors: [] };
    vi.stubGlobal("fetch", vi.fn(async (url: RequestInfo | URL) =>
      String(url) === "/v1/jobs/old" ? json(200, { ...done, id: "old", path: "/older" }) : json(200, { items: [done, { ...done, id: "j2" }] })));
    const { unmount } = render(<JobsPage linked="j2" />);
    await vi.waitFor(() => expect(screen.getAllByTestId("job")).toHaveLength(2));
    expect(screen.getAllByTestId("job").map((card) => card.getAttribute("aria-current"))).toEqual([null, "true"]);
    unmount();

    render(<JobsPage linked="old" />);
    await vi.waitFor(() => expect(screen.getAllByTestId("job")).toHaveLength(3));
    const [first] = screen.getAllByTestId("job");
    expect(first).toHaveAttribute("aria-current", "true");
    expect(first).toHaveAccessibleName(/^Job of \/older/);
  });

  it("says so when the linked job is no longer kept", async () => {
    vi.stubGlobal("fetch", vi.fn(async (url: RequestInfo | URL) =>
      String(url) === "/v1/jobs/gone" ? json(404, { detail: "no such job" }) : json(200, { items: [] })));
    render(<JobsPage linked="gone" />);
    expect(await screen.findByTestId("linked-gone")).toHaveTextContent("no longer kept by the server");
  });

  it("points at the job already indexing a folder around this one, and drops the refusal when that job ends", async () => {
    const other = { ...job, id: "3393ea81-0000-4000-8000-000000000000", path: "/data/", errors: [] };
    let state = "running";
    const fetchMock = vi.fn(async (_url: RequestInfo | URL, init?: RequestInit) => {
      if (init?.method === "POST") {
        return json(409, {
          detail: `job ${other.id} (started on /data/) is indexing this folder (running): wait for it to finish, or cancel it`,
          code: "folder_being_indexed",
          job_id: other.id,
        });
      }
      return json(200, { items: [{ ...other, state }] });
    });
    vi.stubGlobal("fetch", fetchMock);
    render(<JobsPage />);
    await screen.findByRole("progressbar");
    await userEvent.type(screen.getByLabelText("Folder on the server"), "/data/photos{Enter}");
    expect(await screen.findByRole("alert")).toHaveTextContent(
      "This folder, or one inside or around it, is being indexed already: see its job below.",
    );
    expect(screen.getByRole("alert")).not.toHaveTextContent(other.id);
    await vi.waitFor(() => expect(screen.getByTestId("job")).toHaveAttribute("aria-current", "true"));
    state = "done"; // the next poll sees it finished
    await vi.waitFor(() => expect(screen.queryByRole("alert")).toBeNull(), { timeout: 3000 });
    expect(screen.getByTestId("job")).not.toHaveAttribute("aria-current");
  });

  it("starts a job, shows its progress, and shows a refused folder's reason", async () => {
    const fetchMock = vi.fn(async (_url: RequestInfo | URL, init?: RequestInit) => {
      if (init?.method === "POST") {
        const body = JSON.parse(String(init.body));
        return body.path === "/etc"
          ? json(403, { detail: "/etc is not under an allowed root" })
          : json(202, { id: "j1", state: "queued" });
      }
      return json(200, { items: fetchMock.mock.calls.some(([, i]) => i?.method === "POST") ? [job] : [] });
    });
    vi.stubGlobal("fetch", fetchMock);
    render(<JobsPage />);
    await screen.findByText("No jobs yet.");
    const folder = screen.getByLabelText("Folder on the server");
    await userEvent.type(folder, "/etc");
    await userEvent.click(screen.getByRole("button", { name: "Start indexing" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("/etc is not under an allowed root");
    await userEvent.clear(folder);
    await userEvent.type(folder, "/data{Enter}");
    expect(await screen.findByRole("progressbar")).toHaveAttribute("aria-valuetext", "4 of 10 photos");
    expect(screen.getByText("x.jpg: truncated")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Cancel" })).toBeInTheDocument();
  });
});

describe("JobsPage grouping", () => {

  it("starts a job whose sub-folders are dogs", async () => {
    const fetchMock = vi.fn(async (_url: RequestInfo | URL, init?: RequestInit) =>
      init?.method === "POST" ? json(202, { id: "j1", state: "queued" }) : json(200, { items: [] }),
    );
    vi.stubGlobal("fetch", fetchMock);
    render(<JobsPage />);
    await screen.findByText("No jobs yet.");
    await userEvent.selectOptions(screen.getByLabelText("Labels"), "dogs");
    await userEvent.type(screen.getByLabelText("Folder on the server"), "/data/dogs{Enter}");
    await vi.waitFor(() => expect(fetchMock.mock.calls.some(([, i]) => i?.method === "POST")).toBe(true));
    const post = fetchMock.mock.calls.find(([, i]) => i?.method === "POST")!;
    expect(JSON.parse(String(post[1]!.body))).toEqual({ path: "/data/dogs", labels: "dogs" });
  });

  it("reports every photo of a job as sighted, where and when each was taken", async () => {
    const fetchMock = vi.fn(async (_url: RequestInfo | URL, init?: RequestInit) =>
      init?.method === "POST" ? json(202, { id: "j1", state: "queued" }) : json(200, { items: [] }),
    );
    vi.stubGlobal("fetch", fetchMock);
    const zone = Intl.DateTimeFormat.prototype.resolvedOptions; // the volunteer's computer is in Santiago
    const spy = vi.spyOn(Intl.DateTimeFormat.prototype, "resolvedOptions");
    spy.mockImplementation(function (this: Intl.DateTimeFormat) {
      return { ...zone.call(this), timeZone: "America/Santiago" };
    });
    render(<JobsPage />);
    await screen.findByText("No jobs yet.");
    await userEvent.selectOptions(screen.getByLabelText("Status"), "sighted");
    await userEvent.click(screen.getByLabelText("Where and when from each photo"));
    await userEvent.type(screen.getByLabelText("Folder on the server"), "/data/sightings{Enter}");
    await vi.waitFor(() => expect(fetchMock.mock.calls.some(([, i]) => i?.method === "POST")).toBe(true));
    const post = fetchMock.mock.calls.find(([, i]) => i?.method === "POST")!;
    expect(JSON.parse(String(post[1]!.body))).toEqual({
      path: "/data/sightings",
      labels: "folders",
      payload: { status: "sighted", seen_at: "photo", location: "photo", time_zone: "America/Santiago" },
    });
    spy.mockRestore();
  });
});

describe("JobsPage upload", () => {
  it("indexes a zip sent from this computer and follows its progress, as a folder's job", async () => {
    const upload = { ...job, path: "dogs.zip" };
    const fetchMock = vi.fn(async (_url: RequestInfo | URL, init?: RequestInit) => {
      if (init?.method === "POST") return json(202, { id: "j1", state: "queued" });
      return json(200, { items: fetchMock.mock.calls.some(([, i]) => i?.method === "POST") ? [upload] : [] });
    });
    vi.stubGlobal("fetch", fetchMock);
    render(<JobsPage />);
    await screen.findByText("No jobs yet.");
    await userEvent.click(screen.getByLabelText("A zip sent from this computer"));
    expect(screen.queryByLabelText("Folder on the server")).toBeNull();
    const start = screen.getByRole("button", { name: "Upload and start indexing" });
    expect(start).toBeDisabled(); // no file yet
    const zip = new File(["PK"], "dogs.zip", { type: "application/zip" });
    await userEvent.upload(screen.getByLabelText("Zip file"), zip);
    await userEvent.selectOptions(screen.getByLabelText("Labels"), "dogs");
    await userEvent.selectOptions(screen.getByLabelText("Status"), "found");
    await userEvent.click(start);
    expect(await screen.findByRole("progressbar")).toHaveAttribute("aria-valuetext", "4 of 10 photos");
    expect(screen.getByText("dogs.zip")).toBeInTheDocument();
    const [url, init] = fetchMock.mock.calls.find(([, i]) => i?.method === "POST")!;
    expect(url).toBe("/v1/jobs/index/upload");
    const form = init!.body as FormData;
    expect(form.get("archive")).toBe(zip);
    expect(form.get("labels")).toBe("dogs");
    expect(JSON.parse(String(form.get("payload")))).toEqual({ status: "found" });
  });
});

describe("JobsPage on a server that reads no folders of its own", () => {
  /** The app signed in as `scope` on a server whose /v1/me says `folders`; no jobs yet. */
  function serve(scope: "write" | "admin", folders: Record<string, unknown>) {
    const me = { name: "k", scope, scopes: [], open: false, anonymous_search: false, ...folders };
    vi.stubGlobal("fetch", vi.fn(async (url: RequestInfo | URL) => json(200, String(url) === "/v1/me" ? me : { items: [] })));
    renderApp("#/jobs", "dgs_k");
  }

  it("starts on a zip and says why a folder cannot be chosen (the demo's first Start was refused)", async () => {
    serve("admin", { server_folders: false, allowed_roots: [] });
    await screen.findByText("No jobs yet.");
    expect(screen.getByLabelText("A zip sent from this computer")).toBeChecked();
    const folder = screen.getByLabelText("A folder the server reads");
    expect(folder).toBeDisabled();
    expect(folder).toHaveAccessibleDescription("This server reads no folders of its own for jobs: send the photos as a zip.");
    expect(screen.getByRole("button", { name: "Upload and start indexing" })).toBeDisabled(); // no zip yet
    expect(screen.queryByLabelText("Folder on the server")).toBeNull();
  });

  it("offers a folder where the server reads some, and shows which to an admin only", async () => {
    serve("admin", { server_folders: true, allowed_roots: ["/srv/imports", "/data"] });
    await screen.findByText("No jobs yet.");
    expect(screen.getByLabelText("A folder the server reads")).toBeChecked();
    expect(screen.getByText("inside one of the folders the server reads: /srv/imports, /data")).toBeInTheDocument();
  });

  it("shows a write key no folder names", async () => {
    serve("write", { server_folders: true, allowed_roots: null });
    await screen.findByText("No jobs yet.");
    expect(screen.getByLabelText("A folder the server reads")).toBeEnabled();
    expect(screen.queryByText(/folders the server reads:/)).toBeNull();
  });
});
