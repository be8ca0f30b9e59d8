"""``uncertainty``: pool-based active learning, which the paper never ran. Of the unlabelled pairs
of the ranker's own image pool, the ones the current ranker is least sure of (the closest scores)
go to the annotators. The images are real; the inferred label is the ranker's own guess, so a
protocol that trains on inferred labels would be self-training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from outpool.creators.context import CreationContext
from outpool.creators.pairs import CreatedPairs
from outpool.errors import ConfigError, DataError, UnknownNameError
from outpool.train.evaluate import score_images


@dataclass(frozen=True)
class UncertaintyConfig:
    """Where the unlabelled pairs come from."""

    pool: str = "train"  # image table of the ranker's pool (its labelled pairs are left out)
    candidates: int = 20000  # random distinct-image pairs scored; the closest scores win
    seed: int = 0

    def __post_init__(self) -> None:
        if self.candidates < 1:
            raise ConfigError(f"candidates must be >= 1, got {self.candidates}")


def create_uncertainty(
    context: CreationContext,
    budget: int,
    work_dir: Path,
    cfg: UncertaintyConfig,
    *,
    progress: bool,
) -> CreatedPairs:
    """The ``budget`` unlabelled pool pairs with the smallest score difference."""
    del work_dir, progress
    if cfg.pool not in context.dataset.images:
        raise UnknownNameError("image table", cfg.pool, context.dataset.images)
    table = context.dataset.images[cfg.pool]
    n = len(table)
    if n < 2:
        raise DataError(f"the pool '{cfg.pool}' needs at least 2 images, has {n}")
    rng = np.random.default_rng(cfg.seed)
    i = rng.integers(0, n, cfg.candidates)
    j = (i + rng.integers(1, n, cfg.candidates)) % n  # never the same image
    labelled: set[frozenset[str]] = set()  # in any pair table, either way round
    for table_pairs in context.dataset.pairs.values():
        mine = table_pairs.for_attribute(context.attribute)
        labelled.update(frozenset(pair) for pair in zip(mine.a, mine.b, strict=True))
    ids = table.ids
    keys = [frozenset((ids[a], ids[b])) for a, b in zip(i, j, strict=True)]
    fresh = np.array([key not in labelled for key in keys], dtype=bool)
    unique = np.unique(np.sort(np.stack([i, j], 1)[fresh], axis=1), axis=0)
    if len(unique) < budget:
        raise DataError(
            f"the pool '{cfg.pool}' gave {len(unique)} unlabelled pairs of {cfg.candidates} "
            f"candidates, fewer than the {budget} asked for"
        )
    pixels = np.asarray(table.pixels)
    scores = score_images(context.require_ranker(), pixels, device=context.device)
    gap = np.abs(scores[unique[:, 0]] - scores[unique[:, 1]])
    chosen = unique[np.argsort(gap, kind="stable")[:budget]]
    a, b = chosen[:, 0], chosen[:, 1]
    return CreatedPairs(
        attribute=context.attribute,
        creator="uncertainty",
        images_a=pixels[a],
        images_b=pixels[b],
        label=np.sign(scores[a] - scores[b]).astype(np.int8),
        source_a=ids[a],
        source_b=ids[b],
    )
