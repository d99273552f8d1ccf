import { type ReactNode, useCallback, useEffect, useRef, useState } from "react";
import { ApiImage } from "../components/ApiImage";
import { ErrorBanner, Notice } from "../components/ErrorBanner";
import { dogTitle } from "../components/ResultGrid";
import { Time } from "../components/Time";
import { ApiError, deleteWatch, getDog, listWatches, messageOf, renewWatchSecret, watchMatches } from "../lib/api";
import { percent } from "../lib/dogs";
import { sameLocalDay, STATUS_LABELS, statusesText, type Status } from "../lib/reports";
import type { Delivery, Dog, Watch, WatchMatch } from "../lib/types";

// New matches come in while the page is open (another user adds a found dog): look again now and then.
const POLL_MS = 5000;

/** What became of a match's webhook delivery, in words. */
export function deliveryText(d: Delivery | null): string | null {
  if (!d) return null;
  switch (d.state) {
    case "delivered":
      return "sent to your webhook";
    case "failed":
      return `webhook failed after ${d.attempts} attempts${d.last_error ? ` (${d.last_error})` : ""}`;
    default:
      return d.attempts ? `webhook: retrying (${d.attempts} attempts${d.last_error ? `, ${d.last_error}` : ""})` : "webhook: sending";
  }
}

/** Whether a delivery is still to be sent (its attempts signed with the watch's secret of the moment). */
function waiting(d: Delivery | null | undefined): d is Delivery {
  return d?.state === "pending" || d?.state === "sending";
}

/** Where an ended watch's matches went, and what became of the telling of its end (`waits`: some delivery of it is
 * still to be sent, signed with its secret). */
function EndedWebhook({ watch, waits }: { watch: Watch; waits: boolean }) {
  const d = watch.ended_delivery;
  const event = (
    <>
      (the event <code>watch.ended</code>)
    </>
  );
  return (
    <p className="small">
      Its matches went to <code>{watch.webhook_url}</code>,{" "}
      {d === undefined ? (
        // an older server, which does not say
        <>which is told once that the watch ended {event} and gets no new match.</>
      ) : (
        <>which gets no new match.</>
      )}
      {d?.state === "delivered" && d.delivered_at && (
        <>
          {" "}
          Its end was told to your webhook {event} on <Time iso={d.delivered_at} />.
        </>
      )}
      {d?.state === "failed" && (
        <>
          {" "}
          Its end could not be told to your webhook {event}: it failed after {d.attempts} attempts
          {d.last_error ? ` (${d.last_error})` : ""}.
        </>
      )}
      {waiting(d) && (
        <>
          {" "}
          Its end is being told to your webhook {event}
          {d.attempts ? `: retrying (${d.attempts} attempts${d.last_error ? `, ${d.last_error}` : ""})` : ""}.
        </>
      )}
      {waits && " What is still being sent is signed with this watch's secret, shown once, when the watch was made."}
    </p>
  );
}

/** A watched dog as far as this page knows it: loaded, deleted since (which ended its watch), or not yet known. */
type Watched = Dog | "deleted" | undefined;

function watchTitle(w: Watch, dog: Watched): string {
  const what = !w.dog_id
    ? `Dogs like ${w.photos === 1 ? "a photo" : `${w.photos} photos`}`
    : dog === "deleted"
      ? "Dogs like a deleted dog"
      : `Dogs like ${dog ? dogTitle(dog.payload) : "this one"}`;
  const status = w.status?.length ? `, ${statusesText(w.status)}` : "";
  const where = w.near && w.radius_km ? `, within ${w.radius_km} km of ${w.near}` : "";
  return `${what}${status}${where}, at least ${percent(w.min_probability)} likely the same dog`;
}

/** Where a watch's deliveries go (`children`), and the secret that signs them (shown once, when the watch was made):
 * a new one in place of a lost or leaked one, shown here once, after a confirmation (the old one stops signing at
 * once), while it would sign anything (`renewable`: the watch is open, or some delivery of it is still being sent). */
