"""Is this the same dog? Each result's cosine turned into a probability by the calibration of the collection's vectors
(models/<model>/calibration.json, dogsearch/models/calibration.py) and a verdict by the gateway's thresholds. Vectors
without a calibration give no probability (null) and no verdict: a search never fails for want of one. A list's
best result is only as likely as it stands out from the next dog (Calibration.results): a look-alike of the
query's breed scores as high as the dog itself would; but not from another result that is probably the same dog (two
reports of one dog, told by the two entries' own cosine); and the query's own photo and dog, stored (Match.exact), is
certain. A calibration with a ``part`` (a fusion's: ranked by the whole
vector, judged by its ViT part, dogsearch/core/judged.py) reads each match's part score, never its ranking score.
Where the results' own cosines cannot be read (the search service fails that lookup after the ranking), the verdicts
are read without them, as before they were asked for, and the answer says so: the ranking in hand is not lost.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client import Counter

from dogsearch.core.errors import TimedOut, Unavailable
from dogsearch.core.judged import JudgedPart, judged_part
from dogsearch.core.paths import MODELS_DIR
from dogsearch.gallery.judged import SHOWN
from dogsearch.gallery.records import Match
from dogsearch.models.calibration import Calibration, Verdict, find, verdict
from dogsearch.services.gateway.settings import GatewaySettings

# The fewest dogs a search asks for: each result it shows is judged by its lead over the best other of them (for a
# whole-vector model the next dog; for one judged by a part, any of them: core/judged.py), so a verdict does not
# change with how many results were asked for, up to SHOWN.
JUDGED = SHOWN

log = logging.getLogger("dogsearch.gateway")
UNCHECKED = Counter("dogsearch_verdicts_unchecked_total",
                    "lists judged without their results' own cosines: the search service failed that lookup")

Alike = Callable[[Sequence[Match]], Awaitable[np.ndarray]]  # matches -> their own cosines, (n, n)

NO_LIKELY = "No likely match: none of these is likely the same dog."
ONLY_POSSIBLE = "No likely match: the best may be the same dog; compare its photos with yours."
NO_DOGS = "No dogs to compare with: none is stored, or none passes the search's filters."


@dataclass(frozen=True)
class Judged:
    probabilities: list[float | None]
    verdicts: list[Verdict | None]
    best_verdict: Verdict | None  # None: not calibrated
    message: str | None  # said when nothing is likely
    unchecked: bool = False  # read without the results' own cosines (that lookup failed): twice-stored dogs rival


class SameDog:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self._dir = settings.calibration_dir or MODELS_DIR
        self._found: dict[str, Calibration | None] = {}  # by the vectors' model id; a file is read once

    async def calibration(self, model_id: str) -> Calibration | None:
        if model_id not in self._found:
            self._found[model_id] = await asyncio.to_thread(find, model_id, self._dir)
        return self._found[model_id]

    async def judged_part(self, model_id: str) -> JudgedPart | None:
        """The part of these vectors that verdicts read (None: the whole vector, or no calibration)."""
        cal = await self.calibration(model_id)
        return None if cal is None or cal.part is None else judged_part(cal.part)

    async def probabilities(self, model_id: str, scores: np.ndarray) -> np.ndarray | None:
        """Same-dog probabilities of cosine scores of `model_id` vectors (None: no calibration), at the prior."""
        cal = await self.calibration(model_id)
        return None if cal is None else cal.probabilities(scores, self.settings.same_dog_prior)

    async def leading(self, model_id: str, scores: np.ndarray, others: np.ndarray) -> np.ndarray | None:
        """Same-dog probabilities of scores each capped by its lead over the best other dog's score for the same query
        (NaN: none), as a search's first result is judged (None: no calibration), at the prior."""
        cal = await self.calibration(model_id)
        return None if cal is None else cal.leading(scores, others, self.settings.same_dog_prior)

    def verdict(self, p: float) -> Verdict:
        """A probability against the gateway's thresholds."""
        return verdict(p, self.settings.same_dog_possible, self.settings.same_dog_likely)

    async def judge(self, model_id: str | None, matches: Sequence[Match], shown: int | None = None,
                    alike: Alike | None = None) -> Judged:
        """The first `shown` (all by default) of a ranked list of matches judged; the ones after them are the dogs
        the shown ones must stand out from (a search asks for at least JUDGED dogs for that). `alike`: the own
        cosines of the first JUDGED matches (Gallery.alike), asked only where a verdict reads them: two of them that
        are probably one dog (two reports of it) do not hold each other back (Calibration.results); where it fails
        (the search service down or slow since the ranking), the verdicts are read without it, `unchecked`."""
        shown = len(matches) if shown is None else min(shown, len(matches))
        cal = None if model_id is None else await self.calibration(model_id)
        if cal is not None and cal.part is not None and any(m.judged is None for m in matches):
            cal = None  # ranked without the part's scores (the model was not known then): no verdict, not a wrong one
        if cal is None:
            return Judged([None] * shown, [None] * shown, None, None if matches else NO_DOGS)
        scores = [m.verdict_score for m in matches]
        own, unchecked = None, False
        if alike is not None and cal.first is not None and len(matches) > 1:
            top = min(len(matches), JUDGED)
            try:
                cosines = await alike(matches[:top])
            except (Unavailable, TimedOut) as exc:
                log.warning("verdicts read without the results' own cosines",
                            extra={"error": exc.reason, "source": exc.source})
                UNCHECKED.inc()
                unchecked = True
            else:
                own = np.full((len(matches), len(matches)), np.nan)  # the dogs past the first JUDGED: rivals, as before
                own[:top, :top] = cosines
        s = self.settings
        probabilities = [1.0 if m.exact else round(float(p), 4)
                         for m, p in zip(matches, cal.results(list(scores), s.same_dog_prior, own)[:shown],
                                         strict=False)]
        verdicts = [self.verdict(p) for p in probabilities]
        best = self.verdict(max(probabilities, default=0.0))
        return Judged(probabilities, verdicts, best, _message(best, bool(matches)), unchecked)


def _message(best: Verdict | None, matches: bool) -> str | None:
    """What a list says when its best is not likely; a *possible* one is worth a look, and the words say so."""
    if not matches:
        return NO_DOGS
    return None if best == "likely" else ONLY_POSSIBLE if best == "possible" else NO_LIKELY
