"""Krippendorff's alpha (nominal) and the most disputed pairs."""

from __future__ import annotations

import numpy as np
import pytest

from outpool.annotate.agreement import krippendorff_alpha, most_disputed, votes_per_hour
from outpool.annotate.votes import VoteTable


def table(rows: list[tuple[str, str, int]]) -> VoteTable:
    return VoteTable.from_records([(p, who, ans, 1.0, "") for p, who, ans in rows])


def test_alpha_of_a_worked_example() -> None:
    # two people, four pairs: agree on three (+1, +1, -1), split on one. Coincidences:
    # o(+1,+1) = 4, o(-1,-1) = 2, o(+1,-1) = o(-1,+1) = 1; n = 8, n(+1) = 5, n(-1) = 3;
    # alpha = 1 - (n - 1) * 2 / (n^2 - 25 - 9) = 1 - 14 / 30
    votes = table([("p1", "x", 1), ("p1", "y", 1), ("p2", "x", 1), ("p2", "y", 1),
                   ("p3", "x", -1), ("p3", "y", -1), ("p4", "x", 1), ("p4", "y", -1)])  # fmt: skip
    assert krippendorff_alpha(votes) == pytest.approx(1 - 14 / 30)


def test_alpha_limits() -> None:
    agree = table([(f"p{i}", w, 1 if i % 2 else -1) for i in range(6) for w in "xyz"])
    assert krippendorff_alpha(agree) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noise = table([(f"p{i}", w, int(rng.choice([1, -1]))) for i in range(4000) for w in "xyz"])
    assert abs(krippendorff_alpha(noise) or 0) < 0.03  # chance
    opposed = table([(f"p{i}", w, s) for i in range(6) for w, s in (("x", 1), ("y", -1))])
    assert (krippendorff_alpha(opposed) or 0) < 0  # systematic disagreement
    # undefined: every answer alike, or no pair with two votes
    assert krippendorff_alpha(table([(f"p{i}", w, 1) for i in range(4) for w in "xy"])) is None
    assert krippendorff_alpha(table([("p1", "x", 1), ("p2", "x", -1)])) is None
    # a pair with one vote carries nothing: adding one leaves alpha as it was
    more = table([*[(r.pair_id, r.annotator, r.answer) for r in agree.records()], ("q", "x", -1)])
    assert krippendorff_alpha(more) == pytest.approx(1.0)


def test_most_disputed_orders_by_split_then_votes() -> None:
    votes = table([("even", "x", 1), ("even", "y", -1),
                   ("third", "x", 1), ("third", "y", 1), ("third", "z", 2),
                   ("wide", "x", 1), ("wide", "y", -1), ("wide", "z", 0), ("wide", "w", 2),
                   ("calm", "x", 1), ("calm", "y", 1), ("lone", "x", -1)])  # fmt: skip
    found = most_disputed(votes)
    assert [d.pair_id for d in found] == ["wide", "even", "third"]
    assert found[0].spread == 0.75 and found[0].counts == {-1: 1, 0: 1, 1: 1, 2: 1}
    assert [d.pair_id for d in most_disputed(votes, limit=1)] == ["wide"]


def test_votes_per_hour() -> None:
    assert votes_per_hour(np.array([0.0, 1800.0, 3600.0])) == 2.0
    assert votes_per_hour(np.array([5.0])) is None
    assert votes_per_hour(np.array([5.0, 5.0])) is None
