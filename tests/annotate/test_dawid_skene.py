from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from outpool.annotate import (
    AGGREGATORS,
    REJECT,
    CrowdConfig,
    LabelResult,
    SimulatedCrowd,
    VoteTable,
    aggregate,
    dawid_skene,
    majority_vote,
)
from outpool.errors import UnknownNameError

R = REJECT
ANSWERS = np.array([-1, 0, 1, R])  # class index -> answer, the column order of the model


def table(votes: dict[str, list[tuple[int, float]]]) -> VoteTable:
    """Votes by pair: [(answer, confidence), ...]; annotators w0, w1, ... in order."""
    return VoteTable.from_records(
        (pair, f"w{i}", answer, conf)
        for pair, rows in votes.items()
        for i, (answer, conf) in enumerate(rows)
    )


def clear_pairs(
    prefixes: str, answers: Sequence[int] | np.ndarray
) -> dict[str, list[tuple[int, float]]]:
    """3 pairs per answer, "<prefix>0".."<prefix>2", on which w0-w3 all give that answer."""
    return {
        f"{prefix}{i}": [(int(answer), 1.0)] * 4
        for prefix, answer in zip(prefixes, answers, strict=True)
        for i in range(3)
    }


def classes(result: LabelResult) -> np.ndarray:
    """(P,) class index per pair: 0 b more, 1 equal, 2 a more, 3 rejected."""
    return np.where(result.status == "rejected", 3, result.label.astype(np.int64) + 1)


def hand_crowd(n_pairs: int, seed: int) -> tuple[VoteTable, np.ndarray, np.ndarray]:
    """5 of 10 workers per pair: w0-w2 reliable (right 90% of the time, else uniform), w3 an
    adversary who swaps "a more" and "b more", w4-w9 uniformly random over the 4 answers.

    Returns the votes, the (P,) asked ids and the (P,) true class indices.
    """
    rng = np.random.default_rng(seed)
    truth = rng.choice(4, n_pairs, p=[0.35, 0.15, 0.35, 0.15])
    worker = np.stack([rng.choice(10, 5, replace=False) for _ in range(n_pairs)]).reshape(-1)
    true = np.repeat(truth, 5)
    slip = rng.random(len(true)) >= 0.9
    noise = rng.integers(0, 4, len(true))
    answer = np.where((worker < 3) & slip, noise, true)
    answer = np.where(worker == 3, np.array([2, 1, 0, 3])[true], answer)
    answer = np.where(worker >= 4, noise, answer)
    ids = np.array([f"q{i:04d}" for i in range(n_pairs)])
    votes = VoteTable(
        pair_id=np.repeat(ids, 5),
        annotator=np.char.add("w", worker.astype(str)),
        answer=ANSWERS[answer],
        confidence=np.ones(len(true)),
        rationale=np.full(len(true), ""),
    )
    return votes, ids, truth


def test_unanimous_votes_agree_with_majority() -> None:
    votes = table(
        {
            "a1": [(1, 1.0)] * 3,
            "a2": [(1, 0.5)] * 3,
            "b1": [(-1, 1.0)] * 3,
            "b2": [(-1, 0.0), (-1, 1.0), (-1, 1.0)],
            "eq": [(0, 0.5)] * 3,
            "ill": [(R, 1.0)] * 3,
        }
    )
    asked = np.array(["a1", "a2", "b1", "b2", "eq", "ill"])
    ds, model = dawid_skene(votes, asked)
    mv = majority_vote(votes, asked)
    np.testing.assert_array_equal(ds.label, [1, 1, -1, -1, 0, 0])
    np.testing.assert_array_equal(ds.label, mv.label)
    np.testing.assert_array_equal(ds.status, mv.status)
    np.testing.assert_allclose(ds.confidence, mv.confidence)
    assert (ds.agreement > 0.99).all()
    assert ds.agreement.dtype == np.float32 and ds.confidence.dtype == np.float32
    # Everyone agrees with everyone: near-diagonal confusions; priors are the class shares.
    assert list(model["annotators"]) == ["w0", "w1", "w2"]
    assert (np.diagonal(model["confusion"], axis1=1, axis2=2) > 0.97).all()
    np.testing.assert_allclose(model["prior"], [2 / 6, 1 / 6, 2 / 6, 1 / 6], atol=0.01)


