// "Embed the dog" (issue 18): boxes are [x0, y0, x1, y1] in pixels of the photo, EXIF orientation applied.
export type Box = [number, number, number, number];

/** A breed suggestion from ImageNet's dog classes; `p` in 0..1. */
export interface BreedGuess {
  breed: string;
  p: number;
}

/** What a photo without a dog seems to show (ImageNet's labels of the whole photo). */
export interface SeemsLabel {
  label: string;
  p: number;
}

/** One dog the detector found in a photo; `score` is null when the detector is off (the whole photo). */
export interface FoundDog {
  index: number;
  box: Box;
  score: number | null;
  /** the box the user marked, not the detector's */
  marked?: boolean;
  breed_guess: BreedGuess[];
}

/** POST /v1/detect: every dog in the photo, largest first; none is an empty list, not an error. */
export interface Detection {
  width: number;
  height: number;
  dogs: FoundDog[];
  seems: SeemsLabel[];
}

export type Payload = Record<string, unknown> & {
  name?: string;
  breed?: string;
  /** the photo's size, EXIF orientation applied (recorded by the server) */
  width?: number;
  height?: number;
  /** the dog's box in its photo; absent: the whole photo */
  box?: Box | null;
  /** the server's suggestion, kept when the user gave no breed */
  breed_guess?: BreedGuess[];
  /** the report: lost, found, sighted, shelter or home; where (degrees) and when (RFC 3339, UTC) it was seen */
  status?: string;
  location?: { lat: number; lon: number };
  seen_at?: string;
};

/** One photo of a dog (GET /v1/dogs/{id}); the cover is the one lists show. */
export interface Photo {
  id: string;
  cover: boolean;
  /** where the dog is in this photo; null: the whole photo */
  box?: Box | null;
  /** the photo's pixels, which `box` is in */
  width?: number | null;
  height?: number | null;
  image_url: string;
  thumbnail_url: string;
}

export interface Dog {
  id: string;
  payload: Payload;
  /** the name of the key that added the dog, where the server tells it */
  owner?: string | null;
  image_url: string;
  thumbnail_url: string;
  /** all of its photos, the cover first: GET /v1/dogs/{id} only */
  photos?: Photo[];
}

// The access API (issue 17): scopes are cumulative, search < write < admin.
export type Scope = "search" | "write" | "admin";

export interface Me {
  name: string | null;
  scope: Scope | null;
  scopes: Scope[];
  /** no keys configured, loopback only (the demo): everything allowed without a key */
  open: boolean;
  anonymous_search: boolean;
  /** bulk jobs may index the server's own folders; false: zip uploads only (absent: a server from before it said) */
  server_folders?: boolean;
  /** those folders: an admin's to see, null for others */
  allowed_roots?: string[] | null;
}

/** Is a result the same dog as the query's? By its calibrated probability against the server's thresholds. */
export type Verdict = "likely" | "possible" | "unlikely";

export interface SearchResult extends Dog {
  score: number;
  /** the dog's photo that matched best (image_url, thumbnail_url and box are its); absent: older servers */
  photo_id?: string;
  /** the matched dog's box in its photo; null or absent: a whole-photo entry */
  box?: Box | null;
  /** km from the search's place (more like this: from the dog's); null: either place unknown */
  distance_km?: number | null;
  /** when it was seen, as its report says (RFC 3339, UTC) */
  seen_at?: string | null;
  /** the probability that it is the same dog; null or absent: the server's model has no calibration */
  same_dog?: number | null;
  verdict?: Verdict | null;
}

export interface SearchResponse {
  results: SearchResult[];
  took_ms: number;
  /** how many photos of the dog the query combined */
  query_photos?: number;
  /** the report statuses searched among (for_status: its counterparts); absent or null: any */
  statuses?: string[] | null;
  /** the best result's verdict ("unlikely" when there is none); null or absent: no calibration */
  best_verdict?: Verdict | null;
  /** said when no result is likely the same dog */
  message?: string | null;
  /** true: the verdicts were read without checking whether two results are one dog stored twice (the server failed
   * that lookup), so each of two reports of one dog may read less likely than it is; absent: checked, or an older
   * server */
  verdicts_unchecked?: boolean;
  // A photo search on a server with the detector (absent from "more like this" and older servers):
  /** every dog found in the query photo, largest first */
  dogs?: FoundDog[];
  /** the index of the dog searched with */
  dog?: number;
  /** the query photo's size, which the boxes refer to */
  width?: number;
  height?: number;
  /** the searched dog's breed suggestions */
  breed_guess?: BreedGuess[];
}

export interface DogPage {
  items: Dog[];
  next: string | null;
  total: number;
}

// The pose contract (issue 5).
export interface Measure {
  value: number | null;
  confidence: number;
}

export interface PoseDog {
  box: [number, number, number, number];
  score: number;
  /** the box came with the request (the dog searched for, or marked): scored 1, no detector judged it */
  given?: boolean;
  /** the dog's box is the whole photo: on a close-up of its face the body's keypoints are guesses */
  whole_photo?: boolean;
  keypoints: { name: string; x: number; y: number; score: number }[];
  analysis: {
    proportions: { leg_to_body: Measure; head_to_body: Measure; tail_to_body: Measure };
    posture: { label: "standing" | "sitting" | "lying" | "unknown"; confidence: number };
    visible_share: Measure;
  };
}

export interface Pose {
  model: string;
  width: number;
  height: number;
  dogs: PoseDog[];
}

// The bulk jobs API (issue 6).
export type JobError = string | { file?: string; path?: string; reason?: string; detail?: string };

export interface Job {
  id: string;
  state: string;
  total: number | null;
  indexed: number;
  /** of the indexed: photos that look like copies (resized, recompressed) of stored ones */
  near_duplicates?: number;
  duplicates: number;
  failed: number;
  /** files of the folder that are not photos (an archive inside it, notes): not indexed, not in total */
  skipped?: number;
  /** the first of them */
  skipped_files?: string[];
  errors: JobError[];
  /** why the whole job failed */
  error?: string | null;
  path?: string;
  labels?: string | null;
  images_per_s?: number | null;
  /** RFC 3339: when it was asked for, began and ended (null: not yet); absent from older servers */
  created_at?: string;
  started_at?: string | null;
  finished_at?: string | null;
}

/** An alert on new matches (GET /v1/watches). */
export interface Watch {
  id: string;
  dog_id: string | null;
  min_probability: number;
  status: string[] | null;
  near: string | null;
  radius_km: number | null;
  webhook_url: string | null;
  created_at: string;
  /** when its dog was deleted, which ended it: no new matches, its inbox stays (null: watching; absent from older
   * servers) */
  ended_at?: string | null;
  /** the delivery of its end to its webhook (the event `watch.ended`; null: open, or no webhook; absent from older
   * servers) */
  ended_delivery?: Delivery | null;
  photos: number;
  matches_url: string;
}

export interface Delivery {
  state: "pending" | "sending" | "delivered" | "failed";
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  delivered_at: string | null;
}

/** A dog that matched a watch: the inbox. */
export interface WatchMatch {
  dog: Dog;
  probability: number;
  score: number;
  matched_at: string;
  delivery: Delivery | null;
}
