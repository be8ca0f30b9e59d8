"""Aggregation of individual votes into pair labels: pure functions, no I/O.

The paper's protocol (5 votes per pair, majority vote, illegible pairs discarded, low agreement /
low confidence pairs pruned) is ``majority_vote``; ``per_annotator_stats`` audits workers.
``dawid_skene`` weighs each worker by an estimated confusion matrix instead, which discounts
spammers and even uses systematically wrong workers; ``aggregate`` picks a rule by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

import numpy as np

from outpool.annotate.protocol import LabelResult
from outpool.annotate.votes import REJECT, VoteTable
from outpool.errors import DataError, UnknownNameError

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


def dawid_skene(
    votes: VoteTable,
    pair_ids: np.ndarray,
    *,
    max_iter: int = 100,
    tol: float = 1e-6,
    smoothing: float = 0.01,
    min_posterior: float = 0.0,
    min_confidence: float = 0.0,
) -> tuple[LabelResult, dict[str, np.ndarray]]:
    """Aggregate ``votes`` by Dawid & Skene's EM (1979) into one label per pair of ``pair_ids``.

    The four answers are the classes, in the column order of ``majority_vote``: -1 (b more),
    0 (equal), +1 (a more), REJECT (illegible). Each of the M annotators has a 4 x 4 confusion
    matrix (row = true class, column = answer). Posteriors start as each pair's vote shares (a
    soft majority); then the M-step re-estimates class priors and confusion matrices, each with
    ``smoothing`` pseudo-counts added (> 0 keeps every log-probability finite), and the E-step
    recomputes the posteriors, until no posterior moves by ``tol`` or more, or ``max_iter``
    rounds. Pairs without votes take no part in the estimates.

    Per pair (P rows, in ``pair_ids`` order; votes on other pairs are ignored):
    - class = argmax of the posterior; an exact tie with "equal" goes to "equal", as in
      ``majority_vote``.
    - class REJECT -> "rejected", label 0; otherwise label = class.
    - agreement = the winning class's posterior; confidence = mean confidence of the votes that
      gave the winning answer (0 if none).
    - "pruned" when the pair has no votes (label 0, agreement 0), or agreement < min_posterior,
      or confidence < min_confidence; else "accepted" (a rejected pair stays "rejected").

    Returns the ``LabelResult`` (its ``votes`` are those on ``pair_ids``) and the fitted model:
    "annotators" (M,) str sorted names; "confusion" (M, 4, 4) float64, each row sums to 1;
    "prior" (4,) float64 class shares; "posterior" (P, 4) float64, each row sums to 1 (the prior
    for pairs without votes).
    """
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    if not smoothing > 0:
        raise ValueError(f"smoothing must be > 0, got {smoothing}")
    pair_ids = np.asarray(pair_ids).astype(str).reshape(-1)
    p = len(pair_ids)
    found, row = _rows(pair_ids, votes.pair_id)
    votes = votes.take(found)
    col = np.where(votes.answer == REJECT, _REJECT_COL, votes.answer.astype(np.int64) + 1)
    names, who = np.unique(votes.annotator, return_inverse=True)
    m = len(names)

    counts = np.bincount(row * 4 + col, minlength=p * 4).reshape(p, 4)
    conf_sum = np.bincount(
        row * 4 + col, weights=votes.confidence.astype(np.float64), minlength=p * 4
    ).reshape(p, 4)
    n = counts.sum(axis=1)
    voted = n > 0

    # The loop keeps posteriors class-major, (4, P): the per-pair reductions over the 4 classes
    # are then elementwise over 4 long rows, far faster than reducing (P, 4) along axis 1.
    # Flat scatter targets, built once: vote v spreads a 4-vector over the true classes, into
    # confusion cell (class, annotator, answer) in the M-step and posterior cell (class, pair)
    # in the E-step; one bincount each beats four, and np.add.at by far.
    classes = np.arange(4)[:, None]
    who_answer = who * 4 + col  # (V,) column of the (4, M * 4) log-confusion table
    cell = (classes * (m * 4) + who_answer).reshape(-1)  # (4 * V,)
    pair_cell = (classes * p + row).reshape(-1)  # (4 * V,)
    weight = voted.astype(np.float64)  # (P,): pairs without votes say nothing about the prior

    post = np.full((4, p), 0.25)
    post[:, voted] = counts[voted].T / n[voted]
    prior = np.full(4, 0.25)
    confusion = np.full((m, 4, 4), 0.25)
    for _ in range(max_iter):
        # M-step: expected counts under the current posteriors, plus the Dirichlet pseudo-counts.
        prior = post @ weight + smoothing
        prior /= prior.sum()
        # np.take gathers several times faster than fancy indexing.
        per_vote = np.take(post, row, axis=1)  # (4, V)
        expected = np.bincount(cell, weights=per_vote.reshape(-1), minlength=4 * m * 4)
        confusion = expected.reshape(4, m, 4).transpose(1, 0, 2) + smoothing  # (M, class, answer)
        confusion /= confusion.sum(axis=2, keepdims=True)
        # E-step in log space: a pair with many votes multiplies many small probabilities.
        log_conf = np.log(confusion).transpose(1, 0, 2).reshape(4, m * 4)
        per_vote = np.take(log_conf, who_answer, axis=1)  # (4, V)
        log_post = np.bincount(pair_cell, weights=per_vote.reshape(-1), minlength=4 * p)
        log_post = log_post.reshape(4, p) + np.log(prior)[:, None]
        log_post -= log_post.max(axis=0)
        new = np.exp(log_post)
        new /= new.sum(axis=0)
        change = float(np.abs(new - post).max()) if p else 0.0
        post = new
        if change < tol:
            break

    posterior = np.ascontiguousarray(post.T)  # (P, 4)
    top = posterior.max(axis=1)
    chosen = np.where(posterior[:, 1] >= top, 1, posterior.argmax(axis=1))
    rows = np.arange(p)
    chosen_count = counts[rows, chosen]
    with np.errstate(divide="ignore", invalid="ignore"):
        confidence = np.where(chosen_count > 0, conf_sum[rows, chosen] / chosen_count, 0.0)
    agreement = np.where(voted, top, 0.0)
    rejected = voted & (chosen == _REJECT_COL)
    pruned = ~voted | (agreement < min_posterior) | (confidence < min_confidence)
    status = np.where(rejected, "rejected", np.where(pruned, "pruned", "accepted"))
    label = np.where(rejected | ~voted, 0, chosen - 1).astype(np.int8)
    result = LabelResult(
        pair_ids=pair_ids,
        label=label,
        confidence=confidence.astype(np.float32),
        agreement=agreement.astype(np.float32),
        status=status,
        votes=votes,
    )
    model = {
        "annotators": names.astype(str),
        "confusion": confusion,
        "prior": prior,
        "posterior": posterior,
    }
    return result, model


def _dawid_skene_labels(
    votes: VoteTable, pair_ids: np.ndarray, *, min_agreement: float | None = None, **kw: Any
) -> LabelResult:
    """``dawid_skene``'s labels alone; ``min_agreement`` is another name for ``min_posterior``.

    Both prune on the result's ``agreement`` column, so the alias lets a caller pass the same
    pruning options (min_agreement, min_confidence) to every rule of ``AGGREGATORS``.
    """
    if min_agreement is not None:
        if "min_posterior" in kw:
            raise TypeError("give min_agreement or min_posterior, not both")
        kw["min_posterior"] = min_agreement
    return dawid_skene(votes, pair_ids, **kw)[0]


# Aggregation rules by name: callable(votes, pair_ids, **options) -> LabelResult. Every rule
# takes min_agreement and min_confidence.
AGGREGATORS: dict[str, Callable[..., LabelResult]] = {
    "majority": majority_vote,
    "dawid-skene": _dawid_skene_labels,
}


def aggregate(name: str, votes: VoteTable, pair_ids: np.ndarray, **kw: Any) -> LabelResult:
    """Aggregate with the rule ``AGGREGATORS[name]``; ``kw`` are that rule's options."""
    if name not in AGGREGATORS:
        raise UnknownNameError("aggregation rule", name, AGGREGATORS)
    return AGGREGATORS[name](votes, pair_ids, **kw)
