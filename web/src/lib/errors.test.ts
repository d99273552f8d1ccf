import { describe, expect, it, vi } from "vitest";
import { getDog, searchByPhoto } from "./api";
import { DOG_GONE, plainError, sizeText } from "./errors";
import { json } from "../testing";

describe("the API's refusals in plain words", () => {
  it("says how large a photo was and what the limit is", () => {
    expect(plainError(413, null, { detail: "request too large: over 21233664 bytes (56211789 seen)" })).toBe(
      "This photo is too large (54 MB); the limit is 20 MB.",
    );
    expect(plainError(413, "image_too_large", { detail: "file too large: 22020096 bytes, limit 20971520" })).toBe(
      "This photo is too large (21 MB); the limit is 20 MB.",
    );
    expect(plainError(413, null, { detail: "request too large: over 1073741824 bytes (1288490189 seen)" }, "/v1/jobs/index/upload"))
      .toBe("This zip file is too large (1.2 GB); the limit is 1 GB.");
    expect(sizeText(1_500_000)).toBe("1.4 MB");
  });

  it("says that a dog does not exist, whether it was deleted or its id is not one", () => {
    expect(plainError(404, "dog_not_found", { detail: "no dog 6fdc360f-0000-4000-8000-000000000000" })).toBe(DOG_GONE);
    const malformed = {
      detail: [{ type: "string_pattern_mismatch", loc: ["path", "dog_id"], msg: "String should match pattern '^[0-9a-f]{8}-…$'" }],
      code: "invalid_input",
    };
    expect(plainError(422, "invalid_input", malformed)).toBe(DOG_GONE);
    expect(plainError(422, "invalid_input", { detail: [{ ...malformed.detail[0], loc: ["query", "cursor"] }] })).toMatch(
      /^This gallery page's address is not valid/,
    );
  });

  it("says in words that the dates of a search are the wrong way round", () => {
    const detail = "seen_after 2026-12-01T00:00:00+00:00 is later than seen_before 2026-11-01T00:00:00+00:00";
    expect(plainError(422, "invalid_report_query", { detail })).toBe(
      "“Seen after” is later than “Seen before”: no dog can be seen in between. Swap the two dates or clear one.",
    );
  });

  it("leaves the server's own words for anything else", () => {
    expect(plainError(422, "no_such_dog", { detail: "no dog 3: this photo shows 2 dogs" })).toBeNull();
    expect(plainError(413, "too_many_photos", { detail: "6 photos: a search combines at most 5" })).toBeNull();
    expect(plainError(500, null, null)).toBeNull();
  });

  it("is what the pages show", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => json(404, { detail: "no dog 6fdc360f", code: "dog_not_found" })));
    await expect(getDog("6fdc360f")).rejects.toThrow(DOG_GONE);
    vi.stubGlobal("fetch", vi.fn(async () => json(413, { detail: "request too large: over 21233664 bytes (56211789 seen)" })));
    await expect(searchByPhoto(new File(["x"], "big.jpg"), 6, {})).rejects.toThrow(
      "This photo is too large (54 MB); the limit is 20 MB.",
    );
  });
});
