// Reports (docs/lost-and-found.md, "Reports: where and when"): a dog's status, the place it was seen ("lat, lon")
// and when. The form is map-free: a place is typed (or pasted from a map app) as two numbers.

export const STATUSES = ["lost", "found", "sighted", "shelter", "home"] as const;
export type Status = (typeof STATUSES)[number];

export const STATUS_LABELS: Record<Status, string> = {
  lost: "Lost",
  found: "Found",
  sighted: "Sighted",
  shelter: "In a shelter",
  home: "Home again",
};

/** What a search for counterparts is called in the form: the status of the dog the user has (short: a select's
 * text does not wrap; the search form's Status shows what each searches). */
export const FOR_STATUS_LABELS: Record<Exclude<Status, "home">, string> = {
  found: "a dog I found",
  sighted: "a dog I saw",
  shelter: "a shelter dog",
  lost: "my lost dog",
};

/** The statuses of the reports that answer a report of each status, as the server's COUNTERPARTS. */
export const COUNTERPARTS: Record<keyof typeof FOR_STATUS_LABELS, Status[]> = {
  found: ["lost"],
  sighted: ["lost"],
  shelter: ["lost"],
  lost: ["found", "sighted", "shelter"],
};

/** ["found", "sighted"] → "found or sighted" */
export function statusesText(statuses: string[]): string {
  const words = statuses.map((s) => (STATUS_LABELS[s as Status] ?? s).toLowerCase());
  return words.length > 1 ? `${words.slice(0, -1).join(", ")} or ${words[words.length - 1]}` : words[0];
}

export interface Place {
  lat: number;
  lon: number;
}

/** "52.52, 13.405" → {lat, lon}; throws an Error that says what is wrong. */
export function parsePlace(text: string): Place {
  const parts = text.split(",").map((p) => p.trim());
  const [lat, lon] = parts.map(Number);
  if (parts.length !== 2 || parts.some((p) => p === "") || !Number.isFinite(lat) || !Number.isFinite(lon)) {
    throw new Error(`Place "${text.trim()}": write it as latitude, longitude (e.g. 52.52, 13.405)`);
  }
  if (lat < -90 || lat > 90 || lon < -180 || lon > 180) {
    throw new Error(`Place "${text.trim()}": latitude is -90 to 90 and longitude -180 to 180`);
  }
  return { lat, lon };
}

export function isPlace(value: unknown): value is Place {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as Place).lat === "number" &&
    typeof (value as Place).lon === "number"
  );
}

export function formatPlace(place: Place): string {
  return `${place.lat.toFixed(4)}, ${place.lon.toFixed(4)}`;
}

const EARTH_RADIUS_KM = 6371.0088; // as the server (and Qdrant's geo filters) measure

