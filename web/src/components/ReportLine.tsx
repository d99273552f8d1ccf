import { formatDistance, formatPlace, isPlace, STATUS_LABELS, type Status } from "../lib/reports";
import type { Payload } from "../lib/types";
import { Time } from "./Time";

interface Props {
  payload: Payload;
  /** km from the place searched (or from the dog of "more like this") */
  distanceKm?: number | null;
  /** when it was seen, where the answer says it apart from the payload (a search result's seen_at) */
  seenAt?: string | null;
  /** show the place's coordinates too (the dog's page) */
  showPlace?: boolean;
}

/** A dog's report in one line: its status, how far away and when it was seen. Nothing for a dog without one. */
export function ReportLine({ payload, distanceKm, seenAt, showPlace }: Props) {
  const status = typeof payload.status === "string" ? payload.status : null;
  const seen = seenAt ?? (typeof payload.seen_at === "string" ? payload.seen_at : null);
  const place = isPlace(payload.location) ? payload.location : null;
  if (!status && !seen && distanceKm == null && !(showPlace && place)) return null;
  return (
    <p className="report-line" data-testid="report">
      {status && <span className={`status status-${status}`}>{STATUS_LABELS[status as Status] ?? status}</span>}
      {distanceKm != null && <span>{formatDistance(distanceKm)} away</span>}
      {showPlace && place && <span>at {formatPlace(place)}</span>}
      {seen && (
        <span>
          seen <Time iso={seen} />
        </span>
      )}
    </p>
  );
}
