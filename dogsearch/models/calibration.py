"""A model's score → "same dog" probability map: `calibration.json` next to the model's trained delta
(models/<model id>/), written by `dogsearch train calibration` (dogsearch/eval/verification.py fits it).

The file names the vectors it was fit on (``vectors``: the model id the embedder reports, e.g.
``vit_small_dinov2-lora-dogs-v1@dogcrop-m0.1`` for its dog crops), so whole-photo vectors or another crop margin
never borrow it; ``sha256`` is the checksum of the rest of the file (canonical JSON), so an edited or damaged file
is refused rather than trusted. The map gives P(same dog | cosine) at the prior it was fit at (``prior``: 0.5,
balanced pairs); another prior rescales its odds (``probability(score, prior)``).

A ranked list needs more than each pair's score: other dogs of the query's breed score as high as photos of one dog
do, so a search's first result, the most alike of many, is often a look-alike whose score alone reads as "same
dog". What tells them apart is how far the first result stands out from the next dog (``first``: a logistic curve of
that gap, fit on searches of held-out-style galleries mixing individual dogs with dogs of one breed).
``results(scores)`` applies both: a result is at most as likely as its lead over the best other result says.

One dog stored twice (a lost report and a found one) is found twice, and its two entries would hold each other back:
``results(scores, alike=...)`` takes the results' own cosines and asks of each pair whether it is one dog
(``one_dog``), as a search with either one's photo among these results would answer; a result's rival is then the best
other result that is another dog, weighed by those probabilities (docs/lost-and-found.md, "One dog stored twice").

A fusion's vectors are judged by their ViT part (``part``: ``{"dims", "scale"}``, dogsearch/core/judged.py): the
map is then the base ViT's own, and the scores it reads are the cosines of the vectors' first ``dims`` components.
The part may also say how a search re-ranks its first dogs (``rerank``: ``{"weight", "cap", "depth"}``).
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dogsearch.core.judged import judged_part
from dogsearch.core.paths import MODELS_DIR

FILE_NAME = "calibration.json"
METHODS = ("isotonic", "platt")
Verdict = Literal["likely", "possible", "unlikely"]
# Probabilities are kept off 0 and 1: a finite sample never proves a pair the same (or another) dog.
P_FLOOR, P_CEIL = 0.001, 0.999

log = logging.getLogger(__name__)


class CalibrationError(ValueError):
    """A calibration file that is missing pieces, fails its checksum or belongs to other vectors."""


@dataclass(frozen=True)
class Calibration:
    vectors: str  # the model id of the vectors it was fit on
    method: str
    params: dict
    prior: float  # the share of same-dog pairs it was fit at
    extra: dict = field(default_factory=dict, compare=False)  # how it was made and measured (kept in the file)
    first: dict | None = None  # {"a", "b"}: P(the best-scored result is the dog | gap to the next one's score)
    part: dict | None = None  # {"dims", "scale"[, "rerank"]}: the scores read are of the vectors' leading dims

    def probabilities(self, scores: Any, prior: float | None = None) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        if self.method == "isotonic":
            p = np.interp(s, self.params["x"], self.params["y"])
        elif self.method == "platt":
            p = 1.0 / (1.0 + np.exp(-(self.params["a"] * s + self.params["b"])))
        else:
            raise CalibrationError(f"unknown calibration method {self.method!r}: one of {', '.join(METHODS)}")
        return self._at(p, prior)

    def _at(self, p: np.ndarray, prior: float | None) -> np.ndarray:
        p = np.clip(p, P_FLOOR, P_CEIL)
        if prior is not None and prior != self.prior:  # Bayes: the likelihood ratio is the prior-free part
            odds = p / (1 - p) * (prior / (1 - prior)) / (self.prior / (1 - self.prior))
            p = odds / (1 + odds)
        return p

    def results(self, scores: Any, prior: float | None = None, alike: Any = None) -> np.ndarray:
        """The probabilities of a ranked list's results (each a dog): each its pair's, at most what its lead over
        the best other result says (the first's lead is its gap to the next dog; every other result trails, so
        reads as unlikely). A list of one has no other dog to stand out from: its pair's probability alone.
        ``alike``: the results' own cosines, (n, n), NaN where not known: the best other result is then a rival only
        as far as it is another dog (``one_dog``); where it may be this one, the next one is, and so on."""
        s = np.asarray(scores, dtype=np.float64)
        if len(s) < 2:
            return self.probabilities(s, prior)
        if alike is None or self.first is None:
            top2 = np.sort(s)[-2:]
            return self.leading(s, np.where(s == top2[1], top2[0], top2[1]), prior)  # against the best of the others
        n = len(s)
        order = np.argsort(-s, kind="stable")
        others = np.broadcast_to(order, (n, n))[order[None, :] != np.arange(n)[:, None]].reshape(n, n - 1)
        one = np.take_along_axis(self.one_dog(alike), others, axis=1)
        # each other result, best first, is the rival when every one before it is this dog and it is not
        rival = np.cumprod(np.c_[np.ones(n), one[:, :-1]], axis=1) * (1.0 - one)
        leads = self.leading(np.repeat(s[:, None], n - 1, axis=1), s[others], prior)
        return (rival * leads).sum(axis=1) + one.prod(axis=1) * self.probabilities(s, prior)

    def one_dog(self, alike: Any) -> np.ndarray:
        """(n, n): how likely two results are one dog, from their own cosines (NaN: not known, two dogs): each judged
        as the first result of a search with the other's photo among these results would be (its pair's probability
        capped by its lead over the best of the rest, at the prior the map was fit at), the pair the lower of the
        two, since a look-alike of a breed is as near to another as one dog's two photos are."""
        a = np.asarray(alike, dtype=np.float64)
        n = len(a)
        known = ~np.isnan(a) & ~np.eye(n, dtype=bool)
        near = np.where(known, a, -np.inf)
        order = np.argsort(-near, axis=1, kind="stable")[:, :2]
        best = np.take_along_axis(near, order, axis=1)
        rest = np.where(np.arange(n)[None, :] == order[:, :1], best[:, 1:], best[:, :1])  # best of the others
        with np.errstate(invalid="ignore"):
            p = self.leading(np.where(known, a, 0.0), np.where(np.isinf(rest), np.nan, rest))
        # the floor says "another dog" as plainly as the map can: 0 here, so unlike results are judged as before
        p = np.where(known & (p > P_FLOOR), p, 0.0)
        return np.minimum(p, p.T)

    def leading(self, scores: Any, others: Any, prior: float | None = None) -> np.ndarray:
        """Each score's pair probability, capped by its lead over `others` (the best other dog's score for the same
        query; NaN: there is no other dog, and the pair's probability stands alone)."""
        s = np.asarray(scores, dtype=np.float64)
        p = self.probabilities(s, prior)
        lead = s - np.asarray(others, dtype=np.float64)
        if self.first is None:
            return p
        with np.errstate(invalid="ignore"):
            stands_out = self._at(1.0 / (1.0 + np.exp(-(self.first["a"] * lead + self.first["b"]))), prior)
        return np.where(np.isnan(lead), p, np.minimum(p, stands_out))

    def probability(self, score: float, prior: float | None = None) -> float:
        return float(self.probabilities([score], prior)[0])

    def to_json(self) -> dict:
        body = {"vectors": self.vectors, "method": self.method, "params": self.params, "prior": self.prior,
                **({"first": self.first} if self.first is not None else {}),
                **({"part": self.part} if self.part is not None else {}), **self.extra}
        return {**body, "sha256": checksum(body)}


