"""Pictures that are NOT a recognisable shoe, to test legibility screening.

Each function takes rendered photos (N, 64, 64, 3) uint8 (and a seeded generator) and returns
images of the same shape that a person would reject: pure noise, a blank background, a smeared
blob (heavy blur), or two shoes in one picture.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.ndimage as ndi

from outpool.synth.renderer import Nuisance, render


def noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform random pixels."""
    return rng.integers(0, 256, images.shape, dtype=np.uint8)


def blank(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The background of each photo with no object: a flat (gradient) colour from its border."""
    x = images.astype(np.float32)
    border = np.concatenate([x[:, :2].reshape(len(x), -1, 3), x[:, -2:].reshape(len(x), -1, 3)], 1)
    flat = border.mean(axis=1)[:, None, None, :] + rng.normal(0, 2.0, x.shape)
    return np.clip(flat, 0, 255).astype(np.uint8)


def smear(images: np.ndarray, rng: np.random.Generator, sigma: float = 3.0) -> np.ndarray:
    """A Gaussian blur strong enough to leave a blob instead of a shoe."""
    del rng
    out = ndi.gaussian_filter(images.astype(np.float32), sigma=(0, sigma, sigma, 0), mode="nearest")
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def two_shoes(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two smaller shoes in one picture, side by side or overlapping, on one background."""
    n = len(images)
    attrs = rng.uniform(0, 1, (2, n, 6)).astype(np.float32)
    nu = Nuisance.sample(rng, n)
    gap = rng.uniform(6.0, 16.0, n).astype(np.float32)  # overlap when small, apart when large
    scale = rng.uniform(0.55, 0.7, n).astype(np.float32)
    first = render(attrs[0], _moved(nu, -gap, scale), seed=int(rng.integers(1 << 31)))
    second = render(attrs[1], _moved(nu, gap, scale), seed=int(rng.integers(1 << 31)))
    backdrop = render(attrs[0], _moved(nu, np.full(n, 200.0, np.float32), scale), seed=0)
    moved = np.abs(second.astype(np.int16) - backdrop.astype(np.int16)).sum(-1) > 30
    return np.where(moved[..., None], second, first)


def _moved(nu: Nuisance, dx: np.ndarray, scale: np.ndarray) -> Nuisance:
    fields = {k: getattr(nu, k) for k in Nuisance.names()}
    fields.update(shift_x=dx, scale=scale, rotation_deg=fields["rotation_deg"] * 0.5)
    return Nuisance(**fields)


CORRUPTIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "noise": noise,
    "blank": blank,
    "smear": smear,
    "two_shoes": two_shoes,
}
