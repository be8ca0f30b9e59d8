"""ATTIC and its baselines on the built-in world: Tables I-II's protocols, every method.

    python benchmarks/attic_synth.py [--config configs/attic_tables.toml] [--run RUN]
        [--set key=value] [--shard I/N]

Runs the experiment (``outpool experiment run``: the world with 2n real training pairs per
attribute, so that Real can also train on 2n; every other method gets n labels, see
``outpool.rounds.protocols``; the simulated crowd with the world's pixel oracle; the generator
and the legibility screen trained once into RUN), resumable and shardable (N processes with
``--shard I/N`` on one RUN, then a plain run for the summary, as ``benchmarks/attic_gpu.sh``
does on a GPU). ``attic_unscreened`` is ATTIC as the paper ran it, without the screen; its pairs
are still scored by the screen, to measure the screen against the crowd.
Prints one JSON object as the last line: per method and protocol the mean (+- std over seeds)
accuracy per test table, per attribute; per creator the crowd's accept / reject / prune rates,
what the screen did, and the oracle-measured |difference| of the created pairs beside the real
pairs'; the screen's AUC for the crowd's "illegible" and the labels it would save; wall time.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from outpool import config
from outpool.bench import emit, log, machine, parse_shard, parser
from outpool.creators import CreatedPairs
from outpool.creators.screen import LegibilityScreen
from outpool.data.metrics import roc_auc
from outpool.errors import OutpoolError
from outpool.experiments.config import ACTIVE, ExperimentConfig
from outpool.experiments.runner import prepare, run_experiment
from outpool.rounds.protocols import real_pairs
from outpool.synth import PixelOracle

DEFAULT = Path(__file__).parent.parent / "configs" / "attic_tables.toml"
UNSCREENED = "attic_unscreened"  # ATTIC without the legibility screen, as the paper ran it


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
        path = root / c["folder"]
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
    root: Path, cells: list[dict[str, Any]], screen: LegibilityScreen | None
) -> dict[str, Any]:
    """How the screen's scores of the unscreened ATTIC pairs predict the crowd's verdicts:
    AUC for "illegible", and the labels its threshold would have saved and lost."""
    scores, status = [], []
    for c in cells:
        path = root / c["folder"]
        if screen is None or c["method"] != UNSCREENED or not (path / "created.npz").exists():
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
    p.add_argument("--config", type=Path, default=DEFAULT, help="experiment config (TOML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="key=value")
    p.add_argument("--run", type=Path, help="keep the run here (default: temporary)")
    p.add_argument("--shard", type=parse_shard, default=(0, 1), help="I/N: every N-th cell")
    args = p.parse_args()
    if args.shard != (0, 1) and args.run is None:
        p.error("--shard needs --run (the shards share its cells)")
    try:
        cfg = config.load(ExperimentConfig, args.config, args.overrides)
    except OutpoolError as exc:
        p.error(str(exc))
    if ACTIVE in cfg.experiment.protocols:
        p.error("active rounds are benchmarks/attic_active.py's; this one runs normal and auto")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or Path(tmp)
        rows = run_experiment(cfg, run, shard=args.shard, log=log)
        grid = cfg.experiment  # a run folder may hold other grids' cells too (attic_gpu.sh)
        cells = [r for r in rows if r["method"] in grid.methods and r["protocol"] in grid.protocols]
        if args.shard != (0, 1):
            log("shard done; run again without --shard for the summary")
            return
        log("measuring the created pairs ...")
        shared = prepare(cfg, run, progress=False, log=log)
        oracle = PixelOracle(progress=False)
        differences = measured_differences(run, shared.dataset, cells, oracle)
        against_crowd = screen_against_crowd(run, cells, shared.screen)
    result = {
        "benchmark": "attic_synth",
        "machine": machine(),
        "config": config.to_dict(cfg),
        "methods": summarise(cells),
        "oracle_median_abs_difference": differences,
        "screen": {
            "threshold": None if shared.screen is None else round(shared.screen.threshold, 4),
            "against_crowd": against_crowd,
        },
        "cells": cells,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
