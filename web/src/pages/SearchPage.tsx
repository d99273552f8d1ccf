import { useEffect, useId, useRef, useState, type FormEvent } from "react";
import { ApiImage } from "../components/ApiImage";
import { ErrorBanner } from "../components/ErrorBanner";
import { LostFoundFilter } from "../components/LostFoundFilter";
import { MarkDog } from "../components/MarkDog";
import { PhotoBoxes } from "../components/PhotoBoxes";
import { PhotoPicker } from "../components/PhotoPicker";
import { dogTitle, ResultGrid } from "../components/ResultGrid";
import { listDogs, MAX_QUERY_PHOTOS, messageOf, parseFieldFilter, type Filters } from "../lib/api";
import { guessesText } from "../lib/dogs";
import { reportSearchFields, STATUS_LABELS, statusesText, type ReportFilter, type Status } from "../lib/reports";
import { NO_LIKELY_MATCH, uncheckedText } from "../lib/explain";
import { showable } from "../lib/preview";
import {
  SLOW_SEARCH_MS,
  useCancelSearch,
  useRunSearch,
  useSearchState,
  type FoundInQuery,
  type Query,
  type SearchState,
} from "../lib/searchState";
import type { SearchResult } from "../lib/types";

const K_CHOICES = [6, 12, 24, 48];

/** 89 → "89 ms", 10234 → "10.2 s" */
export const durationText = (ms: number): string =>
  ms < 1000 ? `${Math.round(ms)} ms` : `${Number((ms / 1000).toFixed(1))} s`;