@pytest.mark.slow
def test_beats_majority_on_a_simulated_crowd_with_spammers(
    judge, make_request, random_pairs
) -> None:
    red_a, red_b = (r[:1000] for r in random_pairs)
    request = make_request(red_a, red_b)
    crowd = SimulatedCrowd(judge, CrowdConfig(spammer_share=0.3, seed=0))
    votes = crowd.vote(request)
    delta = (red_a - red_b) / 255.0
    truth = np.where(np.abs(delta) < crowd.config.equal_band, 0, np.sign(delta))

    ds, model = dawid_skene(votes, request.ids)
    mv = majority_vote(votes, request.ids)
    ds_acc = float((ds.label == truth).mean())
    mv_acc = float((mv.label == truth).mean())
    assert ds_acc == pytest.approx(0.901, abs=0.01)
    assert mv_acc == pytest.approx(0.855, abs=0.01)
    assert ds_acc > mv_acc + 0.03

    np.testing.assert_array_equal(model["annotators"], crowd.worker_ids)
    comparisons = model["confusion"][:, :3, :3]  # no pair is illegible: the REJECT row is a guess
    spam = crowd.is_spammer
    assert spam.sum() == 12
    # A spammer's answer does not depend on the truth: its rows are all about (1/3, 1/3, 1/3).
    np.testing.assert_allclose(comparisons[spam].mean(axis=0), 1 / 3, atol=0.08)
    np.testing.assert_allclose(comparisons[spam][:, [0, 2]], 1 / 3, atol=0.2)
    # An honest worker is near-diagonal on clear differences, and every honest worker looks
    # more reliable than every spammer.
    sure = (comparisons[:, 0, 0] + comparisons[:, 2, 2]) / 2
    assert sure[~spam].min() > 0.75
    assert sure[spam].max() < 0.5


def test_beats_majority_with_random_and_adversarial_workers() -> None:
    votes, ids, truth = hand_crowd(500, seed=0)
    ds, model = dawid_skene(votes, ids)
    mv = majority_vote(votes, ids, min_agreement=0.0)
    ds_acc = float((classes(ds) == truth).mean())
    mv_acc = float((classes(mv) == truth).mean())
    assert ds_acc == pytest.approx(0.946, abs=0.01)
    assert mv_acc == pytest.approx(0.59, abs=0.01)

    confusion = model["confusion"]
    assert list(model["annotators"]) == [f"w{i}" for i in range(10)]
    accuracy = np.diagonal(confusion, axis1=1, axis2=2).mean(axis=1)  # (M,) mean P(right)
    assert (accuracy[:3] > 0.88).all()  # truly 0.9 + 0.1 / 4
    # The adversary is fully informative once its swap is learnt.
    swap = np.eye(4)[[2, 1, 0, 3]]
    np.testing.assert_allclose(confusion[3], swap, atol=0.05)
    # Random workers: right by chance only, and near uniform rows on average.
    np.testing.assert_allclose(accuracy[4:], 0.25, atol=0.08)
    np.testing.assert_allclose(confusion[4:].mean(axis=0), 0.25, atol=0.08)
    np.testing.assert_allclose(model["prior"], np.bincount(truth) / len(truth), atol=0.02)


def test_equal_and_illegible_can_win() -> None:
    # Clear pairs of every class let the EM learn that w0-w3 are all reliable.
    clear = clear_pairs("bear", ANSWERS)
    votes = table(
        {
            **clear,
            "eq_win": [(0, 1.0), (0, 0.5), (0, 0.5), (1, 1.0)],
            "ill_win": [(R, 0.5), (R, 1.0), (R, 1.0), (-1, 1.0)],
        }
    )
    ds, model = dawid_skene(votes, np.array(["eq_win", "ill_win", "a0"]))
    np.testing.assert_array_equal(ds.label, [0, 0, 1])
    np.testing.assert_array_equal(ds.status, ["accepted", "rejected", "accepted"])
    np.testing.assert_allclose(ds.confidence, [2 / 3, 2.5 / 3, 1.0], rtol=1e-6)
    assert (ds.agreement > 0.9).all()
    np.testing.assert_array_equal(model["posterior"].argmax(axis=1), [1, 3, 2])


