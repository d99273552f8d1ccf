import { getKey, reportUnauthenticated } from "./session";
import { noDogMessage, oneLine } from "./dogs";
import { plainError } from "./errors";
import { reportFormFields, reportSearchFields, type ReportFilter, type ReportInput, type Taken } from "./reports";
import type {
  Box,
  Detection,
  Dog,
  DogPage,
  Job,
  Me,
  Payload,
  Pose,
  SearchResponse,
  SeemsLabel,
  Verdict,
  Watch,
  WatchMatch,
} from "./types";

/** An error the page can show: the API's own `detail` when it sent one. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number, // 0: the server could not be reached
    /** the API's machine-readable `code` ("no_dog_found", "no_such_dog", ...), when it sent one */
    readonly code: string | null = null,
    /** with "no_dog_found": what the photo seems to show instead */
    readonly seems: SeemsLabel[] = [],
    /** with "no_dog_found" from a search of several photos: which of them (0-based, as sent) */
    readonly photo: number | null = null,
    /** what the refusal names: with "photo_stored_already" and "photo_of_another_dog" the stored dog's id, with
     * "folder_being_indexed" the job's (when this key may see it) */
    readonly named: string | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** The endpoint is not deployed on this server (or its backend is down). */
  get unavailable(): boolean {
    return this.status === 404 || this.status === 501 || this.status === 503 || this.status === 0;
  }
}

export const UNREACHABLE = "Cannot reach the dogsearch server. Is it running? Check your connection and try again.";
/** The message of every 401: pages show a sign-in prompt for it instead of an error. */
export const SIGN_IN_NEEDED = "Sign in with an API key to continue.";

/** The API's refusal as an ApiError: its `detail` (a photo without a dog, and other refusals, said in words), `code`
 * and `seems`. */
async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => "");
  let body: { code?: unknown; seems?: unknown; photo?: unknown; dog_id?: unknown; job_id?: unknown } | null = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: the status line
  }
  const code = typeof body?.code === "string" ? body.code : null;
  const seems = Array.isArray(body?.seems) ? (body.seems as SeemsLabel[]) : [];
  const message =
    code === "no_dog_found"
      ? noDogMessage(seems)
      : (plainError(response.status, code, body, response.url) ?? detailOf(body, response));
  const photo = typeof body?.photo === "number" ? body.photo : null;
  const named = [body?.dog_id, body?.job_id].find((id): id is string => typeof id === "string") ?? null;
  return new ApiError(message, response.status, code, seems, photo, named);
}

function detailOf(body: unknown, response: Response): string {
  if (body && typeof body === "object" && "detail" in body) {
    const detail = body.detail;
    if (typeof detail === "string") return detail;
    // FastAPI validation errors: a list of {loc, msg}.
    if (Array.isArray(detail)) {
      return detail
        .map((d: { loc?: unknown[]; msg?: string }) => `${(d.loc ?? []).slice(1).join(".") || "request"}: ${d.msg}`)
        .join("; ");
    }
  }
  return `${response.status} ${response.statusText || "error"}`.trim();
}

/** `init` with the API key header added, when there is a key. */
function withKey(init: RequestInit | undefined, key: string | null): RequestInit | undefined {
  if (!key) return init;
  const headers = new Headers(init?.headers);
  headers.set("X-API-Key", key);
  return { ...init, headers };
}

// How long a request may go unanswered before the page says so and lets the user try again (a paused or stuck
// server otherwise leaves "Searching…" up for ever). A photo sent (search, add, detect, a zip) is embedded by models
// that on a CPU take several seconds, more when the server is busy with other requests: 60 s is well past that. A
// plain read (a dog, a gallery page, a job) answers in well under a second: 20 s is past any slow network.
export const PHOTO_TIMEOUT_MS = 60_000;
export const READ_TIMEOUT_MS = 20_000;
/** The code of an ApiError for a request that was not answered in time. */
export const TIMED_OUT = "timed_out";
/** The code of an ApiError for a request its caller gave up (a search superseded or cancelled). */
export const CANCELLED = "cancelled";

export const timedOutMessage = (ms: number) =>
  `The server did not answer within ${Math.round(ms / 1000)} seconds. It may be busy or stopped: try again in a moment.`;

/** fetch, given up after `timeoutMs` (a photo's PHOTO_TIMEOUT_MS, else READ_TIMEOUT_MS) or when `init.signal`
 * aborts; either way an ApiError. */
