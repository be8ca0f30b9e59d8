from __future__ import annotations

import numpy as np
import pytest

from outpool.annotate import (
    REJECT,
    Annotator,
    CrowdConfig,
    Judge,
    PairRequest,
    SimulatedCrowd,
    per_annotator_stats,
)
from outpool.errors import ConfigError, DataError, UnknownNameError


def votes_by_pair(votes) -> dict[str, list[tuple[str, int, float]]]:
    out: dict[str, list[tuple[str, int, float]]] = {}
    for v in votes.records():
        out.setdefault(v.pair_id, []).append((v.annotator, v.answer, v.confidence))
    return out


def test_fake_judge_and_crowd_satisfy_the_protocols(judge) -> None:
    assert isinstance(judge, Judge)
    assert isinstance(SimulatedCrowd(judge, CrowdConfig()), Annotator)


@pytest.mark.slow
def test_zero_noise_labels_are_the_true_sign(judge, make_request, random_pairs) -> None:
    red_a, red_b = random_pairs
    config = CrowdConfig(noise=0.0, reject_noise=0.0, equal_band=0.03)
    result = SimulatedCrowd(judge, config).label(make_request(red_a, red_b))
    delta = (red_a - red_b) / 255.0
    # Integer red levels never land on the band edge (0.03 * 255 = 7.65).
    expected = np.where(np.abs(delta) < 0.03, 0, np.sign(delta))
    assert (result.status == "accepted").all()
    np.testing.assert_array_equal(result.label, expected)
    np.testing.assert_array_equal(result.agreement, 1.0)
    np.testing.assert_array_equal(result.confidence, 1.0)  # noiseless workers are sure
    np.testing.assert_array_equal(result.accepted_indices(), np.arange(2000))
    assert set(np.unique(result.label)) == {-1, 0, 1}


@pytest.mark.slow
def test_more_noise_means_less_agreement(judge, make_request, random_pairs) -> None:
    request = make_request(*random_pairs)
    low = SimulatedCrowd(judge, CrowdConfig(noise=0.01)).label(request)
    high = SimulatedCrowd(judge, CrowdConfig(noise=0.1)).label(request)
    # Measured with seed 0: 0.97 vs 0.78; the binomial noise of a 2000-pair mean is ~0.005.
    assert low.agreement.mean() > 0.94
    assert high.agreement.mean() < 0.82
    assert (low.status == "accepted").mean() > (high.status == "accepted").mean() + 0.05
    assert low.confidence.mean() > high.confidence.mean() + 0.3


@pytest.mark.slow
def test_agreement_and_confidence_rise_with_the_true_difference(
    judge, make_request, random_pairs
) -> None:
    red_a, red_b = random_pairs
    result = SimulatedCrowd(judge, CrowdConfig(noise=0.04)).label(make_request(red_a, red_b))
    size = np.abs(red_a - red_b) / 255.0
    bins = np.digitize(size, [0.06, 0.10, 0.15])  # 4 bins, each with 250+ pairs
    agreement = [result.agreement[bins == b].mean() for b in range(4)]
    confidence = [result.confidence[bins == b].mean() for b in range(4)]
    # Measured: agreement 0.67, 0.89, 0.97, 1.00; confidence 0.15, 0.49, 0.79, 0.94.
    assert np.all(np.diff(agreement) > 0.02)
    assert np.all(np.diff(confidence) > 0.1)
    assert agreement[0] < agreement[-1] - 0.2
    assert agreement[-1] > 0.98


def test_blank_images_are_rejected(judge) -> None:
    red = np.array([200, 200, 0, 200])
    images_b = np.stack(
        [np.full((64, 64, 3), 50, np.uint8)] * 3 + [np.zeros((64, 64, 3), np.uint8)]
    )
    images_a = np.stack([np.full((64, 64, 3), r, np.uint8) for r in red])
    request = PairRequest(
        ids=np.array(["ok", "ok2", "blank_a", "blank_b"]),
        attribute=np.full(4, "red"),
        images_a=images_a,
        images_b=images_b,
    )
    result = SimulatedCrowd(judge, CrowdConfig()).label(request)
    np.testing.assert_array_equal(result.status, ["accepted", "accepted", "rejected", "rejected"])
    np.testing.assert_array_equal(result.label, [1, 1, 0, 0])
    # Legibility 0 is 5 reject_noise below the threshold: every worker rejects, very sure.
    rejected = np.isin(result.votes.pair_id, ["blank_a", "blank_b"])
    assert (result.votes.answer[rejected] == REJECT).all()
    assert (result.votes.confidence[rejected] == 1.0).all()
    assert (result.votes.answer[~rejected] == 1).all()
    np.testing.assert_array_equal(result.agreement[2:], 1.0)


