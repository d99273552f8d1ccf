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
  const [page, setPage] = useState<DogPage | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const index = cursors.length;
  const cursor = cursors.at(-1) ?? null;

  useEffect(() => {
    let live = true;
    setLoading(true);
    setError(null);
    listDogs(limit, cursor, undefined, status ? { status } : undefined)
      .then((p) => live && setPage(p))
      .catch((e) => live && setError(messageOf(e)))
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
  }, [cursor, limit, status]);

  const first = index * limit + 1;
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
      {page && (
        <p className="muted" aria-live="polite">
          {page.total === 0
            ? status
              ? `No dogs reported ${STATUS_LABELS[status].toLowerCase()}.`
              : "No dogs yet."
            : `Dogs ${first}–${first + page.items.length - 1} of ${page.total}`}
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
          aria-disabled={!page?.next || loading}
          onClick={() => page?.next && !loading && navigate(galleryHref(limit, status, [...cursors, page.next]))}
        >
          Next page
        </button>
      </nav>
    </section>
  );
}