def test_no_votes_unasked_votes_and_order() -> None:
    votes = table(
        {
            "p1": [(1, 1.0), (1, 1.0), (-1, 0.5)],
            "p2": [(-1, 1.0), (-1, 1.0), (-1, 1.0)],
            "p3": [(0, 1.0), (0, 1.0), (1, 0.5)],
            "other": [(R, 1.0)] * 3,  # not asked: ignored
        }
    )
    asked = np.array(["p3", "none", "p1", "p2"])
    ds, model = dawid_skene(votes, asked)
    np.testing.assert_array_equal(ds.pair_ids, asked)
    np.testing.assert_array_equal(ds.label, [0, 0, 1, -1])
    np.testing.assert_array_equal(ds.status, ["accepted", "pruned", "accepted", "accepted"])
    assert ds.agreement[1] == 0.0 and ds.confidence[1] == 0.0
    # A pair without votes has only the prior to go on.
    np.testing.assert_allclose(model["posterior"][1], model["prior"])
    assert len(ds.votes) == 9 and "other" not in set(ds.votes.pair_id)
    # The unasked votes change nothing: not the labels, not the fitted model.
    alone, alone_model = dawid_skene(votes.take(votes.pair_id != "other"), asked)
    np.testing.assert_array_equal(alone.agreement, ds.agreement)
    np.testing.assert_array_equal(alone_model["confusion"], model["confusion"])
    assert model["prior"][3] < 0.01  # no asked pair is illegible
    # Asking in another order permutes the rows and nothing else.
    again, again_model = dawid_skene(votes, asked[::-1])
    np.testing.assert_array_equal(again.label, ds.label[::-1])
    np.testing.assert_array_equal(again.status, ds.status[::-1])
    np.testing.assert_allclose(again_model["posterior"], model["posterior"][::-1], atol=1e-12)


def test_no_votes_is_pruned_even_when_the_prior_favours_illegible() -> None:
    votes = table({f"ill{i}": [(R, 1.0)] * 3 for i in range(4)})
    ds, model = dawid_skene(votes, np.array(["ill0", "none"]))
    assert model["posterior"][1].argmax() == 3  # the prior's guess...
    np.testing.assert_array_equal(ds.status, ["rejected", "pruned"])  # ...is not a rejection
    np.testing.assert_array_equal(ds.label, [0, 0])


def test_empty_votes() -> None:
    ds, model = dawid_skene(VoteTable.empty(), np.array(["a", "b"]))
    np.testing.assert_array_equal(ds.status, ["pruned", "pruned"])
    np.testing.assert_array_equal(ds.label, [0, 0])
    np.testing.assert_array_equal(ds.agreement, [0.0, 0.0])
    assert model["annotators"].shape == (0,)
    assert model["confusion"].shape == (0, 4, 4)
    np.testing.assert_allclose(model["prior"], 0.25)
    np.testing.assert_allclose(model["posterior"], np.full((2, 4), 0.25))

    none, none_model = dawid_skene(VoteTable.empty(), np.array([], dtype=str))
    assert len(none) == 0 and len(none.votes) == 0
    assert none_model["posterior"].shape == (0, 4)


def test_model_shapes_and_normalisation() -> None:
    votes, ids, _ = hand_crowd(200, seed=1)
    _, model = dawid_skene(votes, ids)
    assert model["annotators"].dtype.kind == "U"
    assert model["confusion"].shape == (10, 4, 4) and model["confusion"].dtype == np.float64
    assert model["prior"].shape == (4,) and model["posterior"].shape == (200, 4)
    np.testing.assert_allclose(model["confusion"].sum(axis=2), 1.0)
    np.testing.assert_allclose(model["prior"].sum(), 1.0)
    np.testing.assert_allclose(model["posterior"].sum(axis=1), 1.0)
    assert (model["confusion"] > 0).all()  # the smoothing keeps every log finite


def test_deterministic_and_independent_of_vote_order() -> None:
    votes, ids, _ = hand_crowd(300, seed=2)
    first, first_model = dawid_skene(votes, ids)
    second, second_model = dawid_skene(votes, ids)
    np.testing.assert_array_equal(first.label, second.label)
    np.testing.assert_array_equal(first.agreement, second.agreement)
    np.testing.assert_array_equal(first_model["posterior"], second_model["posterior"])
    np.testing.assert_array_equal(first_model["confusion"], second_model["confusion"])

    shuffled = votes.take(np.random.default_rng(0).permutation(len(votes)))
    third, third_model = dawid_skene(shuffled, ids)
    np.testing.assert_array_equal(third.label, first.label)
    np.testing.assert_array_equal(third.status, first.status)
    np.testing.assert_allclose(third_model["posterior"], first_model["posterior"], atol=1e-9)