def _part(part: dict) -> dict:
    out = {"dims": int(part["dims"]), "scale": float(part["scale"])}
    if part.get("rerank") is not None:
        r = part["rerank"]
        out["rerank"] = {"weight": float(r["weight"]), "cap": float(r["cap"]), "depth": int(r["depth"])}
    return out


def checksum(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def parse(data: dict) -> Calibration:
    body = {k: v for k, v in data.items() if k != "sha256"}
    if data.get("sha256") != checksum(body):
        raise CalibrationError("checksum mismatch: the file was changed after `dogsearch train calibration` wrote it")
    try:
        first, part = body.pop("first", None), body.pop("part", None)
        cal = Calibration(str(body.pop("vectors")), str(body.pop("method")), dict(body.pop("params")),
                          float(body.pop("prior")), body,
                          None if first is None else {"a": float(first["a"]), "b": float(first["b"])},
                          None if part is None else _part(part))
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(f"missing or malformed {exc}") from exc
    if cal.first is not None and not cal.first["a"] > 0:
        raise CalibrationError("first: a result that stands out more must not be less likely (a > 0)")
    if cal.part is not None:
        try:
            judged_part(cal.part)  # the checks the gallery's search applies to it
        except ValueError as exc:
            raise CalibrationError(f"part: {exc}") from exc
    if cal.method not in METHODS:
        raise CalibrationError(f"unknown method {cal.method!r}")
    if not 0 < cal.prior < 1:
        raise CalibrationError(f"prior {cal.prior} is not between 0 and 1")
    if cal.method == "isotonic":
        x, y = cal.params.get("x"), cal.params.get("y")
        if not x or not y or len(x) != len(y) or np.any(np.diff(x) < 0) or np.any(np.diff(y) < 0):
            raise CalibrationError("isotonic knots must be two non-decreasing lists of one length")
    return cal


def path_for(model_id: str, models_dir: Path = MODELS_DIR) -> Path:
    """models/<the model id without its crop suffix>/calibration.json."""
    return Path(models_dir) / model_id.split("@", 1)[0] / FILE_NAME


def load(path: Path) -> Calibration:
    try:
        return parse(json.loads(Path(path).read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"{path}: {exc}") from exc
    except CalibrationError as exc:
        raise CalibrationError(f"{path}: {exc}") from exc


def find(model_id: str, models_dir: Path = MODELS_DIR) -> Calibration | None:
    """The calibration of these vectors, or None when the model has none (or one for other vectors). A broken file is
    logged and treated as none: results then carry no probability rather than a wrong one."""
    path = path_for(model_id, models_dir)
    if not path.is_file():
        return None
    try:
        cal = load(path)
    except CalibrationError as exc:
        log.error("calibration ignored: %s", exc)
        return None
    if cal.vectors != model_id:
        log.warning("calibration %s is for %s, not %s: no same_dog probabilities", path, cal.vectors, model_id)
        return None
    return cal


def verdict(p: float, possible: float, likely: float) -> Verdict:
    return "likely" if p >= likely else "possible" if p >= possible else "unlikely"
