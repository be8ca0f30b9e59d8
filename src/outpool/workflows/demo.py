"""The main job on the built-in data: render the world, label its pairs with the simulated crowd,
draw the gallery and write a summary. It is what the README's first command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from outpool.annotate import CrowdConfig, SimulatedCrowd
from outpool.annotate.apply import label_pairs
from outpool.data import Dataset, PairTable
from outpool.fileio import atomic_dir, atomic_path, json_text
from outpool.report.gallery import dataset_gallery, save_gallery
from outpool.synth import PixelOracle, SynthConfig, build


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def crowd_report(truth_pairs: PairTable, accepted: PairTable, status: np.ndarray) -> dict[str, Any]:
    """How the crowd did against the true labels: counts and accuracy of accepted labels."""
    true_label = dict(zip(truth_pairs.ids.tolist(), truth_pairs.label.tolist(), strict=True))
    per_attribute: dict[str, float] = {}
    for name in truth_pairs.attributes_present():
        sub = accepted.for_attribute(name)
        truth = np.array([true_label[i] for i in sub.ids])
        decided = truth != 0
        per_attribute[name] = round(100.0 * float((sub.label[decided] == truth[decided]).mean()), 2)
    return {
        "pairs": len(truth_pairs),
        "accepted": int((status == "accepted").sum()),
        "rejected_illegible": int((status == "rejected").sum()),
        "pruned_low_agreement": int((status == "pruned").sum()),
        "label_accuracy_vs_truth_pct": per_attribute,
    }


def run_demo(
    out: str | Path,
    *,
    synth: SynthConfig,
    crowd: CrowdConfig,
    force: bool = False,
) -> dict[str, Any]:
    """Write ``out``/dataset, ``out``/gallery.png and ``out``/summary.json; return the summary."""
    with atomic_dir(out, overwrite=force) as tmp:
        log(f"rendering the built-in world (seed {synth.seed}) ...")
        world = build(synth)
        world.dataset.save(tmp / "dataset", truth=world.truth)
        dataset = Dataset.load(tmp / "dataset")

        train = dataset.pairs["train"]
        log(
            f"labelling {len(train)} training pairs with a simulated crowd of {crowd.n_workers} ..."
        )
        oracle = PixelOracle(progress=True)
        accepted, result = label_pairs(dataset, train, SimulatedCrowd(oracle, crowd))
        Dataset.save_pairs(tmp / "dataset", "train_crowd", accepted)
        dataset.pairs["train_crowd"] = accepted
        result.votes.save(tmp / "dataset" / "votes" / "train_crowd.csv")

        log("checking the pixel oracle on the test images ...")
        test = dataset.images["test"]
        measured = oracle.measure(np.asarray(test.pixels))
        _, true_values, names = Dataset.load_truth(tmp / "dataset", "test")
        spearman = {
            n: round(float(spearmanr(measured[:, k], true_values[:, k])[0]), 4)
            for k, n in enumerate(names)
        }

        log("drawing the gallery ...")
        _, train_truth, _ = Dataset.load_truth(tmp / "dataset", "train")
        values = {n: train_truth[:, k] for k, n in enumerate(names)}
        page = dataset_gallery(dataset, table="train", pairs="train_crowd", values=values)
        save_gallery(page, tmp / "gallery.png")

        summary = {
            "dataset": str(Path(out) / "dataset"),
            "images": {k: len(v) for k, v in dataset.images.items()},
            "pairs": {k: len(v) for k, v in dataset.pairs.items()},
            "crowd": crowd_report(train, accepted, result.status),
            "oracle_spearman_test": spearman,
            "seed": synth.seed,
        }
        with atomic_path(tmp / "summary.json") as p:
            p.write_text(json_text(summary, indent=2) + "\n")
    return summary