async function fetchInTime(path: string, init: RequestInit | undefined, timeoutMs?: number): Promise<Response> {
  const ms = timeoutMs ?? (init?.body instanceof FormData ? PHOTO_TIMEOUT_MS : READ_TIMEOUT_MS);
  const abort = new AbortController();
  const caller = init?.signal;
  const giveUp = () => abort.abort();
  if (caller?.aborted) throw new ApiError("Cancelled.", 0, CANCELLED);
  caller?.addEventListener("abort", giveUp);
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    abort.abort();
  }, ms);
  try {
    return await fetch(path, { ...init, signal: abort.signal });
  } catch {
    if (late) throw new ApiError(timedOutMessage(ms), 0, TIMED_OUT);
    if (caller?.aborted) throw new ApiError("Cancelled.", 0, CANCELLED);
    throw new ApiError(UNREACHABLE, 0);
  } finally {
    clearTimeout(timer);
    caller?.removeEventListener("abort", giveUp);
  }
}

async function send(path: string, init?: RequestInit, timeoutMs?: number): Promise<Response> {
  const key = getKey();
  const response = await fetchInTime(path, withKey(init, key), timeoutMs);
  if (response.status === 401) {
    reportUnauthenticated(key !== null);
    throw new ApiError(SIGN_IN_NEEDED, 401);
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function json<T>(path: string, init?: RequestInit, timeoutMs?: number): Promise<T> {
  return (await send(path, init, timeoutMs)).json() as Promise<T>;
}

export interface Filters {
  breed?: string;
  /** field → value, from the free "field=value" box */
  fields?: Record<string, string>;
  /** the "Lost & found" part: status, place and radius, dates */
  report?: ReportFilter;
}

function filterJson(filters: Filters): string | undefined {
  const fields = filters.fields ?? {};
  return Object.keys(fields).length ? JSON.stringify(fields) : undefined;
}

/** "color=brown, size=small" → {color: "brown", size: "small"}; throws on a part without "=". */
export function parseFieldFilter(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(/[,;\n]/)) {
    const trimmed = part.trim();
    if (!trimmed) continue;
    const eq = trimmed.indexOf("=");
    if (eq <= 0 || eq === trimmed.length - 1) {
      throw new ApiError(`Filter "${trimmed}": write it as field=value`, 400);
    }
    out[trimmed.slice(0, eq).trim()] = trimmed.slice(eq + 1).trim();
  }
  return out;
}

/** A marked box as the API's form field: "x0,y0,x1,y1" in the photo's pixels. */
export const boxField = (box: Box): string => box.map((v) => String(Math.round(v))).join(",");

/** The most photos of one dog a search sends (the server's default MAX_QUERY_PHOTOS). */
export const MAX_QUERY_PHOTOS = 5;

/**
 * `image`: a photo, or several photos of the same dog (the server combines them). `dog`: which dog of each photo to
 * search with (an index of the answer's `dogs`); the server's default is the largest. `box`: where the dog is in a
 * single photo, marked by the user (the detector is then not asked).
 */
export function searchByPhoto(
  image: File | File[],
  k: number,
  filters: Filters,
  dog?: number,
  box?: Box,
  signal?: AbortSignal,
): Promise<SearchResponse> {
  const form = new FormData();
  for (const photo of Array.isArray(image) ? image : [image]) form.append("image", photo);
  form.append("k", String(k));
  if (box) form.append("box", boxField(box));
  else if (dog !== undefined) form.append("dog", String(dog));
  if (filters.breed) form.append("breed", filters.breed);
  const flt = filterJson(filters);
  if (flt) form.append("filter", flt);
  for (const [key, value] of reportSearchFields(filters.report)) form.append(key, value);
  return json("/v1/search", { method: "POST", body: form, signal });
}

/** `anyStatus`: all dogs, not only the reports that answer the dog's own (a found dog's: the lost ones). */
export function similarTo(
  id: string,
  k: number,
  filters: Filters,
  { anyStatus = false, signal }: { anyStatus?: boolean; signal?: AbortSignal } = {},
): Promise<SearchResponse> {
  const params = new URLSearchParams({ k: String(k) });
  if (filters.breed) params.set("breed", filters.breed);
  const flt = filterJson(filters);
  if (flt) params.set("filter", flt);
  // "for_status" is the photo search's: more like this takes the dog's own status for it (the server's default)
  for (const [key, value] of reportSearchFields(filters.report)) if (key !== "for_status") params.set(key, value);
  if (anyStatus) params.set("counterparts", "false");
  return json(`/v1/dogs/${id}/similar?${params}`, { signal });
}

export function listDogs(
  limit: number,
  cursor?: string | null,
  breed?: string,
  filter?: Record<string, string>,
): Promise<DogPage> {
  const params = new URLSearchParams({ limit: String(limit) });
  if (cursor) params.set("cursor", cursor);
  if (breed) params.set("breed", breed);
  if (filter) params.set("filter", JSON.stringify(filter));
  return json(`/v1/dogs?${params}`);
}

/** The dog with all of its photos. */
export const getDog = (id: string): Promise<Dog> => json(`/v1/dogs/${id}`);

export async function deleteDog(id: string): Promise<void> {
  await send(`/v1/dogs/${id}`, { method: "DELETE" });
}

/** Another photo of a dog (its owner's key or an admin's); `created` is false when it was one of its photos already;
 * `verdict`: how likely the photo shows this dog, by its closest other photo ("unlikely": another dog's by mistake?);
 * `photoId`: the photo's id among the dog's `photos`. */
export async function addPhoto(
  id: string,
  image: File,
): Promise<{ dog: Dog; created: boolean; sameDog: number | null; verdict: Verdict | null; photoId: string | null }> {
  const form = new FormData();
  form.append("image", image);
  const response = await send(`/v1/dogs/${id}/photos`, { method: "POST", body: form });
  const body = (await response.json()) as Dog & {
    same_dog?: number | null;
    verdict?: Verdict | null;
    photo_id?: string | null;
  };
  return {
    dog: body,
    created: response.status === 201,
    sameDog: body.same_dog ?? null,
    verdict: body.verdict ?? null,
    photoId: body.photo_id ?? null,
  };
}

/** Where the dog is in one of its photos, as its owner marks it: the photo is embedded again from that box. */
export function markPhoto(id: string, photo: string, box: Box): Promise<Dog> {
  return json(`/v1/dogs/${id}/photos/${photo}/box`, {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ box: boxField(box) }),
  });
}

