"""The ``create`` workflow: a creator makes pairs into a dataset folder, for people or the crowd.

The created images become image table NAME (each with the creator, round and control parameters
that drew it), their pairs pair table NAME with the inferred labels (source ``synthetic``,
``pseudo`` for Real+, ``real`` for pool pairs, which name the pool's images), and
``DATASET/created/NAME/`` holds the creator's work (ATTIC's checkpoints and snapshots) and
``pairs.png``. A generating creator's pairs pass the legibility screen
(``outpool.creators.screen``; failures replaced from spares and top-ups), whose net is trained
once into ``DATASET/screen/`` on the generator's training table and reused. ``outpool data
label DATASET --pairs NAME`` or ``outpool annotate request DATASET --pairs NAME`` then asks for
labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from outpool.config import from_dict
from outpool.creators import CreationContext, creator
from outpool.creators.screen import ScreenConfig, fit_screen
from outpool.data import Dataset
from outpool.errors import DataError
from outpool.fileio import atomic_path, json_text
from outpool.report.gallery import pair_grid, save_gallery
from outpool.rounds.protocols import fill
from outpool.train.generator import load_generator
from outpool.train.ranker import RankerTrainConfig, load_deepstn

SHOWN = 24  # pairs in the gallery


def equal_band_of(dataset: Dataset) -> float:
    """The dataset's "equal" band (the built-in world records it in its config), else 0."""
    config = dataset.meta.get("config", {})
    return float(config.get("equal_band", 0.0)) if isinstance(config, dict) else 0.0


def create_into(
    dataset_dir: Path,
    *,
    method: str,
    attribute: str,
    budget: int,
    name: str,
    cfg: Any = None,
    ranker: Path | None = None,
    generator: Path | None = None,
    equal_band: float | None = None,
    screen: bool = True,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run creator ``method`` for ``budget`` pairs of ``attribute`` and add them to the dataset
    as table ``name``; returns counts of the inferred labels (and what the screen did)."""
    entry = creator(method)
    dataset = Dataset.load(dataset_dir)
    if (name in dataset.pairs or name in dataset.images) and not force:  # before any work
        raise DataError(f"table '{name}' exists; pass --force to replace it", path=dataset_dir)
    ranker_model, ranker_cfg = None, RankerTrainConfig()
    if ranker is not None:  # and the config it was trained with, for ATTIC's ranker steps
        ranker_model, payload = load_deepstn(ranker)
        ranker_cfg = from_dict(RankerTrainConfig, payload["record"]["config"])
    context = CreationContext(
        dataset=dataset,
        attribute=attribute,
        ranker=ranker_model,
        ranker_cfg=ranker_cfg,
        generator=load_generator(generator, attributes=dataset.attribute_names)
        if generator is not None
        else None,
        equal_band=equal_band_of(dataset) if equal_band is None else equal_band,
    )
    work = Path(dataset_dir) / "created" / name

    cfg = cfg if cfg is not None else entry.config()
    screen_cfg = ScreenConfig()
    screening = screen and entry.generates
    if screening and screen_cfg.table not in dataset.images:
        raise DataError(
            f"the legibility screen learns from image table '{screen_cfg.table}' (the "
            "generator's training pictures), which this dataset lacks; pass --no-screen",
            path=dataset_dir,
        )
    asked = screen_cfg.candidates(budget) if screening else budget
    made = entry.create(context, asked, work, cfg, progress=progress)
    report = None
    if screening:  # fitted after the creator has run: a creator's refusal comes first
        fitted = fit_screen(
            dataset.images[screen_cfg.table],
            context.require_generator(),
            screen_cfg,
            Path(dataset_dir) / "screen",
            progress=progress,
        )
        made, report = fill(entry, made, budget, fitted, context, work, cfg, progress=progress)
    images, pairs = made.tables(name, source="pseudo" if method == "real_plus" else None)
    new_images = {name: images} if len(images) else {}  # pool pairs name the pool's images
    Dataset.add_tables(dataset_dir, images=new_images, pairs={name: pairs}, overwrite=force)
    shown = slice(0, min(SHOWN, len(made)))
    page = pair_grid(made.images_a[shown], made.images_b[shown], made.label[shown], attribute)
    save_gallery(page, work / "pairs.png")
    labels = {"more_a": 1, "more_b": -1, "equal": 0}
    summary = {
        "pairs": name,
        "creator": method,
        "attribute": attribute,
        "created": len(made),
        "inferred": {k: int((made.label == v).sum()) for k, v in labels.items()},
        "gallery": str(work / "pairs.png"),
    }
    if report is not None:
        summary["screen"] = report
    with atomic_path(work / "summary.json") as tmp:
        tmp.write_text(json_text(summary, indent=2) + "\n")
    return summary
