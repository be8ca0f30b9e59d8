"""ATTIC and its baselines on the built-in world: Tables I-II's protocols, every method.

    python benchmarks/attic_synth.py --generator RUN/generator.pt [--run DIR] [--n 150]
        [--attributes heel open] [--methods real attic] [--protocols normal auto]
        [--seeds 0 1 2] [--set key=value] [--attic-set key=value] [--world-set key=value]
        [--screen-set key=value]

The world is rendered with 2n real training pairs per attribute, so that Real can also train
on 2n; every other method gets n labels (``outpool.rounds.protocols``). The annotator is the
simulated crowd with the world's pixel oracle. ``--generator`` is a generator trained on the
same world (``benchmarks/generator.py --seed S --run RUN`` with the world's seed). The
generating creators' pairs pass the legibility screen, fitted once on the world's
generator-training pictures; ``attic_unscreened`` is ATTIC as the paper ran it, without the
screen, whose pairs are still scored by it to measure it against the crowd. With ``--run``,
each finished cell is kept in ``DIR/ATTRIBUTE/METHOD/PROTOCOL/seed_N`` and not run again; so
several processes (``--prepare`` once, then ``--shard I/N`` each, then a plain run for the
summary) share one grid, as ``benchmarks/attic_gpu.sh`` does on a GPU.
Prints one JSON object as the last line: per method and protocol the mean (+- std over seeds)
accuracy on ``test`` and ``test_fine``, per attribute; per creator the crowd's accept / reject
/ prune rates, what the screen did, and the oracle-measured |difference| of the created pairs
beside the real pairs'; the screen's AUC for the crowd's "illegible" and the labels it would
save; wall time.
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
from outpool.bench import emit, log, machine, parse_shard, parser
from outpool.creators import CREATORS, CreatedPairs
from outpool.creators.attic import AtticConfig
from outpool.creators.screen import LegibilityScreen, ScreenConfig, fit_screen
from outpool.data.metrics import roc_auc
from outpool.rounds.protocols import FREE_METHODS, PROTOCOLS, REAL_METHODS, real_pairs, run_cell
from outpool.synth import PixelOracle, SynthConfig, build
from outpool.train.generator import load_generator
from outpool.train.ranker import RankerTrainConfig

UNSCREENED = "attic_unscreened"  # ATTIC without the legibility screen, as the paper ran it
METHODS = (
    *REAL_METHODS,
    *FREE_METHODS,
    "semantic_jitter",
    "random",
    "uncertainty",
    "attic",
    UNSCREENED,
)


def summarise(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method and protocol: mean and std over seeds of the attribute-mean accuracy, per
    table; the per-attribute means; the crowd's verdicts on created pairs and what the screen
    did, summed."""
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
            for key in ("created_status", "screen"):
                found = [c[key] for c in mine if key in c]
                if found:
                    row[key] = {k: sum(f[k] for f in found) for k in found[0] if k != "threshold"}
            sent = sum(row.get("created_status", {}).values())
            if sent:
                row["crowd_pct"] = {
                    k: round(100.0 * v / sent, 1) for k, v in row["created_status"].items()
                }
            out[f"{method}/{protocol}"] = row
    return out


def measured_differences(
    root: Path, dataset: Any, cells: list[dict[str, Any]], oracle: PixelOracle
) -> dict[str, Any]:
    """The oracle's median |difference| of the attribute within the created pairs, per method,
    beside the real pairs' (the first cell's real pairs of each attribute), in the world's
    units."""
    out: dict[str, list[float]] = {}
    k = {a: i for i, a in enumerate(oracle.attributes)}
    for c in cells:
        path = root / c["attribute"] / c["method"] / c["protocol"] / f"seed_{c['seed']}"
        if not (path / "created.npz").exists():
            continue
        made = np.load(path / "created.npz")
        va, vb = (oracle.assess(made[s])[0][:, k[c["attribute"]]] for s in ("images_a", "images_b"))
        out.setdefault(c["method"], []).extend(np.abs(va - vb).tolist())
    for attribute in dict.fromkeys(c["attribute"] for c in cells):
        pairs = real_pairs(dataset, attribute, cells[0]["n"], cells[0]["seed"])
        va, vb = (
            oracle.assess(dataset.lookup(ids))[0][:, k[attribute]] for ids in (pairs.a, pairs.b)
        )
        out.setdefault("real_pairs", []).extend(np.abs(va - vb).tolist())
    return {m: round(float(np.median(v)), 4) for m, v in out.items()}


