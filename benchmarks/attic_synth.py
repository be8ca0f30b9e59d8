"""ATTIC and its baselines on the built-in world: Tables I-II's protocols, every method.

    python benchmarks/attic_synth.py --generator RUN/generator.pt [--run DIR] [--n 150]
        [--attributes heel open] [--methods real attic] [--protocols normal auto]
        [--seeds 0 1 2] [--set key=value] [--attic-set key=value] [--world-set key=value]

The world is rendered with 2n real training pairs per attribute, so that Real can also train
on 2n; every other method gets n labels (``outpool.rounds.protocols``). The annotator is the
simulated crowd with the world's pixel oracle. ``--generator`` is a generator trained on the
same world (``benchmarks/generator.py --seed S --run RUN`` with the world's seed). With
``--run``, each finished cell is kept in ``DIR/ATTRIBUTE/METHOD/PROTOCOL/seed_N`` and not run
again. Prints one JSON object as the last line: per method and protocol the mean (+- std over
seeds) accuracy on ``test`` and ``test_fine``, per attribute, the crowd's accept / reject /
prune counts per creator, and wall time.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from outpool import config
from outpool.annotate import CrowdConfig, SimulatedCrowd
from outpool.bench import emit, log, machine, parser
from outpool.creators import CREATORS
from outpool.creators.attic import AtticConfig
from outpool.rounds.protocols import FREE_METHODS, PROTOCOLS, REAL_METHODS, run_cell
from outpool.synth import PixelOracle, SynthConfig, build
from outpool.train.generator import load_generator
from outpool.train.ranker import RankerTrainConfig

METHODS = (*REAL_METHODS, *FREE_METHODS, "semantic_jitter", "random", "uncertainty", "attic")


def summarise(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method and protocol: mean and std over seeds of the attribute-mean accuracy, per
    table; the per-attribute means; the crowd's verdicts on created pairs, summed."""
    out: dict[str, Any] = {}
    for method in dict.fromkeys(c["method"] for c in cells):
        for protocol in dict.fromkeys(c["protocol"] for c in cells):
            mine = [c for c in cells if c["method"] == method and c["protocol"] == protocol]
            if not mine:
                continue
            row: dict[str, Any] = {}
            for table in mine[0]["accuracy_pct"]:
                by_seed: dict[int, list[float]] = {}
                for c in mine:
                    by_seed.setdefault(c["seed"], []).append(c["accuracy_pct"][table])
                means = [float(np.mean(v)) for v in by_seed.values()]
                row[f"{table}_mean_pct"] = round(float(np.mean(means)), 2)
                row[f"{table}_std_pct"] = round(float(np.std(means)), 2)
                row[f"{table}_by_attribute_pct"] = {
                    a: round(
                        float(
                            np.mean([c["accuracy_pct"][table] for c in mine if c["attribute"] == a])
                        ),
                        2,
                    )
                    for a in dict.fromkeys(c["attribute"] for c in mine)
                }
            status = [c["created_status"] for c in mine if "created_status" in c]
            if status:
                row["crowd"] = {k: sum(s[k] for s in status) for k in status[0]}
            out[f"{method}/{protocol}"] = row
    return out


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--generator", type=Path, required=True, help="generator.pt of this world")
    p.add_argument("--run", type=Path, help="keep each cell here; finished cells are skipped")
    p.add_argument("--n", type=int, default=150, help="labels per method and attribute")
    p.add_argument("--attributes", nargs="+", help="default: all")
    p.add_argument("--methods", nargs="+", default=list(METHODS), help="default: all")
    p.add_argument("--protocols", nargs="+", default=list(PROTOCOLS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--set", dest="overrides", action="append", default=[], help="ranker key=value")
    p.add_argument("--attic-set", dest="attic", action="append", default=[], help="ATTIC key=value")
    p.add_argument("--world-set", dest="world", action="append", default=[], help="world key=value")
    args = p.parse_args()
    for name in args.methods:
        if name not in METHODS:
            p.error(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
    for name in args.protocols:
        if name not in PROTOCOLS:
            p.error(f"unknown protocol {name!r}; valid: {', '.join(PROTOCOLS)}")
    if args.n < 2:
        p.error("--n must be at least 2")
    if not args.generator.is_file():
        p.error(f"--generator {args.generator} does not exist")
    started = time.perf_counter()
    world_cfg = config.load(SynthConfig, None, [f"train_pairs={2 * args.n}", *args.world])
    ranker_cfg = config.load(RankerTrainConfig, None, args.overrides)
    attic_cfg = config.load(AtticConfig, None, args.attic)
    log("rendering the built-in world ...")
    dataset = build(world_cfg).dataset
    generator = load_generator(args.generator, attributes=dataset.attribute_names)
    crowd = SimulatedCrowd(PixelOracle(progress=False), CrowdConfig())
    attributes = args.attributes or list(dataset.attribute_names)
    cells = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.run or Path(tmp)
        for attribute in attributes:
            for method in args.methods:
                protocols = args.protocols if method not in REAL_METHODS else args.protocols[:1]
                for protocol in protocols:
                    for seed in args.seeds:
                        folder = root / attribute / method / protocol / f"seed_{seed}"
                        done = folder / "result.json"
                        if done.exists():
                            cells.append(json.loads(done.read_text()))
                            continue
                        log(f"{attribute} {method} {protocol} seed {seed} ...")
                        cfg = None
                        if method in ("attic", "random"):
                            cfg = dataclasses.replace(attic_cfg, seed=seed)
                        elif method not in REAL_METHODS:
                            cfg = CREATORS[method].config(seed=seed)
                        cells.append(
                            run_cell(
                                dataset,
                                attribute=attribute,
                                method=method,
                                protocol=protocol,
                                n=args.n,
                                seed=seed,
                                ranker_cfg=ranker_cfg,
                                work_dir=folder,
                                creator_cfg=cfg,
                                generator=generator,
                                annotator=crowd,
                                equal_band=world_cfg.equal_band,
                                tables=("test", "test_fine"),
                            )
                        )
    result = {
        "benchmark": "attic_synth",
        "machine": machine(),
        "n": args.n,
        "seeds": args.seeds,
        "attributes": attributes,
        "methods": summarise(cells),
        "ranker_config": config.to_dict(ranker_cfg),
        "attic_config": config.to_dict(attic_cfg),
        "cells": cells,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
