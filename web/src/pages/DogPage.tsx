import { useEffect, useRef, useState, type KeyboardEvent, type ReactNode } from "react";
import { ApiImage } from "../components/ApiImage";
import { EditDogForm } from "../components/EditDogForm";
import { ErrorBanner, WithDetails } from "../components/ErrorBanner";
import { PhotoBoxes } from "../components/PhotoBoxes";
import { ReportLine } from "../components/ReportLine";
import { dogTitle } from "../components/ResultGrid";
import { Time } from "../components/Time";
import { allows, canDelete, canEdit, maySeeJobOf } from "../lib/access";
import {
  addPhoto,
  ApiError,
  deleteDog,
  deletePhoto,
  getDog,
  listDogs,
  listWatches,
  markPhoto,
  messageOf,
  updateDog,
  watchDog,
} from "../lib/api";
import { MarkDog } from "../components/MarkDog";
import { useAuth } from "../lib/auth";
import { navigate } from "../lib/router";
import { useSearchState } from "../lib/searchState";
import { guessesText, percent, topGuess } from "../lib/dogs";
import { sameDogText } from "../lib/explain";
import { useImageSrc } from "../lib/images";
import { distanceKm, formatPlace, isPlace, parsePlace, type Place } from "../lib/reports";
import { setPageTitle } from "../lib/title";
import type { Box, BreedGuess, Dog, DogPage as ListPage, Payload, Photo } from "../lib/types";

// Recorded by the server: shown apart from the user's own fields.
const SERVER_FIELDS = new Set([
  "sha256",
  "width",
  "height",
  "format",
  "bytes",
  "created_at",
  "model",
  "owner",
  "box",
  "marked",
  "breed_guess",
  "phash", // the photo's perceptual hash, and the dog of the stored photo it copies (shown above too)
  "near_duplicate_of",
  "job", // the bulk job that stored the photo
]);

// The photo's fingerprints: for a program (or its support) to compare, nothing a person reads. Folded away.
const FINGERPRINTS = new Set(["sha256", "phash"]);

// The most other dogs named as copies of this one's photo (the rest are counted).
const COPIES_SHOWN = 5;

// The report is shown on its own line, above the other fields.
const REPORT_FIELDS = new Set(["status", "location", "seen_at"]);

function show(key: string, value: unknown): ReactNode {
  if (key === "breed_guess" && Array.isArray(value)) return guessesText(value as BreedGuess[]);
  if (key === "location" && isPlace(value)) return formatPlace(value);
  if (key === "created_at" && typeof value === "string") return <Time iso={value} />;
  // a dog's id means nothing read out: its link, in words
  if (key === "near_duplicate_of" && typeof value === "string") {
    return <a href={`#/dogs/${value}`}>the dog it copies</a>;
  }
  return Array.isArray(value) ? value.join(", ") : String(value);
}

/** km from the place the last search was near, to where the dog was seen; null where either is unknown. */
function fromSearched(near: string | undefined, location: unknown): number | null {
  if (!near?.trim() || !isPlace(location)) return null;
  let place: Place;
  try {
    place = parsePlace(near);
  } catch {
    return null;
  }
  return distanceKm(place, location);
}

/** What came of one photo added: a warning (beside its thumbnail) where it needs checking, an error where refused. */
interface Added {
  file: string;
  text: string;
  tone?: "warning" | "error";
  thumb?: string;
  /** the dog this photo is already (a refusal naming it): linked */
  other?: string;
}

/** `payload` with the user's fields as changed (null: gone), the rest (a photo's own box, size) as it was. */
function withChanged(payload: Payload, changed: Record<string, unknown>, now: Payload): Payload {
  const out: Payload = { ...payload };
  for (const key of Object.keys(changed)) {
    if (now[key] === undefined || now[key] === null) delete out[key];
    else out[key] = now[key];
  }
  return out;
}

