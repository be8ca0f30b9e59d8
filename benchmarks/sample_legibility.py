"""Why are a built-in-world generator's random samples illegible: the strengths, or the latent?

    python benchmarks/sample_legibility.py --generator RUN/generator.pt [--seed S] [--n 2048]
        [--gallery PNG]

``--seed`` names the world the generator was trained on (``benchmarks/generator.py --seed S``
renders world S). Random samples pair strengths y with prior coordinates u; either can be where
the decoder never was. The pixel oracle judges four sets of ``--n`` images, crossing where y and
u come from:

- y of training images (their own combination of strengths) or y drawn as the random samples
  draw it (each attribute independently, 0.7 std around its mean: combinations the correlated
  world may never show);
- u of training images (``latent``: codes the decoder was trained on) or u from the prior.

It also bins the prior samples' legibility by their radius |u| and by their distance to the
nearest training code (in u units), and ``--gallery`` draws the illegible samples beside legible
ones. Prints one JSON object as the last line.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from outpool.bench import emit, log, machine, parser
from outpool.judges.generator_check import random_inputs, to_uint8
from outpool.models.tensors import to_tensor
from outpool.report.gallery import image_grid, save_gallery
from outpool.synth import PixelOracle, SynthConfig, build
from outpool.train.generator import load_generator

BINS = 5  # quantile bins of |u| and of the nearest-code distance


@torch.no_grad()
def training_codes(model: Any, pixels: np.ndarray, y: np.ndarray, batch: int = 256) -> np.ndarray:
    """u (N, M) of the encoder's mean code of each training image."""
    out = []
    for i in range(0, len(pixels), batch):
        x = to_tensor(pixels[i : i + batch])
        out.append(model.latent(x, torch.from_numpy(y[i : i + batch])).numpy())
    return np.concatenate(out)


def nearest_distance(u: np.ndarray, codes: np.ndarray, batch: int = 512) -> np.ndarray:
    """Per row of u (n, M), the Euclidean distance to the nearest row of codes (N, M)."""
    c = torch.from_numpy(codes)
    return np.concatenate(
        [
            torch.cdist(torch.from_numpy(u[i : i + batch]), c).min(1).values.numpy()
            for i in range(0, len(u), batch)
        ]
    )


def by_bins(values: np.ndarray, legible: np.ndarray) -> list[dict[str, float]]:
    """Legibility (%) within quantile bins of ``values``."""
    edges = np.quantile(values, np.linspace(0, 1, BINS + 1))
    which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, BINS - 1)
    return [
        {
            "from": round(float(edges[b]), 2),
            "to": round(float(edges[b + 1]), 2),
            "legible_pct": round(100.0 * float(legible[which == b].mean()), 1),
        }
        for b in range(BINS)
    ]


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--generator", type=Path, required=True, help="a built-in-world generator.pt")
    p.add_argument("--n", type=int, default=2048, help="images per set")
    p.add_argument("--gallery", type=Path, help="PNG of illegible and legible random samples")
    args = p.parse_args()
    if not args.generator.is_file():
        p.error(f"--generator {args.generator} does not exist")
    if args.n < BINS:
        p.error(f"--n must be at least {BINS}")
    started = time.perf_counter()
    model = load_generator(args.generator)
    log(f"rendering world {args.seed} ...")
    table = build(SynthConfig(seed=args.seed)).dataset.images["generator"]
    if tuple(table.attributes) != model.attributes:
        p.error("the generator was not trained on the built-in world")
    pixels = np.asarray(table.pixels)
    strengths = np.asarray(table.strengths, np.float32)
    log("encoding the training images ...")
    codes = training_codes(model, pixels, strengths).astype(np.float32)
    rng = np.random.default_rng(args.seed)
    rows = rng.choice(len(pixels), args.n, replace=len(pixels) < args.n)
    y_random, u_prior = random_inputs(model, args.n, args.seed + 1)  # as controllability draws
    sources = {
        "y": {"training": torch.from_numpy(strengths[rows]), "independent": y_random},
        "u": {"training": torch.from_numpy(codes[rows]), "prior": u_prior},
    }
    oracle = PixelOracle(progress=False)
    legible: dict[str, np.ndarray] = {}
    images: dict[str, np.ndarray] = {}
    for y_from, y in sources["y"].items():
        for u_from, u in sources["u"].items():
            key = f"y_{y_from}__u_{u_from}"
            log(f"judging {key} ...")
            with torch.no_grad():
                images[key] = to_uint8(model.sample(y, u))
            legible[key] = oracle.assess(images[key])[1] >= 0.5
    u = u_prior.numpy()
    radius = np.linalg.norm(u, axis=1)
    nearest = nearest_distance(u, codes)
    prior_legible = legible["y_independent__u_prior"]
    code_radius = np.linalg.norm(codes, axis=1)
    result: dict[str, Any] = {
        "benchmark": "sample_legibility",
        "machine": machine(),
        "generator": str(args.generator),
        "world_seed": args.seed,
        "images_per_set": args.n,
        "legible_pct": {k: round(100.0 * float(v.mean()), 1) for k, v in legible.items()},
        "prior_samples_by_radius": by_bins(radius, prior_legible),
        "prior_samples_by_nearest_code": by_bins(nearest, prior_legible),
        "training_code_radius": {
            "median": round(float(np.median(code_radius)), 2),
            "p95": round(float(np.quantile(code_radius, 0.95)), 2),
        },
        "prior_radius_median": round(float(np.median(radius)), 2),
        "nearest_code_median": {
            "illegible": round(float(np.median(nearest[~prior_legible])), 2)
            if (~prior_legible).any()
            else None,
            "legible": round(float(np.median(nearest[prior_legible])), 2),
        },
        "threads": torch.get_num_threads(),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if args.gallery is not None:
        shown = images["y_independent__u_prior"]
        bad, good = np.flatnonzero(~prior_legible)[:24], np.flatnonzero(prior_legible)[:24]
        page = image_grid(
            np.concatenate([shown[bad], shown[good]]),
            columns=12,
            title=f"random samples: {len(bad)} illegible (first rows), then legible",
        )
        save_gallery(page, args.gallery)
    emit(result, args.out)


if __name__ == "__main__":
    main()
