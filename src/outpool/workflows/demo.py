"""The main job on the built-in data (the README's first command): ATTIC end to end.

It runs the experiment in ``experiments/demo.toml``: renders the built-in shoe world, trains the
generator and the legibility screen, pre-trains the ranker, and runs Real, Semantic Jitter and
ATTIC in the Normal protocol and in active rounds, with the simulated crowd labelling every
created pair; then writes the report and a summary of each method's gain over Real. The run
folder resumes like any experiment's.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from outpool import config
from outpool.experiments.config import ExperimentConfig
from outpool.experiments.runner import run_experiment
from outpool.fileio import atomic_path, json_text
from outpool.report.experiment import build_report


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def demo_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """The demo's experiment: ``path`` (default: the packaged ``demo.toml``) and overrides."""
    if path is None:
        with resources.as_file(resources.files("outpool.experiments") / "demo.toml") as packaged:
            return config.load(ExperimentConfig, packaged, overrides)
    return config.load(ExperimentConfig, path, overrides)


def gains(rows: Sequence[dict[str, Any]], table: str = "test") -> dict[str, dict[str, float]]:
    """Per protocol and method, the mean over attributes and seeds of the accuracy gain over
    Real on ``table`` (active rounds: after the last round)."""
    real = {
        (r["attribute"], r["seed"]): r["accuracy_pct"][table] for r in rows if r["method"] == "real"
    }
    out: dict[str, dict[str, list[float]]] = {}
    last = max((r.get("round", 0) for r in rows if r["protocol"] == "active"), default=0)
    for r in rows:
        if r["method"] == "real" or (r["protocol"] == "active" and r["round"] != last):
            continue
        base = real.get((r["attribute"], r["seed"]))
        if base is not None:
            gain = r["accuracy_pct"][table] - base
            out.setdefault(r["protocol"], {}).setdefault(r["method"], []).append(gain)
    return {p: {m: round(float(np.mean(v)), 2) for m, v in ms.items()} for p, ms in out.items()}


def run_demo(out: str | Path, cfg: ExperimentConfig) -> dict[str, Any]:
    """Run the demo's experiment into ``out`` (resuming what it holds), write the report and
    ``out/summary.json``; return the summary."""
    out = Path(out)
    started = time.perf_counter()
    rows = run_experiment(cfg, out, log=log)
    log("writing the report ...")
    page = build_report([out], out / "report")
    summary = {
        "report": str(page),
        "gain_over_real_pct": {t: gains(rows, t) for t in cfg.experiment.tables},
        "accuracy_real_pct": {
            t: round(
                float(np.mean([r["accuracy_pct"][t] for r in rows if r["method"] == "real"])), 2
            )
            for t in cfg.experiment.tables
        },
        "rows": len(rows),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json_text(summary, indent=2) + "\n")
    return summary