export function DogPage({ id }: { id: string }) {
  const [dog, setDog] = useState<Dog | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [deleted, setDeleted] = useState(false);
  const [accepting, setAccepting] = useState(false);
  const [accepted, setAccepted] = useState<string | null>(null);
  const [editing, setEditing] = useState(false);
  const [saved, setSaved] = useState(false);
  const [photoBusy, setPhotoBusy] = useState<string | null>(null); // what is being done to the photos, in words
  const [photoNote, setPhotoNote] = useState<string | null>(null);
  const [added, setAdded] = useState<Added[]>([]);
  const [justAdded, setJustAdded] = useState<string[]>([]); // shown last and marked, in the order added
  // "unknown" until the caller's watches say whether this dog is among them (else a second watch would be offered)
  const [watching, setWatching] = useState<"unknown" | "no" | "busy" | "new" | "yes">("unknown");
  const [marking, setMarking] = useState<Photo | null>(null); // the photo being marked
  const [copies, setCopies] = useState<ListPage | null>(null);
  const markSrc = useImageSrc(marking?.image_url).src; // fetched with the key
  const [search, setSearch] = useSearchState();
  const { me } = useAuth();
  const mayWatch = !!me && allows(me, "write");
  // where the keyboard's focus goes back to when what replaced a button closes (data-back of that button)
  const [back, setBack] = useState<string | null>(null);
  const photosHeading = useRef<HTMLHeadingElement>(null);
  const watched = useRef<HTMLParagraphElement>(null);
  const wasWatching = useRef(watching);
  const markedFrom = useRef("cover"); // the button that opened the marking

  useEffect(() => {
    setDog(null);
    setError(null);
    getDog(id).then(setDog, (e) => setError(messageOf(e)));
  }, [id]);

  const title = dog ? dogTitle(dog.payload) : null;
  useEffect(() => {
    if (title) setPageTitle(title);
  }, [title]);

  useEffect(() => {
    if (!mayWatch) return;
    let live = true;
    listWatches().then(
      (mine) => live && setWatching(mine.some((w) => w.dog_id === id && !w.ended_at) ? "yes" : "no"),
      () => live && setWatching("no"), // cannot tell: offered, the server keeps its own count
    );
    return () => {
      live = false;
    };
  }, [id, mayWatch]);

  useEffect(() => {
    if (!back) return;
    document.querySelector<HTMLElement>(`[data-back="${back}"]`)?.focus();
    setBack(null);
  }, [back]);

  /** The answer of a change (PATCH has no photos): the photos stay those shown. */
  const changedTo = (answer: Dog) => setDog((shown) => ({ ...answer, photos: answer.photos ?? shown?.photos }));

  // Other dogs whose photo looks like a copy of this one's: only a hashed photo is found as a copy.
  const hashed = typeof dog?.payload.phash === "string";
  useEffect(() => {
    setCopies(null);
    if (!hashed) return;
    let live = true;
    listDogs(COPIES_SHOWN, null, undefined, { near_duplicate_of: id }).then(
      (page) => live && setCopies(page),
      () => undefined, // the page stands without them
    );
    return () => {
      live = false;
    };
  }, [id, hashed]);

  const onDelete = async () => {
    try {
      await deleteDog(id);
      setDeleted(true);
      setConfirming(false);
      setSearch((s) => ({ ...s, results: s.results?.filter((r) => r.id !== id) ?? null }));
    } catch (e) {
      setError(messageOf(e));
    }
  };

  const acceptBreed = async (breed: string) => {
    setAccepting(true);
    setError(null);
    try {
      changedTo(await updateDog(id, { breed }));
      setAccepted(breed);
      // the last results show this dog too: its title follows
      setSearch((s) => ({
        ...s,
        results: s.results?.map((r) => (r.id === id ? { ...r, payload: { ...r.payload, breed } } : r)) ?? null,
      }));
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setAccepting(false);
    }
  };

  /** The fields changed on the edit form: shown, and in the last results' titles too. */
  const onSaved = (answer: Dog, changed: Record<string, unknown>) => {
    changedTo(answer);
    setEditing(false);
    setSaved(true);
    setBack("edit");
    setSearch((s) => ({
      ...s,
      results:
        s.results?.map((r) => (r.id === id ? { ...r, payload: withChanged(r.payload, changed, answer.payload) } : r)) ??
        null,
    }));
  };

  /** Several photos, one after another: each says what came of it (one refused, the next is still tried). */
  const onAddPhotos = async (files: File[]) => {
    if (!files.length || photoBusy) return;
    setError(null);
    setPhotoNote(null);
    setAdded([]);
    for (const [i, file] of files.entries()) {
      setPhotoBusy(files.length > 1 ? `Adding photo ${i + 1} of ${files.length}…` : "Adding the photo…");
      let result: Added;
      try {
        const answer = await addPhoto(id, file);
        setDog(answer.dog);
        const photo = answer.dog.photos?.find((p) => p.id === answer.photoId);
        if (photo && answer.created) setJustAdded((shown) => [...shown.filter((p) => p !== photo.id), photo.id]);
        if (!answer.created) result = { file: file.name, text: "Already one of this dog's photos: nothing added." };
        else if (answer.verdict === "unlikely" && answer.sameDog !== null) {
          result = {
            file: file.name,
            tone: "warning",
            thumb: photo?.thumbnail_url,
            text:
              `Photo added, but this photo looks unlike the dog's other photos: ` +
              `${sameDogText(answer.sameDog, "unlikely")}. Check that it shows this dog (another pose or light can ` +
              "do that too); if not, remove it.",
          };
        } else result = { file: file.name, text: "Photo added." };
      } catch (e) {
        const other = e instanceof ApiError && e.code === "photo_of_another_dog" ? e.named : null;
        result = { file: file.name, tone: "error", text: messageOf(e), ...(other && { other }) };
      }
      setAdded((done) => [...done, result]);
    }
    setPhotoBusy(null);
  };

  /** The owner marks where the dog is in one of its photos: embedded again from that box. */
  const onMarked = async (box: Box) => {
    if (!marking) return;
    setPhotoBusy("Saving the box…");
    setError(null);
    setPhotoNote(null);
    setAdded([]);
    try {
      changedTo(await markPhoto(id, marking.id, box));
      closeMarking();
      setPhotoNote("The dog's box is saved: searches find it by that part of the photo.");
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setPhotoBusy(null);
    }
  };

  const openMarking = (photo: Photo, opener: string) => {
    setMarking(photo);
    markedFrom.current = opener;
  };
  const closeMarking = () => {
    setMarking(null);
    setBack(markedFrom.current);
  };

  const onRemovePhoto = async (photo: string) => {
    setPhotoBusy("Removing the photo…");
    setError(null);
    setPhotoNote(null);
    setAdded([]);
    try {
      await deletePhoto(id, photo);
      setDog(await getDog(id));
      setPhotoNote("Photo removed.");
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setPhotoBusy(null);
      // its button is gone: the keyboard goes on from the photos' heading, not from the page's start
      photosHeading.current?.focus();
    }
  };

  // "Watch for matches" gives way to what it came to: the keyboard's focus goes there, not to the page's start
  useEffect(() => {
    if (wasWatching.current === "busy" && (watching === "new" || watching === "yes")) watched.current?.focus();
    wasWatching.current = watching;
  }, [watching]);

  const watchForMatches = async () => {
    if (watching === "busy") return;
    setWatching("busy");
    setError(null);
    try {
      await watchDog(id);
      setWatching("new");
    } catch (e) {
      // watched already (another tab, or the list of watches did not load): said as watched, not as a refusal
      if (e instanceof ApiError && e.code === "already_watching") {
        setWatching("yes");
        return;
      }
      setWatching("no");
      setError(messageOf(e));
    }
  };

  const moreLikeThis = () => {
    if (!dog) return;
    setSearch((s) => ({ ...s, query: { kind: "dog", dog }, results: null }));
    navigate("#/search?similar=1");
  };

  if (deleted) {
    return (
      <section>
        <h1>Deleted</h1>
        <p className="success" role="status">
          {dog ? dogTitle(dog.payload) : "The dog"} was deleted. <a href="#/gallery">Back to the gallery</a>
        </p>
      </section>
    );
  }
  if (!dog) {
    return (
      <section>
        <h1>Dog</h1>
        <ErrorBanner error={error} />
        {!error && <p className="notice">Loading…</p>}
      </section>
    );
  }
  const rank = (k: string) => ["name", "breed", "notes"].indexOf(k) >>> 0; // the known fields first
  const own = Object.entries(dog.payload)
    .filter(([k]) => !SERVER_FIELDS.has(k) && !REPORT_FIELDS.has(k))
    .sort(([a], [b]) => rank(a) - rank(b));
  const recorded = Object.entries(dog.payload).filter(([k]) => SERVER_FIELDS.has(k) && !FINGERPRINTS.has(k));
  const fingerprints = Object.entries(dog.payload).filter(([k]) => FINGERPRINTS.has(k));
  const box = dog.payload.box;
  const suggestion = dog.payload.breed ? null : topGuess(dog.payload.breed_guess);
  // the photos just added last, whatever the server's order: the eye looks for them there
  const photos = [
    ...(dog.photos ?? []).filter((p) => !justAdded.includes(p.id)),
    ...justAdded.flatMap((p) => dog.photos?.filter((q) => q.id === p) ?? []),
  ];
  // a server that lists no photos: the dog's own is its cover, under its id
  const cover: Photo = photos.find((p) => p.cover) ?? { id, cover: true, image_url: dog.image_url, thumbnail_url: dog.thumbnail_url };
  const editable = !!me && canEdit(me, dog);
  const markedNow = marking && (marking.id === cover.id || photos.some((p) => p.id === marking.id)) ? marking : null;
  return (
    <section aria-labelledby="dog-h" className="dog-page">
      <h1 id="dog-h">{dogTitle(dog.payload)}</h1>
      <div className="dog-layout">
        <div>
          {markedNow && markSrc ? (
            <>
              {!markedNow.cover && (
                <p className="muted">Marking photo {photos.indexOf(markedNow) + 1} of {photos.length}.</p>
              )}
              <MarkDog
                key={markedNow.id} // its box and size are of one photo: another photo starts afresh
                src={markSrc}
                action="Save this box"
                disabled={!!photoBusy}
                onCancel={closeMarking}
                onMark={(b) => void onMarked(b)}
              />
            </>
          ) : (
            <PhotoBoxes
              className="dog-photo-boxes"
              imgClassName="dog-photo"
              src={dog.image_url}
              alt={`Photo of ${dogTitle(dog.payload)}${box ? ", the dog outlined" : ""}`}
              dogs={box ? [{ index: 0, box }] : []}
              width={dog.payload.width}
              height={dog.payload.height}
            />
          )}
          {editable && !markedNow && (
            <button
              type="button"
              className="button small secondary"
              data-back="cover"
              onClick={() => openMarking(cover, "cover")}
            >
              {dog.payload.marked ? "Mark the dog again" : "Not the right dog? Mark it"}
            </button>
          )}
        </div>
        <div>
          <ReportLine
            payload={dog.payload}
            distanceKm={fromSearched(search.filters.report?.near, dog.payload.location)}
            showPlace
          />
          {typeof dog.payload.near_duplicate_of === "string" && dog.payload.near_duplicate_of !== dog.id && (
            <p className="notice" data-testid="copy-of">
              Its photo looks like a copy of <a href={`#/dogs/${dog.payload.near_duplicate_of}`}>another dog's</a>:
              if that is the same dog, one of the two can go.
            </p>
          )}
          {copies && copies.total > 0 && (
            <p className="notice" data-testid="copies">
              {copies.total === 1 ? "Another dog's photo looks" : `${copies.total} other dogs' photos look`} like a
              copy of this one's:{" "}
              {copies.items.map((c, i) => (
                <span key={c.id}>
                  {i > 0 && ", "}
                  <a href={`#/dogs/${c.id}`}>{dogTitle(c.payload)}</a>
                </span>
              ))}
              {copies.total > copies.items.length && ` and ${copies.total - copies.items.length} more`}. If one is
              the same dog, it can go.
            </p>
          )}
          {editing ? (
            <EditDogForm
              dog={dog}
              onSaved={onSaved}
              onCancel={() => {
                setEditing(false);
                setBack("edit");
              }}
            />
          ) : (
            <>
              <dl className="fields-list">
                {own.map(([k, v]) => (
                  <div key={k}>
                    <dt>{k}</dt>
                    <dd>{show(k, v)}</dd>
                  </div>
                ))}
              </dl>
              {editable && (
                <button
                  type="button"
                  className="button small secondary"
                  data-back="edit"
                  onClick={() => {
                    setEditing(true);
                    setSaved(false);
                  }}
                >
                  Edit name, breed, notes and report
                </button>
              )}
              {saved && (
                <p className="success" role="status">
                  Saved.
                </p>
              )}
            </>
          )}
          {suggestion && (
            <div className="suggested" data-testid="suggested-breed">
              <p>
                Suggested breed: {suggestion.breed} ({percent(suggestion.p)})
              </p>
              {me && canEdit(me, dog) && (
                <button
                  type="button"
                  className="button small"
                  onClick={() => void acceptBreed(suggestion.breed)}
                  disabled={accepting}
                  aria-label={`Accept the suggested breed ${suggestion.breed}`}
                >
                  {accepting ? "Saving…" : "Accept"}
                </button>
              )}
            </div>
          )}
          {accepted && dog.payload.breed === accepted && (
            <p className="success" role="status">
              Breed set to {accepted}.
            </p>
          )}
          <section className="dog-photos" aria-labelledby="dog-photos-h">
            <h2 id="dog-photos-h" ref={photosHeading} tabIndex={-1}>
              {photos.length} photo{photos.length === 1 ? "" : "s"}
            </h2>
            <ul className="photo-strip">
              {photos.map((p, i) => {
                const fresh = justAdded.includes(p.id);
                return (
                  <li key={p.id} data-testid="dog-photo" className={fresh ? "just-added" : undefined}>
                    {/* where the dog is in each: in a photo of two, which one this dog is */}
                    <PhotoBoxes
                      className="photo-strip-boxes"
                      imgClassName="photo-thumb"
                      src={p.thumbnail_url}
                      alt={`Photo ${i + 1} of ${dogTitle(dog.payload)}${p.cover ? " (cover)" : ""}${fresh ? " (just added)" : ""}`}
                      fit="cover"
                      cropToDog
                      dogs={p.box && p.width && p.height ? [{ index: 0, box: p.box }] : []}
                      width={p.width}
                      height={p.height}
                    />
                    {p.cover && <span className="muted small">cover</span>}
                    {fresh && <span className="small just-added-tag">just added</span>}
                    {editable && (
                      <button
                        type="button"
                        className="button small secondary"
                        data-back={p.id}
                        onClick={() => openMarking(p, p.id)}
                        disabled={!!photoBusy}
                        aria-label={`Mark the dog in photo ${i + 1}`}
                      >
                        Mark
                      </button>
                    )}
                    {editable && photos.length > 1 && (
                      <button
                        type="button"
                        className="button small secondary"
                        onClick={() => void onRemovePhoto(p.id)}
                        disabled={!!photoBusy}
                        aria-label={`Remove photo ${i + 1}`}
                      >
                        Remove
                      </button>
                    )}
                  </li>
                );
              })}
            </ul>
            {editable && (
              // aria-disabled, not disabled, while busy: the input keeps the keyboard's focus after a pick
              <label className={`button small${photoBusy ? " disabled" : ""}`}>
                {photoBusy ?? "Add photos"}
                <input
                  className="visually-hidden"
                  type="file"
                  accept="image/*"
                  multiple
                  aria-disabled={!!photoBusy || undefined}
                  aria-label="Add photos of this dog"
                  onClick={(e) => photoBusy && e.preventDefault()}
                  onChange={(e) => {
                    void onAddPhotos(Array.from(e.target.files ?? []));
                    e.target.value = "";
                  }}
                />
              </label>
            )}
            {(photoNote || added.length > 0) && (
              <div className="photo-notes" role="status">
                {photoNote && <p className="success">{photoNote}</p>}
                {added.map((a, i) => (
                  <p key={i} className={a.tone ?? "success"} data-testid="photo-added">
                    {a.thumb && <ApiImage src={a.thumb} alt="The photo just added" className="thumb" />}
                    <span>
                      {(added.length > 1 || a.tone) && <strong>{a.file}: </strong>}
                      {a.other ? (
                        <>
                          This photo is already <a href={`#/dogs/${a.other}`}>another dog's</a>: it cannot be a photo
                          of this one too.
                        </>
                      ) : (
                        <WithDetails text={a.text} />
                      )}
                    </span>
                  </p>
                ))}
              </div>
            )}
          </section>
          <details>
            <summary>Recorded by the server</summary>
            <dl className="fields-list small">
              {recorded.map(([k, v]) => (
                <div key={k}>
                  <dt>{k}</dt>
                  <dd>
                    {k !== "job" || typeof v !== "string" ? (
                      show(k, v)
                    ) : me && maySeeJobOf(me, dog) ? (
                      // its id means nothing read out: the job's card, on the jobs page
                      <>
                        Added by <a href={`#/jobs?job=${encodeURIComponent(v)}`}>a bulk job</a>
                      </>
                    ) : (
                      "Added by a bulk job"
                    )}
                  </dd>
                </div>
              ))}
            </dl>
            {fingerprints.length > 0 && (
              <details className="fingerprints">
                <summary>The photo's fingerprints</summary>
                <dl className="fields-list small">
                  {fingerprints.map(([k, v]) => (
                    <div key={k}>
                      <dt>{k}</dt>
                      <dd>
                        <code>{show(k, v)}</code>
                      </dd>
                    </div>
                  ))}
                </dl>
              </details>
            )}
          </details>
          <ErrorBanner error={error} />
          {mayWatch && watching === "new" && (
            <p className="success" role="status" ref={watched} tabIndex={-1}>
              Watching: dogs added from now on that are likely this one show up in{" "}
              <a href="#/alerts">Alerts</a>.
            </p>
          )}
          {mayWatch && watching === "yes" && (
            <p className="muted" data-testid="watched" ref={watched} tabIndex={-1}>
              Watched: dogs added later that are likely this one show up in <a href="#/alerts">Alerts</a>.
            </p>
          )}
          <div className="actions">
            <button type="button" className="button" onClick={moreLikeThis}>
              More like this
            </button>
            {mayWatch && (watching === "no" || watching === "busy") && (
              <button
                type="button"
                className="button secondary"
                onClick={() => void watchForMatches()}
                aria-disabled={watching === "busy" || undefined} // not disabled: the button keeps the focus meanwhile
              >
                {watching === "busy" ? "Watching…" : "Watch for matches"}
              </button>
            )}
            {!me || !canDelete(me, dog) ? null : !confirming ? (
              <button type="button" className="button danger" data-back="delete" onClick={() => setConfirming(true)}>
                Delete…
              </button>
            ) : (
              <div
                className="confirm"
                role="group"
                aria-label="Confirm delete"
                onKeyDown={(e: KeyboardEvent) => {
                  if (e.key === "Escape") {
                    e.preventDefault();
                    setConfirming(false);
                    setBack("delete");
                  }
                }}
              >
                <p>
                  Delete {dogTitle(dog.payload)} and its photo{photos.length > 1 ? "s" : ""}? This cannot be undone.
                </p>
                <button type="button" className="button danger" onClick={onDelete} autoFocus>
                  Yes, delete
                </button>
                <button
                  type="button"
                  className="button secondary"
                  onClick={() => {
                    setConfirming(false);
                    setBack("delete");
                  }}
                >
                  Cancel
                </button>
              </div>
            )}
          </div>
        </div>
      </div>
    </section>
  );
}
