import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { messageOf, updateDog } from "../lib/api";
import { isPlace, localInput, reportFormFields, STATUSES, type ReportInput } from "../lib/reports";
import type { Dog, Payload } from "../lib/types";
import { oneLine } from "../lib/dogs";
import { DogFields, type DogFieldValues } from "./DogFields";
import { ErrorBanner } from "./ErrorBanner";
import { ReportFields } from "./ReportFields";

/** The form's state: the add form's fields. */
export interface DogForm {
  fields: DogFieldValues;
  report: ReportInput;
}

const text = (v: unknown) => (typeof v === "string" || typeof v === "number" ? String(v) : "");

/** A stored dog's fields as the form shows them (its time in this browser's zone, as the add form takes it). */
export function formOf(payload: Payload): DogForm {
  return {
    fields: { name: text(payload.name), breed: text(payload.breed), notes: text(payload.notes) },
    report: {
      status: STATUSES.find((s) => s === payload.status) ?? "",
      place: isPlace(payload.location) ? `${payload.location.lat}, ${payload.location.lon}` : "",
      seenAt: typeof payload.seen_at === "string" ? localInput(payload.seen_at) : "",
    },
  };
}

/** What the user changed, as PATCH's fields: a field emptied is null (it goes); one left as it was is not sent (a
 * time shown to the minute is not rounded). Throws on a place or a time that is none. */
export function changedFields(before: DogForm, after: DogForm): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of ["name", "breed", "notes"] as const) {
    // a name or breed as one line (a tab pasted from a spreadsheet: a space), as the form shows it
    const value = (key === "notes" ? after.fields[key] : oneLine(after.fields[key])).trim();
    if (value !== before.fields[key].trim()) out[key] = value || null;
  }
  const sent = Object.fromEntries(reportFormFields(after.report)); // checked as the add form checks them
  const report: [keyof ReportInput, string][] = [["status", "status"], ["place", "location"], ["seenAt", "seen_at"]];
  for (const [input, field] of report) {
    if ((after.report[input] ?? "").trim() !== (before.report[input] ?? "").trim()) out[field] = sent[field] ?? null;
  }
  return out;
}

interface Props {
  dog: Dog;
  /** the server's answer (the dog without its photos) and the fields that were sent */
  onSaved: (answer: Dog, changed: Record<string, unknown>) => void;
  onCancel: () => void;
}

/** Changes a stored dog's name, breed, notes and report (its owner's or an admin's): the add form's fields. */
export function EditDogForm({ dog, onSaved, onCancel }: Props) {
  const [before] = useState(() => formOf(dog.payload));
  const [fields, setFields] = useState(before.fields);
  const [report, setReport] = useState(before.report);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const form = useRef<HTMLFormElement>(null);

  // it takes the place of the fields shown and of the button that opened it: the keyboard starts at its first field
  useEffect(() => form.current?.querySelector("input")?.focus(), []);

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    if (busy) return;
    let changed: Record<string, unknown>;
    try {
      changed = changedFields(before, { fields, report });
    } catch (err) {
      setError(messageOf(err));
      return;
    }
    if (!Object.keys(changed).length) return onCancel(); // nothing to send
    setBusy(true);
    setError(null);
    try {
      onSaved(await updateDog(dog.id, changed), changed);
    } catch (err) {
      setError(messageOf(err)); // what was typed stays, to try again
    } finally {
      setBusy(false);
    }
  };

  return (
    <form
      ref={form}
      className="fields edit-dog"
      aria-label="Edit this dog"
      onSubmit={onSubmit}
      onKeyDown={(e: KeyboardEvent) => {
        if (e.key === "Escape" && !busy) {
          e.preventDefault();
          onCancel();
        }
      }}
    >
      <DogFields value={fields} onChange={setFields} readOnly={busy} />
      <ReportFields value={report} onChange={setReport} disabled={busy} />
      <small className="muted">Emptied, a field is removed from the dog.</small>
      <ErrorBanner error={error} />
      <div className="actions">
        {/* aria-disabled: the button pressed keeps the keyboard's focus while the dog is saved */}
        <button type="submit" className="button" aria-disabled={busy || undefined}>
          {busy ? "Saving…" : "Save"}
        </button>
        <button type="button" className="button secondary" onClick={onCancel} disabled={busy}>
          Cancel
        </button>
      </div>
    </form>
  );
}
