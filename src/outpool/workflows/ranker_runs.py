"""The ranker workflow as a Python API (what the ``train-ranker``/``eval``/``score`` commands
call, and what a notebook uses): train one ranker per attribute into a run folder, evaluate a
run on pair tables, score images with a trained ranker.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from outpool.data import Dataset
from outpool.data.metrics import ordering_accuracy
from outpool.errors import DataError, UnknownNameError
from outpool.fileio import atomic_dir, atomic_path, check_output_dir, json_text
from outpool.report.ranker_figures import save_run_figures
from outpool.train.distributed import from_env
from outpool.train.evaluate import accuracy_on, score_images
from outpool.train.ranker import RankerTrainConfig, load_ranker, train_ranker


def attributes_to_train(dataset: Dataset, attribute: str) -> list[str]:
    """``attribute`` itself, or every attribute of the dataset for "all"."""
    if attribute == "all":
        return list(dataset.attribute_names)
    dataset.attribute(attribute)  # unknown -> UnknownNameError listing the valid names
    return [attribute]


def train_run(
    dataset: Dataset,
    attribute: str,
    cfg: RankerTrainConfig,
    run: Path,
    *,
    train: str = "train",
    val: str | None = "val",
    progress: bool = True,
) -> dict[str, Any]:
    """Train rankers into ``run/<attribute>/``; resumes attributes and stages already begun."""
    results: dict[str, Any] = {}
    main = from_env().main  # under torchrun only rank 0 writes
    for name in attributes_to_train(dataset, attribute):
        model, summary = train_ranker(
            dataset, name, cfg, run / name, train=train, val=val, progress=progress
        )
        results[name] = summary
        if main:
            pairs = dataset.pairs[val or train].for_attribute(name)
            shown = np.unique(np.concatenate([pairs.a, pairs.b]))[:24]
            save_run_figures(model, run / name, np.asarray(dataset.lookup(shown)), name)
    if not main:
        return results
    with atomic_path(run / "summary.json") as tmp:
        tmp.write_text(json_text(results, indent=2) + "\n")
    return results


def rankers_in(path: Path) -> dict[str, Path]:
    """Checkpoints of a run folder (``<attribute>/ranker.pt``) or a single checkpoint file."""
    if path.is_file():
        _, payload = load_ranker(path)
        return {str(payload["attribute"]): path}
    found = {p.parent.name: p for p in sorted(path.glob("*/ranker.pt"))}
    if not found:
        raise DataError("no trained ranker found (expected <attribute>/ranker.pt)", path=path)
    return found


def evaluate_run(
    run: Path, dataset: Dataset, tables: Sequence[str] = ("test",), *, device: str = "cpu"
) -> dict[str, dict[str, float]]:
    """Accuracy (%, a tie is wrong) of each ranker of ``run`` on each table of ``tables``.

    A pair table counts its non-equal pairs. An IMAGE table with strengths (PubFig's "test":
    each person's rank) counts all its pairs of images of different groups with different
    strengths — the standard PubFig protocol, too many pairs to store as a table.
    """
    ordering = {n for n, t in dataset.images.items() if t.strengths is not None}
    for t in tables:
        if t not in dataset.pairs and t not in ordering:
            raise UnknownNameError(
                "pair table (or image table with strengths)", t, [*dataset.pairs, *ordering]
            )
    out: dict[str, dict[str, float]] = {t: {} for t in tables}
    for attribute, path in rankers_in(run).items():
        model, _ = load_ranker(path, device=device)
        for t in tables:
            if t in dataset.pairs:
                pairs = dataset.pairs[t].for_attribute(attribute)
                if len(pairs):
                    acc = accuracy_on(model, dataset, pairs, device=device)
                    out[t][attribute] = round(acc, 2)
            elif attribute in dataset.images[t].attributes:
                images = dataset.images[t]
                groups = images.groups if images.groups is not None else images.ids
                scores = score_images(model, np.asarray(images.pixels), device=device)
                acc = ordering_accuracy(scores, images.strength(attribute), groups)
                out[t][attribute] = round(acc, 2)
    for t in tables:
        if out[t]:
            out[t]["mean"] = round(float(np.mean(list(out[t].values()))), 2)
    return out


def score_folder(
    ranker: Path, images: Path, out: Path, *, crop: float = 1.0, force: bool = False
) -> int:
    """Score every image in ``images`` with ``ranker``: ``out/scores.csv`` (highest first) and
    ``out/contact_sheet.png``. Returns the number of images scored."""
    import csv

    from outpool.data.sources.folder_csv import scan_images
    from outpool.data.sources.images import load_images
    from outpool.report.gallery import image_grid, save_gallery

    check_output_dir(out, overwrite=force)
    model, payload = load_ranker(ranker)
    out_dir = Path(out).resolve()  # an output folder inside IMAGES is not scored
    names = [n for n in scan_images(images) if not (images / n).resolve().is_relative_to(out_dir)]
    if not names:
        raise DataError("no .jpg/.jpeg/.png images found", path=images)
    pixels = np.asarray(load_images([images / n for n in names], source="score", crop=crop))
    scores = score_images(model, pixels)
    order = np.argsort(-scores, kind="stable")
    with atomic_dir(out, overwrite=force) as tmp:
        with open(tmp / "scores.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["rank", "image", "score"])
            for rank, i in enumerate(order, start=1):
                w.writerow([rank, names[i], f"{scores[i]:.6g}"])
        shown = order[:64]
        title = f"{payload['attribute']}: most to least (first {len(shown)} of {len(names)})"
        sheet = image_grid(
            pixels[shown], [f"{names[i]}\n{scores[i]:.2f}" for i in shown], title=title
        )
        save_gallery(sheet, tmp / "contact_sheet.png")
    return len(names)