def test_min_posterior_and_min_confidence_prune() -> None:
    clear = clear_pairs("bea", (-1, 0, 1))
    votes = table({**clear, "split": [(1, 0.5), (1, 0.5), (-1, 1.0), (-1, 1.0)]})
    asked = np.array(["split", "a0", "b0"])
    loose, _ = dawid_skene(votes, asked)
    # Two reliable workers against two: the posterior is split about evenly.
    assert 0.4 < loose.agreement[0] < 0.6
    assert loose.agreement[1] > 0.99
    np.testing.assert_array_equal(loose.status, ["accepted", "accepted", "accepted"])
    strict, _ = dawid_skene(votes, asked, min_posterior=0.9)
    np.testing.assert_array_equal(strict.status, ["pruned", "accepted", "accepted"])
    np.testing.assert_array_equal(strict.label, loose.label)
    np.testing.assert_array_equal(strict.agreement, loose.agreement)
    picky, _ = dawid_skene(votes, asked, min_confidence=0.75)
    winner = "accepted" if loose.label[0] == -1 else "pruned"  # the -1 voters were sure
    np.testing.assert_array_equal(picky.status, [winner, "accepted", "accepted"])


def test_stops_at_tol_or_max_iter() -> None:
    votes, ids, _ = hand_crowd(300, seed=3)
    # This crowd converges slowly (~200 rounds); tol stops it well before 5000 rounds, so a
    # larger budget changes nothing.
    _, converged = dawid_skene(votes, ids, max_iter=1000, tol=1e-12)
    _, longer = dawid_skene(votes, ids, max_iter=5000, tol=1e-12)
    np.testing.assert_array_equal(converged["posterior"], longer["posterior"])
    _, loose = dawid_skene(votes, ids, max_iter=1000, tol=1e-3)
    assert 1e-5 < np.abs(loose["posterior"] - converged["posterior"]).max() < 0.1
    # One round is the soft majority re-weighted once: far from the fixed point.
    _, once = dawid_skene(votes, ids, max_iter=1, tol=0.0)
    _, twice = dawid_skene(votes, ids, max_iter=2, tol=0.0)
    assert np.abs(once["posterior"] - converged["posterior"]).max() > 0.5
    assert np.abs(once["posterior"] - twice["posterior"]).max() > 0.01


def test_aggregate_by_name() -> None:
    votes, ids, _ = hand_crowd(100, seed=4)
    assert set(AGGREGATORS) == {"majority", "dawid-skene"}
    by_name = aggregate("majority", votes, ids, min_agreement=0.4)
    direct = majority_vote(votes, ids, min_agreement=0.4)
    np.testing.assert_array_equal(by_name.status, direct.status)
    np.testing.assert_array_equal(by_name.label, direct.label)
    ds = aggregate("dawid-skene", votes, ids, min_posterior=0.8)
    assert isinstance(ds, LabelResult)
    np.testing.assert_array_equal(ds.status, dawid_skene(votes, ids, min_posterior=0.8)[0].status)
    # Every rule takes the same pruning options: for Dawid-Skene min_agreement is min_posterior.
    same = aggregate("dawid-skene", votes, ids, min_agreement=0.8, min_confidence=0.5)
    ref = dawid_skene(votes, ids, min_posterior=0.8, min_confidence=0.5)[0]
    np.testing.assert_array_equal(same.status, ref.status)
    assert (ds.status == "pruned").sum() == 2
    # 3 more: the adversary's swapped vote can win a pair nobody answered so (confidence 0).
    assert (same.status == "pruned").sum() == 5
    with pytest.raises(TypeError, match="not both"):
        aggregate("dawid-skene", votes, ids, min_agreement=0.5, min_posterior=0.5)
    with pytest.raises(UnknownNameError, match="valid: dawid-skene, majority"):
        aggregate("median", votes, ids)


@pytest.mark.parametrize(("option", "value"), [("max_iter", 0), ("tol", -1.0), ("smoothing", 0.0)])
def test_bad_options_are_errors(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=option):
        dawid_skene(VoteTable.empty(), np.array(["a"]), **{option: value})
