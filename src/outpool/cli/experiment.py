"""``outpool experiment``: run a grid of ATTIC cells from a TOML config, and report it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from outpool import config
from outpool.bench import parse_shard
from outpool.experiments.config import ExperimentConfig
from outpool.experiments.runner import run_experiment
from outpool.fileio import json_text
from outpool.report.experiment import build_report


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    cfg = config.load(ExperimentConfig, args.config, args.overrides)
    rows = run_experiment(cfg, args.run, shard=args.shard, log=log)
    print(json_text({"run": str(args.run), "rows": len(rows)}))
    if args.shard == (0, 1):
        log(f"done; the report: outpool experiment report {args.run}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    out = args.out or args.runs[0] / "report"
    page = build_report(args.runs, out)
    print(page)
    return 0


def add_parser(sub: Any) -> None:
    exp = sub.add_parser(
        "experiment",
        help="run a grid of methods, protocols and seeds (ATTIC and its baselines) and report it",
        description="Run the cells of an experiment config (configs/*.toml: attributes, "
        "creators, protocols normal / auto / active, budgets, seeds) into a run folder, "
        "resumably and in shards; build the HTML report from run folders.",
    )
    esub = exp.add_subparsers(dest="experiment_command", required=True, metavar="ACTION")
    run = esub.add_parser(
        "run",
        help="run the grid's cells that the run folder lacks",
        description="Run the grid into RUN: the world, the generator and the screen once, then "
        "every cell not yet in RUN/results.jsonl. The same command resumes; --shard I/N runs "
        "every N-th cell (start N processes, e.g. a Slurm array, on one RUN).",
    )
    run.add_argument(
        "config", type=Path, help="experiment config (TOML), e.g. configs/attic_active.toml"
    )
    run.add_argument("--run", type=Path, required=True, help="the run folder")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. experiment.seeds=[0] (repeatable)",
    )
    run.add_argument(
        "--shard",
        type=parse_shard,
        default=(0, 1),
        metavar="I/N",
        help="run every N-th cell from the I-th",
    )
    run.set_defaults(func=cmd_run)
    rep = esub.add_parser(
        "report",
        help="the HTML report of run folders",
        description="Build one HTML page with its PNGs (tables, active curves, galleries) from "
        "the run folders' results and files; readable offline.",
    )
    rep.add_argument("runs", type=Path, nargs="+", help="run folders of one experiment")
    rep.add_argument("--out", type=Path, help="report folder (default: RUN/report)")
    rep.set_defaults(func=cmd_report)
