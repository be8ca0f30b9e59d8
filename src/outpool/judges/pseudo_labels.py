"""Strengths for generator-training images that have no scores: regressed, and recorded so.

LFW has attribute scores for only 4,144 of its 13,233 images. The generator may train on every
image whose person is in no ranker split (``load_lfw``'s ``generator`` table, with scores, and
``generator_unscored``, without). The unscored images get strengths from a regressor (an
``AttributeNet``) trained on the scored generator images only: non-test images, and people
outside every ranker split. Its quality on held-out generator-split people, how many images it
labelled and what it was trained on go into the run record.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import numpy as np

from outpool.data import Dataset, ImageTable
from outpool.data.images import format_float
from outpool.errors import DataError
from outpool.fileio import atomic_path
from outpool.train.attribute_net import (
    AttributeNetTrainConfig,
    ScoredImages,
    predict_scores,
    train_attribute_net,
)

UNSCORED_SUFFIX = "_unscored"


def unscored_table(table: str) -> str:
    """The companion table of ``table`` that holds its images without scores."""
    return table + UNSCORED_SUFFIX


def ranker_images(dataset: Dataset) -> tuple[set[str], set[str]]:
    """(image ids named by any pair table, groups of the image tables those ids live in)."""
    named: set[str] = set()
    for pairs in dataset.pairs.values():
        named.update(pairs.a.tolist())
        named.update(pairs.b.tolist())
    groups: set[str] = set()
    for table in dataset.images.values():
        if table.groups is not None and np.isin(table.ids, list(named)).any():
            groups.update(table.groups.tolist())
    return named, groups


def check_disjoint(dataset: Dataset, tables: list[str], *, identities: bool) -> None:
    """The generator's images must be in no pair (and, with ``identities``, their people in no
    table that pairs are drawn from): the generator never sees a ranker image."""
    named, ranker_groups = ranker_images(dataset)
    for name in tables:
        table = dataset.images[name]
        shared = np.isin(table.ids, list(named))
        if shared.any():
            raise DataError(
                f"image '{table.ids[shared][0]}' of generator table '{name}' is in a ranker pair; "
                "the generator must train on images disjoint from every ranker pair"
            )
        if identities and table.groups is not None:
            both = sorted(set(table.groups.tolist()) & ranker_groups)
            if both:
                raise DataError(
                    f"person '{both[0]}' of generator table '{name}' is also in a ranker split "
                    f"({len(both)} such people)"
                )


def pseudo_label(
    dataset: Dataset,
    *,
    table: str,
    cfg: AttributeNetTrainConfig,
    work_dir: Path,
    progress: bool = True,
) -> tuple[ImageTable, dict[str, Any]]:
    """``table`` + ``unscored_table(table)`` as one table with strengths: true scores where the
    file has them, the regressor's elsewhere. Writes ``work_dir`` (the regressor's run folder and
    ``pseudo_labels.csv``: id, group, regressed strengths). Returns (table, record)."""
    scored, unscored = dataset.images[table], dataset.images[unscored_table(table)]
    if scored.strengths is None or not scored.attributes:
        raise DataError(f"image table '{table}' has no attribute strengths to learn from")
    check_disjoint(dataset, [table, unscored_table(table)], identities=True)
    data = ScoredImages(
        ids=scored.ids,
        pixels=np.asarray(scored.pixels),
        scores=scored.strengths,
        groups=scored.groups if scored.groups is not None else scored.ids,
        attributes=scored.attributes,
        source=(
            f"true scores of {dataset.name} table '{table}' (generator split: no test image, "
            "no person of a ranker split)"
        ),
    )
    if progress:
        print(
            f"pseudo-labels: training the regressor on {len(data)} scored images ...",
            file=sys.stderr,
            flush=True,
        )
    model, summary = train_attribute_net(data, cfg, work_dir, progress=progress, desc="regressor")
    regressed = predict_scores(model, np.asarray(unscored.pixels)).astype(np.float32)
    _write_labels(work_dir / "pseudo_labels.csv", unscored, scored.attributes, regressed)
    groups = None
    if scored.groups is not None or unscored.groups is not None:
        groups = np.concatenate(
            [t.groups if t.groups is not None else np.full(len(t), "") for t in (scored, unscored)]
        )
    combined = ImageTable(
        ids=np.concatenate([scored.ids, unscored.ids]),
        pixels=np.concatenate([np.asarray(scored.pixels), np.asarray(unscored.pixels)]),
        groups=groups,
        attributes=scored.attributes,
        strengths=np.concatenate([scored.strengths, regressed]),
    )
    record = {
        "table": table,
        "unscored_table": unscored_table(table),
        "images_scored": len(scored),
        "images_regressed": len(unscored),
        "regressor": {**summary, "run": str(work_dir), "labels": "pseudo_labels.csv"},
    }
    return combined, record


def _write_labels(
    path: Path, table: ImageTable, names: tuple[str, ...], values: np.ndarray
) -> None:
    groups = table.groups if table.groups is not None else np.full(len(table), "")
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("id", "group", *names))
        for i, g, row in zip(table.ids.tolist(), groups.tolist(), values.tolist(), strict=True):
            writer.writerow((i, g, *map(format_float, row)))
