"""``semantic_jitter``: the Semantic Jitter baseline (Yu & Grauman, ICCV 2017): synthetic pairs
that differ in one attribute only, moved by a hand-set rule rather than a learned one.

Each pair starts from one real image of the generator's training table (its strengths y and its
identity u = ``latent(x, y)``), or, where the dataset has no such table, from y drawn around the
generator's ``y_mean`` / ``y_std`` and u from N(0, I). The context's attribute is moved by a step
of random sign whose size is uniform in [``min_step``, ``max_step``] of that attribute's standard
deviation (on side b alone, or half and half over both sides with ``symmetric``); every other
attribute and u are the same on both sides. A step that would carry a side out of the strengths'
range (``CreationContext.strength_range``) goes the other way
where that leaves it less out. Labels are inferred from the target attribute's y difference,
equal within the context's band.
The uniform step in standard deviations is the simplest reading of the paper's manual policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from outpool.creators.context import CreationContext
from outpool.creators.pairs import CreatedPairs, freeze, inferred_labels, render
from outpool.errors import ConfigError, DataError
from outpool.judges.generator_check import to_uint8
from outpool.models.generator import ConditionalVAE
from outpool.models.tensors import to_tensor

CHUNK = 256  # images per pass through the generator


@dataclass(frozen=True)
class SemanticJitterConfig:
    """The hand-set rule: where a pair starts and how far its one attribute moves."""

    min_step: float = 0.25  # smallest move of the target attribute, in its standard deviations
    max_step: float = 1.0  # largest move of the target attribute, in its standard deviations
    symmetric: bool = False  # move both sides by half the step in opposite ways (else b alone)
    table: str = "generator"  # table of the real starting images (absent: y, u drawn at random)
    seed: int = 0  # seeds the starting images, the steps and their signs

    def __post_init__(self) -> None:
        if not self.min_step > 0:  # NaN fails too
            raise ConfigError(f"min_step must be > 0, got {self.min_step}")
        if not (self.max_step >= self.min_step and np.isfinite(self.max_step)):
            raise ConfigError(
                f"max_step must be finite and >= min_step ({self.min_step}), got {self.max_step}"
            )
        if not self.table:
            raise ConfigError("table must name an image table")


def starting_points(
    context: CreationContext,
    generator: ConditionalVAE,
    budget: int,
    cfg: SemanticJitterConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Strengths y (P, N) and latents u (P, M) of the pairs' starting images, and the strengths'
    range (lo, hi), each (N,): real images of ``cfg.table`` (without repeats while they last),
    which needs strengths of every generator attribute; where the dataset has no such table,
    drawn around the generator's training strengths."""
    names = generator.attributes
    mean = generator.y_mean.cpu().numpy().astype(np.float64)
    std = generator.y_std.cpu().numpy().astype(np.float64)
    table = context.dataset.images.get(cfg.table)
    if table is not None:
        missing = [name for name in names if name not in table.attributes]
        if missing or len(table) == 0:
            raise DataError(
                f"image table '{cfg.table}' has no images with strengths of "
                f"{', '.join(missing or names)}"
            )
        cols = [table.attributes.index(name) for name in names]
        strengths = np.asarray(table.strengths, np.float64)[:, cols]
        rows = np.concatenate(
            [rng.permutation(len(table)) for _ in range(-(-budget // len(table)))]
        )[:budget]
        y = strengths[rows]
        device = generator.y_mean.device
        parts = [np.zeros((0, generator.config.z_dim))]
        for i in range(0, budget, CHUNK):
            x = to_tensor(np.asarray(table.pixels)[rows[i : i + CHUNK]], device)
            yt = torch.from_numpy(y[i : i + CHUNK]).float().to(device)
            parts.append(generator.latent(x, yt).cpu().numpy())
        latents = np.concatenate(parts).astype(np.float64)
        return y, latents, *context.strength_range(generator, cfg.table)
    y = mean + std * rng.standard_normal((budget, len(names)))
    u = rng.standard_normal((budget, generator.config.z_dim))
    return y, u, *context.strength_range(generator, cfg.table)


def steps(
    start: np.ndarray,
    std: float,
    lo: float,
    hi: float,
    cfg: SemanticJitterConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The target attribute's values (P,) on sides a and b: a step of size U[min, max] std and
    random sign, turned round where the other way leaves the values less out of [lo, hi]."""
    size = rng.uniform(cfg.min_step, cfg.max_step, len(start)) * std
    step = np.where(rng.random(len(start)) < 0.5, -size, size)

    def ends(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (start - s / 2, start + s / 2) if cfg.symmetric else (start, start + s)

    def outside(s: np.ndarray) -> np.ndarray:
        a, b = ends(s)
        below = np.maximum(lo - a, 0) + np.maximum(lo - b, 0)
        return below + np.maximum(a - hi, 0) + np.maximum(b - hi, 0)

    step = np.where(outside(-step) < outside(step), -step, step)
    return ends(step)


@torch.no_grad()
def create_semantic_jitter(
    context: CreationContext,
    budget: int,
    work_dir: Path,
    cfg: SemanticJitterConfig,
    *,
    progress: bool,
) -> CreatedPairs:
    """``budget`` pairs, each one starting point with the context's attribute moved by the
    module's rule, drawn through the frozen generator; labels from the y difference."""
    del work_dir, progress  # nothing to train
    generator = freeze(context.require_generator().to(torch.device(context.device)))
    k = generator.attributes.index(context.attribute)
    rng = np.random.default_rng(cfg.seed)
    y, u, lo, hi = starting_points(context, generator, budget, cfg, rng)
    std = float(generator.y_std[k])
    target_a, target_b = steps(y[:, k], std, float(lo[k]), float(hi[k]), cfg, rng)
    y_a, y_b = y.copy(), y.copy()
    y_a[:, k], y_b[:, k] = target_a, target_b
    y_a32, y_b32, u32 = (v.astype(np.float32) for v in (y_a, y_b, u))
    device = generator.y_mean.device
    images: dict[str, list[np.ndarray]] = {"a": [], "b": []}
    for i in range(0, budget, CHUNK):
        ut = torch.from_numpy(u32[i : i + CHUNK]).to(device)
        for side, ys in (("a", y_a32), ("b", y_b32)):
            yt = torch.from_numpy(ys[i : i + CHUNK]).to(device)
            images[side].append(to_uint8(render(generator, yt, ut)))
    empty = np.zeros((0, 64, 64, 3), np.uint8)
    return CreatedPairs(
        attribute=context.attribute,
        creator="semantic_jitter",
        images_a=np.concatenate(images["a"]) if images["a"] else empty,
        images_b=np.concatenate(images["b"]) if images["b"] else empty,
        label=inferred_labels(y_a32[:, k] - y_b32[:, k], context.equal_band),
        y_a=y_a32,
        y_b=y_b32,
        u_a=u32,
        u_b=u32.copy(),
    )
