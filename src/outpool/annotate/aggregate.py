"""Aggregation of individual votes into pair labels: pure functions, no I/O.

The paper's protocol (5 votes per pair, majority vote, illegible pairs discarded, low agreement /
low confidence pairs pruned) is ``majority_vote``; ``per_annotator_stats`` audits workers.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np

from outpool.annotate.protocol import LabelResult
from outpool.annotate.votes import REJECT, VoteTable
from outpool.errors import DataError

# Column of each answer in the (P, 4) count matrices: -1 -> 0, 0 -> 1, +1 -> 2, REJECT -> 3.
_REJECT_COL = 3


class AnnotatorStats(TypedDict):
    n_votes: int  # votes on the result's pairs
    n_compared: int  # non-reject votes on accepted pairs: those that can agree or not
    agreement: float  # share of n_compared equal to the accepted label (nan when n_compared = 0)
    reject_rate: float  # share of n_votes that were REJECT
    mean_confidence: float  # over n_votes (nan when n_votes = 0)


def majority_vote(
    votes: VoteTable,
    pair_ids: np.ndarray,
    *,
    min_agreement: float = 0.6,
    min_confidence: float = 0.0,
) -> LabelResult:
    """Aggregate ``votes`` into one label per pair of ``pair_ids`` (P,), in that order.

    Per pair with n votes, r of them REJECT:
    - r >= n / 2 -> "rejected" (label 0; agreement r / n; confidence = mean of the reject votes).
    - otherwise the label is the most frequent of {+1, -1, 0} among the n - r other votes; a tie
      gives 0 "equal", because annotators splitting evenly is evidence the difference is not
      perceptible. agreement = votes for the label / (n - r) (so a +1/-1 tie has agreement 0);
      confidence = mean confidence of the votes for the label (0 if there are none).
    - "pruned" when agreement < min_agreement or confidence < min_confidence, or when the pair
      has no votes; else "accepted".
    Votes on pairs outside ``pair_ids`` are ignored; the result keeps the others.
    """
    pair_ids = np.asarray(pair_ids).astype(str).reshape(-1)
    p = len(pair_ids)
    found, row = _rows(pair_ids, votes.pair_id)
    votes = votes.take(found)
    col = np.where(votes.answer == REJECT, _REJECT_COL, votes.answer.astype(np.int64) + 1)

    counts = np.zeros((p, 4), dtype=np.int64)
    np.add.at(counts, (row, col), 1)
    conf_sum = np.zeros((p, 4), dtype=np.float64)
    np.add.at(conf_sum, (row, col), votes.confidence.astype(np.float64))

    n = counts.sum(axis=1)
    rejects = counts[:, _REJECT_COL]
    legible = n - rejects
    rejected = (n > 0) & (2 * rejects >= n)

    c3 = counts[:, :3]
    top = c3.max(axis=1)
    tied = (c3 == top[:, None]).sum(axis=1) > 1
    label_col = np.where(tied, 1, c3.argmax(axis=1))  # column 1 is "equal"
    chosen = np.where(rejected, _REJECT_COL, label_col)
    chosen_count = counts[np.arange(p), chosen]
    chosen_conf = conf_sum[np.arange(p), chosen]
    with np.errstate(divide="ignore", invalid="ignore"):
        agreement = np.where(rejected, rejects / n, chosen_count / legible)
        confidence = chosen_conf / chosen_count
    agreement = np.nan_to_num(agreement, nan=0.0)
    confidence = np.nan_to_num(confidence, nan=0.0)

    # Compare in float64 so e.g. 3/5 == 0.6 passes a 0.6 threshold.
    pruned = (n == 0) | (agreement < min_agreement) | (confidence < min_confidence)
    status = np.where(rejected, "rejected", np.where(pruned, "pruned", "accepted"))
    label = np.where(rejected, 0, label_col - 1).astype(np.int8)
    return LabelResult(
        pair_ids=pair_ids,
        label=label,
        confidence=confidence.astype(np.float32),
        agreement=agreement.astype(np.float32),
        status=status,
        votes=votes,
    )


def per_annotator_stats(votes: VoteTable, result: LabelResult) -> dict[str, AnnotatorStats]:
    """Per annotator (sorted by id): votes, agreement with accepted labels, rejects, confidence.

    Only votes on ``result``'s pairs count. Agreement is measured on accepted pairs only, where
    the majority is trustworthy; a spammer shows up as agreement near 1/3.
    """
    found, row = _rows(np.asarray(result.pair_ids).astype(str), votes.pair_id)
    votes = votes.take(found)
    names, who = np.unique(votes.annotator, return_inverse=True)
    m = len(names)
    is_reject = votes.answer == REJECT
    compared = (np.asarray(result.status)[row] == "accepted") & ~is_reject
    agrees = compared & (votes.answer == np.asarray(result.label)[row])

    def per(weights: np.ndarray) -> np.ndarray:
        return np.bincount(who, weights=weights.astype(np.float64), minlength=m)

    n_votes = per(np.ones(len(votes)))
    n_compared = per(compared)
    n_agree = per(agrees)
    n_reject = per(is_reject)
    conf_sum = per(votes.confidence)
    stats: dict[str, AnnotatorStats] = {}
    for i, name in enumerate(names):
        stats[str(name)] = AnnotatorStats(
            n_votes=int(n_votes[i]),
            n_compared=int(n_compared[i]),
            agreement=float(n_agree[i] / n_compared[i]) if n_compared[i] else float("nan"),
            reject_rate=float(n_reject[i] / n_votes[i]),
            mean_confidence=float(conf_sum[i] / n_votes[i]),
        )
    return stats


def _rows(pair_ids: np.ndarray, vote_pair_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V,) mask of votes whose pair is in ``pair_ids`` (P,), and (found,) their row in it."""
    order = np.argsort(pair_ids, kind="stable")
    sorted_ids = pair_ids[order]
    if len(sorted_ids) > 1 and (sorted_ids[1:] == sorted_ids[:-1]).any():
        dup = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]][0]
        raise DataError(f"pair id {dup!r} appears twice", field="pair_ids")
    if len(sorted_ids) == 0:
        return np.zeros(len(vote_pair_ids), dtype=bool), np.zeros(0, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_ids, vote_pair_ids), len(sorted_ids) - 1)
    found = sorted_ids[pos] == vote_pair_ids
    return found, order[pos[found]]
