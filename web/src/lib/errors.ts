// The API's refusals that read as a programmer's words, said for the user. Anything else keeps the server's own
// detail, which names what is wrong.

export const DOG_GONE = "This dog does not exist (it may have been deleted).";
export const GALLERY_ADDRESS_STALE = "This gallery page's address is no longer valid: start again from the first page.";
export const FOLDER_BEING_INDEXED =
  "This folder, or one inside or around it, is being indexed already: see its job below.";
export const PHOTO_STORED_ALREADY =
  "This photo is stored already, as a dog whose details differ from what you entered: nothing was added or changed.";

const MB = 1024 * 1024;

/** 56211789 → "54 MB", 1073741824 → "1 GB" */
export function sizeText(bytes: number): string {
  const mb = bytes / MB;
  if (mb >= 1024) return `${Number((mb / 1024).toFixed(1))} GB`;
  return `${mb >= 10 ? Math.round(mb) : Number(mb.toFixed(1))} MB`;
}

/** The bytes over a limit: a request's body (the gateway's own check) or one file's ("file too large"). */
const TOO_LARGE = [/request too large: over (\d+) bytes \((\d+) seen\)/, /file too large: (\d+) bytes, limit (\d+)/];

/** A name or breed the server refuses: with a tab, a line break or another control character; too long. */
const LABEL_CONTROL = /^field '(name|breed)': .* holds a control character/s;
const LABEL_LONG = /^field '(name|breed)': at most (\d+) characters, not (\d+)/;

/** A proxy's or the gateway's answer when the server is down, stuck or failing, in plain text or HTML: its status
 * line ("504 Gateway Timeout") says nothing to a user. */
const SERVER_TROUBLE: Record<number, string> = {
  502: "The server could not be reached (502). Try again in a moment.",
  503: "The server is unavailable (503). Try again in a moment.",
  504: "The server did not answer in time (504). Try again in a moment.",
};
const serverTrouble = (status: number) =>
  SERVER_TROUBLE[status] ??
  `The server had a problem (${status}). Try again in a moment; if it keeps happening, tell whoever runs it.`;
/** The gateway's 503 when a service a search needs is down or restarting: "embedder unavailable: ..." (another's,
 * the pose service's, keeps its own words: the page names what is missing). */
const SERVICE_DOWN = /^(embedder|search|detector|qdrant) unavailable\b/;
export const SERVICE_BUSY = "The search service is busy or restarting. Try again in a moment.";
/** What separates a plain message from the server's own reason kept under it (ErrorBanner shows it as details). */
export const DETAILS = "\nDetails: ";

const DAMAGED =
  "This photo could not be read: the file is damaged or cut short (a copy or download that did not finish?). " +
  "Choose it again, or another photo.";

/** A refusal (by its code) said for the user, most of them of the file sent; the server's reason goes under it as
 * details. A function's null: the server's words alone. */
const REFUSED: Record<string, (detail: string) => string | null> = {
  image_unsupported: () => "This file is not a photo the server can read: choose a JPEG, PNG, HEIC or WebP photo.",
  image_rejected: (detail) =>
    detail.startsWith("empty file") ? "This file is empty (0 bytes): choose the photo again." : DAMAGED,
  metadata_unreadable: () => DAMAGED,
  image_too_thin: () =>
    "This photo is too long and thin to look for a dog in: crop it closer to the dog and try again.",
  image_too_large: (detail) => {
    const pixels = /^too many pixels: (\d+)x(\d+), limit (\d+)/.exec(detail);
    if (pixels) {
      const [w, h, limit] = pixels.slice(1).map(Number);
      const most = Math.round(limit / 1e6);
      return `This photo has too many pixels (${w}×${h}); the limit is ${most} megapixels: send a smaller copy of it.`;
    }
    return "This photo is too large or too complex to read: send a smaller copy of it.";
  },
  not_an_archive: () => "This file is not a zip archive: choose a .zip file of photos.",
  source_forbidden: (detail) =>
    detail.startsWith("indexing server folders is switched off")
      ? "This server does not index folders of its own: send the photos as a zip instead."
      : null,
  not_calibrated: () => "Alerts cannot be set up on this server yet: it cannot tell how likely two dogs are the same.",
  rate_limited: () => "Too many requests in a short time: wait a moment and try again.",
  request_timeout: () => "The upload took too long and was stopped: try again, on a faster connection if you can.",
};

