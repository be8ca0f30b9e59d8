"""Small data: DeepSTN, the linear ranker and ``--model auto`` on PubFig subsets and few-pair LFW.

    python benchmarks/small_data.py --pubfig PUBFIG_ROOT --lfw LFW_ROOT
        [--fractions 0.1 0.25 1.0] [--lfw-pairs 200] [--seeds 0 1 2]
        [--attributes Smiling Young ...] [--recipe faces|defaults] [--set key=value (DeepSTN)]

PubFig, for each fraction f of the 241 training images (drawn per seed): a fifth of the drawn
images (taking people in turn, so several people) becomes the validation set, pairs among the rest
train (different people, different ranks, as the standard protocol); every model is tested on
the standard protocol (all pairs of the 531 test images of different people and ranks). LFW:
``--lfw-pairs`` training pairs per attribute (the LFW loader's train/val/test tables, split by
person), tested on its test pairs. Each setting trains with ``train-ranker --model auto``: the
DeepSTN, the linear ranker and the one auto keeps (``workflows/ranker_runs.auto_choice``) are
all scored, and every seed's record gives each candidate's val and test accuracy (the two and
their blends). ``--keep DIR`` keeps the run folders; the same command again resumes from them.

DeepSTN uses the from-scratch face recipe (``configs/ranker_faces.toml``, as the PubFig benchmark;
``--recipe defaults``: ``train-ranker``'s own defaults, no augmentation) with early stopping on
the validation pairs. Last line: one JSON object with per setting and model
the mean test accuracy over seeds, every seed's, and the targets: ``auto`` never more than 1
point below the better of the two, DeepSTN above linear at 100% of PubFig.

CPU-sized (about an hour on 2 cores): ``--attributes Smiling Young --set epochs_crop=2 --set
epochs_full=10``; the full benchmark (11 PubFig and all LFW attributes, 32 epochs) is for a GPU.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from outpool import config
from outpool.bench import emit, eta_text, log, machine, parser
from outpool.data import Dataset, PairTable
from outpool.data.metrics import pair_accuracy
from outpool.data.sources.lfw import load_lfw
from outpool.data.sources.pubfig import load_pubfig, ordering_accuracy
from outpool.models import Ranker
from outpool.train.evaluate import score_images
from outpool.train.ranker import RankerTrainConfig, load_ranker
from outpool.workflows.ranker_runs import (
    Candidate,
    auto_candidates,
    scores_from_parts,
    train_run,
)
from pubfig import FACES  # the from-scratch face recipe

MODELS = ("deepstn", "linear", "auto")
VAL_SHARE = 0.2


def pubfig_subset(full: Dataset, fraction: float, seed: int) -> Dataset:
    """``full`` with train/val pair tables among ``fraction`` of its training images."""
    train = full.images["train"]
    assert train.groups is not None
    rng = np.random.default_rng(seed)
    drawn = rng.permutation(len(train))[: max(4, round(fraction * len(train)))]
    # people in turn, so that even a few validation images show several people
    turn = np.zeros(len(drawn), dtype=int)
    for person in np.unique(train.groups[drawn]):
        mine = np.flatnonzero(train.groups[drawn] == person)
        turn[mine] = np.arange(len(mine))
    drawn = drawn[np.argsort(turn, kind="stable")]
    n_val = max(2, round(VAL_SHARE * len(drawn)))
    tables = {"val": drawn[:n_val], "train": drawn[n_val:]}
    pairs = {}
    for name, rows in tables.items():
        parts = []
        for attribute in full.attribute_names:
            r, g = train.strength(attribute)[rows], train.groups[rows]
            i, j = np.triu_indices(len(rows), k=1)
            keep = (g[i] != g[j]) & (r[i] != r[j])
            i, j = i[keep], j[keep]
            parts.append(
                PairTable.build(
                    attribute=attribute,
                    a=train.ids[rows[i]],
                    b=train.ids[rows[j]],
                    label=np.where(r[i] > r[j], 1, -1),
                    id_prefix=f"{name}-{attribute}-",
                )
            )
        pairs[name] = PairTable.concat(parts)
    return Dataset(full.name, full.attributes, full.images, pairs, dict(full.meta))


@dataclasses.dataclass(frozen=True)
class TestProtocol:
    """A setting's test: the images an attribute is tested on and the accuracy (percent) of
    their scores."""

    pixels: Callable[[str], np.ndarray]  # attribute -> uint8 images (N, 64, 64, 3)
    accuracy: Callable[[np.ndarray, str], float]  # (scores of those images, attribute) -> %

    def of(self, model: Ranker, attribute: str) -> float:
        """Test accuracy of one ranker."""
        return self.accuracy(score_images(model, self.pixels(attribute)), attribute)

    def candidates(self, candidates: list[Candidate], attribute: str) -> dict[str, list[float]]:
        """Every ``--model auto`` candidate's val and test accuracy, keyed by DeepSTN's share;
        DeepSTN and the linear ranker score the test images once, the blends mix those."""
        pixels = self.pixels(attribute)
        linear, deepstn = (score_images(c.model, pixels) for c in candidates[:2])
        return {
            f"{c.weight:g}": [
                round(c.val_acc, 2),
                round(self.accuracy(scores_from_parts(c.model, deepstn, linear), attribute), 2),
            ]
            for c in candidates
        }


def pubfig_test(full: Dataset) -> TestProtocol:
    """The standard protocol: all pairs of test images of different people and ranks."""
    test = full.images["test"]
    assert test.groups is not None
    return TestProtocol(
        pixels=lambda attribute: np.asarray(test.pixels),
        accuracy=lambda scores, attribute: float(
            ordering_accuracy(scores, test.strength(attribute), test.groups)
        ),
    )


def pairs_test(dataset: Dataset) -> TestProtocol:
    """Accuracy on the dataset's ``test`` pair table."""

    def ids(attribute: str) -> np.ndarray:
        pairs = dataset.pairs["test"].for_attribute(attribute)
        return np.unique(np.concatenate([pairs.a, pairs.b]))

    def accuracy(scores: np.ndarray, attribute: str) -> float:
        pairs, shown = dataset.pairs["test"].for_attribute(attribute), ids(attribute)
        a, b = (scores[np.searchsorted(shown, side)] for side in (pairs.a, pairs.b))
        return pair_accuracy(a, b, pairs.label)

    return TestProtocol(lambda attribute: np.asarray(dataset.lookup(ids(attribute))), accuracy)


