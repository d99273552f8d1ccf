import { createContext, useCallback, useContext, useRef, useState, type ReactNode } from "react";
import { ApiError, CANCELLED, messageOf, searchByPhoto, similarTo, type Filters } from "./api";
import { shownGuesses } from "./explain";
import type { Box, BreedGuess, Dog, FoundDog, SearchResponse, SearchResult, Verdict } from "./types";

// The last search lives above the router so the match page (and "back") can use the query photo, and an answer
// that comes while another page is shown still lands.
// `more`: other photos of the same dog, searched together with `file` (the server combines them).
export type Query =
  /** `box`: the dog as the user marked it (one photo only); `detected`, beside it: which of the dogs the detector
   * found in the photo was searched before (an index of their answer's `dogs`, and how many there were), to go
   * back to */
  | {
      kind: "photo";
      file: File;
      url: string;
      more?: { file: File; url: string }[];
      box?: Box;
      detected?: { dog: number; of: number };
    }
  /** `anyStatus`: among all dogs, not only the reports that answer the dog's own */
  | { kind: "dog"; dog: Dog; anyStatus?: boolean };

/** The dogs the server found in the query photo, and which one was searched. */
export interface FoundInQuery {
  dogs: FoundDog[];
  dog: number;
  width: number;
  height: number;
  breedGuess: BreedGuess[];
}

export interface SearchState {
  query: Query | null;
  results: SearchResult[] | null;
  /** null: a "more like this" search, or a server without the detector */
  found?: FoundInQuery | null;
  filters: Filters;
  fieldText: string;
  k: number;
  /** the server's own time for the search (its `took_ms`): not what the user waited */
  tookMs?: number;
  /** what the user waited for the answer, from the pick (or press) to the results, in ms */
  waitedMs?: number;
  /** the report statuses the last search was among (the server's answer); null: any */
  statuses?: string[] | null;
  /** the best result's verdict; null or absent: the server gives none (no calibration) */
  bestVerdict?: Verdict | null;
  /** the server's word on the results ("No likely match: ..."); null: it has none; absent: an older server */
  message?: string | null;
  /** the verdicts were read without checking for one dog stored twice: a result not likely may still be the dog */
  verdictsUnchecked?: boolean;
  /** the name of the last search started: a match's link names it (Back and Forward must not compare another
   * search's photo) */
  search?: string;
  /** the query that search was started with (the dog page's "more like this" sets a query without starting it) */
  started?: Query;
  busy?: boolean;
  error?: string | null;
  /** with an error of a photo without a dog, in a search of several: which photo (0-based) */
  noDogIn?: number | null;
  /** the query's file is no usable photo (not an image, too large, too thin): nothing to mark or add to */
  refused?: boolean;
}

const initial: SearchState = { query: null, results: null, filters: {}, fieldText: "", k: 12 };

/** Starts a search: only the answer of the latest one started lands. `dog`: which dog of the photo to search with
 * (a photo query only); none: the server's default, the largest. */
export type RunSearch = (query: Query, filters: Filters, fieldText: string, k: number, dog?: number) => void;

/** How long a search has gone on, said while it does: more than this and "Searching…" says for how long. */
export const SLOW_SEARCH_MS = 5_000;

type Ctx = [SearchState, (update: (s: SearchState) => SearchState) => void];
const SearchContext = createContext<{ ctx: Ctx; run: RunSearch; cancel: () => void } | null>(null);

// Searches are numbered within a page load, whose start names it: after a reload, a match's link in the history
// from before it names no search of this one.
const LOAD = Date.now().toString(36);
let searches = 0;
const nextSearch = (): string => `${LOAD}.${++searches}`;

/** The dogs of the query photo from a search's answer; null where the server found none to tell (older servers). */
function foundIn(answer: SearchResponse): FoundInQuery | null {
  if (!answer.dogs?.length || !answer.width || !answer.height) return null;
  return {
    dogs: answer.dogs,
    dog: answer.dog ?? 0,
    width: answer.width,
    height: answer.height,
    breedGuess: shownGuesses(answer.breed_guess ?? answer.dogs.find((d) => d.index === answer.dog)?.breed_guess ?? []),
  };
}

/** A failed search in words; a photo without a dog among several says which. */
function failure(e: unknown, photos: number): Pick<SearchState, "error" | "noDogIn" | "refused"> {
  const which = e instanceof ApiError && photos > 1 ? e.photo : null;
  const message = messageOf(e);
  // the server's refusals of the file itself: image_rejected, image_too_large, ...; 413 and 415 whatever their code
  const refused = e instanceof ApiError && (e.status === 413 || e.status === 415 || !!e.code?.startsWith("image_"));
  if (which === null) return { error: message, noDogIn: null, refused };
  return {
    error: `Photo ${which + 1} of ${photos}: ${message.charAt(0).toLowerCase()}${message.slice(1)}`,
    noDogIn: which,
    refused,
  };
}

export function SearchProvider({ children, initialState }: { children: ReactNode; initialState?: SearchState }) {
  const [state, setState] = useState<SearchState>(initialState ?? initial);
  const upload = useRef<AbortController | null>(null);

  const run = useCallback<RunSearch>((query, filters, fieldText, k, dog) => {
    upload.current?.abort(); // the search it was for is superseded: its upload would only slow this one
    const abort = (upload.current = new AbortController());
    const search = nextSearch();
    const started = Date.now();
    setState((s) => ({
      ...s,
      query,
      started: query,
      filters,
      fieldText,
      k,
      search,
      busy: true,
      error: null,
      noDogIn: null,
      refused: false,
      results: null,
      waitedMs: undefined,
      // a new photo: the boxes of the last one are not its own
      found: query === s.query ? s.found : null,
    }));
    const land = (update: Partial<SearchState>) =>
      setState((s) => (s.search === search ? { ...s, ...update, busy: false } : s));
    const photos = query.kind === "photo" ? [query.file, ...(query.more ?? []).map((m) => m.file)] : [];
    (query.kind === "photo"
      ? searchByPhoto(photos, k, filters, dog, query.box, abort.signal)
      : similarTo(query.dog.id, k, filters, { anyStatus: query.anyStatus, signal: abort.signal })
    ).then(
      (answer) =>
        land({
          results: answer.results,
          tookMs: answer.took_ms,
          waitedMs: Date.now() - started,
          found: foundIn(answer),
          statuses: answer.statuses ?? null,
          bestVerdict: answer.best_verdict,
          message: answer.message,
          verdictsUnchecked: Boolean(answer.verdicts_unchecked),
        }),
      // the dogs found, if any, are still those of this photo; a search given up (cancel) said so already
      (e) => !(e instanceof ApiError && e.code === CANCELLED) && land(failure(e, photos.length)),
    );
  }, []);

  /** Gives up the running search: its answer, if it comes, does not land. */
  const cancel = useCallback(() => {
    upload.current?.abort();
    upload.current = null;
    setState((s) => (s.busy ? { ...s, busy: false, search: nextSearch(), error: "Search cancelled." } : s));
  }, []);

  return <SearchContext.Provider value={{ ctx: [state, setState], run, cancel }}>{children}</SearchContext.Provider>;
}

function useSearchContext() {
  const value = useContext(SearchContext);
  if (!value) throw new Error("useSearchState outside SearchProvider");
  return value;
}

export const useSearchState = (): Ctx => useSearchContext().ctx;

export const useRunSearch = (): RunSearch => useSearchContext().run;

export const useCancelSearch = (): (() => void) => useSearchContext().cancel;
