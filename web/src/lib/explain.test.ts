import { describe, expect, it } from "vitest";
import {
  breedSentence,
  compareProportions,
  likelyBreed,
  poseSentences,
  postureSentence,
  postureText,
  sameDogText,
  scoreBand,
} from "./explain";
import type { Pose, PoseDog } from "./types";

const dog = (posture: PoseDog["analysis"]["posture"]["label"], leg: number | null, visible = 0.9): PoseDog => ({
  box: [0, 0, 10, 10],
  score: 0.9,
  keypoints: [],
  analysis: {
    proportions: {
      leg_to_body: { value: leg, confidence: 0.9 },
      head_to_body: { value: 0.4, confidence: 0.9 },
      tail_to_body: { value: 0.5, confidence: 0.1 },
    },
    posture: { label: posture, confidence: 0.8 },
    visible_share: { value: visible, confidence: 0.9 },
  },
});
const pose = (...dogs: PoseDog[]): Pose => ({ model: "m", width: 10, height: 10, dogs });

describe("explain", () => {
  it("puts scores in bands", () => {
    expect(scoreBand(0.9).label).toBe("very close");
    expect(scoreBand(0.55).label).toBe("close");
    expect(scoreBand(0.3).label).toBe("weak");
  });

  it("compares breeds, or guesses the query's from its matches", () => {
    expect(breedSentence("beagle", "Beagle")).toMatch(/^Same breed/);
    expect(breedSentence("beagle", "dingo")).toBe("Different breeds: beagle and dingo.");
    expect(breedSentence(undefined, "dingo", "beagle")).toMatch(/closest matches are beagle, but this one is dingo/);
    expect(likelyBreed(["a", "a", "b"])).toBe("a");
    expect(likelyBreed(["a", "b", "c", "d"])).toBeUndefined();
  });

  it("compares proportions only where both are confident", () => {
    const rows = compareProportions(dog("standing", 0.6), dog("standing", 0.9));
    expect(rows.find((r) => r.key === "leg_to_body")!.verdict).toBe("quite different");
    expect(rows.find((r) => r.key === "head_to_body")!.verdict).toBe("about the same");
    expect(rows.find((r) => r.key === "tail_to_body")!.verdict).toMatch(/cannot compare/);
  });

  it("says posture, proportions and visibility in words", () => {
    const words = poseSentences(pose(dog("sitting", 0.6, 0.3)), pose(dog("lying", 0.62)));
    expect(words).toContain("Posture: the query dog is sitting, this one is lying.");
    expect(words).toContain("Proportions: 2 of 2 measurable proportions are about the same.");
    expect(words.some((w) => w.includes("Only 30% of the query dog's body"))).toBe(true);
    expect(poseSentences(pose(), pose(dog("standing", 1)))).toEqual(["The pose model found no dog in the query photo."]);
    const blind = dog("unknown", null);
    blind.analysis.proportions.head_to_body = { value: null, confidence: 0 };
    expect(poseSentences(pose(blind), pose(dog("standing", 1)))).toContain(
      "Proportions: not enough of both dogs is visible to compare them.",
    );
  });

  it("compares nothing with the pose of a dog that is the whole photo (a close-up, maybe)", () => {
    const guessed = { ...dog("standing", 0.6), whole_photo: true };
    expect(poseSentences(pose(dog("standing", 0.6)), pose(guessed))).toEqual([
      "Pose: the dog is the whole of this match (no box within it: a close-up?), so posture and proportions are not compared.",
    ]);
    expect(poseSentences(pose(guessed), pose(guessed))[0]).toMatch(/whole of both photos/);
  });

  it("says a posture only where it is sure enough, as the sentences do", () => {
    expect(postureText(dog("standing", 1))).toBe("standing (80% sure)");
    const unsure = dog("standing", 1);
    unsure.analysis.posture.confidence = 0.26;
    expect(postureText(unsure)).toBe("cannot tell");
    expect(postureSentence(unsure, dog("standing", 1))).toBe("Posture: cannot tell for both dogs.");
  });
});

describe("sameDogText", () => {
  it("puts the verdict and the probability in words", () => {
    expect(sameDogText(0.934, "likely")).toBe("likely the same dog (93 %)");
    expect(sameDogText(0.5, "possible")).toBe("possibly the same dog (50 %)");
    expect(sameDogText(0.02, "unlikely")).toBe("unlikely to be the same dog (2 %)");
  });

  it("never claims certainty", () => {
    expect(sameDogText(0.999, "likely")).toBe("likely the same dog (>99 %)");
    expect(sameDogText(0.001, "unlikely")).toBe("unlikely to be the same dog (<1 %)");
  });
});
