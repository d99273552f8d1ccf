import { useEffect, useId, useRef, useState, type FormEvent } from "react";
import { DogFields, type DogFieldValues } from "../components/DogFields";
import { ErrorBanner } from "../components/ErrorBanner";
import { MarkDog } from "../components/MarkDog";
import { PhotoBoxes } from "../components/PhotoBoxes";
import { PhotoPicker } from "../components/PhotoPicker";
import { ReportFields } from "../components/ReportFields";
import { dogTitle } from "../components/ResultGrid";
import { addDog, ApiError, detectDogs, messageOf } from "../lib/api";
import { noDogMessage, topGuess } from "../lib/dogs";
import { showable } from "../lib/preview";
import { reportFormFields, type ReportInput } from "../lib/reports";
import type { Box, BreedGuess, Detection, Dog } from "../lib/types";

// What /v1/detect said about the chosen photo. "skipped": it could not tell (a server without it, a failure):
// the add goes on without a choice, and the server judges the photo itself. "refused": the file is no photo the
// server can use (not an image, too large, truncated): nothing to add, nor to mark.
type Found =
  | { status: "none" }
  | { status: "looking" }
  | { status: "found"; detection: Detection }
  | { status: "skipped"; reason: string }
  | { status: "refused" };

const EMPTY: DogFieldValues = { name: "", breed: "", notes: "" };

