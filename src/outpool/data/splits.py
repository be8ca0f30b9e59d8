"""Splits without leaks: train, val and test pair tables whose images (or groups: a person, a
product) never cross from one split to another, and the check that finds the images that do.

A ranker evaluated on pairs whose images it trained on is scored on what it memorised. Splitting
by image keeps every image in one split; splitting by group keeps every person (the image
table's ``group`` column, or a groups CSV of ``image,group`` lines) in one; splitting by folder
keeps every folder of a ``folder:`` import (``alice/01.jpg`` is in group ``alice``) in one.
Pairs whose two images land in different splits are dropped, and counted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from outpool.data.dataset import Dataset
from outpool.data.images import read_header, read_rows
from outpool.data.pairs import PairTable
from outpool.errors import DataError, UnknownNameError

SPLITS = ("train", "val", "test")
UNITS = ("image", "group", "folder")


def renumbered(pairs: PairTable, prefix: str) -> PairTable:
    """The pairs with ids ``PREFIX-000000``, ... (the tables pooled may repeat ids)."""
    ids = np.asarray([f"{prefix}-{i:06d}" for i in range(len(pairs))], dtype=np.str_)
    return dataclasses.replace(pairs, ids=ids)


def unit_of(dataset: Dataset, by: str, groups: dict[str, str] | None = None) -> dict[str, str]:
    """Image id -> the unit that must stay in one split: the image itself, its group (from
    ``groups`` where given, else the image table's), or its folder."""
    if by not in UNITS:
        raise UnknownNameError("split unit", by, UNITS)
    out: dict[str, str] = {}
    for name, table in dataset.images.items():
        ids = table.ids.tolist()
        if by == "folder":
            out.update((i, i.rpartition("/")[0] or i) for i in ids)
        elif by == "group" and groups is not None:
            out.update((i, groups[i]) for i in ids if i in groups)
        elif by == "group":
            if table.groups is None:
                raise DataError(
                    f"image table '{name}' has no groups to split by; use --by image, "
                    "--by folder (each image's folder is its group) or --groups CSV"
                )
            out.update(zip(ids, table.groups.tolist(), strict=True))
        else:
            out.update(zip(ids, ids, strict=True))
    if by == "folder" and all("/" not in i for i in out):
        raise DataError("no image is in a folder (ids like 'alice/01.jpg'); use --by image")
    return out


def read_groups_csv(path: Path) -> dict[str, str]:
    """Image id -> group from a CSV with the header ``image,group`` (an image once)."""
    rows = iter(read_rows(path))
    header = read_header(path, rows, ("image", "group"), ("image", "group"))
    col = {c: header.index(c) for c in ("image", "group")}
    out: dict[str, str] = {}
    first: dict[str, int] = {}
    for line, row in rows:
        if len(row) != len(header):
            raise DataError(f"expected {len(header)} fields, got {len(row)}", path=path, line=line)
        image, group = (row[col[c]].strip() for c in ("image", "group"))
        for field, value in (("image", image), ("group", group)):
            if not value:
                raise DataError("empty", path=path, line=line, field=field)
        if image in out and out[image] != group:
            raise DataError(
                f"image '{image}' is in group '{out[image]}' on line {first[image]}",
                path=path,
                line=line,
                field="group",
            )
        out[image], first[image] = group, first.get(image, line)
    return out


def missing_groups(dataset: Dataset, groups: dict[str, str], tables: Sequence[str]) -> list[str]:
    """The images of pairs in ``tables`` that ``groups`` does not place."""
    named = [dataset.pairs[t] for t in tables if t in dataset.pairs]
    images = {i for p in named for i in (*p.a.tolist(), *p.b.tolist())}
    return sorted(images - set(groups))


def split_pairs(
    dataset: Dataset,
    *,
    by: str = "image",
    test: float = 0.3,
    val: float = 0.1,
    seed: int = 0,
    tables: Sequence[str] = SPLITS,
    groups: dict[str, str] | None = None,
) -> tuple[dict[str, PairTable], dict[str, Any]]:
    """The pairs of ``tables`` (those the dataset has) split into train / val / test with the
    units (images, groups or folders; ``groups``: image -> group, for ``by="group"``) drawn at
    random in these shares; returns (tables, report: units and pairs per split, pairs dropped
    because they straddle two splits)."""
    if not (0 < test < 1 and 0 <= val < 1 and test + val < 1):
        raise DataError(f"--test and --val must be shares with test + val < 1, got {test}, {val}")
    present = [t for t in tables if t in dataset.pairs]
    if not present:
        raise UnknownNameError("pair table", ",".join(tables), dataset.pairs)
    if groups is not None:
        if by != "group":
            raise DataError(f"a groups table splits by group, not by {by}")
        unplaced = missing_groups(dataset, groups, present)
        if unplaced:
            shown = ", ".join(unplaced[:5]) + (", ..." if len(unplaced) > 5 else "")
            raise DataError(f"{len(unplaced)} paired image(s) have no group: {shown}")
    pairs = renumbered(PairTable.concat(renumbered(dataset.pairs[t], t) for t in present), "p")
    units = unit_of(dataset, by, groups)
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


def leaks(
    dataset: Dataset,
    *,
    by: str = "image",
    tables: Sequence[str] = SPLITS,
    groups: dict[str, str] | None = None,
) -> list[str]:
    """The units (images, groups or folders) that appear in pairs of two or more of
    ``tables``."""
    units = unit_of(dataset, by, groups)
    seen: dict[str, set[str]] = {}
    for table in (t for t in tables if t in dataset.pairs):
        pairs = dataset.pairs[table]
        for image in np.concatenate([pairs.a, pairs.b]).tolist():
            seen.setdefault(units.get(image, image), set()).add(table)  # no group: itself
    return sorted(u for u, where in seen.items() if len(where) > 1)