/** Removes one photo of a dog; the server refuses its last one (409: delete the dog instead). */
export async function deletePhoto(id: string, photo: string): Promise<void> {
  await send(`/v1/dogs/${id}/photos/${photo}`, { method: "DELETE" });
}

export interface NewDog {
  image: File;
  name?: string;
  breed?: string;
  notes?: string;
  /** which dog of the photo (an index of /v1/detect's `dogs`); the server's default is the largest */
  dog?: number;
  /** where the dog is, marked by the user (in place of `dog`) */
  box?: Box;
  /** lost, found, ...: its status, where and when it was seen */
  report?: ReportInput;
}

/** `created` is false when that exact photo was already stored (the API answers 200 with that dog). */
export async function addDog(dog: NewDog): Promise<{ dog: Dog; created: boolean }> {
  const form = new FormData();
  form.append("image", dog.image);
  for (const key of ["name", "breed", "notes"] as const) {
    // a name or breed as one line: a tab pasted from a spreadsheet is a space (the server refuses it)
    const value = (key === "notes" ? dog[key] : dog[key] && oneLine(dog[key]))?.trim();
    if (value) form.append(key, value);
  }
  if (dog.box) form.append("box", boxField(dog.box));
  else if (dog.dog !== undefined) form.append("dog", String(dog.dog));
  for (const [key, value] of reportFormFields(dog.report ?? {})) form.append(key, value);
  const response = await send("/v1/dogs", { method: "POST", body: form });
  return { dog: (await response.json()) as Dog, created: response.status === 201 };
}

/** The dogs in a photo, with breed suggestions, before adding it (nothing is stored). */
/** `box`: the dog the user marked (the answer is that dog, with its breed suggestions). */
export function detectDogs(image: File, box?: Box): Promise<Detection> {
  return json("/v1/detect", { method: "POST", body: photoForm(image, box) });
}

/** Changes the user's fields of a dog (all of its entries): the owner's key or an admin's; a field set to null goes.
 * The answer is the dog without its `photos`. */
export function updateDog(id: string, fields: Partial<Payload> | Record<string, unknown>): Promise<Dog> {
  return json(`/v1/dogs/${id}`, {
    method: "PATCH",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(fields),
  });
}

/** The photo as a JPEG that any browser shows (the server's; for a phone's HEIC, which only Safari shows). */
export async function previewOfPhoto(image: File): Promise<Blob> {
  return (await send("/v1/preview", { method: "POST", body: photoForm(image) })).blob();
}

/** When and where the photo says it was taken (its EXIF; nothing is stored). */
export function photoTaken(image: File): Promise<Taken> {
  return json("/v1/taken", { method: "POST", body: photoForm(image) });
}

