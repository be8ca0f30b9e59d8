"""Pair-order accuracy (the share of pairs whose scores order them as their labels do) and ROC AUC.

A tied score counts as wrong (the protocol of the published PubFig code), so a constant ranker
scores 0%, not 50%.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

_BLOCK = 1024  # rows per block in ordering_accuracy: bounds memory at O(block * N)


def pair_accuracy(score_a: np.ndarray, score_b: np.ndarray, label: np.ndarray) -> float:
    """Percent of non-equal pairs whose score order matches the label (ties are wrong)."""
    correct = pairs_correct(score_a, score_b, label)
    return 100.0 * float(correct.mean()) if len(correct) else float("nan")


def pairs_correct(score_a: np.ndarray, score_b: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Per non-equal pair (in order), whether its score order matches the label."""
    decided = label != 0
    return np.sign(score_a[decided] - score_b[decided]) == label[decided]


def ordering_accuracy(scores: npt.ArrayLike, ranks: npt.ArrayLike, groups: npt.ArrayLike) -> float:
    """Percent of pairs i < j (different ``groups``, different ``ranks``) whose ``scores`` order
    matches the ``ranks`` order; a tied score counts as wrong. All inputs are ``(N,)``.

    Higher rank = more of the attribute = should get the higher score.
    """
    correct, total = ordering_counts(scores, ranks, groups)
    return 100.0 * correct / total


def ordering_counts(
    scores: npt.ArrayLike, ranks: npt.ArrayLike, groups: npt.ArrayLike
) -> tuple[int, int]:
    """(pairs ordered right, pairs counted) of ``ordering_accuracy``."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    r = np.asarray(ranks).reshape(-1).astype(np.float64)  # never subtract in uint8
    g = np.asarray(groups).reshape(-1)
    if not len(s) == len(r) == len(g):
        raise ValueError(f"scores, ranks, groups lengths differ: {len(s)}, {len(r)}, {len(g)}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    correct = total = 0
    for start in range(0, len(s), _BLOCK):
        rows = slice(start, start + _BLOCK)
        dr = np.sign(r[rows, None] - r[None, :])  # (B, N)
        ds = np.sign(s[rows, None] - s[None, :])
        upper = np.arange(start, start + dr.shape[0])[:, None] < np.arange(len(s))[None, :]
        valid = upper & (g[rows, None] != g[None, :]) & (dr != 0)
        total += int(valid.sum())
        correct += int((valid & (ds == dr)).sum())  # ds == 0 never equals dr != 0: ties wrong
    if total == 0:
        raise ValueError("no pairs of different groups with different ranks")
    return correct, total


def wilson_interval(accuracy_pct: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% (Wilson score) interval, in percent, of an accuracy measured on ``n``
    independent pairs."""
    if n < 1:
        raise ValueError("an interval needs at least one pair")
    p = accuracy_pct / 100.0
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(float(100.0 * (centre - half)), 2), round(float(100.0 * (centre + half)), 2)


def roc_auc(scores: npt.ArrayLike, positive: npt.ArrayLike) -> float:
    """Area under the ROC curve: the chance that a random positive scores above a random
    negative (ties count half). NaN when either class is empty."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    pos = np.asarray(positive, dtype=bool).reshape(-1)
    if len(s) != len(pos):
        raise ValueError(f"scores and positive lengths differ: {len(s)}, {len(pos)}")
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def nearest_distance(
    points: np.ndarray, reference: np.ndarray, *, itself: bool = False
) -> np.ndarray:
    """Euclidean distance of each point (N, D) to its nearest reference point (M, D);
    ``itself``: the points are the reference, each skips itself."""
    d = np.linalg.norm(points[:, None, :] - reference[None, :, :], axis=2)
    if itself:
        np.fill_diagonal(d, np.inf)
    return d.min(axis=1)
