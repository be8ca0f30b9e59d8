"""Is this picture a recognisable face? Judged from real faces only, never from the generator.

Two checks, each calibrated on held-out REAL faces (non-test images), each one-sided:

1. In face space (eigenfaces, Turk & Pentland; the distance of Moghaddam & Pentland): the
   central square of the frame (where LFW's detector put the face) is projected onto the top
   principal components of real faces; the distance is the Mahalanobis distance inside that
   space plus the residual outside it, scaled by the mean discarded eigenvalue
   (``log(sum c_k^2 / lambda_k + |r|^2 / rho)``). Noise, a shoe, scrambled patches lie far from
   face space. Legible when the distance is at most the (1 - quantile) quantile of held-out real
   faces.
2. Face-scale detail: the energy of a band-pass (difference of Gaussians, sigma 1 and 3 px at
   64 px) in the same square, where eyes, mouth and the face's outline live. A smeared blob or
   a blank frame has almost none (both sit comfortably INSIDE face space: they look like a very
   smooth average face, which is why the first check alone cannot catch them). Legible when the
   energy is at least the ``quantile`` quantile of real faces. Only a lower bound: a mildly
   blurred face (a decoder's typical output) is still a face.

The bounds come from out-of-fold scores (components fitted without the people scored), so they
hold for faces the fit never saw. The score is 0.5 exactly at a bound, rising to 1 inside it
over about the spread of real faces, falling to 0 outside; legibility is the smaller of the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.ndimage as ndi

from outpool.config import from_dict, to_dict
from outpool.errors import ConfigError, DataError


@dataclass(frozen=True)
class FaceSpaceConfig:
    """How the face-space legibility check is fitted."""

    components: int = 16  # eigenfaces kept (fewer when there are fewer faces)
    box: tuple[float, float] = (0.25, 0.75)  # central square, as fractions of the side
    band: tuple[float, float] = (1.0, 3.0)  # Gaussian sigmas (px at 64 px) of the detail band
    quantile: float = 0.0025  # share of real faces allowed beyond each bound
    folds: int = 5  # out-of-fold calibration, folds of whole people

    def __post_init__(self) -> None:
        lo, hi = self.box
        if self.components < 1 or self.folds < 2:
            raise ConfigError("components must be >= 1 and folds >= 2")
        if not 0.0 <= lo < hi <= 1.0:
            raise ConfigError(f"box must be 0 <= lo < hi <= 1, got {self.box}")
        if not 0.0 < self.band[0] < self.band[1]:
            raise ConfigError(f"band must be two sigmas 0 < s1 < s2, got {self.band}")
        if not 0.0 < self.quantile < 0.5:
            raise ConfigError(f"quantile must be in (0, 0.5), got {self.quantile}")


def check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (64, 64, 3) or images.dtype != np.uint8:
        raise DataError(f"images must be (N, 64, 64, 3) uint8, got {images.shape} {images.dtype}")
    return images


def _box(config: FaceSpaceConfig) -> slice:
    lo, hi = (round(f * 64) for f in config.box)
    return slice(lo, hi)


def _vectors(images: np.ndarray, config: FaceSpaceConfig) -> np.ndarray:
    """(N, D) float64 in [0, 1]: the central square of each image, flattened."""
    b = _box(config)
    return images[:, b, b].reshape(len(images), -1).astype(np.float64) / 255.0


def detail(images: np.ndarray, config: FaceSpaceConfig) -> np.ndarray:
    """(N,) log energy of the detail band inside the central square."""
    images = check_images(images)
    gray = images.astype(np.float32).mean(-1) / 255.0
    s1, s2 = config.band
    dog = ndi.gaussian_filter(gray, (0, s1, s1), mode="nearest") - ndi.gaussian_filter(
        gray, (0, s2, s2), mode="nearest"
    )
    b = _box(config)
    return np.log((dog[:, b, b].astype(np.float64) ** 2).mean(axis=(1, 2)) + 1e-12)


@dataclass(frozen=True)
class _Eigenfaces:
    mean: np.ndarray  # (D,)
    basis: np.ndarray  # (K, D) orthonormal rows
    eigenvalues: np.ndarray  # (K,)
    rho: float  # mean discarded eigenvalue

    @staticmethod
    def fit(x: np.ndarray, components: int) -> _Eigenfaces:
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        lam = s**2 / max(len(x) - 1, 1)
        k = max(1, min(components, len(x) - 1))
        d = x.shape[1]
        rest = float(lam[k:].sum()) / max(d - k, 1)
        rho = max(rest, 1e-6 * float(lam.sum()) / d, 1e-12)
        return _Eigenfaces(mean, vt[:k], np.maximum(lam[:k], 1e-12), rho)

    def distance(self, x: np.ndarray) -> np.ndarray:
        y = x - self.mean
        c = y @ self.basis.T
        r = y - c @ self.basis
        return np.log((c**2 / self.eigenvalues).sum(1) + (r**2).sum(1) / self.rho)


class FaceSpace:
    """A fitted face-space check; ``legibility(images)`` -> (N,) in [0, 1], >= 0.5 legible."""

    def __init__(
        self,
        *,
        config: FaceSpaceConfig,
        eigenfaces: _Eigenfaces,
        distance_max: float,
        distance_spread: float,
        detail_min: float,
        detail_spread: float,
        faces: int,
    ) -> None:
        self.config = config
        self.eigenfaces = eigenfaces
        self.distance_max = distance_max
        self.distance_spread = distance_spread
        self.detail_min = detail_min
        self.detail_spread = detail_spread
        self.faces = faces  # how many real faces it was fitted on

    @classmethod
    def fit(
        cls,
        pixels: np.ndarray,
        groups: np.ndarray,
        config: FaceSpaceConfig | None = None,
        *,
        seed: int = 0,
    ) -> FaceSpace:
        """Fit on real faces ``pixels`` (N, 64, 64, 3) uint8 of people ``groups`` (N,)."""
        config = config or FaceSpaceConfig()
        pixels = check_images(pixels)
        groups = np.asarray(groups, dtype=np.str_).reshape(-1)
        people = np.unique(groups)
        if len(groups) != len(pixels):
            raise DataError(f"{len(groups)} groups for {len(pixels)} faces")
        if len(people) < 2 or len(pixels) < 4:
            raise DataError(
                f"the face space needs real faces of at least 2 people (4 images); got "
                f"{len(pixels)} image(s) of {len(people)} people"
            )
        x = _vectors(pixels, config)
        folds = min(config.folds, len(people))
        fold_of = dict(
            zip(
                np.random.default_rng(seed).permutation(people).tolist(),
                range(len(people)),
                strict=True,
            )
        )
        which = np.asarray([fold_of[g] % folds for g in groups.tolist()])
        held_out = np.empty(len(x))
        for f in range(folds):  # out of fold: the bound holds for people the fit never saw
            out = which == f
            held_out[out] = _Eigenfaces.fit(x[~out], config.components).distance(x[out])
        det = detail(pixels, config)
        q = config.quantile
        return cls(
            config=config,
            eigenfaces=_Eigenfaces.fit(x, config.components),
            distance_max=float(np.quantile(held_out, 1 - q)),
            distance_spread=_spread(held_out),
            detail_min=float(np.quantile(det, q)),
            detail_spread=_spread(det),
            faces=len(x),
        )

    def features(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distance from face space (N,), detail (N,)) of uint8 images (N, 64, 64, 3)."""
        images = check_images(images)
        return self.eigenfaces.distance(_vectors(images, self.config)), detail(images, self.config)

    def legibility(self, images: np.ndarray) -> np.ndarray:
        """(N,) float32 in [0, 1]; 0.5 exactly at a bound, >= 0.5 a recognisable face."""
        if len(images) == 0:
            return np.zeros(0, np.float32)
        dist, det = self.features(images)
        near = 0.5 + (self.distance_max - dist) / self.distance_spread
        sharp = 0.5 + (det - self.detail_min) / self.detail_spread
        return np.clip(np.minimum(near, sharp), 0.0, 1.0).astype(np.float32)

    def state(self) -> dict[str, Any]:
        """Everything ``from_state`` needs (numpy arrays and numbers: fits in a checkpoint)."""
        e = self.eigenfaces
        return {
            "config": to_dict(self.config),
            "mean": e.mean,
            "basis": e.basis,
            "eigenvalues": e.eigenvalues,
            "rho": e.rho,
            "distance_max": self.distance_max,
            "distance_spread": self.distance_spread,
            "detail_min": self.detail_min,
            "detail_spread": self.detail_spread,
            "faces": self.faces,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FaceSpace:
        config = from_dict(FaceSpaceConfig, state["config"])
        eigenfaces = _Eigenfaces(
            np.asarray(state["mean"], np.float64),
            np.asarray(state["basis"], np.float64),
            np.asarray(state["eigenvalues"], np.float64),
            float(state["rho"]),
        )
        return cls(
            config=config,
            eigenfaces=eigenfaces,
            distance_max=float(state["distance_max"]),
            distance_spread=float(state["distance_spread"]),
            detail_min=float(state["detail_min"]),
            detail_spread=float(state["detail_spread"]),
            faces=int(state["faces"]),
        )


def screening_rates(face_space: FaceSpace, real: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """How the check treats held-out REAL faces ``real`` (N, 64, 64, 3) uint8 and pictures a
    person would reject, made from them (``outpool.synth.corrupt``: uniform noise, a blank
    frame, a heavy smear); plus, for information, a mild 1 px blur (still a face)."""
    from outpool.synth.corrupt import blank, noise, smear

    real = check_images(real)
    rng = np.random.default_rng(seed)

    def legible_pct(images: np.ndarray) -> float:
        return round(100.0 * float((face_space.legibility(images) >= 0.5).mean()), 2)

    return {
        "real_faces": len(real),
        "real_accepted_pct": legible_pct(real),
        "noise_rejected_pct": round(100.0 - legible_pct(noise(real, rng)), 2),
        "blank_rejected_pct": round(100.0 - legible_pct(blank(real, rng)), 2),
        "smear_rejected_pct": round(100.0 - legible_pct(smear(real, rng)), 2),
        "blur_1px_accepted_pct": legible_pct(smear(real, rng, sigma=1.0)),
    }


def _spread(values: np.ndarray) -> float:
    """The width of the middle 95% of real faces' values (the score's scale)."""
    lo, hi = np.quantile(values, [0.025, 0.975])
    return max(float(hi - lo), 1e-6)
