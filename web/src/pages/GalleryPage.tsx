import { useEffect, useState } from "react";
import { ErrorBanner } from "../components/ErrorBanner";
import { PhotoBoxes } from "../components/PhotoBoxes";
import { ReportLine } from "../components/ReportLine";
import { dogTitle } from "../components/ResultGrid";
import { listDogs, messageOf } from "../lib/api";
import { STATUS_LABELS, STATUSES, type Status } from "../lib/reports";
import { navigate } from "../lib/router";
import type { DogPage } from "../lib/types";

/** The gallery's address: a page is its cursors, so Back from a dog's page comes back to it. */
function galleryHref(limit: number, status: Status | undefined, cursors: string[]): string {
  const params = new URLSearchParams({ limit: String(limit) });
  if (status) params.set("status", status);
  if (cursors.length) params.set("cursors", cursors.join(","));
  return `#/gallery?${params}`;
}

/**
 * `status`: only the dogs whose report has it (lost, found, ...), else every dog. `cursors`: the `next` of each page
 * before this one (none: the first page); "Previous" drops the last.
 */
export function GalleryPage({ limit, status, cursors = [] }: { limit: number; status?: Status; cursors?: string[] }) {
  // the page shown and the address it was loaded for: while the next one loads, its range and "Next" are its own
  const [shown, setShown] = useState<{ page: DogPage; key: string; index: number } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [attempt, setAttempt] = useState(0); // "Try again": the same address, asked again
  const index = cursors.length;
  const cursor = cursors.at(-1) ?? null;
  const key = JSON.stringify([cursor, limit, status ?? null]);

  useEffect(() => {
    let live = true;
    setLoading(true);
    setError(null);
    listDogs(limit, cursor, undefined, status ? { status } : undefined)
      .then((p) => live && setShown({ page: p, key, index }))
      .catch((e) => {
        if (!live) return;
        // a page that did not load shows none: no other page's dogs under this address, no "Next" from them
        setShown(null);
        setError(messageOf(e));
      })
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
    // key and index follow cursor, limit and status
  }, [cursor, index, limit, status, attempt]);

  const page = shown?.page ?? null;
  const current = shown?.key === key; // the page shown is this address's, not the one before it still
  const first = (shown?.index ?? index) * limit + 1;
  const last = first + (page?.items.length ?? 0) - 1;
  const toFirst = () => navigate(galleryHref(limit, status, []));
  const onePage = current && index === 0 && !page?.next; // all the dogs on the first page: nothing to page through
  return (
    <section aria-labelledby="gallery-h">
      <h1 id="gallery-h">Gallery</h1>
      <label className="inline-field">
        Show{" "}
        <select
          value={status ?? ""}
          onChange={(e) => navigate(galleryHref(limit, STATUSES.find((s) => s === e.target.value), []))}
        >
          <option value="">every dog</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {STATUS_LABELS[s].toLowerCase()}
            </option>
          ))}
        </select>
      </label>
      <ErrorBanner error={error} />
      {error && !loading && (
        <p className="notice">
          <button type="button" className="button secondary" onClick={() => setAttempt((n) => n + 1)}>
            Try again
          </button>{" "}
          {index > 0 && (
            <button type="button" className="button secondary" onClick={toFirst}>
              Go to the first page
            </button>
          )}
        </p>
      )}
      {page && (
        <p className="muted" aria-live="polite">
          {page.total === 0
            ? status
              ? `No dogs reported ${STATUS_LABELS[status].toLowerCase()}.`
              : "No dogs yet."
            : page.items.length === 0
              ? "No dogs on this page: the gallery has changed since its address was made."
              : last <= page.total
                ? `Dogs ${first}–${last} of ${page.total}`
                : `${page.items.length} dogs of ${page.total}`}
        </p>
      )}
      {page && page.total > 0 && page.items.length === 0 && (shown?.index ?? 0) > 0 && (
        <p className="notice">
          <button type="button" className="button secondary" onClick={toFirst}>
            Go to the first page
          </button>
        </p>
      )}
      {page && page.total === 0 && !status && (
        <p className="notice">
          <a href="#/add">Add a dog</a> or start a <a href="#/jobs">bulk job</a>.
        </p>
      )}
      {page && (
        <ul className="grid" aria-busy={loading}>
          {page.items.map((d) => (
            <li key={d.id} className="card" data-testid="gallery-dog">
              <a href={`#/dogs/${d.id}`} className="card-photo">
                {/* its box, as in the results: a photo of two dogs is two cards, each outlining its own dog */}
                <PhotoBoxes
                  src={d.thumbnail_url}
                  alt={dogTitle(d.payload)}
                  loading="lazy"
                  fit="cover"
                  cropToDog
                  dogs={d.payload.box && d.payload.width && d.payload.height ? [{ index: 0, box: d.payload.box }] : []}
                  width={d.payload.width}
                  height={d.payload.height}
                />
              </a>
              <div className="card-body">
                <p className="card-title">
                  <a href={`#/dogs/${d.id}`}>{dogTitle(d.payload)}</a>
                </p>
                {d.payload.name && d.payload.breed ? <p className="muted">{String(d.payload.breed)}</p> : null}
                <ReportLine payload={d.payload} />
              </div>
            </li>
          ))}
        </ul>
      )}
      {/* aria-disabled, not disabled: the button pressed keeps the keyboard's focus while the page loads or ends */}
      {!onePage && (
        <nav className="pager" aria-label="Gallery pages">
          <button
            type="button"
            className="button secondary"
            aria-disabled={index === 0 || loading}
            onClick={() => index > 0 && !loading && navigate(galleryHref(limit, status, cursors.slice(0, -1)))}
          >
            Previous page
          </button>
          <span className="muted">Page {index + 1}</span>
          <button
            type="button"
            className="button secondary"
            aria-disabled={!current || !page?.next || loading}
            onClick={() =>
              current && page?.next && !loading && navigate(galleryHref(limit, status, [...cursors, page.next]))
            }
          >
            Next page
          </button>
        </nav>
      )}
    </section>
  );
}
