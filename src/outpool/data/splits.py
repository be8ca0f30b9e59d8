"""Splits without leaks: train, val and test pair tables whose images (or groups: a person, a
product) never cross from one split to another, and the check that finds the images that do.

A ranker evaluated on pairs whose images it trained on is scored on what it memorised. Splitting
by image keeps every image in one split; splitting by group keeps every person (the image
table's ``group`` column) in one. Pairs whose two images land in different splits are dropped,
and counted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from outpool.data.dataset import Dataset
from outpool.data.pairs import PairTable
from outpool.errors import DataError, UnknownNameError

SPLITS = ("train", "val", "test")
UNITS = ("image", "group")


def renumbered(pairs: PairTable, prefix: str) -> PairTable:
    """The pairs with ids ``PREFIX-000000``, ... (the tables pooled may repeat ids)."""
    ids = np.asarray([f"{prefix}-{i:06d}" for i in range(len(pairs))], dtype=np.str_)
    return dataclasses.replace(pairs, ids=ids)


def unit_of(dataset: Dataset, by: str) -> dict[str, str]:
    """Image id -> the unit that must stay in one split: the image itself, or its group."""
    if by not in UNITS:
        raise UnknownNameError("split unit", by, UNITS)
    out: dict[str, str] = {}
    for name, table in dataset.images.items():
        if by == "group" and table.groups is None:
            raise DataError(f"image table '{name}' has no groups to split by; use --by image")
        groups = table.ids if by == "image" else table.groups
        assert groups is not None
        out.update(zip(table.ids.tolist(), groups.tolist(), strict=True))
    return out


def split_pairs(
    dataset: Dataset,
    *,
    by: str = "image",
    test: float = 0.3,
    val: float = 0.1,
    seed: int = 0,
    tables: Sequence[str] = SPLITS,
) -> tuple[dict[str, PairTable], dict[str, Any]]:
    """The pairs of ``tables`` (those the dataset has) split into train / val / test with the
    units (images or groups) drawn at random in these shares; returns (tables, report: units
    and pairs per split, pairs dropped because they straddle two splits)."""
    if not (0 < test < 1 and 0 <= val < 1 and test + val < 1):
        raise DataError(f"--test and --val must be shares with test + val < 1, got {test}, {val}")
    present = [t for t in tables if t in dataset.pairs]
    if not present:
        raise UnknownNameError("pair table", ",".join(tables), dataset.pairs)
    pairs = renumbered(PairTable.concat(renumbered(dataset.pairs[t], t) for t in present), "p")
    units = unit_of(dataset, by)
    named = sorted({units[i] for i in np.concatenate([pairs.a, pairs.b]).tolist()})
    order = np.random.default_rng(seed).permutation(len(named))
    n_test, n_val = round(test * len(named)), round(val * len(named))
    split_of: dict[str, str] = {}
    for rank, i in enumerate(order.tolist()):
        split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
        split_of[named[i]] = split
    side_a = np.array([split_of[units[i]] for i in pairs.a.tolist()])
    side_b = np.array([split_of[units[i]] for i in pairs.b.tolist()])
    out: dict[str, PairTable] = {}
    for split in SPLITS:
        mine = pairs.subset((side_a == split) & (side_b == split))
        out[split] = renumbered(mine, split)
    report = {
        "by": by,
        "from_tables": present,
        "units": {s: sum(1 for v in split_of.values() if v == s) for s in SPLITS},
        "pairs": {s: len(t) for s, t in out.items()},
        "dropped_straddling": int((side_a != side_b).sum()),
    }
    return out, report


def leaks(dataset: Dataset, *, by: str = "image", tables: Sequence[str] = SPLITS) -> list[str]:
    """The units (images or groups) that appear in pairs of two or more of ``tables``."""
    units = unit_of(dataset, by)
    seen: dict[str, set[str]] = {}
    for table in (t for t in tables if t in dataset.pairs):
        pairs = dataset.pairs[table]
        for image in np.concatenate([pairs.a, pairs.b]).tolist():
            seen.setdefault(units[image], set()).add(table)
    return sorted(u for u, where in seen.items() if len(where) > 1)
