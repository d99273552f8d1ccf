import { useEffect, useState } from "react";
import { ErrorBanner } from "../components/ErrorBanner";
import { PhotoBoxes, type MarkedDog } from "../components/PhotoBoxes";
import { dogTitle } from "../components/ResultGrid";
import { ScoreBar } from "../components/ScoreBar";
import {
  ApiError,
  fetchBlob,
  getDog,
  messageOf,
  poseOfDog,
  poseOfPhoto,
  poseOverlayOfPhoto,
  poseOverlayUrl,
} from "../lib/api";
import {
  breedSentence,
  compareProportions,
  likelyBreed,
  mainDog,
  poseSentences,
  postureText,
  sameDogText,
  scoreBand,
  UNCHECKED_WHY,
} from "../lib/explain";
import { useSearchState } from "../lib/searchState";
import { guessesText } from "../lib/dogs";
import type { Dog, Payload, Photo, Pose, Verdict } from "../lib/types";

type PoseState =
  | { status: "none" } // no dog to analyse on this side (no searched photo here)
  | { status: "loading" }
  /** `overlayError`: why the keypoints could not be drawn */
  | { status: "ok"; pose: Pose; overlay: string | null; overlayError: string | null }
  | { status: "unavailable"; reason: string };

interface Posed {
  pose: Pose;
  overlay: Blob | null;
  overlayError: string | null;
}

/** Pose JSON and overlay of one side; a missing or failing pose service never hides the photos. `key` names what
 * is analysed; null: nothing. */
