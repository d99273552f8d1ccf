import { STATUS_LABELS, STATUSES } from "../lib/reports";

/** The options of a report status <select>: `none` (the empty value) first, then each status in words. */
export function StatusOptions({ none }: { none: string }) {
  return (
    <>
      <option value="">{none}</option>
      {STATUSES.map((s) => (
        <option key={s} value={s}>
          {STATUS_LABELS[s]}
        </option>
      ))}
    </>
  );
}
