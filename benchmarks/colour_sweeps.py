"""Where a built-in-world generator's "colorful" sweeps miss, and where the oracle stops reading.

    python benchmarks/colour_sweeps.py --generator RUN/generator.pt [--n-z 48] [--seed S]

1. Sweeps "colorful" at ``--n-z`` fixed latents (as ``controllability`` does, same seed) and
   measures the upper's own pixels (object pixels brighter than the sole): mean HSV saturation
   and value at each step, for the latents whose sweep hits (Spearman >= 0.5) and for those that
   miss, beside the oracle's "colorful".
2. Renders shoes whose upper is darker than any in the world (HSV value below 0.46) and reports
   the oracle's "colorful" Spearman and legibility on them (the world's renders: exact).

Prints one JSON object as the last line (benchmarks/RESULTS.md, "the grey latents").
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from outpool.bench import emit, log, machine, parser
from outpool.judges.generator_check import spearman_or_nan, sweep_images, sweeps_followed
from outpool.synth import ATTRIBUTE_NAMES, Nuisance, PixelOracle, render
from outpool.train.generator import load_generator

UPPER_VALUES = (0.30, 0.38, 0.46, 0.58)  # the world's uppers: 0.46-0.68
OBJECT = 0.15  # RGB distance from the border's median colour that counts as the shoe
SOLE_BELOW = 0.25  # HSV value under which a shoe pixel is sole


def upper_hsv(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean HSV saturation and value (N,) of the upper's pixels of uint8 images (N, H, W, 3)."""
    x = images.astype(np.float32) / 255
    border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], 1)
    background = np.median(border, 1)[:, None, None]
    value = x.max(-1)
    sat = (value - x.min(-1)) / np.maximum(value, 1e-3)
    upper = (np.sqrt(((x - background) ** 2).sum(-1)) > OBJECT) & (value > SOLE_BELOW)
    count = np.maximum(upper.sum((1, 2)), 1)
    return (sat * upper).sum((1, 2)) / count, (value * upper).sum((1, 2)) / count


def rounded(a: np.ndarray) -> list[float]:
    return [round(float(v), 3) for v in a]


def sweeps(path: Path, n_z: int, seed: int, oracle: PixelOracle) -> dict[str, Any]:
    model = load_generator(path)
    k = model.attributes.index("colorful")
    col = list(oracle.attributes).index("colorful")
    with torch.no_grad():
        images, y = sweep_images(model, k, steps=9, n_z=n_z, seed=seed)
    flat = images.reshape(-1, *images.shape[2:])
    measured = oracle.assess(flat)[0][:, col].reshape(n_z, 9)
    sat, value = (a.reshape(n_z, 9) for a in upper_hsv(flat))
    hit = sweeps_followed(np.array([spearman_or_nan(y[:, k], m) for m in measured]))
    out: dict[str, Any] = {"commanded": rounded(y[:, k]), "latents": n_z}
    for name, rows in (("hit", hit), ("missed", ~hit)):
        out[name] = {
            "latents": int(rows.sum()),
            "upper_saturation": rounded(sat[rows].mean(0)),
            "upper_value": rounded(value[rows].mean(0)),
            "oracle_colorful": rounded(np.nanmean(measured[rows], 0)),
        }
    return out


def dark_renders(n: int, seed: int, oracle: PixelOracle) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    col = list(oracle.attributes).index("colorful")
    out = {}
    for v in UPPER_VALUES:
        nuisance = dataclasses.replace(
            Nuisance.sample(rng, n), upper_value=np.full(n, v, np.float32)
        )
        attrs = rng.uniform(0, 1, (n, len(ATTRIBUTE_NAMES))).astype(np.float32)
        values, legible = oracle.assess(render(attrs, nuisance, seed=seed))
        truth = attrs[:, ATTRIBUTE_NAMES.index("colorful")]
        out[f"{v:.2f}"] = {
            "colorful_spearman": round(spearman_or_nan(truth, values[:, col]), 3),
            "legible_pct": round(100.0 * float((legible >= 0.5).mean()), 1),
        }
    return out


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--generator", type=Path, required=True, help="a built-in-world generator.pt")
    p.add_argument("--n-z", type=int, default=48, help="latents swept")
    p.add_argument("--renders", type=int, default=400, help="renders per upper value")
    args = p.parse_args()
    oracle = PixelOracle()
    log("sweeping colorful ...")
    result: dict[str, Any] = {"benchmark": "colour_sweeps", "machine": machine()}
    result["generator"] = str(args.generator)
    result["sweeps"] = sweeps(args.generator, args.n_z, args.seed, oracle)
    log("rendering dark uppers ...")
    result["oracle_on_dark_uppers"] = dark_renders(args.renders, args.seed, oracle)
    emit(result, args.out)


if __name__ == "__main__":
    main()
