"""Where created pairs fall in attribute space, how true their labels are, how hard they are.

    python benchmarks/attic_pairs_map.py --run RUN [--figure PNG] [--out JSON]

Reads a run folder of ``benchmarks/attic_synth.py`` (or ``outpool experiment run``) on the
built-in world and measures every cell's created pairs with the world's pixel oracle (what the
images show, not what the generator was asked to draw), beside the real training pairs and the
test pairs. Per kind of pair, mean over attributes (and cells):

- ``illegible_pct``: created pairs with an image the oracle cannot read (as the simulated crowd
  judges legibility); every other figure is over the legible pairs;
- ``median_abs_difference`` of the compared attribute, in the world's units;
- ``fine_pct``: pairs that differ by at most the test's fine-grained bound (``test_fine``);
- ``off_catalogue_pct``: images farther from every catalogue (training) image, over the six
  attributes, than the median test image is (so 50% of test images by construction): where the
  real pool holds nothing, which is where created pairs are meant to go;
- ``off_test_pct``: images farther from every test image than the median test image is from its
  nearest other one (50% of test images): where the test set does not look either;
- ``inferred_agrees_pct``: the inferred label (what Auto trains on) agrees with the oracle on
  pairs the oracle sees as unequal (``inferred_equal_pct``: pairs inferred "equal");
- ``real_ranker_pct``: the accuracy on these pairs, in the oracle's order, of the Real cell's
  ranker of the same attribute and seed, the ranker a created pair must teach something new
  (its accuracy on the test pairs: ``real_ranker_test_pct``). Adversarial pairs make it low.

``drawn_strengths_off_test_pct``: ``off_test_pct`` of strengths drawn the way the control network
starts (a Gaussian per attribute), with the full covariance, and from the generator's own
training strengths, before any image is rendered.

The figure, one column per attribute: the catalogue and test images in the plane of the compared
attribute and the first principal direction of the other five, with some created pairs of the
normal protocol's first seed as segments; below, each kind of pair's |difference|.
Prints one JSON object as the last line.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt
import numpy as np

from outpool.bench import emit, log, machine, parser
from outpool.config import from_dict
from outpool.data import Dataset
from outpool.data.metrics import nearest_distance as nearest
from outpool.errors import OutpoolError
from outpool.experiments.results import read_rows
from outpool.rounds.protocols import real_pairs
from outpool.synth import PixelOracle
from outpool.synth.oracle import LEGIBLE
from outpool.synth.world import SynthConfig
from outpool.train.evaluate import score_images
from outpool.train.ranker import load_ranker

COLOURS = {"attic": "tab:red", "random": "tab:orange", "semantic_jitter": "tab:green"}
SHOWN = 25  # created pairs drawn per method and attribute in the map

SPLITS = ("train", "test")  # the catalogue (real training images) and the test images
Values = tuple[np.ndarray, np.ndarray]  # per pair: oracle values (P, 6) of the a and b images


class World:
    """The oracle's view of a run's catalogue (training) and test images, and its settings."""

    def __init__(self, run: Path, oracle: PixelOracle) -> None:
        record = json.loads((run / "config.json").read_text(encoding="utf-8"))["config"]
        self.settings = from_dict(SynthConfig, record["world"])
        self.n = int(record["experiment"]["n"])
        self.dataset = Dataset.load(run / "dataset")
        self.names = list(self.dataset.attribute_names)
        log("measuring the catalogue and test images ...")
        self.values = {s: oracle.assess(self.dataset.images[s].pixels)[0] for s in SPLITS}
        self.catalogue, self.test = self.values["train"], self.values["test"]
        # how far the median test image is from the catalogue, and from the other test images
        self.limits = {
            "catalogue": float(np.median(nearest(self.test, self.catalogue))),
            "test": float(np.median(nearest(self.test, self.test, itself=True))),
        }
        # per image of each split: farther than those from the catalogue, from the test images
        self.far = {
            s: self.off(self.values[s], itself={"catalogue": s == "train", "test": s == "test"})
            for s in SPLITS
        }

    def off(self, values: np.ndarray, itself: dict[str, bool] | None = None) -> np.ndarray:
        """(P, 2): each image farther than the median test image from the catalogue, and from
        the test images (``itself``: the images are that reference set, each skips itself)."""
        itself = itself or {}
        return np.stack(
            [
                nearest(values, reference, itself=itself.get(name, False)) > self.limits[name]
                for name, reference in (("catalogue", self.catalogue), ("test", self.test))
            ],
            axis=1,
        )

    def pairs(self, table: str, attribute: str, seed: int = 0) -> tuple[Values, Values]:
        """Oracle values of a real pair table's images and their ``off`` flags (``train``: the
        cells' real pairs)."""
        split = "train" if table == "train" else "test"
        if table == "train":
            pairs = real_pairs(self.dataset, attribute, self.n, seed)
        else:
            pairs = self.dataset.pairs[table].for_attribute(attribute)
        index = {v: i for i, v in enumerate(self.dataset.images[split].ids)}
        ia, ib = ([index[i] for i in ids] for ids in (pairs.a, pairs.b))
        values, far = self.values[split], self.far[split]
        return (values[ia], values[ib]), (far[ia], far[ib])

    def figures(self, values: Values, far: Values, k: int) -> dict[str, float]:
        diff = np.abs(values[0][:, k] - values[1][:, k])
        off = np.concatenate(far)
        return {
            "median_abs_difference": float(np.median(diff)),
            "fine_pct": 100.0 * float(np.mean(diff <= self.settings.fine_max)),
            "off_catalogue_pct": 100.0 * float(np.mean(off[:, 0])),
            "off_test_pct": 100.0 * float(np.mean(off[:, 1])),
        }


