"""Duplicate and conflicting pairs in a pair table, and the policy that resolves them.

Two rows are the same question when they name the same attribute and the same two images, in
either order (``b,a`` with the label negated asks ``a,b``). Among the rows of one question:

- **duplicates** agree: the default policy (``merge``) keeps the first row, with the mean of
  their confidences; the others are counted as its repeated votes. ``keep`` leaves every row.
- **conflicts** disagree (``a`` more in one row, ``b`` more or equal in another): the default
  (``exclude``) keeps every row of the question out of the table and lists them in a separate
  table, since no single label is the truth a ranker should learn; ``keep`` leaves them in.

``resolve`` applies the policy to one table and returns what it found, so an import can report
counts and the first few rows (by CSV line where the rows came from a file). ``shared`` finds
the questions two tables both ask (a test pair that is also a training pair measures memory).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from outpool.data.pairs import PairTable
from outpool.errors import UnknownNameError

DUPLICATE_POLICIES = ("merge", "keep")
CONFLICT_POLICIES = ("exclude", "keep")
EXAMPLES = 5  # rows quoted in a report


@dataclass
class DuplicateReport:
    """What ``resolve`` found in one table: counts of rows, and the first few described."""

    duplicate_rows: int = 0  # rows that repeat an earlier row's question and answer
    reversed_rows: int = 0  # of those, rows that ask it with a and b swapped
    conflicting_questions: int = 0  # questions whose rows disagree
    conflicting_rows: int = 0
    duplicate_examples: list[str] = field(default_factory=list)
    conflict_examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __bool__(self) -> bool:
        return bool(self.duplicate_rows or self.conflicting_rows)


def _questions(pairs: PairTable) -> tuple[list[list[int]], np.ndarray]:
    """Row indices grouped by question (in order of first row), and each row's label as seen
    from the question's canonical order (the smaller image id first)."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    keys, oriented = _keys(pairs)
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return list(groups.values()), oriented


def resolve(
    pairs: PairTable,
    *,
    duplicates: str = "merge",
    conflicts: str = "exclude",
    where: Callable[[int], str] | None = None,
) -> tuple[PairTable, PairTable, DuplicateReport]:
    """``(kept, conflicting, report)``: the table under the policy, the conflicting rows it kept
    out (empty under ``conflicts="keep"``), and the counts. ``where(i)`` describes row ``i`` in
    the report (default: its pair id)."""
    if duplicates not in DUPLICATE_POLICIES:
        raise UnknownNameError("duplicates policy", duplicates, DUPLICATE_POLICIES)
    if conflicts not in CONFLICT_POLICIES:
        raise UnknownNameError("conflicts policy", conflicts, CONFLICT_POLICIES)
    describe = where or (lambda i: f"pair '{pairs.ids[i]}'")
    report = DuplicateReport()
    keep = np.ones(len(pairs), dtype=bool)
    out = np.zeros(len(pairs), dtype=bool)
    confidence = pairs.confidence.copy()
    groups, oriented = _questions(pairs)
    for rows in groups:
        if len(rows) == 1:
            continue
        first = rows[0]
        if len(set(oriented[rows].tolist())) > 1:
            report.conflicting_questions += 1
            report.conflicting_rows += len(rows)
            if len(report.conflict_examples) < EXAMPLES:
                answers = ", ".join(f"{describe(i)}: {int(pairs.label[i]):+d}" for i in rows)
                report.conflict_examples.append(
                    f"{pairs.attribute[first]} {pairs.a[first]} vs {pairs.b[first]}: {answers}"
                )
            if conflicts == "exclude":
                keep[rows] = False
                out[rows] = True
            continue
        repeats = rows[1:]
        report.duplicate_rows += len(repeats)
        report.reversed_rows += int((pairs.a[repeats] != pairs.a[first]).sum())
        if len(report.duplicate_examples) < EXAMPLES:
            report.duplicate_examples.append(
                f"{', '.join(describe(i) for i in repeats)} repeat{'s' * (len(repeats) == 1)} "
                f"{describe(first)}"
            )
        if duplicates == "merge":
            keep[repeats] = False
            confidence[first] = float(pairs.confidence[rows].mean())
    merged = dataclasses.replace(pairs, confidence=confidence)
    return merged.subset(keep), pairs.subset(out), report


def _keys(pairs: PairTable) -> tuple[list[tuple[str, str, str]], np.ndarray]:
    """Each row's question (attribute, smaller image id, larger) and its label in that order."""
    flipped = pairs.a > pairs.b
    keys = [
        (str(attr), str(b), str(a)) if f else (str(attr), str(a), str(b))
        for attr, a, b, f in zip(pairs.attribute, pairs.a, pairs.b, flipped, strict=True)
    ]
    oriented = np.where(flipped, -pairs.label.astype(np.int16), pairs.label.astype(np.int16))
    return keys, oriented


def shared(first: PairTable, second: PairTable) -> tuple[list[tuple[int, int]], int]:
    """The rows of ``second`` that ask a question ``first`` asks, as (row of first, row of
    second), and how many of them answer it otherwise."""
    keys, labels = _keys(first)
    seen: dict[tuple[str, str, str], int] = {}
    for i, key in enumerate(keys):
        seen.setdefault(key, i)
    other_keys, other_labels = _keys(second)
    found = [(seen[k], j) for j, k in enumerate(other_keys) if k in seen]
    disagree = sum(int(labels[i] != other_labels[j]) for i, j in found)
    return found, disagree
