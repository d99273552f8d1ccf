import { useCallback, useEffect, useId, useRef, useState, type FormEvent } from "react";
import { ErrorBanner, Notice } from "../components/ErrorBanner";
import { isRunning, JobProgress } from "../components/JobProgress";
import { StatusOptions } from "../components/StatusOptions";
import { useAuth } from "../lib/auth";
import { ApiError, deleteJob, getJob, listJobs, messageOf, startIndexJob, startUploadJob } from "../lib/api";
import { jobReport, type Status } from "../lib/reports";
import type { Job } from "../lib/types";

const POLL_MS = 1000;
/** While the server (or its job queue) does not answer: ask again this often, by itself. */
export const RETRY_MS = 5000;

/** Why the jobs cannot be shown: this server has no jobs API (a terminal is the way), or it does not answer now. */
type Unavailable = { off: true } | { off: false; reason: string };

/** `linked`: the job a link points at (a dog's page: the job that added it), outlined; shown on its own when the
 * list (the latest jobs) has it no more. */
export function JobsPage({ linked }: { linked?: string } = {}) {
  const ids = useId();
  const [jobs, setJobs] = useState<Job[] | null>(null);
  const [unavailable, setUnavailable] = useState<Unavailable | null>(null);
  const [error, setError] = useState<string | null>(null);
  // the job already indexing the folder a start was refused for: its card is pointed at, the refusal goes when it ends
  const [busyJob, setBusyJob] = useState<string | null>(null);
  // the photos: a folder the server may read (an operator's choice), or a zip sent from here (the demo's way)
  const [picked, setSource] = useState<"folder" | "zip">("folder");
  const { me } = useAuth();
  const folders = me?.server_folders !== false; // unsaid (an older server): offered, as before
  const source = folders ? picked : "zip";
  const [path, setPath] = useState("");
  const [archive, setArchive] = useState<File | null>(null);
  const zip = useRef<HTMLInputElement>(null);
  const [labels, setLabels] = useState("folders");
  const [status, setStatus] = useState<Status | "">("");
  const [fromPhotos, setFromPhotos] = useState(false);
  const [busy, setBusy] = useState(false);
  // the linked job where the list has it not: null while unknown, "gone" where the server keeps it no more
  const [older, setOlder] = useState<Job | "gone" | null>(null);

  const refresh = useCallback(async () => {
    try {
      const listed = await listJobs();
      setJobs(listed);
      setUnavailable(null);
      return listed;
    } catch (e) {
      // 404 or 501: no jobs API on this server; 0 (unreachable) or 503 (its queue is down): for now, asked again
      if (e instanceof ApiError && (e.status === 404 || e.status === 501)) setUnavailable({ off: true });
      else if (e instanceof ApiError && e.unavailable) setUnavailable({ off: false, reason: e.message });
      else setError(messageOf(e));
      return null;
    }
  }, []);

  useEffect(() => {
    void refresh();
  }, [refresh]);

  // Poll while something runs; stop when all jobs are finished.
  const running = jobs?.some(isRunning) ?? false;
  useEffect(() => {
    if (!running) return;
    const timer = window.setInterval(() => void refresh(), POLL_MS);
    return () => window.clearInterval(timer);
  }, [running, refresh]);

  // A server that does not answer may be back in a moment: ask again by itself.
  const down = unavailable !== null && !unavailable.off;
  useEffect(() => {
    if (!down) return;
    const timer = window.setInterval(() => void refresh(), RETRY_MS);
    return () => window.clearInterval(timer);
  }, [down, refresh]);

  // The job the refusal pointed at has ended: the folder is free, the refusal is old news.
  useEffect(() => {
    if (!busyJob || !jobs) return;
    const job = jobs.find((j) => j.id === busyJob);
    if (!job || !isRunning(job)) {
      setBusyJob(null);
      setError(null);
    }
  }, [busyJob, jobs]);

  const listsLinked = !linked || !jobs || jobs.some((j) => j.id === linked);
  useEffect(() => {
    if (listsLinked) return;
    let live = true;
    getJob(linked!).then(
      (job) => live && setOlder(job),
      () => live && setOlder("gone"),
    );
    return () => {
      live = false;
    };
  }, [linked, listsLinked]);

  const onStart = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setBusyJob(null);
    try {
      // answers {id, state}: the list has the counts
      const report = jobReport(status, fromPhotos);
      if (source === "zip") {
        if (!archive) return;
        await startUploadJob(archive, labels, report);
        setArchive(null);
        if (zip.current) zip.current.value = ""; // the next upload is another file
      } else await startIndexJob(path.trim(), labels, report);
      await refresh();
    } catch (err) {
      setError(messageOf(err));
      if (err instanceof ApiError && err.code === "folder_being_indexed") {
        // the job over this folder (or one inside or around it), named when this key sees it: its card is the one
        // to look at
        const listed = await refresh();
        const job = listed?.find((j) => isRunning(j) && j.id === err.named);
        if (job) setBusyJob(job.id);
      }
    } finally {
      setBusy(false);
    }
  };

  const onCancel = async (job: Job) => {
    try {
      await deleteJob(job.id);
      await refresh();
    } catch (err) {
      setError(messageOf(err));
    }
  };

  return (
    <section aria-labelledby={`${ids}-h`}>
      <h1 id={`${ids}-h`}>Bulk jobs</h1>
      {unavailable ? (
        <div data-testid="jobs-unavailable">
          {unavailable.off ? (
            <Notice>
              Bulk jobs are unavailable: this server has no bulk jobs API. Use <code>dogsearch index DIR</code> from a
              terminal instead.
            </Notice>
          ) : (
            <Notice>
              Bulk jobs cannot be shown right now: {unavailable.reason.replace(/\.$/, "")}. This page tries again by
              itself every {RETRY_MS / 1000} seconds.{" "}
              <button type="button" className="button small secondary" onClick={() => void refresh()}>
                Try again
              </button>
            </Notice>
          )}
        </div>
      ) : (
        <>
          <form className="job-form" onSubmit={onStart} aria-label="Start an indexing job">
            <fieldset className="job-source">
              <legend>Photos</legend>
              <label className="check">
                <input
                  type="radio"
                  name={`${ids}-source`}
                  checked={source === "folder"}
                  disabled={!folders}
                  aria-describedby={folders ? undefined : `${ids}-no-folders`}
                  onChange={() => {
                    setSource("folder");
                    setArchive(null); // its input goes: the file chosen with it goes too
                  }}
                />
                A folder the server reads
              </label>
              <label className="check">
                <input type="radio" name={`${ids}-source`} checked={source === "zip"} onChange={() => setSource("zip")} />
                A zip sent from this computer
              </label>
              {!folders && (
                <small id={`${ids}-no-folders`} className="muted">
                  This server reads no folders of its own for jobs: send the photos as a zip.
                </small>
              )}
            </fieldset>
            {source === "folder" ? (
              <>
                <label htmlFor={`${ids}-path`}>Folder on the server</label>
                <input
                  id={`${ids}-path`}
                  value={path}
                  onChange={(e) => setPath(e.target.value)}
                  placeholder="/data/photos"
                  required
                />
                {me?.allowed_roots && (
                  <small className="muted">inside one of the folders the server reads: {me.allowed_roots.join(", ")}</small>
                )}
              </>
            ) : (
              <>
                <label htmlFor={`${ids}-zip`}>Zip file</label>
                <input
                  ref={zip}
                  id={`${ids}-zip`}
                  type="file"
                  accept=".zip,application/zip"
                  onChange={(e) => setArchive(e.target.files?.[0] ?? null)}
                />
                <small className="muted">its sub-folders as below; the server unpacks it and deletes it once indexed</small>
              </>
            )}
            <label htmlFor={`${ids}-labels`}>Labels</label>
            <select id={`${ids}-labels`} value={labels} onChange={(e) => setLabels(e.target.value)}>
              <option value="folders">breed from sub-folder names</option>
              <option value="dogs">one dog per sub-folder (its photos)</option>
              <option value="csv">from labels.csv at the top of the {source === "zip" ? "zip" : "folder"}</option>
            </select>
            <fieldset className="report-fields">
              <legend>Lost &amp; found report for every photo (optional)</legend>
              <label htmlFor={`${ids}-status`}>Status</label>
              <select id={`${ids}-status`} value={status} onChange={(e) => setStatus(e.target.value as Status | "")}>
                <StatusOptions none="no report" />
              </select>
              <label className="check">
                <input type="checkbox" checked={fromPhotos} onChange={(e) => setFromPhotos(e.target.checked)} />
                Where and when from each photo
              </label>
              <small className="muted">
                its GPS position and time, as the phone recorded them (a camera's time without its zone is read as this
                computer's); a photo that does not say fails, with the reason
              </small>
            </fieldset>
            <button
              type="submit"
              className="button"
              disabled={busy || (source === "zip" ? !archive : !path.trim())}
            >
              {source === "zip" ? (busy ? "Uploading…" : "Upload and start indexing") : "Start indexing"}
            </button>
          </form>
          <ErrorBanner
            error={error}
            onDismiss={() => {
              setError(null);
              setBusyJob(null);
            }}
          />
          {!listsLinked && older === "gone" && (
            <p className="notice" data-testid="linked-gone">
              The job you followed a link to is no longer kept by the server.
            </p>
          )}
          {jobs && jobs.length === 0 && <p className="notice">No jobs yet.</p>}
          <div className="jobs" aria-live="polite">
            {!listsLinked && older && older !== "gone" && older.id === linked && <JobProgress job={older} highlighted />}
            {jobs?.map((job) => (
              <JobProgress
                key={job.id}
                job={job}
                onCancel={onCancel}
                highlighted={job.id === busyJob || (!busyJob && job.id === linked)}
              />
            ))}
          </div>
        </>
      )}
    </section>
  );
}
