"""The generator workflow as a Python API (what ``train-generator`` calls): train, draw the
galleries, and check controllability with an independent judge when the dataset has one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from outpool.annotate.protocol import Judge
from outpool.data import Dataset
from outpool.fileio import atomic_path
from outpool.generator_check import controllability
from outpool.report.generator_figures import save_generator_figures
from outpool.train.generator import GeneratorTrainConfig, split_indices, train_generator


def train_generator_run(
    dataset: Dataset,
    cfg: GeneratorTrainConfig,
    run: Path,
    *,
    table: str = "generator",
    judge: Judge | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train into ``run``; returns the summary (with the controllability check when judged)."""
    model, summary = train_generator(dataset, cfg, run, table=table, progress=progress)
    images = dataset.images[table]
    held_out, training = split_indices(len(images), cfg.val_share, cfg.seed)
    shown = np.sort((held_out if len(held_out) else training)[:16])  # held-out when there are
    strengths = np.asarray(images.strengths, np.float32)[shown]
    save_generator_figures(model, run, np.asarray(images.pixels[shown]), strengths)
    if judge is not None:
        summary["controllability"] = controllability(model, judge, seed=cfg.seed)
        with atomic_path(run / "controllability.json") as tmp:
            tmp.write_text(json.dumps(summary["controllability"], indent=2) + "\n")
    return summary
