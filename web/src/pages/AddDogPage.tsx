import { useEffect, useId, useState, type FormEvent } from "react";
import { ErrorBanner } from "../components/ErrorBanner";
import { PhotoPicker } from "../components/PhotoPicker";
import { dogTitle } from "../components/ResultGrid";
import { addDog, messageOf } from "../lib/api";
import type { Dog } from "../lib/types";

export function AddDogPage() {
  const ids = useId();
  const [file, setFile] = useState<File | null>(null);
  const [preview, setPreview] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [breed, setBreed] = useState("");
  const [notes, setNotes] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState<{ dog: Dog; created: boolean } | null>(null);

  useEffect(() => () => void (preview && URL.revokeObjectURL(preview)), [preview]);

  const onPick = (f: File) => {
    setFile(f);
    setPreview(URL.createObjectURL(f));
    setSaved(null);
    setError(null);
  };

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    if (!file) {
      setError("Pick a photo of the dog first.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      setSaved(await addDog({ image: file, name, breed, notes }));
      setFile(null);
      setPreview(null);
      setName("");
      setBreed("");
      setNotes("");
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby={`${ids}-h`}>
      <h1 id={`${ids}-h`}>Add a dog</h1>
      <form className="add-form" onSubmit={onSubmit}>
        <PhotoPicker label={file ? "Choose another photo" : "Choose a photo"} onPick={onPick} previewUrl={preview} />
        <div className="fields">
          <label htmlFor={`${ids}-name`}>Name</label>
          <input id={`${ids}-name`} value={name} onChange={(e) => setName(e.target.value)} maxLength={200} />
          <label htmlFor={`${ids}-breed`}>Breed</label>
          <input id={`${ids}-breed`} value={breed} onChange={(e) => setBreed(e.target.value)} maxLength={200} />
          <label htmlFor={`${ids}-notes`}>Notes</label>
          <textarea id={`${ids}-notes`} value={notes} onChange={(e) => setNotes(e.target.value)} rows={3} />
          <ErrorBanner error={error} />
          {saved && (
            <p className="success" role="status">
              {saved.created ? "Added " : "This photo was already stored as "}
              <a href={`#/dogs/${saved.dog.id}`}>{dogTitle(saved.dog.payload)}</a>.
            </p>
          )}
          <button type="submit" className="button" disabled={busy}>
            {busy ? "Adding…" : "Add dog"}
          </button>
        </div>
      </form>
    </section>
  );
}
