import { scoreBand } from "../lib/explain";

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