function WebhookSecret({ watch, renewable, children }: { watch: Watch; renewable: boolean; children: ReactNode }) {
  const [step, setStep] = useState<"idle" | "confirming" | "busy">("idle");
  const [secret, setSecret] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const renew = async () => {
    if (step === "busy") return;
    setStep("busy");
    try {
      setSecret(await renewWatchSecret(watch.id));
      setError(null);
    } catch (e) {
      setError(messageOf(e));
    }
    setStep("idle");
  };

  return (
    <div className="watch-webhook" data-testid="watch-webhook">
      {children}
      {secret && (
        <p className="notice" role="status" data-testid="new-secret">
          The new secret, shown only now: copy it to your webhook's receiver. <code>{secret}</code> Deliveries from now
          on are signed with it, not with the old one.
        </p>
      )}
      {!renewable ? null : step === "confirming" ? (
        <div className="confirm" role="group" aria-label="Confirm new secret">
          <p>Make a new secret? The old one signs no delivery from now on: your receiver needs the new one.</p>
          <button type="button" className="button danger small" onClick={() => void renew()} autoFocus>
            Yes, a new secret
          </button>
          <button type="button" className="button secondary small" onClick={() => setStep("idle")}>
            Cancel
          </button>
        </div>
      ) : (
        <button
          type="button"
          className="button secondary small"
          onClick={() => setStep("confirming")}
          aria-disabled={step === "busy" || undefined}
        >
          {step === "busy" ? "Making a new secret…" : "New secret…"}
        </button>
      )}
      <ErrorBanner error={error} />
    </div>
  );
}

