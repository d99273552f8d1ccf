import { useCallback, useEffect, useId, useState, type FormEvent } from "react";
import { ErrorBanner, Notice } from "../components/ErrorBanner";
import { isRunning, JobProgress } from "../components/JobProgress";
import { StatusOptions } from "../components/StatusOptions";
import { ApiError, deleteJob, listJobs, messageOf, startIndexJob } from "../lib/api";
import { jobReport, type Status } from "../lib/reports";
import type { Job } from "../lib/types";

const POLL_MS = 1000;

export function JobsPage() {
  const ids = useId();
  const [jobs, setJobs] = useState<Job[] | null>(null);
  const [unavailable, setUnavailable] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [path, setPath] = useState("");
  const [labels, setLabels] = useState("folders");
  const [status, setStatus] = useState<Status | "">("");
  const [fromPhotos, setFromPhotos] = useState(false);
  const [busy, setBusy] = useState(false);

  const refresh = useCallback(async () => {
    try {
      setJobs(await listJobs());
      setUnavailable(null);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) setUnavailable("this server has no bulk jobs API");
      else if (e instanceof ApiError && e.unavailable) setUnavailable(e.message);
      else setError(messageOf(e));
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

  const onStart = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      // answers {id, state}: the list has the counts
      await startIndexJob(path.trim(), labels, jobReport(status, fromPhotos));
      await refresh();
    } catch (err) {
      setError(messageOf(err));
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
          <Notice>Bulk jobs are unavailable: {unavailable}. Use `dogsearch index DIR` from a terminal instead.</Notice>
        </div>
      ) : (
        <>
          <form className="job-form" onSubmit={onStart} aria-label="Start an indexing job">
            <label htmlFor={`${ids}-path`}>Folder on the server</label>
            <input
              id={`${ids}-path`}
              value={path}
              onChange={(e) => setPath(e.target.value)}
              placeholder="/data/photos"
              required
            />
            <label htmlFor={`${ids}-labels`}>Labels</label>
            <select id={`${ids}-labels`} value={labels} onChange={(e) => setLabels(e.target.value)}>
              <option value="folders">breed from sub-folder names</option>
              <option value="dogs">one dog per sub-folder (its photos)</option>
              <option value="csv">from labels.csv in the folder</option>
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
            <button type="submit" className="button" disabled={busy || !path.trim()}>
              Start indexing
            </button>
          </form>
          <ErrorBanner error={error} onDismiss={() => setError(null)} />
          {jobs && jobs.length === 0 && <p className="notice">No jobs yet.</p>}
          <div className="jobs" aria-live="polite">
            {jobs?.map((job) => <JobProgress key={job.id} job={job} onCancel={onCancel} />)}
          </div>
        </>
      )}
    </section>
  );
}
