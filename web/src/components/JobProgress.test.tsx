import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import type { Job } from "../lib/types";
import { isRunning, JobProgress } from "./JobProgress";

const job = (over: Partial<Job>): Job => ({
  id: "j1",
  state: "running",
  total: 40,
  indexed: 8,
  duplicates: 1,
  failed: 1,
  errors: [],
  ...over,
});

describe("JobProgress", () => {
  it("shows progress as done of total, with counts", () => {
    render(<JobProgress job={job({})} />);
    const bar = screen.getByRole("progressbar", { name: "Indexing progress" });
    expect(bar).toHaveAttribute("aria-valuenow", "10");
    expect(bar).toHaveAttribute("aria-valuemax", "40");
    expect(bar).toHaveAttribute("aria-valuetext", "10 of 40 photos");
    expect(screen.getByText(/10 of 40 \(25%\) · indexed 8 · duplicates 1 · failed 1/)).toBeInTheDocument();
  });

  it("says how many of the indexed photos look like copies of stored ones", () => {
    render(<JobProgress job={job({ state: "done", total: 10, near_duplicates: 2 })} />);
    expect(screen.getByText(/indexed 8 \(2 look like copies of stored photos\) · duplicates 1/)).toBeInTheDocument();
  });

  it("says which files it skipped, not being photos (a zip inside the zip was skipped without a word)", () => {
    render(<JobProgress job={job({ state: "done", skipped: 3, skipped_files: ["inner.zip", "notes.txt"] })} />);
    expect(screen.getByText(/Skipped 3 files that are not a\s+photo: inner.zip, notes.txt and 1 more/)).toBeInTheDocument();
    expect(screen.getByText(/An archive inside the folder is not opened/)).toBeInTheDocument();
  });

  it("lists its errors, whether strings or {file, reason}", () => {
    render(
      <JobProgress
        job={job({ state: "done", errors: ["a.jpg: not an image", { file: "b.png", reason: "truncated file" }] })}
      />,
    );
    expect(screen.getByText("2 errors")).toBeInTheDocument();
    expect(screen.getByText("a.jpg: not an image")).toBeInTheDocument();
    expect(screen.getByText("b.png: truncated file")).toBeInTheDocument();
  });

  it("is named by its folder and when it was asked for, not by its id; its times on the reader's clock", () => {
    const times = { created_at: "2026-12-03T10:00:00+00:00", started_at: "2026-12-03T10:00:02+00:00" };
    const id = "5f0c6f1e-0d7c-4c2e-9f5e-3b1e2a9c8d7f";
    const { rerender } = render(<JobProgress job={job({ id, path: "/data/photos", ...times })} />);
    expect(screen.getByRole("article")).toHaveAccessibleName("Job of /data/photos, 3 Dec 2026, 11:00 CET");
    expect(screen.getByTestId("job-times")).toHaveTextContent(/^Started 3 Dec 2026, 11:00 CET$/);
    rerender(<JobProgress job={job({ id, state: "done", ...times, finished_at: "2026-12-03T10:20:00+00:00" })} />);
    // the same day: its date once
    expect(screen.getByTestId("job-times")).toHaveTextContent(/^Started 3 Dec 2026, 11:00 CET, ended 11:20 CET$/);
    // the next day on the reader's clock (though the same day in UTC): both dates
    rerender(<JobProgress job={job({ id, state: "done", ...times, finished_at: "2026-12-03T23:10:00+00:00" })} />);
    expect(screen.getByTestId("job-times")).toHaveTextContent(
      /^Started 3 Dec 2026, 11:00 CET, ended 4 Dec 2026, 00:10 CET$/,
    );
    rerender(<JobProgress job={job({ id, state: "queued", created_at: times.created_at, started_at: null })} />);
    expect(screen.getByTestId("job-times")).toHaveTextContent(/^Queued 3 Dec 2026, 11:00 CET$/);
  });

  it("copes with an unknown total while counting", () => {
    render(<JobProgress job={job({ total: 0, indexed: 0, duplicates: 0, failed: 0, state: "queued" })} />);
    expect(screen.getByRole("progressbar")).toHaveAttribute("aria-valuetext", "counting photos");
    expect(isRunning(job({ state: "queued" }))).toBe(true);
    expect(isRunning(job({ state: "done" }))).toBe(false);
  });
});