/** The dogs of a photo with their poses; `box`: the pose of the dog in that box alone (the one searched for). */
export function poseOfPhoto(image: File, box?: Box): Promise<Pose> {
  return json("/v1/pose", { method: "POST", body: photoForm(image, box) });
}

/** The photo with boxes and skeletons drawn, as a blob. */
export async function poseOverlayOfPhoto(image: File, box?: Box): Promise<Blob> {
  return (await send("/v1/pose?render=true", { method: "POST", body: photoForm(image, box) })).blob();
}

/** A photo as a form (and the dog marked in it). */
function photoForm(image: File, box?: Box): FormData {
  const form = new FormData();
  form.append("image", image);
  if (box) form.append("box", boxField(box));
  return form;
}

/** `photo`: the dog in that photo of it (a search's match: the photo that matched); none: its cover. */
const photoParam = (photo?: string) => (photo ? `?photo=${encodeURIComponent(photo)}` : "");
export const poseOfDog = (id: string, photo?: string): Promise<Pose> => json(`/v1/dogs/${id}/pose${photoParam(photo)}`);
export const poseOverlayUrl = (id: string, photo?: string): string => `/v1/dogs/${id}/pose.png${photoParam(photo)}`;

/** `payload`: fields given to every photo of the job (a report's status; seen_at and location "photo"). */
export function startIndexJob(
  path: string,
  labels: string,
  payload?: Record<string, string>,
): Promise<{ id: string; state: string }> {
  return json("/v1/jobs/index", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(payload && Object.keys(payload).length ? { path, labels, payload } : { path, labels }),
  });
}

/** A bulk job over a zip of photos sent from this computer: `labels` and `payload` as a folder's. */
export function startUploadJob(
  archive: File,
  labels: string,
  payload?: Record<string, string>,
): Promise<{ id: string; state: string }> {
  const form = new FormData();
  form.append("archive", archive);
  form.append("labels", labels);
  if (payload && Object.keys(payload).length) form.append("payload", JSON.stringify(payload));
  // a zip takes as long as it takes to send: a minute more than at a slow uplink of 128 kB/s (1 GB: 2.2 hours)
  return json("/v1/jobs/index/upload", { method: "POST", body: form }, PHOTO_TIMEOUT_MS + archive.size / 128);
}

export async function listJobs(): Promise<Job[]> {
  const body = await json<Job[] | { jobs?: Job[]; items?: Job[] }>("/v1/jobs");
  return Array.isArray(body) ? body : (body.jobs ?? body.items ?? []);
}

export const getJob = (id: string): Promise<Job> => json(`/v1/jobs/${id}`);

export async function deleteJob(id: string): Promise<void> {
  await send(`/v1/jobs/${id}`, { method: "DELETE" });
}

/**
 * Who a key is (no key: who an anonymous visitor is). A 404 is a server from before API keys: open to all.
 * Not through `send`: a refused key here is the sign-in form's answer, not a session that expired.
 */
export async function getMe(key: string | null): Promise<Me> {
  const response = await fetchInTime("/v1/me", withKey(undefined, key));
  if (response.status === 404) return LEGACY_OPEN;
  if (!response.ok) throw await errorOf(response);
  return (await response.json()) as Me;
}

const LEGACY_OPEN: Me = { name: null, scope: "admin", scopes: [], open: true, anonymous_search: true };

/** A photo or overlay of the API as a blob (an <img> cannot send the key header). */
export async function fetchBlob(path: string): Promise<Blob> {
  return (await send(path)).blob();
}

/** Watches a stored dog: every dog stored later that is at least `minProbability` likely the same (and answers its
 * report: a lost dog waits for found ones) shows in the inbox. */
export function watchDog(dogId: string, minProbability = 0.5): Promise<Watch & { secret: string }> {
  return json("/v1/watches", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ dog_id: dogId, min_probability: minProbability }),
  });
}

export async function listWatches(): Promise<Watch[]> {
  return (await json<{ items: Watch[] }>("/v1/watches")).items;
}

export async function watchMatches(id: string): Promise<WatchMatch[]> {
  return (await json<{ items: WatchMatch[] }>(`/v1/watches/${id}/matches`)).items;
}

/** A new secret for a watch's webhook deliveries, in place of the old one (lost, or leaked): this answer is the only
 * place it is shown. Every delivery attempt from now on is signed with it. */
export async function renewWatchSecret(id: string): Promise<string> {
  return (await json<{ id: string; secret: string }>(`/v1/watches/${id}/secret`, { method: "POST" })).secret;
}

export async function deleteWatch(id: string): Promise<void> {
  await send(`/v1/watches/${id}`, { method: "DELETE" });
}

export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