function usePose(key: string | null, load: () => Promise<Posed>): PoseState {
  const [state, setState] = useState<{ key: string; pose: PoseState } | null>(null);
  useEffect(() => {
    if (key === null) return;
    let live = true;
    let url: string | null = null;
    load()
      .then(({ pose, overlay, overlayError }) => {
        if (!live) return;
        url = overlay ? URL.createObjectURL(overlay) : null;
        setState({ key, pose: { status: "ok", pose, overlay: url, overlayError } });
      })
      .catch((e) => {
        const why =
          e instanceof ApiError && e.status === 404 && /not found/i.test(e.message)
            ? "this server has no pose service"
            : messageOf(e);
        if (live) setState({ key, pose: { status: "unavailable", reason: why } });
      });
    return () => {
      live = false;
      if (url) URL.revokeObjectURL(url);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
  if (key === null) return { status: "none" };
  return state?.key === key ? state.pose : { status: "loading" };
}

/** A pose, then its overlay: the JSON decides availability; an overlay that fails leaves the photo plain, said. */
async function withOverlay(pose: Promise<Pose>, overlay: () => Promise<Blob>): Promise<Posed> {
  const posed = await pose;
  try {
    return { pose: posed, overlay: await overlay(), overlayError: null };
  } catch (e) {
    return { pose: posed, overlay: null, overlayError: messageOf(e) };
  }
}

const pct = (v: number | null | undefined) => (v === null || v === undefined ? "–" : v.toFixed(2));

/** The dog compared on one side: its box on a photo of `width` x `height` (unknown: the image's natural size). */
interface Marked {
  dogs: MarkedDog[];
  selected?: number;
  width?: number | null;
  height?: number | null;
}

/** A stored dog's box, where its entry is part of a photo. */
function markedOf(payload: Payload | undefined): Marked | undefined {
  return payload?.box ? { dogs: [{ index: 0, box: payload.box }], width: payload.width, height: payload.height } : undefined;
}

/** The dog's box in one of its photos, where it is part of it. */
const markedIn = (photo: Photo): Marked | undefined =>
  photo.box ? { dogs: [{ index: 0, box: photo.box }], width: photo.width, height: photo.height } : undefined;

/** `note`: said above the pose, of the photo shown */
function PosePanel(props: { title: string; photo: string; alt: string; pose: PoseState; marked?: Marked; note?: string }) {
  const { title, photo, alt, pose, marked } = props;
  const dog = pose.status === "ok" ? mainDog(pose.pose) : undefined;
  // a dog that is the whole photo is not drawn: on a close-up of its face the body's keypoints are guesses
  const overlay = pose.status === "ok" && !dog?.whole_photo ? pose.overlay : null;
  return (
    <figure className="side">
      <figcaption>
        <h2>{title}</h2>
      </figcaption>
      {/* the overlay is the same photo drawn on: the boxes fit it as well */}
      <PhotoBoxes
        className="side-boxes"
        imgClassName="side-photo"
        src={overlay ?? photo}
        alt={`${alt}${marked?.dogs.length ? ", the dog compared outlined" : ""}${overlay ? ", with keypoints drawn" : ""}`}
        dogs={marked?.dogs ?? []}
        selected={marked?.selected}
        width={marked?.width}
        height={marked?.height}
        imgTestId={overlay ? "pose-overlay" : undefined}
      />
      {props.note && <p className="notice">{props.note}</p>}
      {pose.status === "loading" && <p className="muted">Analysing pose…</p>}
      {pose.status === "unavailable" && (
        <p className="notice" role="status" data-testid="pose-unavailable">
          Pose unavailable: {pose.reason}. Showing the photo only.
        </p>
      )}
      {pose.status === "ok" && !dog && <p className="notice">The pose model found no dog in this photo.</p>}
      {dog && !dog.whole_photo && pose.status === "ok" && pose.overlayError && (
        <p className="notice" data-testid="overlay-failed">
          The keypoints could not be drawn: {pose.overlayError}
        </p>
      )}
      {dog?.whole_photo && (
        <p className="notice" data-testid="pose-guessed">
          The dog is the whole photo here (no box within it: a close-up?), so its pose is not shown or compared.
        </p>
      )}
      {dog && !dog.whole_photo && (
        <dl className="fields-list small">
          <div>
            <dt>posture</dt>
            <dd>{postureText(dog)}</dd>
          </div>
          <div>
            <dt>visible</dt>
            <dd>
              {dog.analysis.visible_share.value === null
                ? "–"
                : `${Math.round(dog.analysis.visible_share.value * 100)}% of the body`}
            </dd>
          </div>
          <div>
            <dt>keypoints</dt>
            <dd>
              {dog.keypoints.filter((k) => k.score >= 0.3).length} of {dog.keypoints.length} found
            </dd>
          </div>
        </dl>
      )}
    </figure>
  );
}

/** `search`: the name of the search the match is of (SearchState.search); `photo`: the dog's photo that matched (none: its
 * cover); `from`: the stored dog searched with ("more like this"). */
export function MatchPage(props: { id: string; from: string | null; photo: string | null; search: string | null }) {
  const { id, from } = props;
  const [state] = useSearchState();
  const [match, setMatch] = useState<Dog | null>(null);
  const [queryDog, setQueryDog] = useState<Dog | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    setError(null);
    getDog(id).then(setMatch, (e) => setError(messageOf(e)));
    if (from) getDog(from).then(setQueryDog, (e) => setError(messageOf(e)));
  }, [id, from]);

  // the search this match is of, while it is this tab's latest: its photo, score and results; else none of them
  const search = props.search !== null && state.search === props.search ? state : null;
  const photoQuery = !from && search?.query?.kind === "photo" ? search.query : null;
  const found = photoQuery ? search?.found : null;
  // the dog searched for (the one picked, or marked), as the server boxed it: not the photo's likeliest
  const searchedBox = found?.dogs.find((d) => d.index === found.dog)?.box;
  const queryPose = usePose(from ? `dog ${from}` : photoQuery ? `photo ${photoQuery.url}` : null, () =>
    from
      ? withOverlay(poseOfDog(from), () => fetchBlob(poseOverlayUrl(from)))
      : withOverlay(poseOfPhoto(photoQuery!.file, searchedBox), () => poseOverlayOfPhoto(photoQuery!.file, searchedBox)),
  );
  // the photo of the match that matched (a dog may have several), once its photos are known; else its cover
  const matched = props.photo ? match?.photos?.find((p) => p.id === props.photo) : undefined;
  const matchPose = usePose(match ? `${id} ${matched?.id ?? "cover"}` : null, () =>
    withOverlay(poseOfDog(id, matched?.id), () => fetchBlob(poseOverlayUrl(id, matched?.id))),
  );

  const result = search?.results?.find((r) => r.id === id);
  const hasQuery = Boolean(from ? queryDog : photoQuery);
  const queryTitle = from ? (queryDog ? dogTitle(queryDog.payload) : "Query dog") : "Your photo";
  const matchTitle = match ? dogTitle(match.payload) : "Match";

  return (
    <section aria-labelledby="match-h">
      <p>
        <a href="#/search">← Back to the results</a>
      </p>
      <h1 id="match-h">{result?.verdict === "unlikely" ? `How ${matchTitle} compares` : `Why ${matchTitle} matches`}</h1>
      <ErrorBanner error={error} />
      <div className="sides">
        {!hasQuery ? (
          <div className="side">
            <h2>{queryTitle}</h2>
            {from ? null : state.query ? (
              <p className="notice" data-testid="other-search">
                This match is not from your latest search in this tab, so it is not compared with that search's photo.{" "}
                <a href="#/search">Back to the latest results</a>, or search again to compare.
              </p>
            ) : (
              <p className="notice" data-testid="no-query">
                The searched photo is not in this tab any more. <a href="#/search">Search again</a> to compare.
              </p>
            )}
          </div>
        ) : (
          <PosePanel
            title={queryTitle}
            photo={from ? (queryDog?.image_url ?? "") : photoQuery!.url}
            alt={from ? `Photo of ${queryTitle}` : "Your query photo"}
            pose={queryPose}
            marked={
              from
                ? markedOf(queryDog?.payload)
                : found
                  ? { dogs: found.dogs, selected: found.dog, width: found.width, height: found.height }
                  : undefined
            }
          />
        )}
        {match && (
          <PosePanel
            title={`Match: ${matchTitle}`}
            photo={matched?.image_url ?? match.image_url}
            alt={`Photo of ${matchTitle}`}
            pose={matchPose}
            marked={matched ? markedIn(matched) : markedOf(match.payload)}
            note={
              props.photo && match.photos && !matched
                ? "The photo that matched is not one of this dog's any more: its cover photo is shown."
                : undefined
            }
          />
        )}
      </div>
      {match && (
        <Explanation
          score={result?.score}
          sameDog={result?.same_dog != null && result.verdict ? { p: result.same_dog, verdict: result.verdict } : undefined}
          unchecked={search?.verdictsUnchecked}
          queryBreed={queryDog?.payload.breed}
          matchBreed={match.payload.breed}
          likely={photoQuery ? likelyBreed(search?.results?.slice(0, 5).map((r) => r.payload.breed) ?? []) : undefined}
          guesses={found?.breedGuess.length ? guessesText(found.breedGuess) : undefined}
          queryPose={queryPose}
          matchPose={matchPose}
        />
      )}
    </section>
  );
}

function Explanation(props: {
  score?: number;
  /** the calibrated chance that it is the same dog, where the server gives one */
  sameDog?: { p: number; verdict: Verdict };
  /** the search's verdicts were read without checking for one dog stored twice: this chance may be too low */
  unchecked?: boolean;
  queryBreed?: string;
  matchBreed?: string;
  likely?: string;
  /** the searched dog's breed suggestions, in words */
  guesses?: string;
  queryPose: PoseState;
  matchPose: PoseState;
}) {
  const { score, queryPose, matchPose } = props;
  const both = queryPose.status === "ok" && matchPose.status === "ok" ? [queryPose.pose, matchPose.pose] : null;
  const q = both && mainDog(both[0]);
  const m = both && mainDog(both[1]);
  return (
    <section className="explain" aria-labelledby="explain-h">
      <h2 id="explain-h">The similarity in plain words</h2>
      {score !== undefined && <ScoreBar score={score} />}
      <ul>
        {props.sameDog && <li data-testid="same-dog-sentence">Is it the same dog? {capitalised(sameDogText(props.sameDog.p, props.sameDog.verdict))}.</li>}
        {props.sameDog && props.sameDog.verdict !== "likely" && props.unchecked && (
          <li data-testid="verdicts-unchecked">
            This chance may be too low: {UNCHECKED_WHY}. Compare the photos: it may still be the same dog.
          </li>
        )}
        <li>
          {score === undefined
            ? "The score is not known here: open this page from a search to see it."
            : `Score ${score.toFixed(3)} (${scoreBand(score).label}). ${scoreBand(score).sentence}`}
        </li>
        <li>{breedSentence(props.queryBreed, props.matchBreed, props.likely)}</li>
        {props.guesses && <li>Your dog looks like: {props.guesses}.</li>}
        {both ? (
          poseSentences(both[0], both[1]).map((s) => <li key={s}>{s}</li>)
        ) : queryPose.status === "none" ? (
          <li>Posture and proportions cannot be compared here: there is no searched photo to compare with.</li>
        ) : queryPose.status === "loading" || matchPose.status === "loading" ? (
          <li>Comparing poses…</li>
        ) : (
          <li>Posture and proportions cannot be compared: pose analysis is unavailable.</li>
        )}
      </ul>
      {q && m && !q.whole_photo && !m.whole_photo &&
        compareProportions(q, m).some((r) => r.query !== null && r.match !== null) && (
        <table className="compare">
          <caption>Proportions compared</caption>
          <thead>
            <tr>
              <th scope="col">Proportion</th>
              <th scope="col">Query</th>
              <th scope="col">Match</th>
              <th scope="col">Verdict</th>
            </tr>
          </thead>
          <tbody>
            {compareProportions(q, m).map((row) => (
              <tr key={row.key}>
                <th scope="row">{row.label}</th>
                <td>{pct(row.query)}</td>
                <td>{pct(row.match)}</td>
                <td>{row.verdict}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p className="muted">
        The score measures how alike the two photos look overall (coat, colour, shape, and some of the
        background). Pose is shown to help you judge; it is not part of the score.
      </p>
    </section>
  );
}

function capitalised(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
