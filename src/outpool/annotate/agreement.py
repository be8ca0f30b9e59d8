"""Inter-annotator agreement: Krippendorff's alpha (nominal) over the votes of a batch, and the
pairs people disagree on most.

Alpha = 1 - D_o / D_e: the disagreement observed within pairs against the disagreement expected
if the same answers were handed out at random. 1 is perfect agreement, 0 is chance, below 0 is
systematic disagreement. It takes any number of votes per pair (pairs with one vote carry no
information and are left out) and every answer, "can't tell" included, as its own category, so
it fits crowd batches where the number of people per pair varies, which Fleiss' kappa does not.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from outpool.annotate.votes import VoteTable


def krippendorff_alpha(votes: VoteTable) -> float | None:
    """Nominal Krippendorff's alpha of ``votes``; None where fewer than two pairs have two
    votes or every vote is the same answer (agreement is then undefined, not perfect)."""
    units: dict[str, Counter[int]] = {}
    for pair, answer in zip(votes.pair_id.tolist(), votes.answer.tolist(), strict=True):
        units.setdefault(pair, Counter())[int(answer)] += 1
    pairable = [c for c in units.values() if sum(c.values()) >= 2]
    if len(pairable) < 2:
        return None
    # the coincidence matrix: within each pair, every ordered pair of its m votes, weight 1/(m-1)
    coincide: dict[tuple[int, int], float] = {}
    for counts in pairable:
        m = sum(counts.values())
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                value = n_c * (n_k - (c == k)) / (m - 1)
                coincide[(c, k)] = coincide.get((c, k), 0.0) + value
    n = sum(coincide.values())
    totals: dict[int, float] = {}
    for (c, _), value in coincide.items():
        totals[c] = totals.get(c, 0.0) + value
    observed = sum(v for (c, k), v in coincide.items() if c != k)
    expected = (n * n - sum(t * t for t in totals.values())) / (n - 1)
    if expected <= 0:
        return None
    return float(1.0 - observed / expected)


@dataclass(frozen=True)
class Disagreement:
    """One pair's answers: how many votes each answer got, and their spread (the share of
    votes that are not the most common answer)."""

    pair_id: str
    counts: dict[int, int]
    spread: float


def most_disputed(votes: VoteTable, limit: int = 12) -> list[Disagreement]:
    """The pairs with at least two votes whose answers are most split, most split first (ties:
    more votes first, then pair id)."""
    by_pair: dict[str, Counter[int]] = {}
    for pair, answer in zip(votes.pair_id.tolist(), votes.answer.tolist(), strict=True):
        by_pair.setdefault(pair, Counter())[int(answer)] += 1
    found = []
    for pair, counts in by_pair.items():
        total = sum(counts.values())
        spread = 1.0 - max(counts.values()) / total
        if total >= 2 and spread > 0:
            found.append((-spread, -total, pair, counts))
    found.sort()
    return [
        Disagreement(pair, dict(sorted(counts.items())), round(float(-s), 3))
        for s, _, pair, counts in found[:limit]
    ]


def votes_per_hour(created_at: np.ndarray) -> float | None:
    """Throughput of one annotator: votes per hour between their first and last vote (None
    with fewer than two votes or no time between them)."""
    if len(created_at) < 2:
        return None
    span = float(np.max(created_at) - np.min(created_at))
    return None if span <= 0 else round(3600.0 * (len(created_at) - 1) / span, 1)
