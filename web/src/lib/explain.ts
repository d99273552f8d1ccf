import type { BreedGuess, Measure, Pose, PoseDog, Verdict } from "./types";

const VERDICT_WORDS: Record<Verdict, string> = {
  likely: "likely the same dog",
  possible: "possibly the same dog",
  unlikely: "unlikely to be the same dog",
};

/** "likely the same dog (93 %)": a calibrated probability in words, in whole percent; never a bare 0 or 100, which
 * no calibration can claim. */
export function sameDogText(probability: number, verdict: Verdict): string {
  const pct = Math.round(probability * 100);
  const shown = pct < 1 ? "<1" : pct > 99 ? ">99" : String(pct);
  return `${VERDICT_WORDS[verdict]} (${shown} %)`;
}

/** Why a search's chances may be too low (its `verdicts_unchecked`): each of two reports of one dog, an owner's and a
 * shelter's, then holds the other's chance back. */
export const UNCHECKED_WHY = "the server could not check whether two of the results are one dog reported twice";

/** Said with a search's results whose verdicts are unchecked: `photo`, searched with the user's photo (else a stored
 * dog's, "more like this"). */
export function uncheckedText(photo: boolean): string {
  const still = photo
    ? "may still be yours: compare its photos with yours"
    : "may still be the same dog: compare their photos";
  return `The chances shown may be too low this time: ${UNCHECKED_WHY}. A dog not marked likely ${still}.`;
}

/** The breed guesses worth a word: not those that round to 0 %. */
export function shownGuesses(guesses: BreedGuess[]): BreedGuess[] {
  return guesses.filter((g) => Math.round(g.p * 100) > 0);
}

/** Said when the server's answer has no `message` of its own (an older server) and no result is likely. */
export const NO_LIKELY_MATCH = "No likely match: none of these is likely the same dog. The closest look-alikes are shown.";

// Cosine similarity of the default embedder's features; bands read off the sample gallery
// (a beagle photo against the gallery: beagles 0.52-0.56, other breeds 0.17-0.41).
const BANDS: [number, string, string][] = [
  [0.65, "very close", "These photos look very much alike."],
  [0.5, "close", "These photos look alike, often the same breed."],
  [0.35, "somewhat alike", "These photos share some features."],
  [-1, "weak", "These photos do not look much alike."],
];

export function scoreBand(score: number): { label: string; sentence: string } {
  const [, label, sentence] = BANDS.find(([min]) => score >= min) ?? BANDS[BANDS.length - 1];
  return { label, sentence };
}

export function breedSentence(queryBreed: string | undefined, matchBreed: string | undefined,
                              likelyBreed?: string): string {
  if (!matchBreed) return "This dog has no breed recorded.";
  if (queryBreed) {
    return queryBreed.toLowerCase() === matchBreed.toLowerCase()
      ? `Same breed: both are ${matchBreed}.`
      : `Different breeds: ${queryBreed} and ${matchBreed}.`;
  }
  if (likelyBreed) {
    return likelyBreed.toLowerCase() === matchBreed.toLowerCase()
      ? `Your photo has no breed label; most of its closest matches are ${likelyBreed}, and so is this one.`
      : `Your photo has no breed label; most of its closest matches are ${likelyBreed}, but this one is ${matchBreed}.`;
  }
  return `This dog is a ${matchBreed}.`;
}

/** The breed most of the (closest) results share, if more than a third do. */
export function likelyBreed(breeds: (string | undefined)[]): string | undefined {
  const counts = new Map<string, number>();
  for (const b of breeds) if (b) counts.set(b, (counts.get(b) ?? 0) + 1);
  const [best, n] = [...counts.entries()].sort((a, b) => b[1] - a[1])[0] ?? [undefined, 0];
  return best && n * 3 > breeds.length ? best : undefined;
}

const PROPORTIONS = {
  leg_to_body: "Leg length to body length",
  head_to_body: "Head size to body length",
  tail_to_body: "Tail length to body length",
} as const;

const MIN_CONFIDENCE = 0.3;

export interface ProportionRow {
  key: keyof typeof PROPORTIONS;
  label: string;
  query: number | null;
  match: number | null;
  verdict: string;
}

function usable(m: Measure | undefined): number | null {
  return m && m.value !== null && m.confidence >= MIN_CONFIDENCE ? m.value : null;
}

export function compareProportions(q: PoseDog, m: PoseDog): ProportionRow[] {
  return (Object.keys(PROPORTIONS) as (keyof typeof PROPORTIONS)[]).map((key) => {
    const a = usable(q.analysis.proportions[key]);
    const b = usable(m.analysis.proportions[key]);
    let verdict = "cannot compare: not visible enough in both photos";
    if (a !== null && b !== null) {
      const diff = Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-6);
      verdict = diff < 0.1 ? "about the same" : diff < 0.25 ? "a little different" : "quite different";
    }
    return { key, label: PROPORTIONS[key], query: a, match: b, verdict };
  });
}

function knownPosture(d: PoseDog): string | null {
  return d.analysis.posture.label !== "unknown" && d.analysis.posture.confidence >= MIN_CONFIDENCE
    ? d.analysis.posture.label
    : null;
}

/** "standing (80% sure)", or "cannot tell" where the sentences below cannot either. */
export function postureText(d: PoseDog): string {
  const label = knownPosture(d);
  return label ? `${label} (${Math.round(d.analysis.posture.confidence * 100)}% sure)` : "cannot tell";
}

export function postureSentence(q: PoseDog, m: PoseDog): string {
  const a = knownPosture(q);
  const b = knownPosture(m);
  if (!a || !b) return "Posture: cannot tell for both dogs.";
  return a === b ? `Posture: both dogs are ${a}.` : `Posture: the query dog is ${a}, this one is ${b}.`;
}

/** The dog the comparison uses: the most confident detection. */
export function mainDog(pose: Pose | null | undefined): PoseDog | undefined {
  return pose?.dogs.slice().sort((a, b) => b.score - a.score)[0];
}

export function poseSentences(query: Pose, match: Pose): string[] {
  const q = mainDog(query);
  const m = mainDog(match);
  if (!q || !m) {
    return [`The pose model found no dog in ${!q && !m ? "either photo" : !q ? "the query photo" : "this match"}.`];
  }
  if (q.whole_photo || m.whole_photo) {
    const where = q.whole_photo && m.whole_photo ? "both photos" : q.whole_photo ? "the query photo" : "this match";
    return [`Pose: the dog is the whole of ${where} (no box within it: a close-up?), so posture and proportions are not compared.`];
  }
  const out = [postureSentence(q, m)];
  const rows = compareProportions(q, m).filter((r) => r.query !== null && r.match !== null);
  const same = rows.filter((r) => r.verdict === "about the same").length;
  out.push(
    rows.length
      ? `Proportions: ${same} of ${rows.length} measurable proportions are about the same.`
      : "Proportions: not enough of both dogs is visible to compare them.",
  );
  for (const [dog, who] of [[q, "the query dog"], [m, "this dog"]] as const) {
    const share = dog.analysis.visible_share.value;
    if (share !== null && share < 0.5) {
      out.push(`Only ${Math.round(share * 100)}% of ${who}'s body is visible, so the comparison is rough.`);
    }
  }
  return out;
}
