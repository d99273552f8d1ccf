import { formatWhen } from "../lib/reports";

/** A moment as every page shows it: on the reader's own clock, its zone named; the instant itself for machines.
 * `date` false: its time of day alone, beside another time of the same day that says the date. */
export function Time({ iso, date = true }: { iso: string; date?: boolean }) {
  return <time dateTime={iso}>{formatWhen(iso, { date })}</time>;
}
