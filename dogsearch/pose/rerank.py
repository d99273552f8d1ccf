"""Pose-aware re-ranking: search results whose dogs have body proportions closer to the query's move up."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")
RERANK_PROPORTIONS = ("leg_to_body", "head_to_body")


def main_dog(pose: dict) -> dict | None:
    """The largest dog of a pose answer (as POST /v1/pose gives it), or None when it found none (a whole photo posed
    because no dog's box was found is none: its proportions may be of a body it cannot see)."""
    dogs = [d for d in pose.get("dogs") or [] if not d.get("whole_photo")]
    if not dogs:
        return None
    return max(dogs, key=lambda d: (d["box"][2] - d["box"][0]) * (d["box"][3] - d["box"][1]))


def proportion_gap(a: dict, b: dict) -> float:
    """Confidence-weighted mean |log ratio| of the main dogs' body proportions; 0 when nothing comparable."""
    da, db = main_dog(a), main_dog(b)
    if da is None or db is None:
        return 0.0
    total, weights = 0.0, 0.0
    for key in RERANK_PROPORTIONS:
        pa, pb = da["analysis"]["proportions"][key], db["analysis"]["proportions"][key]
        if pa["value"] and pb["value"] and pa["value"] > 0 and pb["value"] > 0:
            w = min(pa["confidence"], pb["confidence"])
            total += w * abs(math.log(pa["value"] / pb["value"]))
            weights += w
    return total / weights if weights > 0 else 0.0


def rerank(query_pose: dict, scored: Sequence[tuple[float, T]], poses: Sequence[dict],
           weight: float) -> list[tuple[float, T, dict]]:
    """(adjusted score, item, pose), best first: each (score, item)'s cosine score minus `weight` x the proportion
    gap between its pose and the query's."""
    ranked = [(score - weight * proportion_gap(query_pose, pose), item, pose)
              for (score, item), pose in zip(scored, poses, strict=True)]
    ranked.sort(key=lambda entry: -entry[0])
    return ranked
