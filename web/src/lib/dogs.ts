// Words and numbers for the dogs a detector found: breed suggestions, what a photo seems to show, box geometry.
import type { Box, BreedGuess, SeemsLabel } from "./types";

/** 0.812 → "81 %" */
export function percent(p: number): string {
  return `${Math.round(p * 100)} %`;
}

/** "beagle 81 %, basset 10 %, English foxhound 4 %" */
export function guessesText(guesses: BreedGuess[]): string {
  return guesses.map((g) => `${g.breed} ${percent(g.p)}`).join(", ");
}

/** "golf ball (71 %), tennis ball (5 %)" */
export function seemsText(seems: SeemsLabel[]): string {
  return seems.map((s) => `${s.label} (${percent(s.p)})`).join(", ");
}

/** The 422 of a photo without a dog, in words: what it seems to show, without the labels that read "0 %" (a plain
 * wall is no "megalith (0 %)", only nothing the classifier knows). */
export function noDogMessage(seems: SeemsLabel[]): string {
  const likely = seems.filter((s) => s.p >= 0.005);
  return likely.length
    ? `No dog found in this photo. It seems to show: ${seemsText(likely)}.`
    : "No dog found in this photo.";
}

/** The top suggestion, if any. */
export function topGuess(guesses: BreedGuess[] | null | undefined): BreedGuess | null {
  return Array.isArray(guesses) && guesses.length ? guesses[0] : null;
}

export interface BoxPlace {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** Where a square crop of a photo lies, as CSS object-position's fractions: 0.5, 0.5 is its centre. */
export interface CropAt {
  x: number;
  y: number;
}

/** The square crop of a `width` x `height` photo that centres `box` as far as the photo allows (its dog is not cut
 * off where it fits in the square). */
export function cropAround(box: Box, width: number, height: number): CropAt {
  const at = (centre: number, side: number) => (side > 1 ? Math.min(1, Math.max(0, (centre * side - 0.5) / (side - 1))) : 0.5);
  const aspect = width / height;
  return {
    x: at((box[0] + box[2]) / 2 / width, Math.max(aspect, 1)),
    y: at((box[1] + box[3]) / 2 / height, Math.max(1 / aspect, 1)),
  };
}

/**
 * Where `box` lies on a photo of `width` x `height` pixels, in percent of the element that shows it.
 * "contain": the element has the photo's own aspect ratio (a photo shown whole). "cover": a square that the photo
 * fills, cropped around its centre (the result thumbnails), or at `crop`; the part of the box cut off is cut off here
 * too.
 */
export function placeBox(
  box: Box,
  width: number,
  height: number,
  fit: "contain" | "cover" = "contain",
  crop: CropAt = { x: 0.5, y: 0.5 },
): BoxPlace | null {
  if (!(width > 0 && height > 0)) return null;
  const [x0, y0, x1, y1] = box;
  // the photo's displayed size and offset in units of the element's side
  const aspect = width / height;
  const sx = fit === "cover" ? Math.max(aspect, 1) : 1;
  const sy = fit === "cover" ? Math.max(1 / aspect, 1) : 1;
  const ox = (sx - 1) * crop.x;
  const oy = (sy - 1) * crop.y;
  const clamp = (v: number) => Math.min(1, Math.max(0, v));
  const left = clamp((x0 / width) * sx - ox);
  const right = clamp((x1 / width) * sx - ox);
  const top = clamp((y0 / height) * sy - oy);
  const bottom = clamp((y1 / height) * sy - oy);
  if (right <= left || bottom <= top) return null; // all of it cropped away
  return { left: left * 100, top: top * 100, width: (right - left) * 100, height: (bottom - top) * 100 };
}

/** A name or breed as one line: a tab, a line break or another control character (a spreadsheet's cells pasted)
 * becomes a space, which the server takes (it refuses control characters in them). */
export const oneLine = (text: string): string => text.replace(/\p{Cc}+/gu, " ");
