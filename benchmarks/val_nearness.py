"""Are the small-data benchmark's validation images closer to its training images than the test
images are? (A val that holds near-copies of training pictures flatters a model that memorises.)

    python benchmarks/val_nearness.py --pubfig PUBFIG_ROOT [--fractions 0.1 0.25 1.0]
        [--seeds 0 1 2]

For each fraction and seed, the training/validation split ``small_data.py`` makes; each
validation and each test image's distance to its nearest training image, in the linear ranker's
features (16x16 pixels and gradient histograms, standardised on the training images), overall
and among the same person's images. ``val_nearer_pct``: validation images nearer than the
median test image; ``near_copies_pct``: images nearer than a quarter of that median. No
training; seconds. Last line: one JSON object.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from outpool.bench import emit, log, machine, parser
from outpool.data.metrics import nearest_distance as nearest
from outpool.data.sources.pubfig import load_pubfig
from outpool.errors import OutpoolError
from outpool.models.linear import LinearRankerConfig, image_features
from small_data import pubfig_subset


def features(pixels: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(np.array(pixels)).permute(0, 3, 1, 2).float() / 255.0
    return image_features(x, LinearRankerConfig()).numpy()


def nearest_same_group(
    queries: np.ndarray, groups: np.ndarray, reference: np.ndarray, ref_groups: np.ndarray
) -> np.ndarray:
    """Each query's distance to the nearest reference of its own group (NaN: none)."""
    out = np.full(len(queries), np.nan)
    for g in np.unique(groups):
        mine, theirs = groups == g, ref_groups == g
        if theirs.any():
            out[mine] = nearest(queries[mine], reference[theirs])
    return out


def nearness(val: np.ndarray, test: np.ndarray) -> dict[str, float]:
    """Figures of the validation and test images' distances to the training images."""
    typical = float(np.median(test))
    return {
        "val_median": round(float(np.median(val)), 2),
        "test_median": round(typical, 2),
        "val_nearer_pct": round(100.0 * float(np.mean(val < typical)), 1),
        "val_near_copies_pct": round(100.0 * float(np.mean(val < typical / 4)), 1),
        "test_near_copies_pct": round(100.0 * float(np.mean(test < typical / 4)), 1),
    }


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--pubfig", type=Path, required=True, help="PubFig root (data.mat, images/)")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25, 1.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = p.parse_args()
    if not all(0 < f <= 1 for f in args.fractions):
        p.error("--fractions must be in (0, 1]")
    started = time.perf_counter()
    try:
        full = load_pubfig(args.pubfig)
    except OutpoolError as exc:
        p.error(str(exc))
    train, test = full.images["train"], full.images["test"]
    assert train.groups is not None and test.groups is not None
    log("features of the training and test images ...")
    f_train, f_test = features(train.pixels), features(test.pixels)
    mean, std = f_train.mean(0), f_train.std(0) + 1e-6
    f_train, f_test = (f_train - mean) / std, (f_test - mean) / std
    index = {v: i for i, v in enumerate(train.ids)}
    settings = {}
    for fraction in args.fractions:
        for seed in args.seeds:
            split = pubfig_subset(full, fraction, seed)
            rows = {
                name: np.array(sorted({index[i] for i in (*t.a, *t.b)}))
                for name, t in split.pairs.items()
            }
            ref, ref_groups = f_train[rows["train"]], train.groups[rows["train"]]
            val, val_groups = f_train[rows["val"]], train.groups[rows["val"]]
            same_val = nearest_same_group(val, val_groups, ref, ref_groups)
            same_test = nearest_same_group(f_test, test.groups, ref, ref_groups)
            settings[f"pubfig_{round(100 * fraction)}pct/seed_{seed}"] = {
                "images": {"train": len(ref), "val": len(val), "test": len(f_test)},
                "any_person": nearness(nearest(val, ref), nearest(f_test, ref)),
                "same_person": nearness(
                    same_val[~np.isnan(same_val)], same_test[~np.isnan(same_test)]
                ),
            }
    emit(
        {
            "benchmark": "val_nearness",
            "machine": machine(),
            "settings": settings,
            "wall_s": round(time.perf_counter() - started, 1),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
