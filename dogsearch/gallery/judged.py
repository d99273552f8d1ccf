"""What a search judges by: how many dogs it shows, and which part of a model's vectors its verdict reads (the
math: core/judged.py)."""
from __future__ import annotations

from typing import Protocol

from dogsearch.core.judged import JudgedPart

# A search judges each result against the best other of the dogs it shows (10 by default). Where the verdict reads the
# ranking's own score, that is the next dog; where it reads a part, any of the ten may score best on it. Watches ask
# for as many, and the evaluations judge alike.
SHOWN = 10


class JudgedParts(Protocol):
    """Which part of a model's vectors its same-dog verdict reads (None: the whole vector)."""

    async def judged_part(self, model_id: str) -> JudgedPart | None: ...
