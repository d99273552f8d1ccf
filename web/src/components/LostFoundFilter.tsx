import { useId } from "react";
import { COUNTERPARTS, FOR_STATUS_LABELS, nearNote, statusesText, type ReportFilter, type Status } from "../lib/reports";
import { useTaken } from "../lib/useTaken";
import { StatusOptions } from "./StatusOptions";

interface Props {
  value: ReportFilter;
  onChange: (value: ReportFilter) => void;
  /** the photo searched with: "near" can be where it was taken */
  photo?: File | null;
}

const FOR_STATUSES = Object.keys(FOR_STATUS_LABELS) as (keyof typeof FOR_STATUS_LABELS)[];

/** The "Lost & found" part of the search filters: whose counterparts (or which status), near where, and when. */
export function LostFoundFilter({ value, onChange, photo }: Props) {
  const ids = useId();
  const set = (patch: Partial<ReportFilter>) => onChange({ ...value, ...patch });
  const taken = useTaken(photo);
  const nearPhoto = async () => {
    const where = (await taken.ask(nearNote))?.location;
    if (where) set({ near: `${where.lat}, ${where.lon}` });
  };
  return (
    <fieldset className="lost-found">
      <legend>Lost &amp; found</legend>
      <label htmlFor={`${ids}-for`}>I have</label>
      <select
        id={`${ids}-for`}
        value={value.forStatus ?? ""}
        onChange={(e) => set({ forStatus: e.target.value as ReportFilter["forStatus"] })}
      >
        <option value="">any dog</option>
        {FOR_STATUSES.map((s) => (
          <option key={s} value={s}>
            {FOR_STATUS_LABELS[s]}
          </option>
        ))}
      </select>
      <label htmlFor={`${ids}-status`}>Status</label>
      <select
        id={`${ids}-status`}
        value={value.forStatus ? "" : (value.status ?? "")}
        onChange={(e) => set({ status: e.target.value as Status | "" })}
        disabled={Boolean(value.forStatus)}
        title={value.forStatus ? "Set by “I have”" : undefined}
      >
        {/* "I have" decides: the statuses it searches, not "any" */}
        {value.forStatus ? (
          <option value="">{statusesText(COUNTERPARTS[value.forStatus])}</option>
        ) : (
          <StatusOptions none="any status" />
        )}
      </select>
      <label htmlFor={`${ids}-near`}>Near</label>
      <input
        id={`${ids}-near`}
        value={value.near ?? ""}
        onChange={(e) => set({ near: e.target.value })}
        placeholder="lat, lon"
        inputMode="decimal"
        autoComplete="off"
      />
      {photo && (
        <div className="from-photo">
          <button type="button" className="button small secondary" onClick={nearPhoto}>
            Near where the photo was taken
          </button>
          {taken.note && (
            <small className="muted" aria-live="polite">
              {taken.note}
            </small>
          )}
        </div>
      )}
      <label htmlFor={`${ids}-radius`}>Within (km)</label>
      <input
        id={`${ids}-radius`}
        type="number"
        min="0.1"
        max="20000"
        step="any"
        value={value.radiusKm ?? ""}
        onChange={(e) => set({ radiusKm: e.target.value })}
        placeholder="any distance"
      />
      <label htmlFor={`${ids}-after`}>Seen after</label>
      <input id={`${ids}-after`} type="date" value={value.seenAfter ?? ""} onChange={(e) => set({ seenAfter: e.target.value })} />
      <label htmlFor={`${ids}-before`}>Seen before</label>
      <input
        id={`${ids}-before`}
        type="date"
        value={value.seenBefore ?? ""}
        onChange={(e) => set({ seenBefore: e.target.value })}
      />
    </fieldset>
  );
}
