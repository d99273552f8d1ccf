import { useEffect, useState } from "react";
import { ErrorBanner } from "../components/ErrorBanner";
import { PhotoBoxes } from "../components/PhotoBoxes";
import { ReportLine } from "../components/ReportLine";
import { dogTitle } from "../components/ResultGrid";
import { allows, canDelete, canEdit } from "../lib/access";
import {
  addPhoto,
  deleteDog,
  deletePhoto,
  getDog,
  listDogs,
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
import { distanceKm, formatPlace, formatSeen, isPlace, parsePlace, type Place } from "../lib/reports";
import type { Box, BreedGuess, Dog, DogPage as ListPage } from "../lib/types";

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

// The most other dogs named as copies of this one's photo (the rest are counted).
const COPIES_SHOWN = 5;

// The report is shown on its own line, above the other fields.
const REPORT_FIELDS = new Set(["status", "location", "seen_at"]);

function show(key: string, value: unknown): string {
  if (key === "breed_guess" && Array.isArray(value)) return guessesText(value as BreedGuess[]);
  if (key === "location" && isPlace(value)) return formatPlace(value);
  if (key === "seen_at" && typeof value === "string") return formatSeen(value);
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

export function DogPage({ id }: { id: string }) {
  const [dog, setDog] = useState<Dog | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [deleted, setDeleted] = useState(false);
  const [accepting, setAccepting] = useState(false);
  const [accepted, setAccepted] = useState<string | null>(null);
  const [photoBusy, setPhotoBusy] = useState(false);
  const [photoNote, setPhotoNote] = useState<string | null>(null);
  const [watching, setWatching] = useState<"no" | "busy" | "yes">("no");
  const [marking, setMarking] = useState(false);
  const [copies, setCopies] = useState<ListPage | null>(null);
  const markSrc = useImageSrc(marking ? dog?.image_url : null).src; // the cover photo, fetched with the key
  const [search, setSearch] = useSearchState();
  const { me } = useAuth();

  useEffect(() => {
    setDog(null);
    setError(null);
    getDog(id).then(setDog, (e) => setError(messageOf(e)));
  }, [id]);

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
      setDog(await updateDog(id, { breed }));
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

  const onAddPhoto = async (file: File | undefined) => {
    if (!file) return;
    setPhotoBusy(true);
    setError(null);
    setPhotoNote(null);
    try {
      const added = await addPhoto(id, file);
      setDog(added.dog);
      if (!added.created) setPhotoNote("That photo is already one of this dog's photos.");
      else if (added.verdict === "unlikely" && added.sameDog !== null) {
        setPhotoNote(
          `Photo added. It looks unlike this dog's other photos: ${sameDogText(added.sameDog, "unlikely")}. ` +
            "Check that it shows this dog (another pose or light can do that too).",
        );
      } else setPhotoNote("Photo added.");
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setPhotoBusy(false);
    }
  };

  /** The owner marks where the dog is in its cover photo: embedded again from that box. */
  const onMarked = async (box: Box) => {
    const cover = dog?.photos?.find((p) => p.cover)?.id ?? id;
    setPhotoBusy(true);
    setError(null);
    setPhotoNote(null);
    try {
      setDog(await markPhoto(id, cover, box));
      setMarking(false);
      setPhotoNote("The dog's box is saved: searches find it by that part of the photo.");
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setPhotoBusy(false);
    }
  };

  const onRemovePhoto = async (photo: string) => {
    setPhotoBusy(true);
    setError(null);
    setPhotoNote(null);
    try {
      await deletePhoto(id, photo);
      setDog(await getDog(id));
      setPhotoNote("Photo removed.");
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setPhotoBusy(false);
    }
  };

  const watchForMatches = async () => {
    setWatching("busy");
    setError(null);
    try {
      await watchDog(id);
      setWatching("yes");
    } catch (e) {
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
  const recorded = Object.entries(dog.payload).filter(([k]) => SERVER_FIELDS.has(k));
  const box = dog.payload.box;
  const suggestion = dog.payload.breed ? null : topGuess(dog.payload.breed_guess);
  const photos = dog.photos ?? [];
  const editable = !!me && canEdit(me, dog);
  return (
    <section aria-labelledby="dog-h" className="dog-page">
      <h1 id="dog-h">{dogTitle(dog.payload)}</h1>
      <div className="dog-layout">
        <div>
          {marking && markSrc ? (
            <MarkDog
              src={markSrc}
              action="Save this box"
              disabled={photoBusy}
              onCancel={() => setMarking(false)}
              onMark={(b) => void onMarked(b)}
            />
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
          {editable && !marking && (
            <button type="button" className="button small secondary" onClick={() => setMarking(true)}>
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
          <dl className="fields-list">
            {own.map(([k, v]) => (
              <div key={k}>
                <dt>{k}</dt>
                <dd>{show(k, v)}</dd>
              </div>
            ))}
          </dl>
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
            <h2 id="dog-photos-h">
              {photos.length} photo{photos.length === 1 ? "" : "s"}
            </h2>
            <ul className="photo-strip">
              {photos.map((p, i) => (
                <li key={p.id} data-testid="dog-photo">
                  {/* where the dog is in each: in a photo of two, which one this dog is */}
                  <PhotoBoxes
                    className="photo-strip-boxes"
                    imgClassName="photo-thumb"
                    src={p.thumbnail_url}
                    alt={`Photo ${i + 1} of ${dogTitle(dog.payload)}${p.cover ? " (cover)" : ""}`}
                    fit="cover"
                    dogs={p.box && p.width && p.height ? [{ index: 0, box: p.box }] : []}
                    width={p.width}
                    height={p.height}
                  />
                  {p.cover && <span className="muted small">cover</span>}
                  {editable && photos.length > 1 && (
                    <button
                      type="button"
                      className="button small secondary"
                      onClick={() => void onRemovePhoto(p.id)}
                      disabled={photoBusy}
                      aria-label={`Remove photo ${i + 1}`}
                    >
                      Remove
                    </button>
                  )}
                </li>
              ))}
            </ul>
            {editable && (
              <label className={`button small${photoBusy ? " disabled" : ""}`}>
                {photoBusy ? "Working…" : "Add a photo"}
                <input
                  className="visually-hidden"
                  type="file"
                  accept="image/*"
                  disabled={photoBusy}
                  aria-label="Add a photo of this dog"
                  onChange={(e) => {
                    void onAddPhoto(e.target.files?.[0]);
                    e.target.value = "";
                  }}
                />
              </label>
            )}
            {photoNote && (
              <p className="success" role="status">
                {photoNote}
              </p>
            )}
          </section>
          <details>
            <summary>Recorded by the server</summary>
            <dl className="fields-list small">
              {recorded.map(([k, v]) => (
                <div key={k}>
                  <dt>{k}</dt>
                  <dd>{show(k, v)}</dd>
                </div>
              ))}
            </dl>
          </details>
          <ErrorBanner error={error} />
          {watching === "yes" && (
            <p className="success" role="status">
              Watching: dogs added from now on that are likely this one show up in{" "}
              <a href="#/alerts">Alerts</a>.
            </p>
          )}
          <div className="actions">
            <button type="button" className="button" onClick={moreLikeThis}>
              More like this
            </button>
            {me && allows(me, "write") && watching !== "yes" && (
              <button
                type="button"
                className="button secondary"
                onClick={() => void watchForMatches()}
                disabled={watching === "busy"}
              >
                {watching === "busy" ? "Watching…" : "Watch for matches"}
              </button>
            )}
            {!me || !canDelete(me, dog) ? null : !confirming ? (
              <button type="button" className="button danger" onClick={() => setConfirming(true)}>
                Delete…
              </button>
            ) : (
              <div className="confirm" role="group" aria-label="Confirm delete">
                <p>
                  Delete {dogTitle(dog.payload)} and its photo{photos.length > 1 ? "s" : ""}? This cannot be undone.
                </p>
                <button type="button" className="button danger" onClick={onDelete} autoFocus>
                  Yes, delete
                </button>
                <button type="button" className="button secondary" onClick={() => setConfirming(false)}>
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
