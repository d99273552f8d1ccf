// The API's refusals that read as a programmer's words, said for the user. Anything else keeps the server's own
// detail, which names what is wrong.

export const DOG_GONE = "This dog does not exist (it may have been deleted).";

const MB = 1024 * 1024;

/** 56211789 → "54 MB", 1073741824 → "1 GB" */
export function sizeText(bytes: number): string {
  const mb = bytes / MB;
  if (mb >= 1024) return `${Number((mb / 1024).toFixed(1))} GB`;
  return `${mb >= 10 ? Math.round(mb) : Number(mb.toFixed(1))} MB`;
}

/** The bytes over a limit: a request's body (the gateway's own check) or one file's ("file too large"). */
const TOO_LARGE = [/request too large: over (\d+) bytes \((\d+) seen\)/, /file too large: (\d+) bytes, limit (\d+)/];

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
  if (code === "dog_not_found") return DOG_GONE;
  if (code === "invalid_report_query" && typeof detail === "string" && /^seen_after .* is later than seen_before/.test(detail)) {
    return "“Seen after” is later than “Seen before”: no dog can be seen in between. Swap the two dates or clear one.";
  }
  if (Array.isArray(detail)) {
    // a malformed id in the address (typed by hand, cut short): for the user, no such dog or page
    const names = (detail as Invalid[]).filter((d) => d.type === "string_pattern_mismatch").map((d) => d.loc?.at(-1));
    if (names.includes("dog_id")) return DOG_GONE;
    if (names.includes("cursor")) return "This gallery page's address is not valid: start again from the first page.";
  }
  return null;
}
