"""The public API's bodies: dogs, search results and bulk jobs."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from dogsearch.jobs.sources import MAX_PATH
from dogsearch.models.calibration import Verdict


class Dog(BaseModel):
    id: str
    payload: dict[str, Any] = Field(..., description="name, breed, your own fields, and what the server recorded (box: "
                                                     "the dog's in its photo, absent for the whole photo; "
                                                     "breed_guess: suggested breeds when none was given)")
    image_url: str
    thumbnail_url: str
    owner: str | None = Field(None, description="the name of the API key that added it: shown to that key and admins")


class Photo(BaseModel):
    id: str = Field(..., description="the photo's id (from its bytes)")
    cover: bool = Field(..., description="the photo that stands for the dog in lists")
    box: list[float] | None = Field(None, description="the dog's box in this photo; null: the whole photo")
    width: int | None = Field(None, description="the photo's width in pixels, which `box` is in")
    height: int | None = Field(None, description="the photo's height in pixels")
    image_url: str
    thumbnail_url: str


class DogDetail(Dog):
    photos: list[Photo] = Field(..., description="all of its photos, the cover first")


class PhotoAdded(DogDetail):
    photo_id: str = Field(..., description="the id of the photo added")
    same_dog: float | None = Field(None, description="the probability that the photo added shows this dog, by its "
                                                     "closest other photo of it (the calibrated pair probability); "
                                                     "null: its only photo, or the vectors have no calibration")
    verdict: Verdict | None = Field(
        None, description="same_dog against SAME_DOG_LIKELY and SAME_DOG_POSSIBLE: 'unlikely' is worth a look: "
                          "another dog's photo added by mistake?")


class DogPage(BaseModel):
    items: list[Dog]
    next: str | None = Field(None, description="cursor for the next page, null at the end")
    total: int


class BreedGuess(BaseModel):
    breed: str
    p: float = Field(..., description="how likely this breed is, given that it is a dog")


class Seems(BaseModel):
    label: str = Field(..., description="an ImageNet class the photo seems to show")
    p: float


class FoundDog(BaseModel):
    index: int = Field(..., description="the `dog` to search for or add: 0 is the largest")
    box: list[float] = Field(..., description="[x0, y0, x1, y1] in the photo's pixels (width x height)")
    score: float | None = Field(..., description="the detector's confidence; null: the box you marked (marked true), "
                                                 "or the whole photo (no detector)")
    marked: bool = Field(False, description="the box the request marked, not the detector's")
    breed_guess: list[BreedGuess] = Field(..., description="the likeliest breeds, best first")


class Detected(BaseModel):
    width: int = Field(..., description="the photo's width after its EXIF orientation: what boxes refer to")
    height: int
    dogs: list[FoundDog] = Field(..., description="largest first; empty: no dog found")
    seems: list[Seems] = Field(..., description="what the whole photo seems to show, likeliest first: the "
                                                "classifier's top 3 of 1 % or more")


class Location(BaseModel):
    lat: float = Field(..., description="latitude, degrees")
    lon: float = Field(..., description="longitude, degrees")


class Taken(BaseModel):
    seen_at: str | None = Field(..., description="when the photo was taken (RFC 3339, UTC), as a report's seen_at; "
                                                 "null: the photo does not say (see unknown)")
    location: Location | None = Field(..., description="where it was taken (its GPS position), as a report's "
                                                       "location; null: the photo does not say")
    unknown: dict[str, str] = Field(..., description="for seen_at and location when null: why")
    local_time: str | None = Field(None, description="when seen_at is null because the photo gives its camera's time "
                                                     "without a zone: that time (\"2026-11-30T18:05:09\"), for the "
                                                     "user's zone to be given (time_zone)")


class SearchResult(Dog):
    score: float = Field(..., description="cosine similarity, higher is more similar (several query photos: the mean "
                                          "or the best of their cosines, as QUERY_COMBINE says); where the model's "
                                          "calibration re-ranks (the default fusion), the re-ranking's score, which "
                                          "also scores an identical dog 1 (docs/embedder-eval.md)")
    photo_id: str = Field(..., description="the dog's photo that matched best: image_url and box are this photo's")
    box: list[float] | None = Field(None, description="the matched dog's box in its photo; null: the whole photo")
    pose: dict[str, Any] | None = Field(None, description="with pose=true: this photo's pose (as POST /v1/pose)")
    rerank_score: float | None = Field(None, description="with rerank=pose: the score results are ordered by")
    distance_km: float | None = Field(None, description="how far from `near` (more like this: from the dog) it was "
                                                        "seen; null without either place")
    seen_at: str | None = Field(None, description="when it was seen (RFC 3339, UTC), as its report says")
    same_dog: float | None = Field(None, description="the probability that this is the same dog as the query's, "
                                                     "calibrated on pairs of individual dogs' photos; null: the "
                                                     "model has no calibration")
    verdict: Verdict | None = Field(
        None, description="same_dog against the gateway's thresholds (SAME_DOG_LIKELY, SAME_DOG_POSSIBLE); null "
                          "without a calibration")


class SearchResponse(BaseModel):
    results: list[SearchResult] = Field(..., description="best first")
    best_verdict: Verdict | None = Field(
        None, description="the best result's verdict (unlikely when there is none); null without a calibration")
    message: str | None = Field(None, description="said plainly when no result is likely the same dog")
    verdicts_unchecked: bool = Field(
        False, description="true: the verdicts were read without checking whether two results are one dog stored "
                           "twice (the search service failed that lookup after ranking), so two reports of one dog "
                           "may each read less likely than they are; the results are the same")
    query_pose: dict[str, Any] | None = Field(None, description="with pose=true: the query photo's pose")
    pose_error: str | None = Field(None, description="with pose=true or rerank=pose: why there are no poses (the "
                                                     "pose service did not answer); the results are ranked without")
    took_ms: float
    statuses: list[str] | None = Field(None, description="the report statuses searched among (from status, or the "
                                                         "counterparts of for_status); null: any")


class PhotoSearchResponse(SearchResponse):
    query_photos: int = Field(1, description="how many photos of the dog the query combined")
    dogs: list[FoundDog] = Field(..., description="every dog found in the (first) query photo, largest first")
    dog: int = Field(..., description="the index of the dog searched for")
    width: int = Field(..., description="the query photo's size, which the boxes refer to")
    height: int
    breed_guess: list[BreedGuess] = Field(..., description="the searched dog's likeliest breeds")


class MarkedBox(BaseModel):
    """Where the dog is in a photo, as you mark it."""

    model_config = {"extra": "forbid", "json_schema_extra": {"example": {"box": "40,30,360,290"}}}
    box: str = Field(..., max_length=128, description='"x0,y0,x1,y1" in the photo\'s pixels (EXIF orientation applied)')


class DogUpdate(BaseModel):
    """User fields to set on every entry of a dog (name, breed, status, your own); other fields stay."""

    model_config = {"extra": "allow", "json_schema_extra": {"example": {"breed": "beagle"}}}


# -- bulk jobs -------------------------------------------------------------------------------------------------------

class IndexRequest(BaseModel):
    model_config = {"extra": "forbid"}  # a misspelt field ("label") is a 422, not a job run without it
    path: str = Field(..., min_length=1, max_length=MAX_PATH,
                      description="a folder, or a .csv/.jsonl manifest, on the server (under "
                                  "DOGSEARCH_JOBS_ALLOWED_ROOTS)")
    labels: Literal["folders", "dogs", "csv"] | None = Field(
        None, description="folders (default): DIR/<breed>/<photo>; dogs: DIR/<dog>/<photo>, each folder's photos one "
                          "dog; csv: DIR/labels.csv with a 'path' column (and a 'dog' column: rows of one value "
                          "are one dog)")
    payload: dict[str, Any] = Field(default_factory=dict, description="fields given to every photo of the job")


class JobCreated(BaseModel):
    id: str
    state: str


class JobError(BaseModel):
    file: str
    reason: str


class Job(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    source: str = Field(..., description="path or upload")
    path: str
    labels: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    owner: str | None = Field(None, description="the name of the API key that started it; null: no key (an open "
                                                "service, or `dogsearch index` on the workers' host)")
    admin: bool = Field(False, description="started with admin rights (an admin key, an open service, `dogsearch "
                                           "index` on the workers' host): its photos fill in what another key's dog "
                                           "lacks, as an admin's POST /v1/dogs does")
    total: int = Field(..., description="files found (known once the job is running)")
    indexed: int = Field(..., description="photos stored by this job, near-duplicates included")
    duplicates: int = Field(..., description="skipped: the same bytes came earlier in the job or were already stored")
    already_stored: int = Field(..., description="of the duplicates: stored before this job (its dog given the job's "
                                                 "fields it lacked; one holding other values fails, naming it)")
    near_duplicates: int = Field(..., description="of the indexed: look-alikes of a stored photo (payload "
                                                  "near_duplicate_of)")
    failed: int
    skipped: int = Field(0, description="files of the folder that are not photos (an archive inside it, notes): not "
                                        "indexed, not counted in total")
    skipped_files: list[str] = Field(default_factory=list, description="the first of them")
    errors: list[JobError] = Field(..., description="the first failures, each with its reason")
    error: str | None = Field(None, description="why the whole job failed")
    replans: int = Field(0, description="times it was planned again, having stalled (with a broker: a batch of it may "
                                        "have been lost to a Redis crash); stalled again since, it fails")
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    images_per_s: float | None = None


class JobList(BaseModel):
    items: list[Job]


class Me(BaseModel):
    """GET /v1/me: who the caller is (the web UI shows only what its scope allows)."""

    name: str | None = Field(None, description="the API key's name; null without a key")
    scope: Literal["search", "write", "admin"] | None = Field(
        None, description="the key's scope; null without a key (admin when the service is open)")
    scopes: list[Literal["search", "write", "admin"]] = Field(..., description="every scope it has (cumulative)")
    open: bool = Field(..., description="no keys are configured: everyone may do everything (loopback only)")
    anonymous_search: bool = Field(..., description="callers without a key may search and read dogs")
    server_folders: bool = Field(..., description="bulk jobs may index folders on the server (POST /v1/jobs/index: "
                                                  "DOGSEARCH_JOBS_ALLOWED_ROOTS is set); false: zip uploads only")
    allowed_roots: list[str] | None = Field(None, description="the server folders jobs may index: for an admin key "
                                                               "only, null for any other caller")


# --- watches (alerts on new matches) ---------------------------------------------------------------------------

WATCH_STATUS = "a new dog's status must be one of these (default for a watched dog with a report: the reports that " \
               "answer it, as in more like this)"


class WatchConditions(BaseModel):
    """What a watch waits for besides its photos: POST /v1/watches's fields (multipart: as form fields)."""

    model_config = {"extra": "forbid"}
    webhook_url: str | None = Field(None, max_length=2048, description="where each match is POSTed (http or https "
                                                                       "to a public address)")
    min_probability: float = Field(0.5, gt=0, lt=1, description="the least same-dog probability of a match")
    status: list[str] | str | None = Field(None, description=WATCH_STATUS)
    near: str | None = Field(None, max_length=64, description='"lat,lon": with radius_km, only dogs seen within it')
    radius_km: float | None = Field(None, description="km around near")


