"""The creators that draw nothing: ``jitter`` (low-level copies of real labelled pairs, labels
inherited) and ``real_plus`` (pseudo pairs of the generator's real training images, labelled from
their strengths): the paper's Jitter and Real+ baselines."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from outpool.creators.context import CreationContext
from outpool.creators.pairs import CreatedPairs, inferred_labels
from outpool.errors import ConfigError, DataError, UnknownNameError
from outpool.judges.generator_check import to_uint8
from outpool.models.tensors import to_tensor
from outpool.train.augment import augment


@dataclass(frozen=True)
class JitterConfig:
    """How far a copy may move from its real image (each image of a pair independently)."""

    shift: float = 0.1  # translation, as a fraction of the image side
    zoom: float = 0.2  # magnification by up to this fraction
    rotate: float = 10.0  # rotation by up to this many degrees
    color: float = 0.2  # brightness, contrast and saturation scaled by up to 1 +- this
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("shift", "zoom", "rotate", "color"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class RealPlusConfig:
    """Which image table's strengths give the pseudo pairs."""

    table: str = "generator"
    seed: int = 0


def create_jitter(
    context: CreationContext, budget: int, work_dir: Path, cfg: JitterConfig, *, progress: bool
) -> CreatedPairs:
    """``budget`` copies of the real training pairs (drawn without repeats while they last),
    each image jittered in position, scale, rotation, contrast and colour; labels inherited."""
    del work_dir, progress
    real = context.pairs(context.train)
    if len(real) == 0:
        raise DataError(f"no '{context.train}' pairs of '{context.attribute}' to jitter")
    rng = np.random.default_rng(cfg.seed)
    rows = np.concatenate([rng.permutation(len(real)) for _ in range(-(-budget // len(real)))])[
        :budget
    ]
    torch.manual_seed(cfg.seed)

    def jittered(ids: np.ndarray) -> np.ndarray:
        x = to_tensor(context.dataset.lookup(ids))
        kwargs = {"shift": cfg.shift, "zoom": cfg.zoom, "rotate": cfg.rotate, "color": cfg.color}
        return to_uint8(augment(x, flip=False, **kwargs))

    return CreatedPairs(
        attribute=context.attribute,
        creator="jitter",
        images_a=jittered(real.a[rows]),
        images_b=jittered(real.b[rows]),
        label=real.label[rows].astype(np.int8),
    )


def create_real_plus(
    context: CreationContext, budget: int, work_dir: Path, cfg: RealPlusConfig, *, progress: bool
) -> CreatedPairs:
    """``budget`` pairs of distinct images of the table with strengths (the generator's
    training images), labelled by their strengths' difference (equal within the band)."""
    del work_dir, progress
    if cfg.table not in context.dataset.images:
        raise UnknownNameError("image table", cfg.table, context.dataset.images)
    table = context.dataset.images[cfg.table]
    if table.strengths is None or context.attribute not in table.attributes:
        raise DataError(f"image table '{cfg.table}' has no strengths of '{context.attribute}'")
    if len(table) < 2:
        raise DataError(f"image table '{cfg.table}' needs at least 2 images")
    rng = np.random.default_rng(cfg.seed)
    a = rng.integers(0, len(table), budget)
    b = (a + rng.integers(1, len(table), budget)) % len(table)  # never the same image
    strength = table.strength(context.attribute)
    pixels = np.asarray(table.pixels)
    return CreatedPairs(
        attribute=context.attribute,
        creator="real_plus",
        images_a=pixels[a],
        images_b=pixels[b],
        label=inferred_labels(strength[a] - strength[b], context.equal_band),
    )
