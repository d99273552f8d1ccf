import { useId } from "react";
import { takenNote, withTaken, type ReportInput, type Status } from "../lib/reports";
import { useTaken } from "../lib/useTaken";
import { StatusOptions } from "./StatusOptions";

interface Props {
  value: ReportInput;
  onChange: (value: ReportInput) => void;
  disabled?: boolean;
  /** the photo being added: where and when it was taken can be filled in from it (absent: no photo to read, a stored
   * dog's report being changed) */
  photo?: File | null;
}

/** A dog's report on the add form: its status, where ("lat, lon") and when it was seen. Map-free on purpose; the
 * place and time can come from the photo (its EXIF, read by the server when the user asks, and shown to be checked
 * before anything is added). */
export function ReportFields({ value, onChange, disabled, photo }: Props) {
  const ids = useId();
  const taken = useTaken(photo);
  const fromPhoto = async () => {
    const said = await taken.ask(takenNote);
    if (said) onChange(withTaken(value, said));
  };

  return (
    <fieldset className="report-fields" disabled={disabled}>
      <legend>Lost &amp; found report (optional)</legend>
      <label htmlFor={`${ids}-status`}>Status</label>
      <select
        id={`${ids}-status`}
        value={value.status ?? ""}
        onChange={(e) => onChange({ ...value, status: e.target.value as Status | "" })}
      >
        <StatusOptions none="no report" />
      </select>
      {photo !== undefined && (
        <div className="from-photo">
          <button type="button" className="button small secondary" onClick={fromPhoto} disabled={!photo}>
            Where and when from the photo
          </button>
          <small className="muted" aria-live="polite">
            {taken.note ?? "what a phone or camera recorded (the photo's own time and GPS position); check it before adding"}
          </small>
        </div>
      )}
      <label htmlFor={`${ids}-place`}>Where it was seen</label>
      <input
        id={`${ids}-place`}
        value={value.place ?? ""}
        onChange={(e) => onChange({ ...value, place: e.target.value })}
        placeholder="52.52, 13.405"
        inputMode="decimal"
        autoComplete="off"
        aria-describedby={`${ids}-place-help`}
      />
      <small id={`${ids}-place-help`} className="muted">
        latitude, longitude (copy them from any map app)
      </small>
      <label htmlFor={`${ids}-seen`}>When it was seen</label>
      <input
        id={`${ids}-seen`}
        type="datetime-local"
        value={value.seenAt ?? ""}
        onChange={(e) => onChange({ ...value, seenAt: e.target.value })}
      />
    </fieldset>
  );
}