/** The seconds a search has gone on, once it is slow (SLOW_SEARCH_MS); null before. */
function useSlowFor(busy: boolean): number | null {
  const [since, setSince] = useState<number | null>(null);
  const [now, setNow] = useState(0);
  useEffect(() => {
    if (!busy) return setSince(null);
    const start = Date.now();
    setSince(start);
    setNow(start);
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [busy]);
  if (since === null || now - since < SLOW_SEARCH_MS) return null;
  return Math.floor((now - since) / 1000);
}

/** Breeds seen on the first gallery pages: suggestions for the breed filter. */
function useBreeds(): string[] {
  const [breeds, setBreeds] = useState<string[]>([]);
  useEffect(() => {
    listDogs(100)
      .then((page) => {
        const names = new Set(page.items.map((d) => d.payload.breed).filter(Boolean) as string[]);
        setBreeds([...names].sort());
      })
      .catch(() => setBreeds([])); // suggestions only: the search itself reports errors
  }, []);
  return breeds;
}

/** Whether the user narrowed a search with filters the form shows (more like this sends no "I have"). */
function narrowed(filters: Filters, kind: Query["kind"]): boolean {
  return Boolean(
    filters.breed ||
      Object.keys(filters.fields ?? {}).length ||
      reportSearchFields(filters.report).some(([key]) => kind === "photo" || key !== "for_status"),
  );
}

/** Which of the dogs the detector found in the photo was searched (and of how many); none where the user marked it
 * or the detector found none. */
function detectedIn(found: FoundInQuery | null | undefined): { dog: number; of: number } | undefined {
  const dogs = found?.dogs.filter((d) => !d.marked) ?? [];
  return found && dogs.length ? { dog: found.dog, of: dogs.length } : undefined;
}

const REPORT_KEYS = ["status", "forStatus", "near", "radiusKm", "seenAfter", "seenBefore"] as const;

/** Whether the form's filters are those the results were searched with. */
function sameFilters(state: SearchState, form: { breed: string; fieldText: string; k: number; report: ReportFilter }) {
  return (
    (form.breed.trim() || undefined) === state.filters.breed &&
    form.fieldText === state.fieldText &&
    form.k === state.k &&
    REPORT_KEYS.every((key) => (form.report[key] ?? "") === (state.filters.report?.[key] ?? ""))
  );
}

export function SearchPage() {
  const [state, setState] = useSearchState();
  const runSearch = useRunSearch();
  const cancelSearch = useCancelSearch();
  const [breed, setBreed] = useState(state.filters.breed ?? "");
  const [fieldText, setFieldText] = useState(state.fieldText);
  const [k, setK] = useState(state.k);
  const [report, setReport] = useState<ReportFilter>(state.filters.report ?? {});
  const [marking, setMarking] = useState(false);
  /** how many of the photos the user just added did not fit in the search */
  const [leftOut, setLeftOut] = useState(0);
  const breeds = useBreeds();
  const ids = useId();
  const busy = Boolean(state.busy);
  const slowFor = useSlowFor(busy);
  const error = state.error ?? null;
  const setError = (message: string | null) => setState((s) => ({ ...s, error: message, noDogIn: null }));

  // A search that ends while this page is shown: focus (and so scroll to) what it came to, which a phone shows
  // below the filters; not from a filter the user is typing in meanwhile.
  const outcome = useRef<HTMLDivElement>(null);
  const wasBusy = useRef(busy);
  useEffect(() => {
    const typing = document.activeElement?.matches("input:not([type=file]), select, textarea");
    if (wasBusy.current && !busy && !typing) outcome.current?.focus();
    wasBusy.current = busy;
  }, [busy]);

  /** `dog`: which dog of the photo to search with (a photo query only); none: the server's default, the largest. */
  const run = (query: Query, dog?: number) => {
    let filters: Filters;
    try {
      filters = { breed: breed.trim() || undefined, fields: parseFieldFilter(fieldText), report };
      reportSearchFields(report); // a bad place or radius is said here, before the upload
    } catch (e) {
      setError(messageOf(e));
      return;
    }
    runSearch(query, filters, fieldText, k, dog);
  };

  // "More like this" from a dog's page sets the query and comes here: run it.
  useEffect(() => {
    if (state.query?.kind === "dog" && state.query !== state.started) run(state.query);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const onPick = (file: File) => {
    if (state.query?.kind === "photo") {
      for (const url of [state.query.url, ...(state.query.more ?? []).map((m) => m.url)]) URL.revokeObjectURL(url);
    }
    setMarking(false);
    setLeftOut(0);
    const url = URL.createObjectURL(file);
    run({ kind: "photo", file, url });
    // a photo this browser cannot show (a HEIC) is shown from the server's JPEG of it, once that comes
    void showable(file, url).then((shown) => {
      if (shown === url) return;
      setState((s) => {
        if (s.query?.kind === "photo" && s.query.url === url) return { ...s, query: { ...s.query, url: shown } };
        URL.revokeObjectURL(shown); // another photo was picked meanwhile
        return s;
      });
    });
  };

  /** More photos of the same dog: searched together with the first (at most MAX_QUERY_PHOTOS in all). */
  const onMore = (files: FileList | null) => {
    if (state.query?.kind !== "photo" || !files?.length) return;
    const more = [...(state.query.more ?? [])];
    const chosen = Array.from(files);
    const added = chosen.slice(0, Math.max(0, MAX_QUERY_PHOTOS - 1 - more.length));
    more.push(...added.map((file) => ({ file, url: URL.createObjectURL(file) })));
    setLeftOut(chosen.length - added.length);
    setMarking(false);
    // a marked box is one photo's: with more photos the detector finds the dog in each (the one searched before)
    const dog = state.query.box ? state.query.detected?.dog : state.found?.dog;
    run({ ...state.query, more, box: undefined, detected: undefined }, dog);
  };

  /** Leaves the dog the user marked for those the detector found in the photo: the one searched before. */
  const onDetected = () => {
    if (state.query?.kind !== "photo" || !state.query.detected) return;
    run({ ...state.query, box: undefined, detected: undefined }, state.query.detected.dog);
  };

  /** Searches without one of the photos (0-based; the first is the one the dogs were found in). */
  const onRemove = (index: number) => {
    if (state.query?.kind !== "photo") return;
    const photos = [{ file: state.query.file, url: state.query.url }, ...(state.query.more ?? [])];
    URL.revokeObjectURL(photos[index].url);
    const [first, ...more] = photos.filter((_, i) => i !== index);
    setLeftOut(0);
    run({ kind: "photo", file: first.file, url: first.url, more }, index === 0 ? undefined : state.found?.dog);
  };

  const onOnlyFirst = () => {
    if (state.query?.kind !== "photo") return;
    for (const m of state.query.more ?? []) URL.revokeObjectURL(m.url);
    setLeftOut(0);
    run({ ...state.query, more: [] }, state.found?.dog);
  };

  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    if (state.query) run(state.query, state.query.kind === "photo" ? state.found?.dog : undefined);
  };

  const onMoreLike = (r: SearchResult) => {
    run({ kind: "dog", dog: r });
    window.scrollTo({ top: 0, behavior: "smooth" });
  };

  // the search and the photo that matched: Back and Forward to it later must not compare another search's photo
  const matchHref = (r: SearchResult) => {
    const params = new URLSearchParams();
    if (state.query?.kind === "dog") params.set("from", state.query.dog.id);
    if (r.photo_id) params.set("photo", r.photo_id);
    if (state.search !== undefined) params.set("search", state.search);
    return `#/match/${r.id}?${params}`;
  };

  const query = state.query;
  const found = query?.kind === "photo" ? state.found : null;
  const photos = query?.kind === "photo" ? [{ file: query.file, url: query.url }, ...(query.more ?? [])] : [];
  const results = busy ? null : state.results;
  const outdated = results !== null && !sameFilters(state, { breed, fieldText, k, report });
  // more like a lost (found, ...) dog is among the reports that answer it, unless the user chose a status
  const ownStatus =
    query?.kind === "dog" && state.statuses?.length && !state.filters.report?.status ? query.dog.payload.status : undefined;
  // the server's word on the results; an older server's answer has none: said here when no result is likely
  const note =
    state.message !== undefined
      ? state.message
      : state.bestVerdict && state.bestVerdict !== "likely"
        ? NO_LIKELY_MATCH
        : null;
  return (
    <section aria-labelledby={`${ids}-h`}>
      <h1 id={`${ids}-h`}>Find similar dogs</h1>
      <div className="search-layout">
        <div className="search-side">
          {/* another photo may be picked while one uploads: its search supersedes that one */}
          {query?.kind === "dog" ? (
            <div className="picker">
              <ApiImage className="preview" src={query.dog.thumbnail_url} alt={dogTitle(query.dog.payload)} />
              <p>
                More like <a href={`#/dogs/${query.dog.id}`}>{dogTitle(query.dog.payload)}</a>
              </p>
              <PhotoPicker label="Search with a photo instead" onPick={onPick} />
            </div>
          ) : query && marking ? (
            // in place of the picker: one photo to draw on, where the eye already is (a phone shows no more)
            <MarkDog
              src={query.url}
              action="Search for this dog"
              disabled={busy}
              onCancel={() => setMarking(false)}
              onMark={(box) => {
                setMarking(false);
                run({ ...query, box, detected: query.box ? query.detected : detectedIn(found) });
              }}
            />
          ) : (
            <PhotoPicker
              label={query ? "Choose another photo" : "Choose a photo"}
              onPick={onPick}
              previewUrl={query?.url}
              preview={
                query && found ? (
                  <PhotoBoxes
                    src={query.url}
                    alt={`The photo you picked: ${found.dogs.length} dog${found.dogs.length === 1 ? "" : "s"} found`}
                    imgClassName="preview"
                    dogs={found.dogs}
                    width={found.width}
                    height={found.height}
                    selected={found.dog}
                    onSelect={(i) => run(query.box ? { ...query, box: undefined, detected: undefined } : query, i)}
                    disabled={busy}
                  />
                ) : undefined
              }
            />
          )}
          {query?.kind === "photo" && !query.more?.length && !marking && !state.refused && (
            <button type="button" className="button small secondary" onClick={() => setMarking(true)} disabled={busy}>
              {found ? "Not the right dog? Mark it yourself" : "Mark the dog yourself"}
            </button>
          )}
          {query?.kind === "photo" && query.box && query.detected && !marking && (
            <button type="button" className="button small secondary" onClick={onDetected} disabled={busy}>
              {query.detected.of > 1 ? `Back to the ${query.detected.of} dogs found` : "Back to the dog found"}
            </button>
          )}
          {query?.kind === "photo" && (
            <div className="more-photos">
              {photos.length > 1 ? (
                <>
                  <p data-testid="query-photos">
                    Searching with {photos.length} photos of this dog (their similarities averaged).
                  </p>
                  <ul className="query-photos" aria-label="The photos of the dog you search for">
                    {photos.map((m, i) => (
                      <li key={`${i}-${m.file.name}`}>
                        <img src={m.url} alt={`Photo ${i + 1} of the dog you search for`} />
                        <button
                          type="button"
                          className="button small secondary"
                          onClick={() => onRemove(i)}
                          disabled={busy}
                          aria-label={`Remove photo ${i + 1} from the search`}
                        >
                          Remove
                        </button>
                      </li>
                    ))}
                  </ul>
                  <button type="button" className="button small secondary" onClick={onOnlyFirst} disabled={busy}>
                    Use the first photo only
                  </button>
                </>
              ) : null}
              {leftOut > 0 && (
                <p className="notice" role="status" data-testid="photos-left-out">
                  A search combines at most {MAX_QUERY_PHOTOS} photos: {leftOut} of those you chose{" "}
                  {leftOut === 1 ? "was" : "were"} left out.
                </p>
              )}
              {photos.length < MAX_QUERY_PHOTOS && !state.refused && (
                <label className="button small secondary">
                  More photos of the same dog
                  <input
                    className="visually-hidden"
                    type="file"
                    accept="image/*"
                    multiple
                    disabled={busy}
                    aria-label="Add more photos of the same dog to the search"
                    onChange={(e) => {
                      onMore(e.target.files);
                      e.target.value = "";
                    }}
                  />
                </label>
              )}
            </div>
          )}
          {found && (found.dogs.length > 1 || found.breedGuess.length > 0 || found.dogs[found.dog]?.marked) && (
            <p className="looks-like" data-testid="breed-guess">
              {found.dogs[found.dog]?.marked ? "Searching with the dog you marked. " : ""}
              {found.dogs.length > 1 ? `Searching with dog ${found.dog + 1} of ${found.dogs.length}. ` : ""}
              {found.breedGuess.length ? `Looks like: ${guessesText(found.breedGuess)}` : ""}
            </p>
          )}
          <form className="filters" onSubmit={onSubmit} aria-label="Filters">
            <label htmlFor={`${ids}-breed`}>Breed</label>
            <input
              id={`${ids}-breed`}
              list={`${ids}-breeds`}
              value={breed}
              onChange={(e) => setBreed(e.target.value)}
              placeholder="any breed"
              autoComplete="off"
            />
            <datalist id={`${ids}-breeds`}>
              {breeds.map((b) => (
                <option key={b} value={b} />
              ))}
            </datalist>
            <label htmlFor={`${ids}-fields`}>Other fields</label>
            <input
              id={`${ids}-fields`}
              value={fieldText}
              onChange={(e) => setFieldText(e.target.value)}
              placeholder="color=brown, size=small"
              aria-describedby={`${ids}-fields-help`}
            />
            <small id={`${ids}-fields-help`} className="muted">
              field=value, separated by commas
            </small>
            <LostFoundFilter value={report} onChange={setReport} photo={query?.kind === "photo" ? query.file : null} />
            <label htmlFor={`${ids}-k`}>Results</label>
            <select id={`${ids}-k`} value={k} onChange={(e) => setK(Number(e.target.value))}>
              {K_CHOICES.map((n) => (
                <option key={n} value={n}>
                  {n}
                </option>
              ))}
            </select>
            {/* only with something to search again: before a photo, or with a file the server refused, it did nothing */}
            {query && !state.refused && (
              <button type="submit" className="button" disabled={busy}>
                Search again
              </button>
            )}
          </form>
        </div>
        <div className="search-results" aria-busy={busy}>
          {/* focused when a search ends; only its status line is live, not every result */}
          <div className="search-outcome" ref={outcome} tabIndex={-1} data-testid="search-outcome">
            <ErrorBanner error={error} onDismiss={() => setError(null)} />
            {state.noDogIn != null && state.noDogIn < photos.length && photos.length > 1 && (
              <button type="button" className="button small" onClick={() => onRemove(state.noDogIn!)} disabled={busy}>
                Search without photo {state.noDogIn + 1}
              </button>
            )}
            <div role="status">
              {busy && (
                <p className="notice" data-testid="searching">
                  {/* the photo named: another one picked meanwhile is seen to be the one searched now */}
                  {query?.kind !== "photo"
                    ? "Searching…"
                    : query.more?.length
                      ? `Searching with ${query.more.length + 1} photos…`
                      : `Searching with ${query.file.name}…`}
                  {slowFor !== null ? ` (${slowFor} s so far)` : ""}{" "}
                  <button type="button" className="button small secondary" onClick={cancelSearch}>
                    Stop searching
                  </button>
                </p>
              )}
              {results && (
                <>
                  <p className="muted" data-testid="search-summary">
                    {results.length} match{results.length === 1 ? "" : "es"}
                    {/* what the user waited, upload included; the server's own time (its search alone) beside it */}
                    {state.waitedMs !== undefined ? ` in ${durationText(state.waitedMs)}` : ""}
                    {state.tookMs !== undefined ? ` (server: ${durationText(state.tookMs)})` : ""}
                    {state.statuses?.length ? `, among dogs reported ${statusesText(state.statuses)}` : ""}
                  </p>
                  {query?.kind === "dog" && ownStatus !== undefined && (
                    <p className="implied-filter" data-testid="implied-status">
                      As {dogTitle(query.dog.payload)} is reported{" "}
                      {(STATUS_LABELS[ownStatus as Status] ?? String(ownStatus)).toLowerCase()}, only dogs reported{" "}
                      {statusesText(state.statuses ?? [])} are searched.{" "}
                      <button type="button" className="button small secondary" onClick={() => run({ ...query, anyStatus: true })}>
                        Search all dogs
                      </button>
                    </p>
                  )}
                  {results.length > 0 && note && <p className="notice no-likely-match">{note}</p>}
                  {results.length > 0 && state.verdictsUnchecked && (
                    <p className="notice" data-testid="verdicts-unchecked">
                      {uncheckedText(query?.kind === "photo")}
                    </p>
                  )}
                  {outdated && (
                    <p className="notice" data-testid="filters-changed">
                      Filters changed: search again to apply them.
                    </p>
                  )}
                </>
              )}
              {!busy && !results && !error && (
                <p className="notice">Pick or drop a photo of a dog to see the most similar dogs in the collection.</p>
              )}
            </div>
          </div>
          {results && (
            <div className={outdated ? "outdated" : undefined}>
              <ResultGrid
                results={results}
                matchHref={matchHref}
                onMoreLike={onMoreLike}
                likeDog={query?.kind === "dog" ? query.dog : undefined}
                emptyHint={
                  query && narrowed(state.filters, query.kind)
                    ? "Try removing a filter, or add some dogs first."
                    : ownStatus !== undefined
                      ? `Search all dogs to look beyond those reported ${statusesText(state.statuses ?? [])}.`
                      : "Add some dogs first."
                }
              />
            </div>
          )}
        </div>
      </div>
    </section>
  );
}
