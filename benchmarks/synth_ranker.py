"""The Real ranker on the built-in world: accuracy per attribute with the default real pairs.

    python benchmarks/synth_ranker.py [--set key=value] [--world-set key=value]

Calibrates the world's difficulty: the ranker trained on the catalogue pool's real pairs only,
tested on pairs across the whole attribute space and on the fine-grained subset.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from outpool import config
from outpool.bench import emit, eta_text, log, machine, parser
from outpool.models.tensors import pick_device
from outpool.synth import SynthConfig, build
from outpool.train.evaluate import accuracy_on
from outpool.train.ranker import RankerTrainConfig, train_ranker


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], help="training key=value"
    )
    p.add_argument("--world-set", dest="world", action="append", default=[], help="world key=value")
    p.add_argument("--attributes", nargs="+", help="default: all")
    args = p.parse_args()
    started = time.perf_counter()
    cfg = config.load(RankerTrainConfig, None, [f"seed={args.seed}", *args.overrides])
    world_cfg = config.load(SynthConfig, None, args.world)
    log("rendering the built-in world ...")
    dataset = build(world_cfg).dataset
    device = pick_device(cfg.device)
    names = args.attributes or list(dataset.attribute_names)
    test: dict[str, float] = {}
    fine: dict[str, float] = {}
    val: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(names):
            log(f"{eta_text(i, len(names), started, time.perf_counter())} training '{name}' ...")
            model, summary = train_ranker(dataset, name, cfg, Path(tmp) / name, progress=True)
            val[name] = round(float(summary["best_val_acc"]), 2)
            for table, out in (("test", test), ("test_fine", fine)):
                pairs = dataset.pairs[table].for_attribute(name)
                out[name] = round(accuracy_on(model, dataset, pairs, device=device), 2)
            log(f"  {name}: test {test[name]:.2f}%  fine-grained {fine[name]:.2f}%")
    result = {
        "benchmark": "synth_ranker",
        "machine": machine(),
        "device": str(device),
        "train_pairs_per_attribute": world_cfg.train_pairs,
        "val_acc_pct": val,
        "test_acc_pct": test,
        "test_mean_acc_pct": round(float(np.mean(list(test.values()))), 2),
        "test_fine_acc_pct": fine,
        "test_fine_mean_acc_pct": round(float(np.mean(list(fine.values()))), 2),
        "config": config.to_dict(cfg),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