/** The inbox: the caller's watches, each with the dogs that matched it since it was made. */
export function WatchesPage() {
  const [watches, setWatches] = useState<Watch[] | null>(null);
  const [matches, setMatches] = useState<Record<string, WatchMatch[]>>({});
  const [error, setError] = useState<string | null>(null);
  // the watched dogs, each asked for once (a 404: deleted since)
  const [dogs, setDogs] = useState<Record<string, Watched>>({});
  const asked = useRef(new Set<string>());

  const refresh = useCallback(async () => {
    try {
      const mine = await listWatches();
      const found = await Promise.all(mine.map((w) => watchMatches(w.id)));
      setWatches(mine);
      setMatches(Object.fromEntries(mine.map((w, i) => [w.id, found[i]])));
      setError(null);
    } catch (e) {
      setError(messageOf(e));
    }
  }, []);

  useEffect(() => {
    void refresh();
    const timer = window.setInterval(() => void refresh(), POLL_MS);
    return () => window.clearInterval(timer);
  }, [refresh]);

  useEffect(() => {
    // an ended watch's dog is gone: not asked for
    for (const id of new Set(watches?.filter((w) => !w.ended_at).map((w) => w.dog_id))) {
      if (!id || asked.current.has(id)) continue;
      asked.current.add(id);
      getDog(id).then(
        (dog) => setDogs((known) => ({ ...known, [id]: dog })),
        (e) => {
          if (e instanceof ApiError && e.status === 404) setDogs((known) => ({ ...known, [id]: "deleted" }));
          else asked.current.delete(id); // asked again with the next look: the title says "this one" meanwhile
        },
      );
    }
  }, [watches]);

  const remove = async (id: string) => {
    try {
      await deleteWatch(id);
      await refresh();
    } catch (e) {
      setError(messageOf(e));
    }
  };

  return (
    <section aria-labelledby="alerts-h">
      <h1 id="alerts-h">Alerts</h1>
      <p className="hint">
        Watch a dog from its page ("Watch for matches"): every dog added later that is likely the same shows up here.
      </p>
      <ErrorBanner error={error} />
      {watches === null && !error && <Notice>Loading…</Notice>}
      {watches?.length === 0 && <Notice>No watches yet.</Notice>}
      {watches?.map((w) => {
        const found = matches[w.id] ?? [];
        const dog: Watched = w.ended_at ? "deleted" : w.dog_id ? dogs[w.dog_id] : undefined;
        const title = watchTitle(w, dog);
        // an ended watch's end, or a match found before it, still being sent: its secret still signs something
        const waits = waiting(w.ended_delivery) || found.some((m) => waiting(m.delivery));
        return (
          <article key={w.id} className="watch" aria-labelledby={`watch-${w.id}-h`} data-testid="watch">
            <div className="watch-head">
              {w.dog_id && dog && dog !== "deleted" && (
                <ApiImage
                  src={`/v1/dogs/${w.dog_id}/image?size=thumbnail`}
                  alt={`Photo of ${dogTitle(dog.payload)}`}
                  className="thumb"
                />
              )}
              <h2 id={`watch-${w.id}-h`}>{w.dog_id && dog !== "deleted" ? <a href={`#/dogs/${w.dog_id}`}>{title}</a> : title}</h2>
            </div>
            {dog === "deleted" && (
              // no ended_at (an older server): the dog's 404 says it was deleted
              <p className="notice" data-testid="watched-dog-deleted">
                {w.ended_at ? (
                  <>
                    Ended <Time iso={w.ended_at} />: its dog was deleted,
                  </>
                ) : (
                  "Its dog was deleted,"
                )}{" "}
                so this watch looks for no more dogs and no more alerts come.
                {found.length ? " The matches below stay until you delete the watch." : ""}
              </p>
            )}
            <p className="small">
              {w.ended_at ? (
                <>
                  Watched from <Time iso={w.created_at} /> to{" "}
                  <Time iso={w.ended_at} date={!sameLocalDay(w.created_at, w.ended_at)} />
                </>
              ) : (
                <>
                  Since <Time iso={w.created_at} />
                </>
              )}
            </p>
            {w.webhook_url && (
              <WebhookSecret watch={w} renewable={!w.ended_at || waits}>
                {w.ended_at ? (
                  <EndedWebhook watch={w} waits={waits} />
                ) : (
                  <p className="small">
                    Matches are sent to <code>{w.webhook_url}</code>, signed with this watch's secret (the{" "}
                    <code>X-Dogsearch-Signature</code> header), which was shown once, when the watch was made.
                  </p>
                )}
              </WebhookSecret>
            )}
            {found.length === 0 ? (
              <p className="notice">{dog === "deleted" ? "No dog matched it before it ended." : "No match yet."}</p>
            ) : (
              <ul className="watch-matches">
                {found.map((m) => (
                  <li key={m.dog.id} data-testid="watch-match">
                    <a href={`#/dogs/${m.dog.id}`}>
                      <ApiImage src={m.dog.thumbnail_url} alt={`Photo of ${dogTitle(m.dog.payload)}`} className="thumb" />
                      <span>{dogTitle(m.dog.payload)}</span>
                    </a>{" "}
                    <strong>{percent(m.probability)} likely the same dog</strong>
                    {typeof m.dog.payload.status === "string" && (
                      <span>
                        {" · "}
                        <span className={`status status-${m.dog.payload.status}`}>
                          {STATUS_LABELS[m.dog.payload.status as Status] ?? m.dog.payload.status}
                        </span>
                      </span>
                    )}
                    {w.dog_id && m.dog.payload.near_duplicate_of === w.dog_id && (
                      // a poster of the lost dog shared and added again is no sighting: say so
                      <span className="copy-note" data-testid="copy-of-watched">
                        {" "}
                        · its photo looks like a copy of this dog's own
                      </span>
                    )}
                    <span className="small">
                      {" · matched "}
                      <Time iso={m.matched_at} />
                    </span>
                    {m.delivery && <span className="small"> · {deliveryText(m.delivery)}</span>}
                  </li>
                ))}
              </ul>
            )}
            <button type="button" className="button secondary small" onClick={() => void remove(w.id)}>
              {dog === "deleted" ? "Delete this watch" : "Stop watching"}
            </button>
          </article>
        );
      })}
    </section>
  );
}
