import { formatWhen } from "../lib/reports";

/** A moment as every page shows it: on the reader's own clock, its zone named; the instant itself for machines. */
export function Time({ iso }: { iso: string }) {
  return <time dateTime={iso}>{formatWhen(iso)}</time>;
}
