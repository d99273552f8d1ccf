import { describe, expect, it } from "vitest";
import { cropAround, guessesText, noDogMessage, percent, placeBox, seemsText, topGuess } from "./dogs";

describe("the dogs found, in words", () => {
  it("rounds probabilities to whole percent", () => {
    expect(percent(0.812)).toBe("81 %");
    expect(percent(0.005)).toBe("1 %");
    expect(percent(1)).toBe("100 %");
  });

  it("lists breed suggestions and what a photo seems to show", () => {
    expect(guessesText([{ breed: "beagle", p: 0.81 }, { breed: "basset", p: 0.1 }])).toBe("beagle 81 %, basset 10 %");
    expect(seemsText([{ label: "golf ball", p: 0.71 }, { label: "tennis ball", p: 0.05 }])).toBe(
      "golf ball (71 %), tennis ball (5 %)",
    );
  });

  it("says what a photo without a dog seems to show, when the server tells", () => {
    expect(noDogMessage([{ label: "golf ball", p: 0.71 }])).toBe("No dog found in this photo. It seems to show: golf ball (71 %).");
    expect(noDogMessage([])).toBe("No dog found in this photo.");
    const unsure = [{ label: "megalith", p: 0.004 }, { label: "valley", p: 0.003 }];
    expect(noDogMessage(unsure)).toBe("No dog found in this photo.");
    expect(noDogMessage([{ label: "fox squirrel", p: 0.06 }, ...unsure])).toBe(
      "No dog found in this photo. It seems to show: fox squirrel (6 %).",
    );
  });

  it("takes the top suggestion, if any", () => {
    expect(topGuess([{ breed: "beagle", p: 0.8 }, { breed: "basset", p: 0.1 }])).toEqual({ breed: "beagle", p: 0.8 });
    expect(topGuess([])).toBeNull();
    expect(topGuess(undefined)).toBeNull();
  });
});

describe("placeBox", () => {
  it("places a box in percent of the whole photo", () => {
    expect(placeBox([100, 50, 300, 150], 400, 200)).toEqual({ left: 25, top: 25, width: 50, height: 50 });
  });

  it("follows the centre crop of a wide photo in a square", () => {
    // 400 x 200 shown as a 200 x 200 square: x 100..300 is what shows; the box covers it all
    expect(placeBox([100, 0, 300, 200], 400, 200, "cover")).toEqual({ left: 0, top: 0, width: 100, height: 100 });
    // x 150..250 is the middle half
    expect(placeBox([150, 50, 250, 150], 400, 200, "cover")).toEqual({ left: 25, top: 25, width: 50, height: 50 });
  });

  it("follows the centre crop of a tall photo, and cuts off what the crop cuts off", () => {
    // 100 x 200: y 50..150 shows; a box from y 0 to 100 shows its lower half, at the top
    expect(placeBox([0, 0, 100, 100], 100, 200, "cover")).toEqual({ left: 0, top: 0, width: 100, height: 50 });
  });

  it("draws nothing for a box cropped away or an unknown size", () => {
    expect(placeBox([0, 0, 50, 200], 400, 200, "cover")).toBeNull();
    expect(placeBox([0, 0, 10, 10], 0, 0)).toBeNull();
  });

  it("follows a crop centred on the dog", () => {
    // 400 x 200, the dog at x 300..400: the square is the right half; a box at x 300..400 is its right half
    const crop = cropAround([300, 50, 400, 150], 400, 200);
    expect(crop).toEqual({ x: 1, y: 0.5 });
    expect(placeBox([300, 50, 400, 150], 400, 200, "cover", crop)).toEqual({ left: 50, top: 25, width: 50, height: 50 });
  });
});

describe("cropAround", () => {
  it("centres the square on the dog as far as the photo allows", () => {
    expect(cropAround([150, 50, 250, 150], 400, 200)).toEqual({ x: 0.5, y: 0.5 }); // in the middle already
    expect(cropAround([200, 0, 300, 200], 400, 200)).toEqual({ x: 0.75, y: 0.5 }); // x 150..350 shows
    expect(cropAround([0, 0, 100, 40], 100, 200)).toEqual({ x: 0.5, y: 0 }); // a tall photo, the dog at its top
    expect(cropAround([0, 0, 50, 50], 100, 100)).toEqual({ x: 0.5, y: 0.5 }); // a square photo: nothing to crop
  });
});