def drawn_strengths(world: World, n: int, seed: int) -> dict[str, float]:
    """``off_test_pct`` of n strengths drawn as ATTIC's control network draws them at the start
    (a Gaussian per attribute with the generator's training strengths' mean and std, clamped to
    their range), from a Gaussian with their full covariance, and from the strengths
    themselves: where a draw lands before any image is rendered."""
    strengths = world.dataset.images["generator"].strengths
    assert strengths is not None
    rng = np.random.default_rng(seed)
    low, high = strengths.min(axis=0), strengths.max(axis=0)
    mean, std = strengths.mean(axis=0), strengths.std(axis=0)
    draws = {
        "gaussian_per_attribute": mean + std * rng.standard_normal((n, len(mean))),
        "gaussian_full_covariance": rng.multivariate_normal(mean, np.cov(strengths.T), n),
        "generator_strengths": strengths[rng.integers(0, len(strengths), n)],
    }
    return {
        name: round(100.0 * float(np.mean(world.off(np.clip(y, low, high))[:, 1])), 1)
        for name, y in draws.items()
    }


def label_figures(diff: np.ndarray, label: np.ndarray, band: float) -> dict[str, float]:
    seen = (np.abs(diff) >= band) & (label != 0)
    return {
        "inferred_equal_pct": 100.0 * float(np.mean(label == 0)),
        "inferred_agrees_pct": 100.0 * float(np.mean(np.sign(diff[seen]) == label[seen])),
    }


def ranker_accuracy(
    ranker: Path, images: tuple[np.ndarray, np.ndarray], diff: np.ndarray, band: float
) -> float:
    """Accuracy of a saved ranker on pairs ordered by ``diff`` (closer than ``band``: left out)."""
    model, _ = load_ranker(ranker)
    sa, sb = (score_images(model, x) for x in images)
    seen = np.abs(diff) >= band
    return 100.0 * float(np.mean(np.sign(sa - sb)[seen] == np.sign(diff[seen])))


def real_ranker(run: Path, attribute: str, seed: int) -> Path | None:
    """The Real cell's ranker (Real runs once, under the first protocol of its grid)."""
    return next(
        iter(sorted((run / "cells" / attribute / "real").glob(f"*/seed_{seed}/ranker/ranker.pt"))),
        None,
    )