/** Great-circle distance in km (haversine), as the server gives distance_km. */
export function distanceKm(a: Place, b: Place): number {
  const rad = (d: number) => (d * Math.PI) / 180;
  const dphi = rad(b.lat - a.lat);
  const dlam = rad(b.lon - a.lon);
  const h = Math.sin(dphi / 2) ** 2 + Math.cos(rad(a.lat)) * Math.cos(rad(b.lat)) * Math.sin(dlam / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** 0.43 → "430 m", 12.345 → "12.3 km", 1234.5 → "1,235 km". */
export function formatDistance(km: number): string {
  if (km < 1) return `${Math.round(km * 1000)} m`;
  if (km < 100) return `${km.toFixed(1)} km`;
  return `${Math.round(km).toLocaleString("en")} km`;
}

/** An RFC 3339 time on the reader's own clock, its zone named: "30 Nov 2026, 18:05 CET" in Berlin; without `date`,
 * "18:05 CET". The zone is said so that people who compare a sighting's time across zones (a shelter, an owner
 * abroad) can tell them apart. */
export function formatWhen(iso: string, { date = true }: { date?: boolean } = {}): string {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  return when.toLocaleString("en-GB", {
    ...(date ? { day: "numeric", month: "short", year: "numeric" } : {}),
    hour: "2-digit",
    minute: "2-digit",
    timeZoneName: "short",
  });
}

/** Whether two RFC 3339 times fall on the same day of the reader's clock (a later one needs no date of its own). */
export function sameLocalDay(a: string, b: string): boolean {
  const [x, y] = [new Date(a), new Date(b)];
  return x.toDateString() === y.toDateString() && !Number.isNaN(x.getTime());
}

/** A dog's report as the add form has it: every part optional. */
export interface ReportInput {
  status?: Status | "";
  /** "lat, lon" */
  place?: string;
  /** a datetime-local value ("2026-11-30T18:05"), in the browser's zone */
  seenAt?: string;
}

/** When and where a photo says it was taken (POST /v1/taken): a report's seen_at and location, null where it does
 * not say, with why. */
export interface Taken {
  seen_at: string | null;
  location: Place | null;
  unknown: Partial<Record<"seen_at" | "location", string>>;
  /** the camera's time when the photo does not say its zone ("2026-11-30T18:05:09"); absent from older servers */
  local_time?: string | null;
}

const two = (n: number) => String(n).padStart(2, "0");

/** An RFC 3339 time as a datetime-local value in the browser's zone ("2026-11-30T18:05"). */
export function localInput(iso: string): string {
  const t = new Date(iso);
  return `${t.getFullYear()}-${two(t.getMonth() + 1)}-${two(t.getDate())}T${two(t.getHours())}:${two(t.getMinutes())}`;
}

/** The camera's time of a photo that does not say its zone, as a datetime-local value: read in the browser's zone,
 * where the user most likely took it (the form shows it to be checked). */
const cameraTime = (taken: Taken) => (!taken.seen_at && taken.local_time ? taken.local_time.slice(0, 16) : null);

/** The report with what the photo says filled in; what it does not say is left as the user had it. */
export function withTaken(report: ReportInput, taken: Taken): ReportInput {
  const camera = cameraTime(taken);
  return {
    ...report,
    ...(taken.location ? { place: `${taken.location.lat}, ${taken.location.lon}` } : {}),
    ...(taken.seen_at ? { seenAt: localInput(taken.seen_at) } : camera ? { seenAt: camera } : {}),
  };
}

const sentence = (text: string) => `${text[0].toUpperCase()}${text.slice(1)}.`;

/** What filling in from the photo did, in a sentence or two. */
export function takenNote(taken: Taken): string {
  const camera = cameraTime(taken);
  const filled = [taken.location && "where", (taken.seen_at || camera) && "when"].filter(Boolean).join(" and ");
  const missing = (["location", "seen_at"] as const).flatMap((k) =>
    taken.unknown[k] && !(k === "seen_at" && camera) ? [sentence(taken.unknown[k])] : []);
  const clock = camera ? "Its camera's clock does not say its time zone: the time is read as this computer's." : "";
  return [filled ? `Filled in from the photo: ${filled} it was taken.` : "", clock, ...missing].filter(Boolean).join(" ");
}

/** What asking a photo for the place to search near came to. */
export function nearNote(taken: Taken): string {
  if (taken.location) return "Near where the photo was taken.";
  return sentence(taken.unknown.location ?? "the photo does not say where it was taken");
}

/** This browser's time zone (IANA), or null where it has none to give. */
export function browserTimeZone(): string | null {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return zone && (zone.includes("/") || zone === "UTC") ? zone : null;
}

/** A bulk job's report for every photo: a status, and where and when each photo was taken, read from it (a camera
 * time without its zone read in `zone`: the browser's, where the photos were most likely taken). */
export function jobReport(status: Status | "", fromPhotos: boolean, zone: string | null = browserTimeZone()):
  Record<string, string> {
  return {
    ...(status ? { status } : {}),
    ...(fromPhotos ? { seen_at: "photo", location: "photo", ...(zone ? { time_zone: zone } : {}) } : {}),
  };
}

/** The form fields of POST /v1/dogs for a report; throws on a place that is not one. */
export function reportFormFields(report: ReportInput): [string, string][] {
  const out: [string, string][] = [];
  if (report.status) out.push(["status", report.status]);
  if (report.place?.trim()) {
    const place = parsePlace(report.place);
    out.push(["location", `${place.lat},${place.lon}`]);
  }
  if (report.seenAt) {
    const when = new Date(report.seenAt); // the browser's zone: what the user meant
    if (Number.isNaN(when.getTime())) throw new Error(`"${report.seenAt}" is not a date and time`);
    out.push(["seen_at", when.toISOString()]);
  }
  return out;
}

/** The "Lost & found" part of a search. */
export interface ReportFilter {
  /** any of these statuses; empty: any */
  status?: Status | "";
  /** the status of the user's own dog: search its counterparts instead */
  forStatus?: Exclude<Status, "home"> | "";
  /** "lat, lon" */
  near?: string;
  radiusKm?: string;
  /** yyyy-mm-dd, a day on the reader's clock: sent as its first (seenAfter) or last (seenBefore) instant there */
  seenAfter?: string;
  seenBefore?: string;
}

/** An instant as RFC 3339 on this browser's clock, its offset said: "2026-11-30T23:59:59.999+01:00". */
export function localRfc3339(t: Date): string {
  const offset = Math.round(-t.getTimezoneOffset()); // a local mean time before 1900 has seconds: RFC 3339 has none
  const zone = `${offset < 0 ? "-" : "+"}${two(Math.floor(Math.abs(offset) / 60))}:${two(Math.abs(offset) % 60)}`;
  const ms = t.getMilliseconds() ? `.${String(t.getMilliseconds()).padStart(3, "0")}` : "";
  return `${String(t.getFullYear()).padStart(4, "0")}-${two(t.getMonth() + 1)}-${two(t.getDate())}T${two(t.getHours())}:${two(t.getMinutes())}:${two(t.getSeconds())}${ms}${zone}`;
}

/** A date input's day ("2026-11-30") on the reader's clock, as the server's seen_after (its first instant) or
 * seen_before (`end`: its last): a bare date would be the day in UTC, hours off the day the reader means. Each end
 * has its own offset (a day of a clock change is 23 or 25 hours); anything else is sent as it is, for the server to
 * say what is wrong with it. */
export function localDayBound(day: string, end: boolean): string {
  const m = /^(\d{4,})-(\d{2})-(\d{2})$/.exec(day);
  if (!m) return day;
  const t = new Date(2000, 0, 1); // setFullYear: new Date(y, ...) reads a year below 100 as 19yy
  t.setFullYear(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + (end ? 1 : 0));
  t.setHours(0, 0, 0, 0); // a midnight the clock skips (a change at 0:00) is the day's first instant, 1:00
  return localRfc3339(end ? new Date(t.getTime() - 1) : t);
}

/** The search fields (form or query) of a ReportFilter; throws on a bad place or radius. */
export function reportSearchFields(filter: ReportFilter | undefined): [string, string][] {
  if (!filter) return [];
  const out: [string, string][] = [];
  if (filter.forStatus) out.push(["for_status", filter.forStatus]);
  else if (filter.status) out.push(["status", filter.status]);
  if (filter.near?.trim()) {
    const place = parsePlace(filter.near);
    out.push(["near", `${place.lat},${place.lon}`]);
  }
  if (filter.radiusKm?.trim()) {
    if (!filter.near?.trim()) throw new Error("A radius needs a place to be around: fill in Near as well.");
    const km = Number(filter.radiusKm);
    if (!Number.isFinite(km) || km <= 0 || km > 20000) throw new Error("Radius: a number of km above 0, up to 20000");
    out.push(["radius_km", String(km)]);
  }
  if (filter.seenAfter) out.push(["seen_after", localDayBound(filter.seenAfter, false)]);
  if (filter.seenBefore) out.push(["seen_before", localDayBound(filter.seenBefore, true)]);
  return out;
}
