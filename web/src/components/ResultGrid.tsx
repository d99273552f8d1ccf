import type { Dog, SearchResult } from "../lib/types";
import { PhotoBoxes } from "./PhotoBoxes";
import { ReportLine } from "./ReportLine";
import { SameDogBar, ScoreBar } from "./ScoreBar";

interface Props {
  results: SearchResult[];
  /** where "Why it matches" leads for a result */
  matchHref: (result: SearchResult) => string;
  onMoreLike: (result: SearchResult) => void;
  /** the dog these are "more like" (it is not among them): a result that copies its photo says so */
  likeDog?: Dog;
  /** what to try when nothing matches (only a filter the user can see is worth removing) */
  emptyHint?: string;
}

export function dogTitle(payload: { name?: unknown; breed?: unknown }): string {
  return String(payload.name ?? payload.breed ?? "Unnamed dog");
}

export function ResultGrid({ results, matchHref, onMoreLike, likeDog, emptyHint }: Props) {
  if (!results.length) {
    return <p className="notice">No dogs match.{emptyHint ? ` ${emptyHint}` : ""}</p>;
  }
  // a dog stored twice (its photo copied): the copy says which match it copies
  const rankOf = new Map(results.map((r, i) => [r.id, i + 1]));
  return (
    <ol className="grid" aria-label="Matches, best first">
      {results.map((r, i) => (
        <li key={r.id} className="card" data-testid="result">
          <a
            href={matchHref(r)}
            className="card-photo"
            aria-label={
              // an unlikely one is compared, not said to match
              r.verdict === "unlikely"
                ? `Compare match ${i + 1} (${dogTitle(r.payload)})`
                : `Why match ${i + 1} (${dogTitle(r.payload)}) matches`
            }
          >
            {/* the dog's photo that matched (the server's thumbnail_url is that photo's), its box where the photo's
                size is known (a thumbnail is smaller, of the same shape) */}
            <PhotoBoxes
              src={r.thumbnail_url}
              alt={`Match ${i + 1}: ${dogTitle(r.payload)}`}
              loading="lazy"
              fit="cover"
              dogs={r.box && r.payload.width && r.payload.height ? [{ index: 0, box: r.box }] : []}
              width={r.payload.width}
              height={r.payload.height}
            />
          </a>
          <div className="card-body">
            <p className="card-title">
              <span className="rank">#{i + 1}</span> <a href={`#/dogs/${r.id}`}>{dogTitle(r.payload)}</a>
            </p>
            {r.payload.breed && r.payload.name ? <p className="muted">{String(r.payload.breed)}</p> : null}
            {rankOf.has(String(r.payload.near_duplicate_of)) && (
              <p className="muted" data-testid="copy-of">
                Its photo is a copy of #{rankOf.get(String(r.payload.near_duplicate_of))}'s
              </p>
            )}
            {likeDog && r.payload.near_duplicate_of === likeDog.id && (
              <p className="muted" data-testid="copy-of">
                Its photo is a copy of {dogTitle(likeDog.payload)}'s
              </p>
            )}
            <ReportLine payload={r.payload} distanceKm={r.distance_km} seenAt={r.seen_at} />
            {r.same_dog != null && r.verdict ? (
              <SameDogBar probability={r.same_dog} verdict={r.verdict} score={r.score} />
            ) : (
              <ScoreBar score={r.score} />
            )}
            <div className="card-actions">
              <a className="button small" href={matchHref(r)}>
                {r.verdict === "unlikely" ? "Compare" : "Why it matches"}
              </a>
              <button type="button" className="button small secondary" onClick={() => onMoreLike(r)}>
                More like this
              </button>
            </div>
          </div>
        </li>
      ))}
    </ol>
  );
}
