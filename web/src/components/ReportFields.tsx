import { useId } from "react";
import { STATUS_LABELS, STATUSES, type ReportInput, type Status } from "../lib/reports";

interface Props {
  value: ReportInput;
  onChange: (value: ReportInput) => void;
  disabled?: boolean;
}

/** A dog's report on the add form: its status, where ("lat, lon") and when it was seen. Map-free on purpose. */
export function ReportFields({ value, onChange, disabled }: Props) {
  const ids = useId();
  return (
    <fieldset className="report-fields" disabled={disabled}>
      <legend>Lost &amp; found report (optional)</legend>
      <label htmlFor={`${ids}-status`}>Status</label>
      <select
        id={`${ids}-status`}
        value={value.status ?? ""}
        onChange={(e) => onChange({ ...value, status: e.target.value as Status | "" })}
      >
        <option value="">no report</option>
        {STATUSES.map((s) => (
          <option key={s} value={s}>
            {STATUS_LABELS[s]}
          </option>
        ))}
      </select>
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