class Unmeasurable:
    """A judge that finds every image legible but cannot measure the second pair's images."""

    attributes = ("red",)

    def assess(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values = images[..., 0].mean(axis=(1, 2), keepdims=False)[:, None] / 255.0
        values[1:] = np.nan
        return values, np.ones(len(images))


def test_a_value_the_judge_cannot_measure_is_rejected_not_guessed() -> None:
    request = PairRequest(
        ids=np.array(["measured", "unmeasured"]),
        attribute=np.full(2, "red"),
        images_a=np.stack([np.full((64, 64, 3), 200, np.uint8)] * 2),
        images_b=np.stack([np.full((64, 64, 3), 50, np.uint8)] * 2),
    )
    with np.errstate(invalid="raise"):  # no NaN reaches a cast
        result = SimulatedCrowd(Unmeasurable(), CrowdConfig()).label(request)
    np.testing.assert_array_equal(result.status, ["accepted", "rejected"])
    unmeasured = result.votes.pair_id == "unmeasured"
    assert (result.votes.answer[unmeasured] == REJECT).all()


@pytest.mark.slow
def test_spammers_reduce_agreement_and_are_found_by_stats(
    judge, make_request, random_pairs
) -> None:
    request = make_request(*random_pairs)
    honest = SimulatedCrowd(judge, CrowdConfig(noise=0.01)).label(request)
    crowd = SimulatedCrowd(judge, CrowdConfig(noise=0.01, spammer_share=0.25))
    assert crowd.is_spammer.sum() == 10
    mixed = crowd.label(request)
    # Measured: 0.97 vs 0.81.
    assert mixed.agreement.mean() < honest.agreement.mean() - 0.1
    stats = per_annotator_stats(mixed.votes, mixed)
    agreement = np.array([stats[w]["agreement"] for w in crowd.worker_ids])
    # A random answer matches the majority about 1/3 of the time (measured 0.38 vs 0.97).
    assert agreement[crowd.is_spammer].max() < 0.55
    assert agreement[~crowd.is_spammer].min() > 0.85


def test_spammers_are_fixed_by_the_seed(judge) -> None:
    a = SimulatedCrowd(judge, CrowdConfig(spammer_share=0.3, seed=4))
    b = SimulatedCrowd(judge, CrowdConfig(spammer_share=0.3, seed=4))
    c = SimulatedCrowd(judge, CrowdConfig(spammer_share=0.3, seed=5))
    np.testing.assert_array_equal(a.is_spammer, b.is_spammer)
    np.testing.assert_array_equal(a.worker_noise, b.worker_noise)
    assert a.is_spammer.sum() == 12
    assert not np.array_equal(a.is_spammer, c.is_spammer)


def test_worker_noise_spread(judge) -> None:
    same = SimulatedCrowd(judge, CrowdConfig(noise=0.04, worker_noise_spread=0.0))
    np.testing.assert_allclose(same.worker_noise, 0.04)
    spread = SimulatedCrowd(judge, CrowdConfig(noise=0.04, worker_noise_spread=0.5))
    assert spread.worker_noise.min() < 0.03 < 0.05 < spread.worker_noise.max()
    assert list(spread.worker_ids[:2]) == ["sim-000", "sim-001"]


@pytest.mark.slow
def test_same_seed_same_votes_independent_of_batch(judge, make_request, random_pairs) -> None:
    red_a, red_b = random_pairs
    request = make_request(red_a[:300], red_b[:300])
    crowd = SimulatedCrowd(judge, CrowdConfig(spammer_share=0.2, seed=3))
    first = votes_by_pair(crowd.label(request).votes)
    again = votes_by_pair(
        SimulatedCrowd(judge, CrowdConfig(spammer_share=0.2, seed=3)).label(request).votes
    )
    assert first == again

    # Shuffled, and mixed with other pairs: every original pair keeps its votes and label.
    order = np.random.default_rng(0).permutation(300)
    extra = make_request(red_a[300:500], red_b[300:500], prefix="x")
    bigger = PairRequest(
        ids=np.concatenate([extra.ids, request.ids[order]]),
        attribute=np.concatenate([extra.attribute, request.attribute[order]]),
        images_a=np.concatenate([extra.images_a, request.images_a[order]]),
        images_b=np.concatenate([extra.images_b, request.images_b[order]]),
    )
    result = crowd.label(bigger)
    shuffled = votes_by_pair(result.votes)
    assert {k: shuffled[k] for k in first} == first
    base = crowd.label(request)
    np.testing.assert_array_equal(result.label[200:], base.label[order])
    np.testing.assert_array_equal(result.status[200:], base.status[order])
    np.testing.assert_array_equal(result.pair_ids, bigger.ids)

    other_seed = SimulatedCrowd(judge, CrowdConfig(spammer_share=0.2, seed=4)).label(request)
    assert votes_by_pair(other_seed.votes) != first


def test_each_pair_goes_to_distinct_workers(judge, make_request, random_pairs) -> None:
    red_a, red_b = random_pairs
    request = make_request(red_a[:500], red_b[:500])
    votes = SimulatedCrowd(judge, CrowdConfig(votes_per_pair=7, n_workers=9)).label(request).votes
    assert len(votes) == 500 * 7
    for pair, rows in votes_by_pair(votes).items():
        workers = [w for w, _, _ in rows]
        assert len(set(workers)) == 7, pair
    # Every worker of the pool gets work.
    assert len(np.unique(votes.annotator)) == 9

    everyone = SimulatedCrowd(judge, CrowdConfig(votes_per_pair=4, n_workers=4)).label(request)
    for rows in votes_by_pair(everyone.votes).values():
        assert sorted(w for w, _, _ in rows) == ["sim-000", "sim-001", "sim-002", "sim-003"]


def test_attribute_column_is_used(judge) -> None:
    # Image a is redder, image b greener: the answer depends on which attribute is asked.
    a = np.zeros((2, 64, 64, 3), np.uint8)
    b = np.zeros((2, 64, 64, 3), np.uint8)
    a[..., 0], a[..., 1] = 200, 50
    b[..., 0], b[..., 1] = 50, 200
    request = PairRequest(np.array(["r", "g"]), np.array(["red", "green"]), a, b)
    result = SimulatedCrowd(judge, CrowdConfig()).label(request)
    np.testing.assert_array_equal(result.label, [1, -1])


def test_unknown_attribute_lists_the_valid_ones(judge, make_request) -> None:
    request = make_request(np.array([10]), np.array([20]))
    bad = PairRequest(request.ids, np.array(["sporty"]), request.images_a, request.images_b)
    with pytest.raises(UnknownNameError, match=r"sporty.*valid: green, red"):
        SimulatedCrowd(judge, CrowdConfig()).label(bad)


def test_empty_request(judge, make_request) -> None:
    result = SimulatedCrowd(judge, CrowdConfig()).label(make_request(np.zeros(0), np.zeros(0)))
    assert len(result) == 0 and len(result.votes) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"votes_per_pair": 41},
        {"votes_per_pair": 0},
        {"noise": -0.1},
        {"spammer_share": 1.5},
        {"confidence_scale": 0.0},
        {"seed": -1},
    ],
)
def test_bad_config(kwargs) -> None:
    with pytest.raises(ConfigError):
        CrowdConfig(**kwargs)


def test_bad_requests(make_request) -> None:
    r = make_request(np.array([10, 20]), np.array([20, 30]))
    with pytest.raises(DataError, match="unique"):
        PairRequest(np.array(["a", "a"]), r.attribute, r.images_a, r.images_b)
    with pytest.raises(DataError, match="uint8"):
        PairRequest(r.ids, r.attribute, r.images_a.astype(np.float32), r.images_b)
    with pytest.raises(DataError, match="shape"):
        PairRequest(r.ids, r.attribute, r.images_a[:1], r.images_b)
    with pytest.raises(DataError, match="attribute"):
        PairRequest(r.ids, r.attribute[:1], r.images_a, r.images_b)
