"""Pair-order accuracy: ties are wrong, equal pairs ignored; the PubFig all-pairs protocol."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import outpool.data.metrics
from outpool.data.metrics import ordering_accuracy, pair_accuracy


def test_perfect_and_reversed() -> None:
    sa = np.array([3.0, 1.0, 0.5, -2.0])
    sb = np.array([1.0, 2.0, 0.0, -1.0])
    label = np.sign(sa - sb).astype(np.int8)
    assert pair_accuracy(sa, sb, label) == 100.0
    assert pair_accuracy(sa, sb, -label) == 0.0
    assert pair_accuracy(sb, sa, label) == 0.0


def test_partial_accuracy() -> None:
    sa = np.array([1.0, 1.0, 1.0, 1.0])
    sb = np.array([0.0, 0.0, 2.0, 2.0])
    label = np.array([1, 1, 1, -1], np.int8)  # right, right, wrong, right
    assert pair_accuracy(sa, sb, label) == 75.0


def test_ties_count_as_wrong() -> None:
    s = np.full(6, 0.7)
    label = np.array([1, -1, 1, -1, 1, -1], np.int8)
    assert pair_accuracy(s, s.copy(), label) == 0.0
    # one tie among otherwise right pairs
    assert pair_accuracy(np.array([2.0, 1.0]), np.array([1.0, 1.0]), np.array([1, 1])) == 50.0


def test_equal_labelled_pairs_are_ignored() -> None:
    sa = np.array([2.0, 0.0, 5.0, 5.0])
    sb = np.array([1.0, 1.0, 1.0, 9.0])
    label = np.array([1, 1, 0, 0], np.int8)  # the last two are "equal" and ignored
    assert pair_accuracy(sa, sb, label) == 50.0
    assert pair_accuracy(sa[:2], sb[:2], label[:2]) == 50.0


def test_all_equal_is_nan() -> None:
    assert math.isnan(pair_accuracy(np.ones(3), np.zeros(3), np.zeros(3, np.int8)))
    assert math.isnan(pair_accuracy(np.zeros(0), np.zeros(0), np.zeros(0, np.int8)))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-3, 3).map(float),
            st.integers(-3, 3).map(float),
            st.sampled_from([-1, 0, 1]),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_matches_a_brute_force_count(rows: list[tuple[float, float, int]]) -> None:
    sa, sb, label = (np.array(c) for c in zip(*rows, strict=True))
    decided = [(a, b, lab) for a, b, lab in rows if lab != 0]
    got = pair_accuracy(sa, sb, label.astype(np.int8))
    if not decided:
        assert math.isnan(got)
        return
    right = sum((lab == 1 and a > b) or (lab == -1 and b > a) for a, b, lab in decided)
    assert got == pytest.approx(100.0 * right / len(decided))
    # swapping the two sides and the label keeps the accuracy
    assert pair_accuracy(sb, sa, -label.astype(np.int8)) == pytest.approx(got)


# ---- ordering_accuracy -------------------------------------------------------------------------


def brute_force(scores: list[float], ranks: list[int], groups: list[int]) -> float | None:
    correct = total = 0
    for i in range(len(scores)):
        for j in range(i + 1, len(scores)):
            if groups[i] == groups[j] or ranks[i] == ranks[j]:
                continue
            total += 1
            correct += (scores[i] > scores[j]) == (ranks[i] > ranks[j]) and scores[i] != scores[j]
    return None if total == 0 else 100.0 * correct / total


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 2)), max_size=14),
    block=st.sampled_from([1, 3, 1024]),
)
def test_ordering_accuracy_matches_brute_force(
    rows: list[tuple[int, int, int]], block: int
) -> None:
    scores = [float(r[0]) for r in rows]  # few values: many tied scores
    ranks, groups = [r[1] for r in rows], [f"g{r[2]}" for r in rows]
    expected = brute_force(scores, ranks, [r[2] for r in rows])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(outpool.data.metrics, "_BLOCK", block)  # pairs that cross row blocks
        if expected is None:
            with pytest.raises(ValueError, match="no pairs"):
                ordering_accuracy(scores, ranks, groups)
        else:
            assert ordering_accuracy(scores, ranks, groups) == pytest.approx(expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ordering_accuracy_random_floats(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    scores, ranks = rng.normal(size=n), rng.integers(0, 6, n)
    groups = rng.integers(0, 5, n)
    expected = brute_force(scores.tolist(), ranks.tolist(), groups.tolist())
    assert ordering_accuracy(scores, ranks, groups) == pytest.approx(expected)


def test_ordering_accuracy_rules() -> None:
    # a tied score is wrong
    assert ordering_accuracy([1.0, 1.0], [1, 2], ["a", "b"]) == 0.0
    # the same-group pair (0, 1) would be wrong; it is not counted
    assert ordering_accuracy([0.0, 1.0, 2.0], [1, 0, 2], ["a", "a", "b"]) == 100.0
    # equal ranks (0, 1) are not counted whatever the scores
    assert ordering_accuracy([0.0, 1.0, 2.0], [2, 2, 3], ["a", "b", "c"]) == 100.0
    # 3 valid pairs, 2 right
    assert ordering_accuracy([3.0, 2.0, 1.0], [3, 1, 2], ["a", "b", "c"]) == pytest.approx(200 / 3)
    # uint8 ranks: 0 - 255 must not wrap around to 1
    ranks = np.array([0, 255], dtype=np.uint8)
    assert ordering_accuracy([1.0, 0.0], ranks, ["a", "b"]) == 0.0
    assert ordering_accuracy([0.0, 1.0], ranks, ["a", "b"]) == 100.0


@pytest.mark.parametrize(
    ("scores", "ranks", "groups", "match"),
    [
        ([0.0, 1.0], [1, 2], ["a", "a"], "no pairs"),  # one group only
        ([0.0, 1.0], [1, 1], ["a", "b"], "no pairs"),  # one rank only
        ([], [], [], "no pairs"),
        ([0.0], [1, 2], ["a", "b"], "lengths differ"),
        ([0.0, float("nan")], [1, 2], ["a", "b"], "finite"),
    ],
)
def test_ordering_accuracy_errors(
    scores: list[float], ranks: list[int], groups: list[str], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        ordering_accuracy(scores, ranks, groups)


def test_roc_auc_counts_ordered_pairs_and_half_ties():
    from outpool.data.metrics import roc_auc

    assert roc_auc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert roc_auc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    # positives 0.5, 0.3; negatives 0.5, 0.1: pairs (0.5>0.1), (0.3>0.1), (0.5=0.5: half), (0.3<0.5)
    assert roc_auc([0.5, 0.3, 0.5, 0.1], [True, True, False, False]) == 2.5 / 4
    assert np.isnan(roc_auc([0.1, 0.2], [True, True]))


def test_wilson_interval_holds_the_accuracy_and_narrows_with_more_pairs() -> None:
    from outpool.data.metrics import wilson_interval

    low, high = wilson_interval(80.0, 100)
    assert (low, high) == pytest.approx((71.1, 86.7), abs=0.05)  # Wilson's for 80 of 100
    assert wilson_interval(80.0, 10_000)[1] - wilson_interval(80.0, 10_000)[0] < high - low
    assert wilson_interval(100.0, 20)[1] == 100.0 and wilson_interval(0.0, 20)[0] == 0.0
    with pytest.raises(ValueError, match="at least one pair"):
        wilson_interval(50.0, 0)


def test_nearest_distance_skips_the_point_itself_only_when_asked() -> None:
    from outpool.data.metrics import nearest_distance

    points = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    assert nearest_distance(points, points).tolist() == [0.0, 0.0, 0.0]
    assert nearest_distance(points, points, itself=True).tolist() == [1.0, 1.0, 2.0]
    assert nearest_distance(points[:1], points[1:]).tolist() == [1.0]