class WatchRequest(WatchConditions):
    """POST /v1/watches as JSON (multipart: the conditions as form fields, with `image` files instead of dog_id)."""

    dog_id: str = Field(..., pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
                        description="the stored dog to watch for (its photos are compared)")


class Attempt(BaseModel):
    n: int
    at: str
    status: int | None = Field(None, description="the webhook's HTTP status; null: no answer (see error)")
    error: str | None = None


class Delivery(BaseModel):
    state: Literal["pending", "sending", "delivered", "failed"]
    attempts: int
    last_status: int | None = Field(None, description="the webhook's HTTP status at the last attempt")
    last_error: str | None = None
    delivered_at: str | None = None
    history: list[Attempt] = Field(default_factory=list, description="each attempt, first first")


class Watch(BaseModel):
    id: str
    dog_id: str | None = Field(None, description="the watched dog; null: made from uploaded photos")
    min_probability: float
    status: list[str] | None = None
    near: str | None = None
    radius_km: float | None = None
    webhook_url: str | None = None
    created_at: str = Field(..., description="dogs stored from then on are checked against it")
    ended_at: str | None = Field(None, description="when its dog (dog_id) was deleted, which ended it: it matches no "
                                                   "more, and its inbox stays until it is deleted; null: watching")
    ended_delivery: Delivery | None = Field(None, description="the delivery of its end to its webhook (`watch.ended`), "
                                                              "as a match's; null: open, or no webhook")
    photos: int = Field(..., description="how many photos' vectors it compares")
    matches_url: str


SECRET = "the key of the deliveries' X-Dogsearch-Signature (HMAC-SHA256): shown only now"


class WatchCreated(Watch):
    secret: str = Field(..., description=SECRET)


class WatchSecret(BaseModel):
    id: str
    secret: str = Field(..., description=SECRET + "; the old one signs no more attempts")


class WatchList(BaseModel):
    items: list[Watch]


class WatchMatch(BaseModel):
    dog: Dog
    probability: float = Field(..., description="how likely it is the watched dog (calibrated)")
    score: float = Field(..., description="cosine similarity of the best pair of photos")
    matched_at: str
    delivery: Delivery | None = Field(None, description="its webhook delivery; null without a webhook")


class WatchMatches(BaseModel):
    items: list[WatchMatch] = Field(..., description="newest first")
