"""Individual annotator votes: a columnar table, its CSV format, and concatenation.

Every vote is kept (not only the aggregate), so aggregation rules can be re-run later and
annotators can be audited. CSV columns: ``pair_id,annotator,answer,confidence,rationale`` (a
full export from the service adds more after them, which ``load`` skips); an annotator or
rationale that a spreadsheet would run as a formula is written after a ``'``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from outpool.errors import DataError
from outpool.fileio import atomic_path, sheet_safe, sheet_text

MORE_A = 1  # image a shows more of the attribute
MORE_B = -1  # image b shows more
EQUAL = 0
REJECT = 2  # "can't tell what this is": the pair is illegible, no comparison given
ANSWERS = (MORE_B, EQUAL, MORE_A, REJECT)

# The three levels of the annotation page; stored as a general float in [0, 1].
CONFIDENCE_NOT, CONFIDENCE_SOMEWHAT, CONFIDENCE_VERY = 0.0, 0.5, 1.0

COLUMNS = ("pair_id", "annotator", "answer", "confidence", "rationale")

# What a person picks on a page that shows the pair as left / right ("A is more / equally /
# less ... than B"), and the confidence levels by name. Left and right are randomised per
# annotator, so every people-facing path maps answers back with ``answer_from_display``.
DISPLAY_CHOICES = ("left_more", "equal", "left_less", "illegible")
CONFIDENCE_LEVELS = {
    "very": CONFIDENCE_VERY,
    "somewhat": CONFIDENCE_SOMEWHAT,
    "not": CONFIDENCE_NOT,
}


def answer_from_display(choice: str, swapped: bool) -> int:
    """The canonical answer (+1 image a more, -1 b more, 0 equal, REJECT) of a displayed
    ``choice``; ``swapped`` is True when image b was shown on the left."""
    if choice == "equal":
        return EQUAL
    if choice == "illegible":
        return REJECT
    if choice not in ("left_more", "left_less"):
        raise ValueError(f"unknown choice {choice!r}; expected one of {DISPLAY_CHOICES}")
    left_more = choice == "left_more"
    return MORE_A if left_more != swapped else MORE_B


def display_from_answer(answer: int, swapped: bool) -> str:
    """Inverse of ``answer_from_display``."""
    if answer == EQUAL:
        return "equal"
    if answer == REJECT:
        return "illegible"
    if answer not in (MORE_A, MORE_B):
        raise ValueError(f"unknown answer {answer!r}")
    return "left_more" if (answer == MORE_A) != swapped else "left_less"


class Vote(NamedTuple):
    """One annotator's answer on one pair (a row of a ``VoteTable``)."""

    pair_id: str
    annotator: str
    answer: int
    confidence: float
    rationale: str = ""


