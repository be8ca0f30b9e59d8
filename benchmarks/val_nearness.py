"""Are the small-data benchmark's validation images closer to its training images than the test
images are? (A val that holds near-copies of training pictures flatters a model that memorises.)

    python benchmarks/val_nearness.py --pubfig PUBFIG_ROOT [--fractions 0.1 0.25 1.0]
        [--seeds 0 1 2] [--attributes Young Smiling [--runs SMALL_DATA_KEEP_DIR]]

For each fraction and seed, the training/validation split ``small_data.py`` makes; each
validation and each test image's distance to its nearest training image, in the linear ranker's
features (16x16 pixels and gradient histograms, standardised on the training images), overall
and among the same person's images. ``val_nearer_pct``: validation images nearer than the
median test image; ``near_copies_pct``: images nearer than a quarter of that median.

With ``--attributes``, the linear ranker of each attribute is fitted on the split (seconds) and
``spread`` gives its val and test accuracy and the within-person spread of its scores on the
training, validation and test images (the root mean within-person variance, in units of the
training images' score spread); with ``--runs DIR`` (a ``small_data.py --keep`` folder) the same
for the DeepSTN trained there. A ranker whose scores scatter more within a person on test images
than on validation images misorders more test pairs of different people than its val accuracy
says. Last line: one JSON object.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from outpool.bench import emit, log, machine, parser
from outpool.data.metrics import nearest_distance as nearest
from outpool.data.sources.pubfig import load_pubfig
from outpool.errors import OutpoolError
from outpool.models.linear import LinearRankerConfig, image_features
from outpool.train.evaluate import accuracy_on, score_images
from outpool.train.linear import LinearTrainConfig, train_linear_ranker
from small_data import chosen_attributes, models_of, pubfig_subset, pubfig_test


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


def within_spread(scores: np.ndarray, groups: np.ndarray) -> float:
    """Root mean within-group variance of ``scores``."""
    return float(np.sqrt(np.mean([scores[groups == g].var() for g in np.unique(groups)])))


def spread(scores: dict[str, np.ndarray], groups: dict[str, np.ndarray]) -> dict[str, float]:
    """A model's within-person score spread on each image set (``scores`` of each), in units of
    its scores' spread on the ``train`` set."""
    unit = float(scores["train"].std()) or 1.0
    return {name: round(within_spread(s / unit, groups[name]), 3) for name, s in scores.items()}


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--pubfig", type=Path, required=True, help="PubFig root (data.mat, images/)")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25, 1.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--attributes", nargs="+", default=[], help="fit linear rankers of these")
    p.add_argument("--runs", type=Path, help="a small_data.py --keep folder (its DeepSTNs)")
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
    score_test = pubfig_test(full)
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
            name = f"pubfig_{round(100 * fraction)}pct"
            record: dict[str, Any] = {
                "images": {"train": len(ref), "val": len(val), "test": len(f_test)},
                "any_person": nearness(nearest(val, ref), nearest(f_test, ref)),
                "same_person": nearness(
                    same_val[~np.isnan(same_val)], same_test[~np.isnan(same_test)]
                ),
            }
            pixels = {n: np.asarray(train.pixels)[r] for n, r in rows.items()}
            pixels["test"] = np.asarray(test.pixels)
            groups = {n: train.groups[r] for n, r in rows.items()} | {"test": test.groups}
            for attribute in chosen_attributes(split, args.attributes) if args.attributes else []:
                log(f"{name} seed {seed}: the rankers of {attribute} ...")
                models = {"linear": train_linear_ranker(split, attribute, LinearTrainConfig())[0]}
                kept = args.runs / f"{name}-{seed}" / attribute if args.runs else None
                if kept and (kept / "ranker.pt").exists():
                    models["deepstn"] = models_of(kept)["deepstn"]
                val_pairs = split.pairs["val"].for_attribute(attribute)
                per_model = record.setdefault("spread", {}).setdefault(attribute, {})
                for kind, model in models.items():
                    scores = {n: score_images(model, p) for n, p in pixels.items()}
                    per_model[kind] = {
                        "within_person": spread(scores, groups),
                        "val_acc": round(accuracy_on(model, split, val_pairs), 2),
                        "test_acc": round(score_test.accuracy(scores["test"], attribute), 2),
                    }
            settings[f"{name}/seed_{seed}"] = record
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
