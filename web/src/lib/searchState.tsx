import { createContext, useContext, useState, type ReactNode } from "react";
import type { Filters } from "./api";
import type { Box, BreedGuess, Dog, FoundDog, SearchResult, Verdict } from "./types";

// The last search lives above the router so the match page (and "back") can use the query photo.
// `more`: other photos of the same dog, searched together with `file` (the server combines them).
export type Query =
  /** `box`: the dog as the user marked it (one photo only) */
  | { kind: "photo"; file: File; url: string; more?: { file: File; url: string }[]; box?: Box }
  | { kind: "dog"; dog: Dog };

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
  tookMs?: number;
  /** the report statuses the last search was among (the server's answer); null: any */
  statuses?: string[] | null;
  /** the best result's verdict; null or absent: the server gives none (no calibration) */
  bestVerdict?: Verdict | null;
}

const initial: SearchState = { query: null, results: null, filters: {}, fieldText: "", k: 12 };

type Ctx = [SearchState, (update: (s: SearchState) => SearchState) => void];
const SearchContext = createContext<Ctx | null>(null);

export function SearchProvider({ children, initialState }: { children: ReactNode; initialState?: SearchState }) {
  const [state, setState] = useState<SearchState>(initialState ?? initial);
  return <SearchContext.Provider value={[state, setState]}>{children}</SearchContext.Provider>;
}

export function useSearchState(): Ctx {
  const ctx = useContext(SearchContext);
  if (!ctx) throw new Error("useSearchState outside SearchProvider");
  return ctx;
}
