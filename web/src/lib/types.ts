export type Payload = Record<string, unknown> & { name?: string; breed?: string };

export interface Dog {
  id: string;
  payload: Payload;
  /** the name of the key that added the dog, where the server tells it */
  owner?: string | null;
  image_url: string;
  thumbnail_url: string;
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
}

export interface SearchResult extends Dog {
  score: number;
}

export interface SearchResponse {
  results: SearchResult[];
  took_ms: number;
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
  duplicates: number;
  failed: number;
  errors: JobError[];
  /** why the whole job failed */
  error?: string | null;
  path?: string;
  labels?: string | null;
  images_per_s?: number | null;
}
