import { useEffect, useId, useState, type FormEvent } from "react";
import { ApiImage } from "../components/ApiImage";
import { ErrorBanner } from "../components/ErrorBanner";
import { LostFoundFilter } from "../components/LostFoundFilter";
import { MarkDog } from "../components/MarkDog";
import { PhotoBoxes } from "../components/PhotoBoxes";
import { PhotoPicker } from "../components/PhotoPicker";
import { dogTitle, ResultGrid } from "../components/ResultGrid";
import {
  listDogs,
  MAX_QUERY_PHOTOS,
  messageOf,
  parseFieldFilter,
  searchByPhoto,
  similarTo,
  type Filters,
} from "../lib/api";
import { guessesText } from "../lib/dogs";
import { reportSearchFields, STATUS_LABELS, type ReportFilter, type Status } from "../lib/reports";
import { NO_LIKELY_MATCH } from "../lib/explain";
import { showable } from "../lib/preview";
import { useSearchState, type FoundInQuery, type Query, type SearchState } from "../lib/searchState";
import type { SearchResponse, SearchResult } from "../lib/types";

const K_CHOICES = [6, 12, 24, 48];

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

/** The dogs of the query photo from a search's answer; null where the server found none to tell (older servers). */
function foundIn(answer: SearchResponse): FoundInQuery | null {
  if (!answer.dogs?.length || !answer.width || !answer.height) return null;
  return {
    dogs: answer.dogs,
    dog: answer.dog ?? 0,
    width: answer.width,
    height: answer.height,
    breedGuess: answer.breed_guess ?? answer.dogs.find((d) => d.index === answer.dog)?.breed_guess ?? [],
  };
}

/** ["found", "sighted"] → "found or sighted" */
function statusesText(statuses: string[]): string {
  const words = statuses.map((s) => (STATUS_LABELS[s as Status] ?? s).toLowerCase());
  return words.length > 1 ? `${words.slice(0, -1).join(", ")} or ${words[words.length - 1]}` : words[0];
}