def screen_against_crowd(
    root: Path, cells: list[dict[str, Any]], screen: LegibilityScreen
) -> dict[str, Any]:
    """How the screen's scores of the unscreened ATTIC pairs predict the crowd's verdicts:
    AUC for "illegible", and the labels its threshold would have saved and lost."""
    scores, status = [], []
    for c in cells:
        path = root / c["attribute"] / c["method"] / c["protocol"] / f"seed_{c['seed']}"
        if c["method"] != UNSCREENED or not (path / "created.npz").exists():
            continue
        saved = np.load(path / "created.npz")
        if "status" not in saved:
            continue
        pairs = CreatedPairs(
            c["attribute"],
            "attic",
            saved["images_a"],
            saved["images_b"],
            saved["label"],
            y_a=saved["y_a"],
            y_b=saved["y_b"],
        )
        scores.append(screen.pair_scores(pairs))
        status.append(saved["status"])
    if not scores:
        return {}
    score, verdict = np.concatenate(scores), np.concatenate(status)
    fails, rejected = score > screen.threshold, verdict == "rejected"
    return {
        "pairs": len(score),
        "crowd_rejected": int(rejected.sum()),
        "auc_illegible": round(roc_auc(score, rejected), 3),
        "rejected_it_fails": int((fails & rejected).sum()),
        "accepted_it_fails": int((fails & (verdict == "accepted")).sum()),
        "pruned_it_fails": int((fails & (verdict == "pruned")).sum()),
    }


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
    p.add_argument(
        "--screen-set", dest="screen", action="append", default=[], help="screen key=value"
    )
    p.add_argument(
        "--prepare", action="store_true", help="fit the screen into --run and stop (for shards)"
    )
    p.add_argument(
        "--shard", type=parse_shard, default=(0, 1), help="I/N: run every N-th cell from the I-th"
    )
    args = p.parse_args()
    if (args.prepare or args.shard != (0, 1)) and args.run is None:
        p.error("--prepare and --shard need --run (the shards share its cells)")
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
    screen_cfg = config.load(ScreenConfig, None, args.screen)
    log("rendering the built-in world ...")
    dataset = build(world_cfg).dataset
    generator = load_generator(args.generator, attributes=dataset.attribute_names)
    oracle = PixelOracle(progress=False)
    crowd = SimulatedCrowd(oracle, CrowdConfig())
    attributes = args.attributes or list(dataset.attribute_names)
    cells = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.run or Path(tmp)
        log("fitting the legibility screen ...")
        t0 = time.perf_counter()
        screen = fit_screen(
            dataset.images[screen_cfg.table], generator, screen_cfg, root / "screen"
        )
        screen_s = time.perf_counter() - t0
        if args.prepare:
            log(f"the screen is in {root / 'screen'}; start the shards")
            return
        grid = [
            (attribute, method, protocol, seed)
            for attribute in attributes
            for method in args.methods
            for protocol in (args.protocols if method not in REAL_METHODS else args.protocols[:1])
            for seed in args.seeds
        ]
        shard, shards = args.shard
        for i, (attribute, method, protocol, seed) in enumerate(grid):
            if i % shards != shard:
                continue  # another shard's
            folder = root / attribute / method / protocol / f"seed_{seed}"
            done = folder / "result.json"
            if done.exists():  # finished before, or by another shard
                cells.append({**json.loads(done.read_text()), "method": method})
                continue
            log(f"{attribute} {method} {protocol} seed {seed} ...")
            creates = "attic" if method == UNSCREENED else method
            cfg = None
            if creates in ("attic", "random"):
                cfg = dataclasses.replace(attic_cfg, seed=seed)
            elif creates not in REAL_METHODS:
                cfg = CREATORS[creates].config(seed=seed)
            cell = run_cell(
                dataset,
                attribute=attribute,
                method=creates,
                protocol=protocol,
                n=args.n,
                seed=seed,
                ranker_cfg=ranker_cfg,
                work_dir=folder,
                creator_cfg=cfg,
                generator=generator,
                annotator=crowd,
                equal_band=world_cfg.equal_band,
                screen=None if method == UNSCREENED else screen,
                tables=("test", "test_fine"),
            )
            cells.append({**cell, "method": method})
        if shards > 1:
            log(f"shard {shard}/{shards} done; without --shard, the summary of every cell")
            return
        log("measuring the created pairs ...")
        differences = measured_differences(root, dataset, cells, oracle)
        against_crowd = screen_against_crowd(root, cells, screen)
    result = {
        "benchmark": "attic_synth",
        "machine": machine(),
        "n": args.n,
        "seeds": args.seeds,
        "attributes": attributes,
        "methods": summarise(cells),
        "oracle_median_abs_difference": differences,
        "screen": {
            "fit_s": round(screen_s, 1),
            "threshold": round(screen.threshold, 4),
            "against_crowd": against_crowd,
        },
        "ranker_config": config.to_dict(ranker_cfg),
        "attic_config": config.to_dict(attic_cfg),
        "screen_config": config.to_dict(screen_cfg),
        "cells": cells,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
