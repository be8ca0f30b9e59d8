"""Replay ``--model auto``'s choice on the run folders ``small_data.py --keep DIR`` kept.

    python benchmarks/auto_replay.py --keep DIR [--pubfig PUBFIG_ROOT] [--lfw LFW_ROOT]
        [--lfw-pairs 200] [--lfw-crop 0.6] [--seeds 3 4 5]

No training: for each ``<setting>-<seed>/<attribute>`` folder of DIR (``pubfig_<p>pct`` needs
``--pubfig``, ``lfw_<n>pairs`` needs ``--lfw``, with the options ``small_data.py`` ran with), the
saved DeepSTN and linear ranker are loaded, every candidate of ``auto_candidates`` is scored on
the same val pairs and test protocol as ``small_data.py``, and the model ``auto_choice`` keeps
today is taken, so a change of the rule is measured on models trained before it. Last line: one
JSON object with, per setting, the mean test accuracy over seeds of the linear ranker, DeepSTN
and ``auto`` (and every seed's), what auto kept, and the target (``auto`` never more than
1 point below the better of the two); each seed-attribute's candidates (val, test accuracy).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from outpool.bench import emit, log, machine, parser
from outpool.data import Dataset
from outpool.data.sources.lfw import load_lfw
from outpool.data.sources.pubfig import load_pubfig
from outpool.workflows.ranker_runs import auto_candidates, auto_choice
from small_data import TestProtocol, models_of, pairs_test, pubfig_subset, pubfig_test

FOLDER = re.compile(r"^(pubfig_(\d+)pct|lfw_(\d+)pairs)-(\d+)$")


def seed_means(runs: list[dict[str, Any]], seeds: list[int], pick: str | None) -> list[float]:
    """Per seed, the mean test accuracy over attributes of candidate ``pick`` (DeepSTN's
    share; None: the one auto kept)."""
    return [
        round(
            float(
                np.mean(
                    [r["candidates"][pick or r["auto_kept"]][1] for r in runs if r["seed"] == s]
                )
            ),
            2,
        )
        for s in seeds
    ]


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--keep", type=Path, required=True, help="a small_data.py --keep folder")
    p.add_argument("--pubfig", type=Path, help="PubFig root (data.mat, images/)")
    p.add_argument("--lfw", type=Path, help="LFW root (lfw_attributes.txt, lfw-100/)")
    p.add_argument("--lfw-pairs", type=int, default=200, help="as small_data.py ran")
    p.add_argument("--lfw-crop", type=float, default=0.6, help="as small_data.py ran")
    p.add_argument("--seeds", type=int, nargs="+", help="default: every seed kept")
    args = p.parse_args()
    if not args.keep.is_dir():
        p.error(f"--keep: no folder {args.keep}")
    folders = sorted(d for d in args.keep.iterdir() if d.is_dir())
    runs = [(m, d) for d in folders if (m := FOLDER.match(d.name))]
    runs = [(m, d) for m, d in runs if args.seeds is None or int(m[4]) in args.seeds]
    if not runs:
        p.error(f"no <setting>-<seed> run folders in {args.keep}")
    started = time.perf_counter()
    full = load_pubfig(args.pubfig) if args.pubfig else None
    results: dict[str, Any] = {}
    for match, run in runs:
        name, seed = match[1], int(match[4])
        if match[2] is not None:
            if full is None:
                p.error(f"{run.name} is a PubFig run: name --pubfig")
            dataset: Dataset = pubfig_subset(full, int(match[2]) / 100, seed)
            test: TestProtocol = pubfig_test(full)
        else:
            if args.lfw is None:
                p.error(f"{run.name} is an LFW run: name --lfw")
            n = int(match[3])
            counts = {"train": n, "val": max(50, n // 2), "test": 500}
            dataset = load_lfw(args.lfw, pairs_per_attribute=counts, seed=seed, crop=args.lfw_crop)[
                0
            ]
            test = pairs_test(dataset)
        record = results.setdefault(name, {"runs": []})
        for folder in sorted(f for f in run.iterdir() if (f / "linear.pt").exists()):
            attribute = folder.name
            log(f"{name} seed {seed}: {attribute} ...")
            models = models_of(folder)
            candidates = auto_candidates(
                models["deepstn"], models["linear"], dataset, attribute, "train", "val"
            )
            kept = auto_choice(candidates)
            record["runs"].append(
                {"seed": seed, "attribute": attribute, "val_pairs": len(kept.correct),
                 "auto_kept": f"{kept.weight:g}",
                 "candidates": test.candidates(candidates, attribute)}
            )  # fmt: skip
    for record in results.values():
        seeds = sorted({r["seed"] for r in record["runs"]})
        per_seed = {
            model: seed_means(record["runs"], seeds, pick)
            for model, pick in (("linear", "0"), ("deepstn", "1"), ("auto", None))
        }
        means = {m: round(float(np.mean(v)), 2) for m, v in per_seed.items()}
        kept_counts: dict[str, int] = {}
        for r in record["runs"]:
            kept_counts[r["auto_kept"]] = kept_counts.get(r["auto_kept"], 0) + 1
        record |= {
            "seeds": seeds,
            "mean_acc_pct": means,
            "mean_acc_pct_per_seed": per_seed,
            "auto_kept_by_deepstn_share": kept_counts,
            "auto_minus_best_pts": round(means["auto"] - max(means["linear"], means["deepstn"]), 2),
        }
    emit(
        {
            "benchmark": "auto_replay",
            "machine": machine(),
            "settings": results,
            "auto_within_1pt_of_best_everywhere": all(
                r["auto_minus_best_pts"] >= -1.0 for r in results.values()
            ),
            "wall_s": round(time.perf_counter() - started, 1),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
