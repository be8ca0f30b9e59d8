"""Does y control what the generator draws? Judged by something other than the generator.

For each attribute: sweep its commanded strength across its training range while every other
attribute stays at its mean and z stays fixed, for many z; an independent judge (the built-in
world's pixel oracle, or a teacher model for faces) measures the generated images. Reported per
attribute: the Spearman correlation between commanded and measured strength (averaged over z),
how much the OTHER attributes move along the sweep (leakage), and the legibility of random
samples.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from outpool.annotate.protocol import Judge
from outpool.errors import DataError
from outpool.models.generator import ConditionalVAE
from outpool.models.tensors import to_tensor
from outpool.train.losses import luma_chroma_errors


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8."""
    return (images.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def sweep_strengths(model: ConditionalVAE, k: int, steps: int, spread: float = 1.5) -> np.ndarray:
    """(steps, N) strengths: attribute k from mean - spread*std to mean + spread*std (the bulk of
    its training range), the others at their means."""
    mean, std = model.y_mean.cpu().numpy(), model.y_std.cpu().numpy()
    y = np.tile(mean, (steps, 1))
    y[:, k] = np.linspace(mean[k] - spread * std[k], mean[k] + spread * std[k], steps)
    return y.astype(np.float32)


@torch.no_grad()
def sweep_images(
    model: ConditionalVAE, k: int, *, steps: int, n_z: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Images (n_z, steps, 64, 64, 3) uint8 of attribute k's sweep at n_z fixed latents, and the
    commanded strengths (steps, N)."""
    y = sweep_strengths(model, k, steps)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n_z, model.config.z_dim, generator=gen)
    device = model.y_mean.device
    ys = torch.from_numpy(np.tile(y, (n_z, 1))).to(device)
    zs = z.repeat_interleave(steps, dim=0).to(device)
    images = to_uint8(model.sample(ys, zs))
    return images.reshape(n_z, steps, *images.shape[1:]), y


MISS_BELOW = 0.5  # a sweep latent whose own Spearman is below this misses


def sweeps_followed(rhos: np.ndarray) -> np.ndarray:
    """Per sweep latent, whether its own sweep follows the command: Spearman >= ``MISS_BELOW``
    (one whose measurement never moved, NaN, does not)."""
    return np.nan_to_num(rhos, nan=-1.0) >= MISS_BELOW


def controllability(
    model: ConditionalVAE,
    judge: Judge,
    *,
    steps: int = 9,
    n_z: int = 32,
    samples: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Per attribute: Spearman(commanded, measured) averaged over the sweep latents, the share
    of latents whose own sweep misses (Spearman below 0.5, or nothing measured moved), leakage,
    and legibility of ``samples`` random samples (default 32 per sweep latent; at 90% legible,
    1,024 samples pin the rate to about +-1 point)."""
    names = tuple(judge.attributes)
    missing = [a for a in model.attributes if a not in names]
    if missing:
        raise DataError(f"the judge cannot measure attribute(s) {missing}")
    col = [names.index(a) for a in model.attributes]
    out: dict[str, Any] = {
        "spearman": {},
        "latents_missed_pct": {},
        "leakage": {},
        "sweep_legible_pct": {},
    }
    for k, name in enumerate(model.attributes):
        images, y = sweep_images(model, k, steps=steps, n_z=n_z, seed=seed)
        values, legible = judge.assess(images.reshape(-1, *images.shape[2:]))
        measured = values[:, col].reshape(n_z, steps, len(col))
        rhos = np.array([spearman_or_nan(y[:, k], measured[i, :, k]) for i in range(n_z)])
        out["spearman"][name] = _json_number(
            float(np.nanmean(rhos)) if np.isfinite(rhos).any() else None
        )
        # a mean hides how a sweep misses: a few latents that never follow, or every one a
        # little off
        out["latents_missed_pct"][name] = round(100.0 * (1 - sweeps_followed(rhos).mean()), 2)
        # leakage: mean absolute change of each other attribute from the sweep's start to end,
        # relative to the change of the swept one
        with warnings.catch_warnings():  # a column the judge could never measure stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            change = np.nanmean(np.abs(measured[:, -1] - measured[:, 0]), axis=0)
        others = [j for j in range(len(col)) if j != k]
        moved = change[k] > 1e-6
        out["leakage"][name] = _json_number(change[others].mean() / change[k] if moved else None)
        out["sweep_legible_pct"][name] = round(100.0 * float((legible >= 0.5).mean()), 2)
    n = 32 * n_z if samples is None else samples
    y_random, z = random_inputs(model, n, seed + 1)
    _, legible = judge.assess(to_uint8(model.sample(y_random, z)))
    out["samples_legible_pct"] = round(100.0 * float((legible >= 0.5).mean()), 2)
    out["samples_judged"] = n
    finite = [v for v in out["spearman"].values() if v is not None]
    out["spearman_min"] = min(finite) if len(finite) == len(out["spearman"]) else None
    return out


def random_inputs(model: ConditionalVAE, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(y (n, K), u (n, M)) of random samples: each strength drawn independently around its
    training mean (0.7 of its std), the latent from the prior; on the model's device."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(n, model.config.z_dim, generator=gen).to(model.y_mean.device)
    noise = torch.randn(n, len(model.attributes), generator=gen).to(u.device)
    return model.y_mean + model.y_std * noise * 0.7, u


def spearman_or_nan(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation; NaN (not a warning) when either side is constant."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b)[0])


def _json_number(value: float | None) -> float | None:
    """Rounded, and None where a figure cannot be computed (JSON has no NaN)."""
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def _chroma(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean chroma (B, 2) -- red-green and yellow-blue opponent axes -- of images (B, 3, H, W)
    in [0, 1] over the pixels where ``mask`` (B, H, W) is true."""
    r, g, b = images.unbind(1)
    w = mask.float()
    n = w.sum((1, 2)).clamp_min(1.0)
    return torch.stack([((r - g) * w).sum((1, 2)) / n, (((r + g) / 2 - b) * w).sum((1, 2)) / n], 1)


@torch.no_grad()
def colour_recovery(
    model: ConditionalVAE,
    pixels: np.ndarray,
    strengths: np.ndarray,
    *,
    min_saturation: float = 0.25,
    min_chroma: float = 0.05,
) -> dict[str, float | int | None]:
    """Does z carry an image's colours? Reconstructs images the generator never saw and compares
    the mean chroma of their saturated pixels (saturation > ``min_saturation`` in the original)
    with the original's, over images whose chroma there is at least ``min_chroma``.

    hue_cosine: 1 = the same hue, 0 = unrelated; chroma_ratio: 1 = as vivid, 0 = grey. A
    decoder that cannot draw a per-image colour (the hue of a shoe's upper, which no attribute
    names) gives about 0 and 0 however sharp its shapes."""
    device = model.y_mean.device
    x = to_tensor(pixels, device)
    y = torch.from_numpy(np.asarray(strengths, np.float32)).to(device)
    top, bottom = x.amax(1), x.amin(1)
    mask = (top - bottom) / top.clamp_min(1e-3) > min_saturation
    original = _chroma(x, mask)
    keep = original.norm(dim=1) >= min_chroma
    if not keep.any():
        return {"images": 0, "hue_cosine": None, "chroma_ratio": None}
    rebuilt = _chroma(model.reconstruct(x[keep], y[keep]), mask[keep])
    cosine = torch.nn.functional.cosine_similarity(rebuilt, original[keep], dim=1)
    ratio = rebuilt.norm(dim=1) / original[keep].norm(dim=1)
    return {
        "images": int(keep.sum()),
        "hue_cosine": _json_number(float(cosine.mean())),
        "chroma_ratio": _json_number(float(ratio.mean())),
    }


def colour_error_share(
    model: ConditionalVAE, pixels: np.ndarray, strengths: np.ndarray
) -> dict[str, float | int | None]:
    """How large the colour errors of reconstructions of unseen images are beside their grey
    (luma) errors: the medians over images of both mean squared errors and of their ratio.

    The luma/chroma likelihood weighs a unit of colour error by that ratio (a shoe's ~16, a
    face's ~50), which is what ``chroma_ratio`` bounds."""
    device = model.y_mean.device
    x = to_tensor(pixels, device)
    y = torch.from_numpy(np.asarray(strengths, np.float32)).to(device)
    luma, chroma = luma_chroma_errors(x, model.reconstruct(x, y))
    figures = {
        "luma_mse": luma.median(),
        "chroma_mse": chroma.median(),
        "luma_to_chroma": (luma / chroma.clamp_min(1e-12)).median(),
    }
    # four significant digits: colour errors are of the order of 1e-3
    return {"images": len(x), **{k: float(f"{float(v):.4g}") for k, v in figures.items()}}