def models_of(folder: Path) -> dict[str, Any]:
    """The DeepSTN and the linear ranker of an ``--model auto`` run folder of one attribute."""
    deepstn = folder / "deepstn.pt" if (folder / "deepstn.pt").exists() else folder / "ranker.pt"
    return {
        "deepstn": load_ranker(deepstn)[0],
        "linear": load_ranker(folder / "linear.pt")[0],
    }


def chosen_attributes(dataset: Dataset, asked: list[str] | None) -> list[str]:
    """The dataset's attributes named in ``asked``, case-insensitively (PubFig's "Smiling" is
    LFW's "smiling"); all of them when nothing is asked."""
    if not asked:
        return list(dataset.attribute_names)
    wanted = {a.lower() for a in asked}
    return [a for a in dataset.attribute_names if a.lower() in wanted]


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--pubfig", type=Path, help="PubFig root (data.mat, images/)")
    p.add_argument("--lfw", type=Path, help="LFW root (lfw_attributes.txt, lfw-100/)")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25, 1.0])
    p.add_argument("--lfw-pairs", type=int, default=200, help="LFW training pairs per attribute")
    p.add_argument("--lfw-crop", type=float, default=0.6, help="central fraction of LFW frames")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--attributes", nargs="+", help="case-insensitive; default: every attribute of each dataset"
    )
    p.add_argument(
        "--recipe",
        choices=("faces", "defaults"),
        default="faces",
        help="DeepSTN's settings: the PubFig face recipe, or train-ranker's defaults",
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], help="DeepSTN key=value")
    p.add_argument(
        "--keep", type=Path, help="keep the run folders here (a rerun resumes from them)"
    )
    args = p.parse_args()
    if not args.pubfig and not args.lfw:
        p.error("name --pubfig ROOT, --lfw ROOT or both")
    if any(not 0 < f <= 1 for f in args.fractions):
        p.error("--fractions must be in (0, 1]")
    recipe = FACES if args.recipe == "faces" else None
    base = config.load(RankerTrainConfig, recipe, args.overrides)
    started = time.perf_counter()

    settings: list[tuple[str, Callable[[int], tuple[Dataset, TestProtocol]]]] = []
    if args.pubfig:
        log(f"loading PubFig from {args.pubfig} ...")
        full = load_pubfig(args.pubfig)
        for f in args.fractions:
            settings.append(
                (
                    f"pubfig_{round(100 * f)}pct",
                    lambda seed, f=f: (pubfig_subset(full, f, seed), pubfig_test(full)),
                )
            )
    if args.lfw:
        log(f"loading LFW from {args.lfw} ...")
        counts = {"train": args.lfw_pairs, "val": max(50, args.lfw_pairs // 2), "test": 500}
        lfw = {
            s: load_lfw(args.lfw, pairs_per_attribute=counts, seed=s, crop=args.lfw_crop)[0]
            for s in args.seeds
        }
        settings.append((f"lfw_{args.lfw_pairs}pairs", lambda s: (lfw[s], pairs_test(lfw[s]))))

    results: dict[str, Any] = {}
    jobs = len(settings) * len(args.seeds)
    done = 0
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or Path(scratch)
        for name, make in settings:
            acc: dict[str, dict[str, list[float]]] = {m: {} for m in MODELS}
            chosen: list[str] = []
            val_records: list[dict[str, Any]] = []
            for seed in args.seeds:
                dataset, test = make(seed)
                names = chosen_attributes(dataset, args.attributes)
                cfg = dataclasses.replace(base, seed=seed)
                run = tmp / f"{name}-{seed}"
                for attribute in names:
                    log(f"{name} seed {seed}: training {attribute} ...")
                    summary = train_run(dataset, attribute, cfg, run, model="auto", progress=True)[
                        attribute
                    ]
                    chosen.append(summary["model"])
                    models = models_of(run / attribute)
                    candidates = test.candidates(
                        auto_candidates(
                            models["deepstn"], models["linear"], dataset, attribute, "train", "val"
                        ),
                        attribute,
                    )
                    kept = {"deepstn": "1", "linear": "0"}.get(summary["model"])
                    for model_name, share in (
                        ("deepstn", "1"),
                        ("linear", "0"),
                        ("auto", kept or f"{summary['blend_weight']:g}"),
                    ):
                        acc[model_name].setdefault(attribute, []).append(candidates[share][1])
                    val_records.append(
                        {"seed": seed, "attribute": attribute,
                         "val_pairs": summary["val_pairs"],
                         "auto_chose": summary["model"],
                         "blend_weight": summary.get("blend_weight"),
                         "candidates": candidates}
                    )  # fmt: skip
                done += 1
                log(
                    f"{eta_text(done, jobs, started, time.perf_counter())} {name} seed {seed}: "
                    + ", ".join(
                        f"{m} {np.mean([v[-1] for v in acc[m].values()]):.2f}%" for m in MODELS
                    )
                )
            per_seed = {
                m: [
                    round(float(np.mean([v[i] for v in acc[m].values()])), 2)
                    for i in range(len(args.seeds))
                ]
                for m in MODELS
            }
            means = {m: round(float(np.mean(s)), 2) for m, s in per_seed.items()}
            results[name] = {
                "mean_acc_pct": means,
                "mean_acc_pct_per_seed": per_seed,
                "acc_pct_per_attribute": {
                    m: {a: round(float(np.mean(v)), 2) for a, v in acc[m].items()} for m in MODELS
                },
                "auto_chose": {m: chosen.count(m) for m in ("deepstn", "linear", "blend")},
                "validation": val_records,
                "auto_minus_best_pts": round(
                    means["auto"] - max(means["deepstn"], means["linear"]), 2
                ),
            }

    full_pubfig = next((r for n, r in results.items() if n == "pubfig_100pct"), None)
    targets = {
        "auto_within_1pt_of_best_everywhere": all(
            r["auto_minus_best_pts"] >= -1.0 for r in results.values()
        ),
        "deepstn_beats_linear_at_100pct": None
        if full_pubfig is None
        else full_pubfig["mean_acc_pct"]["deepstn"] > full_pubfig["mean_acc_pct"]["linear"],
    }
    emit(
        {
            "benchmark": "small_data",
            "machine": machine(),
            "settings": results,
            "targets": targets,
            "seeds": args.seeds,
            "attributes": args.attributes or "all",
            "recipe": args.recipe,
            "deepstn_config": config.to_dict(base),
            "wall_s": round(time.perf_counter() - started, 1),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
