import { describe, expect, it, vi } from "vitest";
import { ApiError, getDog, PHOTO_TIMEOUT_MS, READ_TIMEOUT_MS, searchByPhoto, startUploadJob } from "./api";
import { DETAILS, DOG_GONE, plainError, sizeText } from "./errors";
import { json } from "../testing";

/** A server that never answers: its fetch only ends when the request is aborted. */
const hang = (_: unknown, init?: RequestInit) =>
  new Promise<Response>((_ok, fail) => init?.signal?.addEventListener("abort", () => fail(new DOMException("", "AbortError"))));

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

  it("says a gallery address whose cursor is no page's is no longer valid", () => {
    const body = { detail: "search: offset: not the `next` of a page in this order", code: "invalid_store_input" };
    expect(plainError(422, "invalid_store_input", body)).toBe(
      "This gallery page's address is no longer valid: start again from the first page.",
    );
  });

  it("says a folder, or one inside or around it, is being indexed already, without the job's id", () => {
    const detail =
      "job 3393ea81-0000-4000-8000-000000000000 (started on /data) is indexing this folder (running): wait for it to finish, or cancel it";
    expect(plainError(409, "folder_being_indexed", { detail, code: "folder_being_indexed" })).toBe(
      "This folder, or one inside or around it, is being indexed already: see its job below.",
    );
    const other = "another key's job is indexing /data/beagle, which this job would index too (queued): wait for it to finish, or cancel it";
    expect(plainError(409, "folder_being_indexed", { detail: other })).toBe(
      "This folder, or one inside or around it, is being indexed already, by another key's job: wait for it to finish.",
    );
  });

  it("says a photo stored already with other details changed nothing, with the server's list of them", () => {
    const detail =
      "this photo is stored already as dog d1, with other values than those sent (name: 'Fido' stored, 'Rex' sent): adding it again changes no dog; change that dog's fields instead";
    expect(plainError(409, "photo_stored_already", { detail, code: "photo_stored_already", dog_id: "d1" })).toBe(
      `This photo is stored already, as a dog whose details differ from what you entered: nothing was added or changed.${DETAILS}${detail}`,
    );
  });

  it("says a photo or dog the user may not change in words, without the ids", () => {
    const id = (n: number) => `e08c2e47-eb33-c928-62c4-05af25d4c9e${n}`;
    for (const detail of [`dog 0 of this photo is dog ${id(1)}, not dog ${id(2)}`, `the dog marked in this photo is dog ${id(1)}, not dog ${id(2)}`]) {
      expect(plainError(409, "photo_of_another_dog", { detail })).toBe(
        "The dog in this photo is stored already, as another dog: it cannot be a photo of this one too. Search with the photo to find that dog.",
      );
    }
    expect(plainError(409, "photo_of_another_dog", { detail: `another dog of this photo is already a photo of dog ${id(2)}` })).toBe(
      "This photo is one of this dog's photos already, for another dog in it: one photo cannot show this dog twice.",
    );
    expect(plainError(409, "last_photo", { detail: `photo ${id(1)} is the only photo of dog ${id(1)}: delete the dog instead` }))
      .toBe("This is the dog's only photo: delete the dog instead.");
    expect(plainError(403, "forbidden", { detail: `dog ${id(1)} was added by another key: only that key or an admin key may change it` }))
      .toBe("This dog was added by another key: only that key or an admin key may change it.");
  });

  it("says in words that the dates of a search are the wrong way round", () => {
    const detail = "seen_after 2026-12-01T00:00:00+00:00 is later than seen_before 2026-11-01T00:00:00+00:00";
    expect(plainError(422, "invalid_report_query", { detail })).toBe(
      "“Seen after” is later than “Seen before”: no dog can be seen in between. Swap the two dates or clear one.",
    );
  });

  it("says a proxy's or the gateway's trouble in words, not as a status line", () => {
    expect(plainError(504, null, null)).toBe("The server did not answer in time (504). Try again in a moment.");
    expect(plainError(502, null, null)).toBe("The server could not be reached (502). Try again in a moment.");
    expect(plainError(500, null, null)).toMatch(/^The server had a problem \(500\)\. Try again in a moment/);
    expect(plainError(503, null, { detail: "search unavailable: timed out" })).toBe(
      "The search service is busy or restarting. Try again in a moment.\nDetails: search unavailable: timed out",
    );
  });

  it("says a name the server refuses in words", () => {
    const control = { detail: "field 'name': 'Goldie\\tJr' holds a control character (a NUL, a line break, an escape)" };
    expect(plainError(422, "invalid_input", control)).toMatch(/^The name holds a tab, a line break or another control character/);
    expect(plainError(422, "invalid_input", { detail: "field 'breed': at most 200 characters, not 250" })).toBe(
      "The breed is too long (250 characters): at most 200.",
    );
  });

  it("says why a file is refused in words, with the server's reason under it", () => {
    const said = (status: number, code: string, detail: string) => plainError(status, code, { detail, code })?.split(DETAILS);
    const cut = "truncated or corrupt image: image file is truncated (25 bytes not processed)";
    expect(said(422, "image_rejected", cut)).toEqual([
      "This photo could not be read: the file is damaged or cut short (a copy or download that did not finish?). Choose it again, or another photo.",
      cut,
    ]);
    expect(said(422, "image_rejected", "empty file: zero bytes")?.[0]).toBe("This file is empty (0 bytes): choose the photo again.");
    const foreign = "not an image, or an unsupported image format; use one of AVIF, BMP, GIF, HEIF, JPEG, MPO, PNG, TIFF, WEBP";
    expect(said(415, "image_unsupported", foreign)).toEqual([
      "This file is not a photo the server can read: choose a JPEG, PNG, HEIC or WebP photo.",
      foreign,
    ]);
    expect(said(422, "image_too_thin", "too long and thin: 3000x100; a photo's long side may be at most 20 times its short side")?.[0])
      .toBe("This photo is too long and thin to look for a dog in: crop it closer to the dog and try again.");
    expect(said(413, "image_too_large", "too many pixels: 12000x12000, limit 40000000")?.[0]).toBe(
      "This photo has too many pixels (12000×12000); the limit is 40 megapixels: send a smaller copy of it.",
    );
    expect(said(413, "image_too_large", "too large to decode: a 9000x9000 PNG of mode RGBA needs about 900 MiB, limit 512 MiB")?.[0])
      .toBe("This photo is too large or too complex to read: send a smaller copy of it.");
    expect(said(415, "not_an_archive", "not a zip archive (File is not a zip file)")?.[0]).toBe(
      "This file is not a zip archive: choose a .zip file of photos.",
    );
    const off = "indexing server folders is switched off: set DOGSEARCH_JOBS_ALLOWED_ROOTS, or upload a zip";
    expect(said(403, "source_forbidden", off)?.[0]).toBe("This server does not index folders of its own: send the photos as a zip instead.");
    expect(said(409, "not_calibrated", "the collection's vectors (m) have no same-dog calibration, so a watch could not tell")?.[0])
      .toBe("Alerts cannot be set up on this server yet: it cannot tell how likely two dogs are the same.");
    expect(said(429, "rate_limited", "rate limit exceeded, slow down")?.[0]).toBe(
      "Too many requests in a short time: wait a moment and try again.",
    );
  });

  it("says a request that is not answered in time in words, after a sensible wait", async () => {
    vi.useFakeTimers();
    try {
      vi.stubGlobal("fetch", vi.fn(hang));
      const read = getDog("6fdc360f");
      const caught = read.catch((e: ApiError) => e);
      await vi.advanceTimersByTimeAsync(READ_TIMEOUT_MS - 1);
      await vi.advanceTimersByTimeAsync(1);
      const error = await caught;
      expect(error).toBeInstanceOf(ApiError);
      expect((error as ApiError).message).toBe("The server did not answer within 20 seconds. It may be busy or stopped: try again in a moment.");
      const search = searchByPhoto(new File(["x"], "dog.jpg"), 6, {}).catch((e: ApiError) => e);
      let done = false;
      void search.then(() => (done = true));
      await vi.advanceTimersByTimeAsync(READ_TIMEOUT_MS);
      expect(done).toBe(false); // a photo's search takes longer on a CPU: it waits PHOTO_TIMEOUT_MS
      await vi.advanceTimersByTimeAsync(PHOTO_TIMEOUT_MS - READ_TIMEOUT_MS);
      expect(((await search) as ApiError).message).toMatch(/^The server did not answer within 60 seconds/);
    } finally {
      vi.useRealTimers();
    }
  });

  it("waits for a zip as long as a slow uplink needs to send it, not a photo's minute", async () => {
    vi.useFakeTimers();
    try {
      vi.stubGlobal("fetch", vi.fn(hang));
      const zip = new File([new Uint8Array(1_280_000)], "dogs.zip"); // 10 s at 128 kB/s
      let done = false;
      const upload = startUploadJob(zip, "folders").catch((e: ApiError) => e);
      void upload.then(() => (done = true));
      await vi.advanceTimersByTimeAsync(PHOTO_TIMEOUT_MS + 9_000);
      expect(done).toBe(false); // a photo would have been given up
      await vi.advanceTimersByTimeAsync(1_000);
      expect(((await upload) as ApiError).message).toMatch(/^The server did not answer within 70 seconds/);
    } finally {
      vi.useRealTimers();
    }
  });

  it("leaves the server's own words for anything else", () => {
    expect(plainError(422, "no_such_dog", { detail: "no dog 3: this photo shows 2 dogs" })).toBeNull();
    expect(plainError(413, "too_many_photos", { detail: "6 photos: a search combines at most 5" })).toBeNull();
    expect(plainError(500, "internal", { detail: "the index is being rebuilt" })).toBeNull();
    expect(plainError(403, "source_forbidden", { detail: "/data is outside the folders this server may index" })).toBeNull();
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
