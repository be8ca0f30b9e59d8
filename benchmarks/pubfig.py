"""PubFig relative attributes, standard protocol: outpool's ranker vs the original RankSVM.

    python benchmarks/pubfig.py --data PUBFIG_ROOT [--seeds 0 1 2] [--workers 3]
                                [--set key=value]

One ranker per attribute trained on the 241 training images (all pairs of different people with
different ranks), tested on ALL pairs of the 531 test images of different people with different
ranks (a tied score is wrong); the mean is unweighted over the 11 attributes. The RankSVM scores
shipped in data.mat are evaluated on the same pairs in the same run. No validation split exists
in this protocol, so training runs a fixed number of epochs (no early stopping on test).

``--workers N`` trains N rankers at once in separate processes: on a GPU the small models leave
it mostly idle, so a few side by side finish the 33 runs of 3 seeds far sooner.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from outpool import config
from outpool.bench import emit, eta_text, log, machine, parser
from outpool.data import Dataset
from outpool.data.sources.pubfig import load_pubfig, ordering_accuracy, ranksvm_baseline
from outpool.models.tensors import pick_device
from outpool.train.evaluate import score_images
from outpool.train.ranker import RankerTrainConfig, train_ranker

# The from-scratch face recipe (what each setting does: the file's comments; RESULTS.md): with
# PubFig's dense pairs, a batch of 32 sampled pairs trains on ~1,500 (all_pairs_in_batch).
FACES = Path(__file__).resolve().parents[1] / "configs" / "ranker_faces.toml"


_DATASET: Dataset | None = None  # one loaded copy per worker process


def _load(root: Path, cache: Path | None) -> None:
    global _DATASET
    _DATASET = load_pubfig(root, cache=cache)


# Test-time views the benchmark also reports on the same weights, to show what each is worth:
# (mirror_average, test_zooms).
ABLATIONS = {"one_view": (False, ()), "mirror": (True, ())}


def train_and_test(
    cfg: RankerTrainConfig, name: str, folder: Path, progress: bool = False
) -> dict[str, float]:
    """Test accuracy (percent) of a ranker for ``name`` trained in ``folder``: as configured
    ("configured") and with each of ``ABLATIONS``' test-time views."""
    assert _DATASET is not None
    model, _ = train_ranker(_DATASET, name, cfg, folder, val=None, progress=progress)
    test = _DATASET.images["test"]
    assert test.groups is not None  # PubFig tables always name each image's person
    views = {"configured": (cfg.model.mirror_average, cfg.model.test_zooms), **ABLATIONS}
    accuracies = {}
    for view, (mirror, zooms) in views.items():
        model.config = dataclasses.replace(model.config, mirror_average=mirror, test_zooms=zooms)
        scores = score_images(model, np.asarray(test.pixels), device=pick_device(cfg.device))
        accuracy = ordering_accuracy(scores, test.strength(name), test.groups)
        accuracies[view] = round(accuracy, 2)
    return accuracies


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--data", type=Path, required=True, help="PubFig root (data.mat, images/)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--attributes", nargs="+", help="default: all 11")
    p.add_argument("--workers", type=int, default=1, help="rankers trained at once")
    p.add_argument("--cache", type=Path, help="decoded-image cache folder")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], help="training config key=value"
    )
    args = p.parse_args()
    started = time.perf_counter()
    cfg = config.load(RankerTrainConfig, FACES, args.overrides)
    log(f"loading PubFig from {args.data} ...")
    _load(args.data, args.cache)  # decodes into the cache once, before any worker starts
    assert _DATASET is not None
    names = args.attributes or list(_DATASET.attribute_names)
    baseline = ranksvm_baseline(args.data)

    # accuracy[view][attribute]: one figure per seed
    accuracy: dict[str, dict[str, list[float]]] = {}
    jobs = [(seed, name) for seed in args.seeds for name in names]
    with tempfile.TemporaryDirectory() as tmp:
        work = [(dataclasses.replace(cfg, seed=s), n, Path(tmp) / f"{s}-{n}") for s, n in jobs]
        done = enumerate(zip(jobs, run_all(work, args), strict=True), 1)
        for i, ((seed, name), accs) in done:
            for view, acc in accs.items():
                accuracy.setdefault(view, {n: [] for n in names})[name].append(acc)
            others = ", ".join(f"{v} {a:.2f}%" for v, a in accs.items() if v != "configured")
            log(
                f"{eta_text(i, len(jobs), started, time.perf_counter())} "
                f"seed {seed}: {name} {accs['configured']:.2f}% ({others}; "
                f"RankSVM {baseline[name]:.2f}%)"
            )

    per_seed = accuracy["configured"]
    ours = {n: round(float(np.mean(v)), 2) for n, v in per_seed.items()}
    seed_means = [float(np.mean([per_seed[n][i] for n in names])) for i in range(len(args.seeds))]
    ablations = {
        view: {
            "mean_acc_pct": round(float(np.mean([np.mean(v) for v in accuracy[view].values()])), 2),
            "acc_pct_per_seed": accuracy[view],
        }
        for view in ABLATIONS
    }
    result = {
        "benchmark": "pubfig",
        "machine": machine(),
        "device": str(pick_device(cfg.device)),
        "protocol": "train 241 images; test all 531-image pairs of different people and ranks",
        "outpool_acc_pct": ours,
        "outpool_mean_acc_pct": round(float(np.mean(list(ours.values()))), 2),
        "outpool_mean_acc_pct_per_seed": [round(m, 2) for m in seed_means],
        "outpool_acc_pct_per_seed": per_seed,
        "test_view_ablations": ablations,  # the same weights scored with other test views
        "ranksvm_acc_pct": {n: round(baseline[n], 2) for n in names},
        "ranksvm_mean_acc_pct": round(float(np.mean([baseline[n] for n in names])), 2),
        "seeds": args.seeds,
        "workers": args.workers,
        "config": config.to_dict(cfg),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    emit(result, args.out)


def run_all(
    work: list[tuple[RankerTrainConfig, str, Path]], args: argparse.Namespace
) -> Iterator[dict[str, float]]:
    """Accuracies of ``work`` in order; with ``--workers`` > 1 from a pool of processes."""
    if args.workers <= 1:  # one at a time: its progress bars, with totals and an ETA
        for job in work:
            yield train_and_test(*job, progress=True)
        return
    spawn = multiprocessing.get_context("spawn")  # CUDA cannot be used in a forked child
    with ProcessPoolExecutor(
        args.workers, mp_context=spawn, initializer=_load, initargs=(args.data, args.cache)
    ) as pool:
        futures = [pool.submit(train_and_test, *job) for job in work]
        for future in futures:
            yield future.result()


if __name__ == "__main__":
    main()