interface Invalid {
  loc?: unknown[];
  type?: string;
}

/**
 * The plain words for an answer of `status` with `code` and JSON `body` (null: not JSON) to a request for `url`;
 * null where the server's detail says it best.
 */
export function plainError(status: number, code: string | null, body: unknown, url = ""): string | null {
  const detail = body && typeof body === "object" && "detail" in body ? (body as { detail: unknown }).detail : null;
  const what = url.includes("/v1/jobs/") ? "This zip file" : "This photo";
  if (status === 413 && typeof detail === "string") {
    for (const [i, pattern] of TOO_LARGE.entries()) {
      const m = pattern.exec(detail);
      if (!m) continue;
      // the request's limit is the photo's plus room for the other form fields: the photo's is what to say
      const [limit, seen] = i === 0 ? [Number(m[1]), Number(m[2])] : [Number(m[2]), Number(m[1])];
      return `${what} is too large (${sizeText(seen)}); the limit is ${sizeText(limit)}.`;
    }
  }
  if (typeof detail === "string" && code && code in REFUSED) {
    const plain = REFUSED[code](detail);
    if (plain) return `${plain}${DETAILS}${detail}`;
  }
  if (code === "dog_not_found") return DOG_GONE;
  // a photo added to a dog, refused in the words of the dogs' ids, which say nothing to a user
  if (code === "photo_of_another_dog" && typeof detail === "string") {
    if (/^(dog \d+ of this photo|the dog marked in this photo) is dog /.test(detail)) {
      return "The dog in this photo is stored already, as another dog: it cannot be a photo of this one too. " +
        "Search with the photo to find that dog.";
    }
    if (detail.startsWith("another dog of this photo is already")) {
      return "This photo is one of this dog's photos already, for another dog in it: " +
        "one photo cannot show this dog twice.";
    }
  }
  if (code === "last_photo") return "This is the dog's only photo: delete the dog instead.";
  if (code === "forbidden" && typeof detail === "string") {
    const notOwner = /^dog \S+ (was added (?:without a key|by another key): .*)$/.exec(detail);
    if (notOwner) return `This dog ${notOwner[1]}.`;
  }
  // a gallery address whose cursor is not a page's `next` (stale, edited, or of another status filter)
  if (code === "invalid_store_input" && typeof detail === "string" && /not the `next` of a page/.test(detail)) {
    return GALLERY_ADDRESS_STALE;
  }
  if (code === "folder_being_indexed") {
    return typeof detail === "string" && detail.startsWith("another key's job")
      ? "This folder, or one inside or around it, is being indexed already, by another key's job: wait for it to finish."
      : FOLDER_BEING_INDEXED;
  }
  // which fields differ, in the server's words, under the plain sentence
  if (code === "photo_stored_already") return `${PHOTO_STORED_ALREADY}${typeof detail === "string" ? DETAILS + detail : ""}`;
  if (code === "invalid_report_query" && typeof detail === "string" && /^seen_after .* is later than seen_before/.test(detail)) {
    return "“Seen after” is later than “Seen before”: no dog can be seen in between. Swap the two dates or clear one.";
  }
  if (typeof detail === "string") {
    const control = LABEL_CONTROL.exec(detail);
    if (control) {
      return `The ${control[1]} holds a tab, a line break or another control character, which cannot be stored: replace it with a space and save again.`;
    }
    const long = LABEL_LONG.exec(detail);
    if (long) return `The ${long[1]} is too long (${long[3]} characters): at most ${long[2]}.`;
    if (status === 503 && SERVICE_DOWN.test(detail)) return `${SERVICE_BUSY}${DETAILS}${detail}`;
  }
  // not the API's JSON (a proxy's text or HTML page), or JSON without its words
  if (status >= 500 && typeof detail !== "string" && !Array.isArray(detail)) return serverTrouble(status);
  if (Array.isArray(detail)) {
    // a malformed id in the address (typed by hand, cut short): for the user, no such dog or page
    const names = (detail as Invalid[]).filter((d) => d.type === "string_pattern_mismatch").map((d) => d.loc?.at(-1));
    if (names.includes("dog_id")) return DOG_GONE;
    if (names.includes("cursor")) return "This gallery page's address is not valid: start again from the first page.";
  }
  return null;
}
