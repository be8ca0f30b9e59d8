"""PubFig relative attributes, standard protocol: outpool's ranker vs the original RankSVM.

    python benchmarks/pubfig.py --data ../shared/data/pubfig [--seeds 0 1 2] [--set key=value]

One ranker per attribute trained on the 241 training images (all pairs of different people with
different ranks), tested on ALL pairs of the 531 test images of different people with different
ranks (a tied score is wrong); the mean is unweighted over the 11 attributes. The RankSVM scores
shipped in data.mat are evaluated on the same pairs in the same run. No validation split exists
in this protocol, so training runs a fixed number of epochs (no early stopping on test).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from outpool import config
from outpool.bench import emit, log, machine, parser
from outpool.data.sources.pubfig import load_pubfig, ordering_accuracy, ranksvm_baseline
from outpool.evaluate import score_images
from outpool.train.ranker import RankerTrainConfig, pick_device, train_ranker

# From-scratch defaults for 241 face images: augmentation matters, and the pair sample per
# epoch keeps an epoch short (there are ~20k training pairs per attribute).
DEFAULTS = (
    "flip=true",
    "shift=0.06",
    "batch_size=64",
    "pairs_per_epoch=4000",
    "epochs_crop=8",
    "epochs_full=16",
    "optimizer='adam'",
    "lr=0.001",
)


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--data", type=Path, default=Path("../shared/data/pubfig"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--attributes", nargs="+", help="default: all 11")
    p.add_argument("--cache", type=Path, help="decoded-image cache folder")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], help="training config key=value"
    )
    args = p.parse_args()
    started = time.perf_counter()
    cfg = config.load(RankerTrainConfig, None, [*DEFAULTS, *args.overrides])
    log(f"loading PubFig from {args.data} ...")
    dataset = load_pubfig(args.data, cache=args.cache)
    test = dataset.images["test"]
    names = args.attributes or list(dataset.attribute_names)
    baseline = ranksvm_baseline(args.data)

    per_seed: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for name in names:
                log(f"seed {seed}: training '{name}' ...")
                run_cfg = dataclasses.replace(cfg, seed=seed)
                model, _ = train_ranker(
                    dataset, name, run_cfg, Path(tmp) / f"{seed}-{name}", val=None, progress=False
                )
                device = pick_device(cfg.device)
                scores = score_images(model, np.asarray(test.pixels), device=device)
                acc = ordering_accuracy(scores, test.strength(name), test.groups)
                per_seed[name].append(round(acc, 2))
                log(f"  {name}: {acc:.2f}% (RankSVM {baseline[name]:.2f}%)")

    ours = {n: round(float(np.mean(v)), 2) for n, v in per_seed.items()}
    seed_means = [float(np.mean([per_seed[n][i] for n in names])) for i in range(len(args.seeds))]
    result = {
        "benchmark": "pubfig",
        "machine": machine(),
        "device": str(pick_device(cfg.device)),
        "protocol": "train 241 images; test all 531-image pairs of different people and ranks",
        "outpool_acc_pct": ours,
        "outpool_mean_acc_pct": round(float(np.mean(list(ours.values()))), 2),
        "outpool_mean_acc_pct_per_seed": [round(m, 2) for m in seed_means],
        "outpool_acc_pct_per_seed": per_seed,
        "ranksvm_acc_pct": {n: round(baseline[n], 2) for n in names},
        "ranksvm_mean_acc_pct": round(float(np.mean([baseline[n] for n in names])), 2),
        "seeds": args.seeds,
        "config": config.to_dict(cfg),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
