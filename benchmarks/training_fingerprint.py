"""Fingerprint of short training runs: the numbers a refactor must leave unchanged.

    python benchmarks/training_fingerprint.py [--seed 0] [--threads 2] [--out F]

Trains, on a toy built-in world, a ranker (one epoch per stage, with test-time views), the
generator (two epochs) and an attribute net (two epochs), and prints their final metrics and a
checksum of their weights. Same seed and thread count on the same machine: same numbers.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from outpool import config
from outpool.bench import emit, log, machine, parser
from outpool.synth import SynthConfig, build
from outpool.train.attribute_net import (
    AttributeNetTrainConfig,
    ScoredImages,
    predict_scores,
    train_attribute_net,
)
from outpool.train.evaluate import accuracy_on
from outpool.train.generator import GeneratorTrainConfig, train_generator
from outpool.train.ranker import RankerTrainConfig, train_ranker

WORLD = {
    "generator": {"images": 200, "broad_share": 0.3},
    "train": {"images": 160, "broad_share": 0.05},
    "val": {"images": 60, "broad_share": 0.05},
    "test": {"images": 160, "broad_share": 0.5},
    "train_pairs": 120,
    "val_pairs": 40,
    "test_pairs": 200,
}


def checksum(model: nn.Module) -> float:
    """Sum of |weight| over every parameter and buffer: any change in training moves it."""
    return round(
        sum(float(t.detach().double().abs().sum()) for t in model.state_dict().values()), 6
    )


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    dataset = build(config.from_dict(SynthConfig, {**WORLD, "seed": args.seed})).dataset
    result: dict[str, object] = {"benchmark": "training_fingerprint", "machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        log("ranker ...")
        ranker_cfg = config.load(
            RankerTrainConfig,
            None,
            [
                f"seed={args.seed}",
                "device=cpu",
                "epochs_crop=1",
                "epochs_full=1",
                "flip=true",
                "shift=0.05",
                "model.mirror_average=true",
                "model.test_zooms=[1.125]",
            ],
        )
        ranker, summary = train_ranker(
            dataset, "heel", ranker_cfg, Path(tmp) / "ranker", progress=False
        )
        test = dataset.pairs["test"].for_attribute("heel")
        result["ranker"] = {
            "best_val_acc_pct": round(float(summary["best_val_acc"]), 4),
            "test_acc_pct": round(accuracy_on(ranker, dataset, test), 4),
            "weights": checksum(ranker),
        }
        log("generator ...")
        gen_cfg = config.load(
            GeneratorTrainConfig, None, [f"seed={args.seed}", "device=cpu", "epochs=2"]
        )
        generator, summary = train_generator(dataset, gen_cfg, Path(tmp) / "gen", progress=False)
        result["generator"] = {
            "best_val_elbo": round(float(summary["best_val_elbo"]), 4),
            "weights": checksum(generator),
        }
        log("attribute net ...")
        table = dataset.images["generator"]
        scored = ScoredImages(
            ids=table.ids,
            pixels=np.asarray(table.pixels),
            scores=np.asarray(table.strengths),
            groups=table.ids,
            attributes=table.attributes,
            source="toy world generator images",
        )
        net_cfg = config.load(
            AttributeNetTrainConfig, None, [f"seed={args.seed}", "device=cpu", "epochs=2"]
        )
        net, summary = train_attribute_net(scored, net_cfg, Path(tmp) / "net", progress=False)
        result["attribute_net"] = {
            "held_out_r2_mean": summary["held_out"]["r2_mean"],
            "prediction_sum": round(float(predict_scores(net, scored.pixels).sum()), 4),
            "weights": checksum(net),
        }
    result["threads"] = args.threads
    result["wall_s"] = round(time.perf_counter() - started, 1)
    emit(result, args.out)


if __name__ == "__main__":
    main()