export function SearchPage() {
  const [state, setState] = useSearchState();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [breed, setBreed] = useState(state.filters.breed ?? "");
  const [fieldText, setFieldText] = useState(state.fieldText);
  const [k, setK] = useState(state.k);
  const [report, setReport] = useState<ReportFilter>(state.filters.report ?? {});
  const [marking, setMarking] = useState(false);
  const breeds = useBreeds();
  const ids = useId();

  /** `dog`: which dog of the photo to search with (a photo query only); none: the server's default, the largest. */
  const run = async (query: Query, dog?: number) => {
    setError(null);
    let filters: Filters;
    try {
      filters = { breed: breed.trim() || undefined, fields: parseFieldFilter(fieldText), report };
      reportSearchFields(report); // a bad place or radius is said here, before the upload
    } catch (e) {
      setError(messageOf(e));
      return;
    }
    setBusy(true);
    // a new photo: the boxes of the last one are not its own
    setState((s): SearchState => ({ ...s, query, filters, fieldText, k, found: query === s.query ? s.found : null }));
    try {
      const answer =
        query.kind === "photo"
          ? await searchByPhoto([query.file, ...(query.more ?? []).map((m) => m.file)], k, filters, dog, query.box)
          : await similarTo(query.dog.id, k, filters);
      setState((s) => ({
        ...s,
        results: answer.results,
        tookMs: answer.took_ms,
        found: foundIn(answer),
        statuses: answer.statuses ?? null,
        bestVerdict: answer.best_verdict,
      }));
    } catch (e) {
      setState((s) => ({ ...s, results: null })); // the dogs found, if any, are still those of this photo
      setError(messageOf(e));
    } finally {
      setBusy(false);
    }
  };

  // "More like this" from a dog's page sets the query and comes here: run it.
  useEffect(() => {
    if (state.query?.kind === "dog" && state.results === null) void run(state.query);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const onPick = (file: File) => {
    if (state.query?.kind === "photo") {
      for (const url of [state.query.url, ...(state.query.more ?? []).map((m) => m.url)]) URL.revokeObjectURL(url);
    }
    setMarking(false);
    const url = URL.createObjectURL(file);
    void run({ kind: "photo", file, url });
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
    for (const file of Array.from(files)) {
      if (more.length + 1 >= MAX_QUERY_PHOTOS) break;
      more.push({ file, url: URL.createObjectURL(file) });
    }
    setMarking(false);
    // a marked box is one photo's: with more photos the detector finds the dog in each (the largest)
    void run({ ...state.query, more, box: undefined }, state.query.box ? undefined : state.found?.dog);
  };

  const onOnlyFirst = () => {
    if (state.query?.kind !== "photo") return;
    for (const m of state.query.more ?? []) URL.revokeObjectURL(m.url);
    void run({ ...state.query, more: [] }, state.found?.dog);
  };

  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    if (state.query) void run(state.query, state.query.kind === "photo" ? state.found?.dog : undefined);
    else setError("Pick a photo first.");
  };

  const onMoreLike = (r: SearchResult) => {
    void run({ kind: "dog", dog: r });
    window.scrollTo({ top: 0, behavior: "smooth" });
  };

  const matchHref = (r: SearchResult) =>
    state.query?.kind === "dog" ? `#/match/${r.id}?from=${state.query.dog.id}` : `#/match/${r.id}`;

  const query = state.query;
  const found = query?.kind === "photo" ? state.found : null;
  return (
    <section aria-labelledby={`${ids}-h`}>
      <h1 id={`${ids}-h`}>Find similar dogs</h1>
      <div className="search-layout">
        <div className="search-side">
          {query?.kind === "dog" ? (
            <div className="picker">
              <ApiImage className="preview" src={query.dog.thumbnail_url} alt={dogTitle(query.dog.payload)} />
              <p>
                More like <a href={`#/dogs/${query.dog.id}`}>{dogTitle(query.dog.payload)}</a>
              </p>
              <PhotoPicker label="Search with a photo instead" onPick={onPick} disabled={busy} />
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
                void run({ ...query, box });
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
                    onSelect={(i) => void run(query.box ? { ...query, box: undefined } : query, i)}
                    disabled={busy}
                  />
                ) : undefined
              }
              disabled={busy}
            />
          )}
          {query?.kind === "photo" && !query.more?.length && !marking && (
            <button type="button" className="button small secondary" onClick={() => setMarking(true)} disabled={busy}>
              {found ? "Not the right dog? Mark it yourself" : "Mark the dog yourself"}
            </button>
          )}
          {query?.kind === "photo" && (
            <div className="more-photos">
              {query.more?.length ? (
                <>
                  <p data-testid="query-photos">
                    Searching with {query.more.length + 1} photos of this dog (their similarities averaged).
                  </p>
                  <ul className="query-photos" aria-label="More photos of the same dog">
                    {query.more.map((m, i) => (
                      <li key={`${i}-${m.file.name}`}>
                        <img src={m.url} alt={`Photo ${i + 2} of the dog you search for`} />
                      </li>
                    ))}
                  </ul>
                  <button type="button" className="button small secondary" onClick={onOnlyFirst} disabled={busy}>
                    Use the first photo only
                  </button>
                </>
              ) : null}
              {1 + (query.more?.length ?? 0) < MAX_QUERY_PHOTOS && (
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
            <button type="submit" className="button" disabled={busy}>
              Search again
            </button>
          </form>
        </div>
        <div className="search-results" aria-live="polite" aria-busy={busy}>
          <ErrorBanner error={error} onDismiss={() => setError(null)} />
          {busy && <p className="notice">Searching…</p>}
          {!busy && state.results && (
            <>
              <p className="muted">
                {state.results.length} match{state.results.length === 1 ? "" : "es"}
                {state.tookMs !== undefined ? ` in ${Math.round(state.tookMs)} ms` : ""}
                {state.statuses?.length ? `, among dogs reported ${statusesText(state.statuses)}` : ""}
              </p>
              {state.results.length > 0 && state.bestVerdict && state.bestVerdict !== "likely" && (
                <p className="notice no-likely-match" role="status">
                  {NO_LIKELY_MATCH}
                </p>
              )}
              <ResultGrid
                results={state.results}
                matchHref={matchHref}
                onMoreLike={onMoreLike}
                likeDog={query?.kind === "dog" ? query.dog : undefined}
              />
            </>
          )}
          {!busy && !state.results && !error && (
            <p className="notice">Pick or drop a photo of a dog to see the most similar dogs in the collection.</p>
          )}
        </div>
      </div>
    </section>
  );
}
