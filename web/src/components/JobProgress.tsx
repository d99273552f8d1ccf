import { useEffect, useRef } from "react";
import { formatWhen, sameLocalDay } from "../lib/reports";
import type { Job, JobError } from "../lib/types";
import { Time } from "./Time";

const RUNNING = new Set(["queued", "pending", "started", "running"]);

export const isRunning = (job: Job): boolean => RUNNING.has(job.state);

function errorText(e: JobError): string {
  if (typeof e === "string") return e;
  const reason = e.reason ?? e.detail ?? JSON.stringify(e);
  const where = e.file ?? e.path;
  return where ? `${where}: ${reason}` : reason;
}

/** A job as people tell jobs apart: its folder and when it was asked for (its id means nothing to them). */
const jobName = (job: Job): string =>
  `Job${job.path ? ` of ${job.path}` : ""}${job.created_at ? `, ${formatWhen(job.created_at)}` : ""}`;

/** `highlighted`: the job a refused start points at (it already indexes that folder), scrolled to and outlined. */
export function JobProgress({
  job,
  onCancel: onDelete,
  highlighted = false,
}: {
  job: Job;
  onCancel?: (job: Job) => void;
  highlighted?: boolean;
}) {
  const card = useRef<HTMLElement>(null);
  useEffect(() => {
    if (highlighted) card.current?.scrollIntoView?.({ block: "nearest", behavior: "smooth" });
  }, [highlighted]);
  const done = job.indexed + job.duplicates + job.failed;
  // total is 0 (or null) until the job has listed its files
  const total = job.total || null;
  const pct = total ? Math.round((100 * done) / total) : null;
  return (
    <article
      ref={card}
      className={highlighted ? "job highlighted" : "job"}
      aria-label={jobName(job)}
      aria-current={highlighted ? "true" : undefined}
      data-testid="job"
    >
      <header className="job-head">
        <strong className={`state state-${job.state}`}>{job.state}</strong>
        {job.path && <code className="job-path">{job.path}</code>}
        {onDelete && isRunning(job) && (
          <button type="button" className="button small secondary" onClick={() => onDelete(job)}>
            Cancel
          </button>
        )}
      </header>
      {job.created_at && (
        <p className="muted" data-testid="job-times">
          {job.started_at ? "Started " : "Queued "}
          <Time iso={job.started_at ?? job.created_at} />
          {job.finished_at && (
            <>
              {", ended "}
              {/* a job of minutes: its day said once */}
              <Time iso={job.finished_at} date={!sameLocalDay(job.started_at ?? job.created_at, job.finished_at)} />
            </>
          )}
        </p>
      )}
      <div
        className="progress"
        role="progressbar"
        aria-label="Indexing progress"
        aria-valuemin={0}
        aria-valuemax={total ?? undefined}
        aria-valuenow={total ? done : undefined}
        aria-valuetext={total ? `${done} of ${total} photos` : isRunning(job) ? "counting photos" : "no photos"}
      >
        <div className="progress-fill" style={{ width: `${pct ?? 0}%` }} />
      </div>
      <p className="job-counts">
        {total ? `${done} of ${total} (${pct}%)` : `${done} so far`}
        {job.images_per_s ? ` · ${job.images_per_s.toFixed(1)} photos/s` : ""} · indexed {job.indexed}
        {job.near_duplicates ? ` (${job.near_duplicates} look like copies of stored photos)` : ""} · duplicates{" "}
        {job.duplicates} · failed {job.failed}
      </p>
      {job.skipped ? (
        <p className="job-skipped">
          Skipped {job.skipped} file{job.skipped === 1 ? "" : "s"} that {job.skipped === 1 ? "is" : "are"} not a
          photo: {(job.skipped_files ?? []).join(", ")}
          {job.skipped > (job.skipped_files ?? []).length ? ` and ${job.skipped - (job.skipped_files ?? []).length} more` : ""}
          . An archive inside the folder is not opened: unpack it first.
        </p>
      ) : null}
      {job.error && (
        <p className="error" role="alert">
          {job.error}
        </p>
      )}
      {job.errors.length > 0 && (
        <details open={job.errors.length <= 5}>
          <summary>
            {job.errors.length} error{job.errors.length === 1 ? "" : "s"}
          </summary>
          <ul className="job-errors">
            {job.errors.map((e, i) => (
              <li key={i}>{errorText(e)}</li>
            ))}
          </ul>
        </details>
      )}
    </article>
  );
}
