import { sameDogText, scoreBand } from "../lib/explain";
import type { Verdict } from "../lib/types";

export function ScoreBar({ score }: { score: number }) {
  const pct = Math.max(0, Math.min(1, score)) * 100;
  return (
    <div className="score">
      <span className="score-value">{score.toFixed(3)}</span>
      <span className="score-band">{scoreBand(score).label}</span>
      <div className="score-track" aria-hidden="true">
        <div className="score-fill" style={{ width: `${pct}%` }} />
      </div>
    </div>
  );
}

/** A calibrated result: the chance that it is the same dog, in words, with the cosine beside it. */
export function SameDogBar({ probability, verdict, score }: { probability: number; verdict: Verdict; score: number }) {
  return (
    <div className={`score same-dog ${verdict}`} data-testid="same-dog">
      <span className="score-band">{sameDogText(probability, verdict)}</span>
      <div className="score-track" aria-hidden="true">
        <div className="score-fill" style={{ width: `${Math.max(0, Math.min(1, probability)) * 100}%` }} />
      </div>
      <span className="muted small">
        similarity <span className="score-value">{score.toFixed(3)}</span>
      </span>
    </div>
  );
}