@dataclass(frozen=True, eq=False)
class VoteTable:
    """Parallel arrays, one row per vote (V rows).

    pair_id (V,) str; annotator (V,) str; answer (V,) int8 in {+1, -1, 0, REJECT=2};
    confidence (V,) float32 in [0, 1]; rationale (V,) str, may be empty.
    """

    pair_id: np.ndarray
    annotator: np.ndarray
    answer: np.ndarray
    confidence: np.ndarray
    rationale: np.ndarray

    def __post_init__(self) -> None:
        # Normalise dtypes once here so every consumer can rely on them.
        cols = {
            "pair_id": _str_array(self.pair_id),
            "annotator": _str_array(self.annotator),
            "answer": np.asarray(self.answer),
            "confidence": np.asarray(self.confidence, dtype=np.float32).reshape(-1),
            "rationale": _str_array(self.rationale),
        }
        n = len(cols["pair_id"])
        for name, arr in cols.items():
            if arr.ndim != 1 or len(arr) != n:
                raise DataError(f"expected a 1-D array of length {n}, got {arr.shape}", field=name)
        answer = cols["answer"]
        if not np.isin(answer, ANSWERS).all():
            bad = answer[~np.isin(answer, ANSWERS)][0]
            raise DataError(f"answer must be one of {ANSWERS}, got {bad!r}", field="answer")
        cols["answer"] = answer.astype(np.int8)
        conf = cols["confidence"]
        if not ((conf >= 0.0) & (conf <= 1.0)).all():  # also catches NaN
            bad = conf[~((conf >= 0.0) & (conf <= 1.0))][0]
            raise DataError(f"confidence must be in [0, 1], got {bad!r}", field="confidence")
        for name, arr in cols.items():
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return len(self.pair_id)

    @classmethod
    def empty(cls) -> VoteTable:
        return cls.from_records(())

    @classmethod
    def from_records(cls, votes: Iterable[Vote | Sequence[object]]) -> VoteTable:
        """Build a table from ``Vote`` rows (or 4/5-tuples in column order)."""
        rows = [Vote(*v) for v in votes]
        return cls(
            pair_id=np.array([r.pair_id for r in rows], dtype=str),
            annotator=np.array([r.annotator for r in rows], dtype=str),
            answer=np.array([r.answer for r in rows], dtype=np.int8),
            confidence=np.array([r.confidence for r in rows], dtype=np.float32),
            rationale=np.array([r.rationale for r in rows], dtype=str),
        )

    def records(self) -> Iterator[Vote]:
        for i in range(len(self)):
            yield Vote(
                str(self.pair_id[i]),
                str(self.annotator[i]),
                int(self.answer[i]),
                float(self.confidence[i]),
                str(self.rationale[i]),
            )

    def take(self, index: np.ndarray) -> VoteTable:
        """Rows selected by an integer index array or a (V,) boolean mask."""
        return VoteTable(
            pair_id=self.pair_id[index],
            annotator=self.annotator[index],
            answer=self.answer[index],
            confidence=self.confidence[index],
            rationale=self.rationale[index],
        )

    @staticmethod
    def concat(tables: Iterable[VoteTable]) -> VoteTable:
        """All rows of ``tables``, in order."""
        tables = list(tables)
        if not tables:
            return VoteTable.empty()
        return VoteTable(**{c: np.concatenate([getattr(t, c) for t in tables]) for c in COLUMNS})

    def save(self, path: str | Path) -> None:
        """Write the table as CSV (UTF-8, header row), atomically."""
        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            for v in self.records():
                # repr of the float32 value re-parses to the same float32: the round trip is exact
                conf = np.format_float_positional(np.float32(v.confidence), trim="-")
                # people's text is written so that no spreadsheet runs it as a formula
                row = (v.pair_id, sheet_safe(v.annotator), v.answer, conf, sheet_safe(v.rationale))
                writer.writerow(row)

    @classmethod
    def load(cls, path: str | Path) -> VoteTable:
        """Read a CSV written by ``save``; any bad row raises ``DataError`` (path, line, field)."""
        path = Path(path)
        try:
            # Vote files are small; reading at once keeps open/close apart from parsing.
            with open(path, newline="", encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise DataError(f"cannot open vote file ({exc.strerror})", path=path) from None
        except UnicodeDecodeError:
            raise DataError("not UTF-8 text", path=path) from None
        reader = csv.reader(io.StringIO(text, newline=""))
        rows: list[Vote] = []
        line = 1
        try:
            header = next(reader, None)
            if header is None or tuple(header[: len(COLUMNS)]) != COLUMNS:
                raise DataError(
                    f"header must begin {','.join(COLUMNS)}, got {','.join(header or [])!r}",
                    path=path,
                    line=1,
                )
            line = reader.line_num + 1
            for row in reader:  # columns after the five (a full export's) are not read
                if len(row) != len(header):
                    raise DataError(
                        f"expected {len(header)} fields, got {len(row)}", path=path, line=line
                    )
                rows.append(_parse_row(row[: len(COLUMNS)], path, line))
                line = reader.line_num + 1  # a quoted field may span lines
        except csv.Error as exc:
            raise DataError(f"not a valid CSV file ({exc})", path=path, line=line) from None
        return cls.from_records(rows)


def _parse_row(row: list[str], path: Path, line: int) -> Vote:
    if len(row) != len(COLUMNS):
        raise DataError(f"expected {len(COLUMNS)} fields, got {len(row)}", path=path, line=line)
    pair_id, annotator, answer_s, conf_s, rationale = row
    annotator, rationale = sheet_text(annotator), sheet_text(rationale)
    for name, value in (("pair_id", pair_id), ("annotator", annotator)):
        if not value:
            raise DataError("must not be empty", path=path, line=line, field=name)
    try:
        answer = int(answer_s)
    except ValueError:
        answer = -99  # not an answer: reported below
    if answer not in ANSWERS:
        raise DataError(
            f"must be one of 1, -1, 0, 2 (reject), got {answer_s!r}",
            path=path,
            line=line,
            field="answer",
        )
    try:
        conf = float(conf_s)
    except ValueError:
        conf = math.nan
    if not 0.0 <= conf <= 1.0:
        raise DataError(
            f"must be a number in [0, 1], got {conf_s!r}", path=path, line=line, field="confidence"
        )
    return Vote(pair_id, annotator, answer, conf, rationale)


def _str_array(values: object) -> np.ndarray:
    arr = np.asarray(values)
    if arr.size == 0:
        return np.zeros(arr.shape, dtype="<U1")
    return arr.astype(str)
