"""The generator workflow as a Python API (what ``train-generator`` calls): give strengths to
unscored training images when the dataset has them, train, draw the galleries, and check
controllability with an independent judge when the dataset has one.

Run folder: ``config.json``, ``metrics.jsonl``, checkpoints, ``generator.pt``, ``samples.png``,
``reconstructions.png``, ``sweeps.png``, ``summary.json``; with a judge ``controllability.json``;
with unscored images ``regressor/`` (the pseudo-label regressor's run and
``pseudo_labels.csv``). Every step resumes from what the folder already holds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from outpool.annotate.protocol import Judge
from outpool.data import Dataset
from outpool.data.dataset import Truth
from outpool.fileio import atomic_path, json_text
from outpool.judges import make_judge
from outpool.judges.generator_check import controllability
from outpool.judges.pseudo_labels import check_disjoint, pseudo_label, unscored_table
from outpool.report.generator_figures import save_generator_figures
from outpool.train.generator import GeneratorTrainConfig, split_indices, train_generator


def train_generator_run(
    dataset: Dataset,
    cfg: GeneratorTrainConfig,
    run: Path,
    *,
    table: str = "generator",
    judge: Judge | None = None,
    judge_record: Mapping[str, Any] | None = None,
    check_latents: int = 32,
    progress: bool = True,
) -> dict[str, Any]:
    """Train into ``run``; returns the summary (with the controllability check when judged).

    When the dataset has ``TABLE_unscored`` (LFW: faces of generator-split or unscored people
    without a score row), a regressor trained on ``TABLE``'s scores labels them first and the
    generator trains on both; the summary's ``pseudo_labels`` says how many and how good.
    ``judge_record`` (what the judge is, its own held-out quality) is copied into the summary;
    ``check_latents`` is the number of latents z per attribute sweep of the check.
    """
    started = time.perf_counter()
    summary: dict[str, Any] = {}  # also the run record's: nothing that differs on a rerun
    wall: dict[str, float] = {}
    train_set, train_table = dataset, table
    if table in dataset.images and unscored_table(table) in dataset.images:
        t0 = time.perf_counter()
        combined, record = pseudo_label(
            dataset, table=table, cfg=cfg.regressor, work_dir=run / "regressor", progress=progress
        )
        train_table = f"{table}_with_regressed"
        train_set = Dataset(
            name=dataset.name, attributes=dataset.attributes, images={train_table: combined}
        )
        summary["pseudo_labels"] = record
        wall["pseudo_labels_wall_s"] = round(time.perf_counter() - t0, 1)
    elif table in dataset.images:
        check_disjoint(dataset, [table], identities=False)
    t0 = time.perf_counter()
    model, trained = train_generator(
        train_set, cfg, run, table=train_table, progress=progress, extra_record=summary
    )
    summary.update(trained)
    summary["train_images"] = len(train_set.images[train_table])
    summary.update(wall, train_wall_s=round(time.perf_counter() - t0, 1))
    images = train_set.images[train_table]
    held_out, training = split_indices(len(images), cfg.val_share, cfg.seed)
    shown = np.sort((held_out if len(held_out) else training)[:16])  # held-out when there are
    strengths = np.asarray(images.strengths, np.float32)[shown]
    save_generator_figures(model, run, np.asarray(images.pixels[shown]), strengths)
    if judge_record is not None:
        summary["judge"] = dict(judge_record)
    if judge is not None:
        summary["controllability"] = controllability(model, judge, n_z=check_latents, seed=cfg.seed)
        with atomic_path(run / "controllability.json") as tmp:
            tmp.write_text(json_text(summary["controllability"], indent=2) + "\n")
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    with atomic_path(run / "summary.json") as tmp:
        tmp.write_text(json_text(summary, indent=2) + "\n")
    return summary


def train_judged_generator_run(
    dataset: Dataset,
    truth: Mapping[str, Truth],
    cfg: GeneratorTrainConfig,
    run: Path,
    *,
    table: str = "generator",
    judge_cfg: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """``train_generator_run`` with the dataset's own judge (``outpool.judges``), built first
    so that a judge that cannot be built fails before minutes of generator training; a
    dataset without a judge trains unjudged. ``judge_cfg``: the judge's settings, if any."""
    made = make_judge(dataset, judge_cfg, truth=truth, work_dir=run, progress=progress)
    judge, record = made if made is not None else (None, None)
    return train_generator_run(
        dataset, cfg, run, table=table, judge=judge, judge_record=record, progress=progress
    )