export function AddDogPage() {
  const ids = useId();
  const [file, setFile] = useState<File | null>(null);
  const [preview, setPreview] = useState<string | null>(null);
  const [found, setFound] = useState<Found>({ status: "none" });
  const [dogIndex, setDogIndex] = useState(0);
  const [marking, setMarking] = useState(false);
  const [marked, setMarked] = useState<Box | null>(null); // the dog as the user marked it, in place of a found one
  const [markedGuess, setMarkedGuess] = useState<BreedGuess[]>([]); // the marked dog's breeds, once the server says
  const [fields, setFields] = useState<DogFieldValues>(EMPTY);
  const [report, setReport] = useState<ReportInput>({});
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [refusal, setRefusal] = useState<string | null>(null); // why the server refuses the chosen file
  const [storedAs, setStoredAs] = useState<string | null>(null); // the dog the photo is, refused for other details
  // `next`: the dog of the same photo selected to be added next
  const [saved, setSaved] = useState<{ dog: Dog; created: boolean; next?: number } | null>(null);
  const [addedDogs, setAddedDogs] = useState<number[]>([]); // the dogs of this photo added so far
  const picked = useRef<File | null>(null); // the latest photo: an answer about an earlier one is dropped
  const lastMarked = useRef<Box | null>(null); // likewise the latest box marked
  const confirmation = useRef<HTMLParagraphElement>(null);

  useEffect(() => () => void (preview && URL.revokeObjectURL(preview)), [preview]);

  // The keyboard's focus goes to what the add came to (the form it was in is emptied), not to the page's start.
  useEffect(() => {
    if (saved) confirmation.current?.focus();
  }, [saved]);

  const onPick = (f: File) => {
    setFile(f);
    const url = URL.createObjectURL(f);
    setPreview(url);
    // a photo this browser cannot show (a HEIC) is shown from the server's JPEG of it, once that comes
    void showable(f, url).then((shown) => {
      if (shown === url) return;
      if (picked.current !== f) URL.revokeObjectURL(shown); // another photo was picked meanwhile
      else setPreview(shown);
    });
    setSaved(null);
    setError(null);
    setRefusal(null);
    setStoredAs(null);
    setDogIndex(0); // the largest dog
    setAddedDogs([]);
    setMarking(false);
    setMarked(null);
    setFound({ status: "looking" });
    picked.current = f;
    detectDogs(f).then(
      (detection) => picked.current === f && setFound({ status: "found", detection }),
      (e) => {
        if (picked.current !== f) return;
        // A bad file is refused here already: say why now. Otherwise (no detector here) add without a choice.
        if (e instanceof ApiError && (e.status === 413 || e.status === 415 || e.status === 422)) {
          setRefusal(messageOf(e));
          setFound({ status: "refused" });
        } else setFound({ status: "skipped", reason: messageOf(e) });
      },
    );
  };

  const detection = found.status === "found" ? found.detection : null;
  const chosen = marked ? null : (detection?.dogs.find((d) => d.index === dogIndex) ?? null);
  const suggestion = topGuess(marked ? markedGuess : chosen?.breed_guess);

  /** The dog as the user marked it: its breed suggestions come from the server (nothing is stored). */
  const onMarked = (box: Box) => {
    setMarking(false);
    setMarked(box);
    setMarkedGuess([]);
    lastMarked.current = box;
    const f = picked.current;
    if (!f) return;
    detectDogs(f, box).then(
      (d) => picked.current === f && lastMarked.current === box && setMarkedGuess(d.dogs[0]?.breed_guess ?? []),
      () => undefined, // a suggestion only: the add itself says what is wrong
    );
  };
  const blocked =
    found.status === "looking"
      ? "Looking for dogs in the photo…"
      : found.status === "refused"
        ? "This file cannot be added: choose a photo of the dog."
        : detection && !detection.dogs.length && !marked
          ? `${noDogMessage(detection.seems)} Choose a photo that shows the dog, or mark the dog yourself.`
          : null;

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    if (!file) {
      setError("Pick a photo of the dog first.");
      return;
    }
    if (blocked || busy) return;
    try {
      reportFormFields(report); // a place that is not one is said here, before the upload
    } catch (err) {
      setError(messageOf(err));
      return;
    }
    setBusy(true);
    setError(null);
    setStoredAs(null);
    try {
      const which = marked ? { box: marked } : { dog: detection ? dogIndex : undefined };
      const answer = await addDog({ image: file, ...fields, report, ...which });
      setFields(EMPTY);
      // another dog of the photo is next, the photo and its report kept: no second pick of the same photo
      const done = [...addedDogs, dogIndex];
      const next = detection && detection.dogs.length > 1 && !marked
        ? detection.dogs.find((d) => !done.includes(d.index))
        : undefined;
      if (next) {
        setSaved({ ...answer, next: next.index });
        setAddedDogs(done);
        setDogIndex(next.index);
        return;
      }
      setSaved(answer);
      picked.current = null;
      setMarked(null);
      setFile(null);
      setPreview(null);
      setFound({ status: "none" });
      setReport({});
    } catch (err) {
      setError(messageOf(err)); // what was typed stays, to try again
      if (err instanceof ApiError && err.code === "photo_stored_already") setStoredAs(err.named);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby={`${ids}-h`}>
      <h1 id={`${ids}-h`}>Add a dog</h1>
      <form className="add-form" onSubmit={onSubmit}>
        <div>
          {preview && marking ? (
            // in place of the picker: one photo to draw on
            <MarkDog
              src={preview}
              action="Use this box"
              disabled={busy}
              onCancel={() => setMarking(false)}
              onMark={onMarked}
            />
          ) : (
            // busy: a photo picked while the last one is being added would be wiped when that add ends
            <PhotoPicker
              label={file ? "Choose another photo" : "Choose a photo"}
              onPick={onPick}
              disabled={busy}
              previewUrl={preview}
              preview={
                preview && marked ? (
                  <PhotoBoxes
                    src={preview}
                    alt="The photo you picked, with the dog you marked"
                    imgClassName="preview"
                    dogs={[{ index: 0, box: marked }]}
                    width={detection?.width}
                    height={detection?.height}
                  />
                ) : preview && detection?.dogs.length ? (
                  <PhotoBoxes
                    src={preview}
                    alt={`The photo you picked: ${detection.dogs.length} dog${detection.dogs.length === 1 ? "" : "s"} found`}
                    imgClassName="preview"
                    dogs={detection.dogs}
                    width={detection.width}
                    height={detection.height}
                    selected={dogIndex}
                    onSelect={setDogIndex}
                    disabled={busy}
                  />
                ) : undefined
              }
            />
          )}
          {detection && detection.dogs.length > 1 && !marked && (
            <p className="muted" role="status">
              {detection.dogs.length} dogs in this photo: adding dog {dogIndex + 1}
              {addedDogs.length > 0 && ` (added: ${addedDogs.map((i) => `dog ${i + 1}`).join(", ")})`}. Pick another
              one above.
            </p>
          )}
          {marked && (
            <p className="muted" role="status">
              Adding the dog you marked.{" "}
              <button type="button" className="button small secondary" onClick={() => setMarked(null)} disabled={busy}>
                Forget the box
              </button>
            </p>
          )}
          {preview && detection && !marked && !marking && (
            <button type="button" className="button small secondary" onClick={() => setMarking(true)} disabled={busy}>
              {detection.dogs.length ? "Not the right dog? Mark it yourself" : "Mark the dog yourself"}
            </button>
          )}
          {/* under the photo, where the eye is: a phone shows the Add button far below */}
          <ErrorBanner error={refusal} />
          {blocked && (
            <p id={`${ids}-blocked`} className={found.status === "looking" ? "muted" : "notice"} role="status">
              {blocked}
            </p>
          )}
        </div>
        <div className="fields">
          <DogFields value={fields} onChange={setFields} readOnly={busy} suggestion={suggestion} />
          <ReportFields value={report} onChange={setReport} disabled={busy} photo={file} />
          <ErrorBanner error={error} />
          {error && storedAs && (
            <p className="notice">
              <a href={`#/dogs/${storedAs}`}>Open that dog</a> to see its details.
            </p>
          )}
          {saved && (
            <p className="success" role="status" ref={confirmation} tabIndex={-1}>
              {saved.created ? "Added " : "This photo was already stored as "}
              <a href={`#/dogs/${saved.dog.id}`}>{dogTitle(saved.dog.payload)}</a>.
              {!saved.created && " It has everything you entered."}
              {saved.created && typeof saved.dog.payload.near_duplicate_of === "string" && (
                <>
                  {" "}
                  The photo looks like a copy of{" "}
                  <a href={`#/dogs/${saved.dog.payload.near_duplicate_of}`}>one stored before</a>: if that is the same
                  dog, delete this one and add the photo to it.
                </>
              )}
              {saved.next !== undefined &&
                ` Next, dog ${saved.next + 1} of this photo: add it too, or choose another photo.`}
            </p>
          )}
          {/* aria-disabled while busy, not disabled: the button pressed keeps the keyboard's focus */}
          <button
            type="submit"
            className="button"
            disabled={Boolean(blocked)}
            aria-disabled={busy || undefined}
            aria-describedby={blocked ? `${ids}-blocked` : undefined}
          >
            {busy ? "Adding…" : "Add dog"}
          </button>
        </div>
      </form>
    </section>
  );
}