def mean_of(figures: list[dict[str, float]]) -> dict[str, float]:
    keys = dict.fromkeys(k for f in figures for k in f)
    return {k: round(float(np.mean([f[k] for f in figures if k in f])), 2) for k in keys}


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--run", type=Path, required=True, help="an attic_synth run folder")
    p.add_argument("--figure", type=Path, help="write the map here (PNG)")
    args = p.parse_args()
    for needed in ("config.json", "results.jsonl", "dataset"):
        if not (args.run / needed).exists():
            p.error(f"{args.run / needed} does not exist: --run names an attic_synth run folder")
    started = time.perf_counter()
    oracle = PixelOracle(progress=False)
    try:
        world = World(args.run, oracle)
        rows = read_rows(args.run / "results.jsonl")
    except (OutpoolError, KeyError, ValueError) as exc:  # a damaged or foreign run folder
        p.error(f"{args.run}: not a readable attic_synth run ({exc})")
    band = world.settings.equal_band
    seeds = sorted({r["seed"] for r in rows})
    kinds: dict[str, list[dict[str, float]]] = defaultdict(list)
    for k, attribute in enumerate(world.names):
        for table in ("test", "test_fine"):
            kinds[table].append(world.figures(*world.pairs(table, attribute), k))
        for seed in seeds:
            kinds["real_pairs"].append(world.figures(*world.pairs("train", attribute, seed), k))
    shown: dict[tuple[str, str], Values] = {}
    for r in rows:
        folder = args.run / r["folder"]
        if not (folder / "created.npz").exists():
            continue
        log(f"measuring {r['folder']} ...")
        k = world.names.index(r["attribute"])
        with np.load(folder / "created.npz") as saved:
            images = saved["images_a"], saved["images_b"]
            label = saved["label"]
        (va, la), (vb, lb) = oracle.assess(images[0]), oracle.assess(images[1])
        legible = (la >= LEGIBLE) & (lb >= LEGIBLE)  # as the simulated crowd reads them
        legible &= np.isfinite(va).all(axis=1) & np.isfinite(vb).all(axis=1)
        values = va[legible], vb[legible]
        images = images[0][legible], images[1][legible]
        diff = values[0][:, k] - values[1][:, k]
        figures = {"illegible_pct": 100.0 * float(np.mean(~legible))}
        far = world.off(values[0]), world.off(values[1])
        figures |= world.figures(values, far, k) | label_figures(diff, label[legible], band)
        ranker = real_ranker(args.run, r["attribute"], r["seed"])
        if ranker is not None:
            figures["real_ranker_pct"] = ranker_accuracy(ranker, images, diff, band)
        kinds[f"{r['method']}/{r['protocol']}"].append(figures)
        if r["protocol"] == "normal" and r["seed"] == seeds[0]:
            shown[(r["method"], r["attribute"])] = values
    real_test = [r["accuracy_pct"]["test"] for r in rows if r["method"] == "real"]
    result = {
        "benchmark": "attic_pairs_map",
        "machine": machine(),
        "run": str(args.run),
        "off_limits": {k: round(v, 4) for k, v in world.limits.items()},
        "kinds": {kind: mean_of(figures) for kind, figures in kinds.items()},
        "drawn_strengths_off_test_pct": drawn_strengths(world, 1000, seed=0),
        "real_ranker_test_pct": round(float(np.mean(real_test)), 2) if real_test else None,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if args.figure:
        draw(args.figure, world, shown)
        result["figure"] = str(args.figure)
    emit(result, args.out)


class Plane:
    """The compared attribute against the first principal direction of the other five."""

    def __init__(self, k: int, others: list[int], direction: np.ndarray) -> None:
        self.k, self.others, self.direction = k, others, direction

    def __call__(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return values[:, self.k], values[:, self.others] @ self.direction


def draw(path: Path, world: World, shown: dict[tuple[str, str], Values]) -> None:
    """The map (top row) and the |difference| distributions (bottom row), per attribute."""
    names = world.names
    fig, axes = plt.subplots(2, len(names), figsize=(3.0 * len(names), 6.0), squeeze=False)
    bins = np.linspace(0.0, 1.0, 26)
    for k, attribute in enumerate(names):
        others = [j for j in range(len(names)) if j != k]
        centred = world.test[:, others] - world.test[:, others].mean(axis=0)
        direction = np.linalg.svd(centred, full_matrices=False)[2][0]
        plane = Plane(k, others, direction)
        top, bottom = axes[0][k], axes[1][k]
        top.scatter(*plane(world.test), s=2, c="lightsteelblue", label="test images")
        top.scatter(*plane(world.catalogue), s=2, c="dimgray", label="catalogue")
        for method, colour in COLOURS.items():
            if (method, attribute) not in shown:
                continue
            va, vb = (v[:SHOWN] for v in shown[(method, attribute)])
            (xa, ya), (xb, yb) = plane(va), plane(vb)
            for i in range(len(xa)):
                top.plot(
                    [xa[i], xb[i]],
                    [ya[i], yb[i]],
                    c=colour,
                    lw=0.8,
                    alpha=0.8,
                    label=method if i == 0 else None,
                )
        top.set_title(attribute)
        top.set_xlabel(f"{attribute} (oracle)")
        lines = {
            "test_fine": world.pairs("test_fine", attribute)[0],
            "real pairs": world.pairs("train", attribute)[0],
            **{m: shown[(m, attribute)] for m in COLOURS if (m, attribute) in shown},
        }
        for name, (va, vb) in lines.items():
            colour = COLOURS.get(name, "black" if name == "real pairs" else "steelblue")
            bottom.hist(
                np.abs(va[:, k] - vb[:, k]),
                bins=bins,
                density=True,
                histtype="step",
                color=colour,
                label=name,
            )
        bottom.set_xlabel(f"|difference| in {attribute}")
    axes[0][0].set_ylabel("other attributes (1st principal direction)")
    axes[1][0].set_ylabel("density")
    axes[0][0].legend(fontsize=6, loc="best", markerscale=3)
    axes[1][0].legend(fontsize=6, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
