from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outpool.annotate import REJECT, VoteTable, majority_vote, per_annotator_stats
from outpool.errors import DataError

R = REJECT


def table(votes: dict[str, list[tuple[int, float]]]) -> VoteTable:
    """Votes by pair: [(answer, confidence), ...]; annotators w0, w1, ... in order."""
    return VoteTable.from_records(
        (pair, f"w{i}", answer, conf)
        for pair, rows in votes.items()
        for i, (answer, conf) in enumerate(rows)
    )


def test_majority_tie_and_reject_rules() -> None:
    votes = table(
        {
            "clear": [(1, 1.0), (1, 0.5), (1, 1.0), (-1, 1.0), (0, 0.0)],
            "pm_tie": [(1, 1.0), (1, 1.0), (-1, 1.0), (-1, 1.0), (0, 1.0)],
            "eq_tie": [(0, 1.0), (0, 0.5), (1, 1.0), (1, 1.0), (-1, 1.0)],
            "eq_win": [(0, 1.0), (0, 0.5), (0, 0.5), (1, 1.0), (-1, 1.0)],
            "rejected": [(R, 1.0), (R, 0.5), (R, 0.0), (1, 1.0), (1, 1.0)],
            "two_rejects": [(R, 1.0), (R, 1.0), (-1, 0.5), (-1, 1.0), (-1, 1.0)],
            "half_reject": [(R, 1.0), (R, 1.0), (1, 1.0), (1, 1.0)],
            "other": [(1, 1.0)],  # not asked: ignored
        }
    )
    asked = np.array(
        ["clear", "pm_tie", "eq_tie", "eq_win", "rejected", "two_rejects", "half_reject", "none"]
    )
    result = majority_vote(votes, asked, min_agreement=0.6)
    np.testing.assert_array_equal(result.pair_ids, asked)
    np.testing.assert_array_equal(result.label, [1, 0, 0, 0, 0, -1, 0, 0])
    np.testing.assert_allclose(result.agreement, [0.6, 0.2, 0.4, 0.6, 0.6, 1.0, 0.5, 0.0])
    np.testing.assert_allclose(result.confidence, [2.5 / 3, 1.0, 0.75, 2 / 3, 0.5, 2.5 / 3, 1.0, 0])
    np.testing.assert_array_equal(
        result.status,
        [
            "accepted",  # 3 of 5: exactly the 0.6 threshold passes
            "pruned",  # +1/-1 tie -> equal, which nobody said
            "pruned",
            "accepted",
            "rejected",  # 3 of 5 rejects
            "accepted",  # 2 rejects of 5 is not a majority; the 3 others agree
            "rejected",  # 2 of 4: half is enough
            "pruned",  # no votes
        ],
    )
    np.testing.assert_array_equal(result.accepted_indices(), [0, 3, 5])
    assert len(result.votes) == len(votes) - 1
    assert "other" not in set(result.votes.pair_id)


def test_min_confidence_prunes() -> None:
    votes = table({"sure": [(1, 1.0)] * 5, "unsure": [(1, 0.0)] * 4 + [(1, 1.0)]})
    loose = majority_vote(votes, np.array(["sure", "unsure"]))
    strict = majority_vote(votes, np.array(["sure", "unsure"]), min_confidence=0.5)
    np.testing.assert_array_equal(loose.status, ["accepted", "accepted"])
    np.testing.assert_array_equal(strict.status, ["accepted", "pruned"])
    np.testing.assert_allclose(strict.confidence, [1.0, 0.2])


def test_duplicate_pair_ids_are_an_error() -> None:
    with pytest.raises(DataError, match="twice"):
        majority_vote(VoteTable.empty(), np.array(["a", "b", "a"]))


def test_per_annotator_stats_numbers() -> None:
    votes = VoteTable.from_records(
        [
            ("p1", "ann", 1, 1.0),
            ("p1", "bob", 1, 0.5),
            ("p1", "cat", -1, 0.0),
            ("p2", "ann", 0, 1.0),
            ("p2", "bob", 0, 1.0),
            ("p2", "cat", R, 0.5),
            ("p3", "ann", R, 1.0),  # p3 is rejected: no agreement is counted there
            ("p3", "bob", R, 1.0),
            ("p3", "cat", 1, 1.0),
            ("p9", "dan", 1, 1.0),  # a pair outside the result
        ]
    )
    result = majority_vote(votes, np.array(["p1", "p2", "p3"]))
    np.testing.assert_array_equal(result.status, ["accepted", "accepted", "rejected"])
    stats = per_annotator_stats(votes, result)
    assert list(stats) == ["ann", "bob", "cat"]
    assert stats["ann"] == {
        "n_votes": 3,
        "n_compared": 2,
        "agreement": 1.0,
        "reject_rate": pytest.approx(1 / 3),
        "mean_confidence": 1.0,
    }
    assert stats["bob"]["mean_confidence"] == pytest.approx(2.5 / 3)
    assert stats["cat"] == {
        "n_votes": 3,
        "n_compared": 1,
        "agreement": 0.0,
        "reject_rate": pytest.approx(1 / 3),
        "mean_confidence": 0.5,
    }


answers = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from([1, -1, 0, REJECT]),
        st.sampled_from([0.0, 0.5, 1.0]),
    ),
    max_size=40,
)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(answers, st.randoms(use_true_random=False))
def test_majority_vote_properties(rows, rand) -> None:
    votes = VoteTable.from_records((p, f"w{i}", a, c) for i, (p, a, c) in enumerate(rows))
    asked = np.array(["a", "b", "c"])
    result = majority_vote(votes, asked, min_agreement=0.6)
    shuffled = list(rows)
    rand.shuffle(shuffled)
    again = majority_vote(
        VoteTable.from_records((p, "w", a, c) for p, a, c in shuffled), asked, min_agreement=0.6
    )
    # The order of votes does not matter.
    np.testing.assert_array_equal(result.label, again.label)
    np.testing.assert_array_equal(result.status, again.status)
    np.testing.assert_allclose(result.agreement, again.agreement, rtol=1e-6)
    assert ((result.agreement >= 0) & (result.agreement <= 1)).all()
    accepted = result.status == "accepted"
    assert (result.agreement[accepted] >= 0.6 - 1e-6).all()
    for i, pair in enumerate(asked):
        mine = [a for p, a, _ in rows if p == pair]
        if accepted[i]:
            # An accepted label is one that strictly more voters gave than any other answer.
            others = [mine.count(x) for x in (1, -1, 0) if x != result.label[i]]
            assert mine.count(int(result.label[i])) > max(others)
        if result.status[i] == "rejected":
            assert 2 * mine.count(REJECT) >= len(mine) > 0
