"""The ranker workflow as a Python API (what the ``train-ranker``/``eval``/``score`` commands
call, and what a notebook uses): train one ranker per attribute into a run folder, evaluate a
run on pair tables, score images with a trained ranker.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from outpool.data import Dataset
from outpool.data.metrics import ordering_counts, pairs_correct, wilson_interval
from outpool.errors import ConfigError, DataError, UnknownNameError
from outpool.fileio import atomic_dir, atomic_path, check_output_dir, json_text
from outpool.models import BlendConfig, BlendRanker, DeepSTN, LinearRanker, Ranker
from outpool.report.ranker_figures import save_run_figures
from outpool.train.distributed import from_env
from outpool.train.evaluate import accuracy_on, pair_scores, score_images
from outpool.train.linear import LinearTrainConfig, train_linear_ranker
from outpool.train.ranker import RankerTrainConfig, load_ranker, save_ranker, train_ranker


def attributes_to_train(dataset: Dataset, attribute: str, train: str = "train") -> list[str]:
    """``attribute`` itself, or for "all" every attribute with pairs in table ``train``."""
    if attribute != "all":
        dataset.attribute(attribute)  # unknown -> UnknownNameError listing the valid names
        return [attribute]
    if train not in dataset.pairs:
        raise UnknownNameError("pair table", train, dataset.pairs)
    present = set(dataset.pairs[train].attributes_present())
    names = [a for a in dataset.attribute_names if a in present]
    if not names:
        raise DataError(f"pair table '{train}' has no pairs to train on")
    return names


MODELS = ("deepstn", "linear", "auto")


def train_run(
    dataset: Dataset,
    attribute: str,
    cfg: RankerTrainConfig,
    run: Path,
    *,
    train: str = "train",
    val: str | None = "val",
    progress: bool = True,
    model: str = "deepstn",
    linear: LinearTrainConfig | None = None,
) -> dict[str, Any]:
    """Train rankers into ``run/<attribute>/``; resumes attributes and stages already begun.

    ``model``: ``deepstn``, ``linear`` (``models/linear.py``) or ``auto`` (both, and the one
    of them or of their blends that ``auto_choice`` keeps on val). The linear ranker is
    fitted in every run (seconds) as the reference DeepSTN is reported beside (``linear.pt``);
    ``ranker.pt`` is the model chosen, and under ``auto`` a DeepSTN not chosen alone is kept as
    ``deepstn.pt``.
    """
    if model not in MODELS:
        raise UnknownNameError("ranker model", model, MODELS)
    if model == "auto" and val is None:
        raise ConfigError("--model auto picks by validation accuracy: it needs a val table")
    linear = linear or LinearTrainConfig()
    results: dict[str, Any] = {}
    main = from_env().main  # under torchrun only rank 0 writes
    for name in attributes_to_train(dataset, attribute, train):
        folder = run / name
        lin, lin_summary = train_linear_ranker(dataset, name, linear, train=train, val=val)
        lin_acc = lin_summary["best_val_acc"]
        if model == "linear":
            results[name] = {"attribute": name, **lin_summary, "linear_val_acc": lin_acc}
            if main:
                folder.mkdir(parents=True, exist_ok=True)
                save_ranker(lin, folder / "ranker.pt", attribute=name, record=results[name])
                (folder / "deepstn.pt").unlink(missing_ok=True)  # left by an earlier auto run
            continue
        deep, summary = train_ranker(
            dataset, name, cfg, folder, train=train, val=val, progress=progress
        )
        deep_acc = summary["best_val_acc"]
        results[name] = {
            "model": "deepstn", **summary, "deepstn_val_acc": deep_acc, "linear_val_acc": lin_acc,
            "val_pairs": lin_summary["val_pairs"],
        }  # fmt: skip
        if main:
            save_ranker(lin, folder / "linear.pt", attribute=name, record=lin_summary)
            pairs = dataset.pairs[val or train].for_attribute(name)
            shown = np.unique(np.concatenate([pairs.a, pairs.b]))[:24]
            save_run_figures(deep, folder, np.asarray(dataset.lookup(shown)), name)
        if model != "auto":
            if main:
                (folder / "deepstn.pt").unlink(missing_ok=True)  # left by an earlier auto run
            continue
        assert val is not None
        candidates = auto_candidates(deep, lin, dataset, name, train, val)
        blends = {f"{c.weight:g}": round(c.val_acc, 2) for c in candidates[2:]}
        results[name]["blend_val_acc"] = blends
        best = auto_choice(candidates)
        if best.kind == "deepstn":
            if main:
                (folder / "deepstn.pt").unlink(missing_ok=True)  # an earlier choice, replaced
            continue
        if best.kind == "linear":
            results[name] = {"attribute": name, **lin_summary}
        else:
            results[name] = {
                "attribute": name, "model": "blend", "blend_weight": best.weight,
                "best_val_acc": round(best.val_acc, 2), "val_pairs": lin_summary["val_pairs"],
            }  # fmt: skip
        results[name] |= {
            "deepstn_val_acc": deep_acc,
            "linear_val_acc": lin_acc,
            "blend_val_acc": blends,
        }
        if main:  # the DeepSTN not chosen alone stays beside the choice
            os.replace(folder / "ranker.pt", folder / "deepstn.pt")
            save_ranker(best.model, folder / "ranker.pt", attribute=name, record=results[name])
    if not main:
        return results
    kept: dict[str, Any] = {}  # attributes trained into this run by an earlier command stay
    if (run / "summary.json").exists():
        try:
            kept = dict(json.loads((run / "summary.json").read_text()))
        except (OSError, ValueError, TypeError):
            kept = {}
    with atomic_path(run / "summary.json") as tmp:
        tmp.write_text(json_text({**kept, **results}, indent=2) + "\n")
    return results


def auto_choice(candidates: Sequence[Candidate]) -> Candidate:
    """The linear ranker, unless DeepSTN or a blend leads it on val by more than the noise of
    the difference (one standard error of the paired per-pair difference); then the best of
    those on val (on a tie, the larger DeepSTN share). The linear ranker has the fewest
    parameters, so a more complex model has to earn its place: on ten val pairs, or a hundred,
    a lead of a pair or two does not."""
    simple = next(c for c in candidates if c.kind == "linear")
    others = [c for c in candidates if c.kind != "linear"]
    if not others:
        return simple
    best = max(others, key=lambda c: (c.val_acc, c.weight))
    diff = best.correct.astype(float) - simple.correct.astype(float)
    noise = 100.0 * float(diff.std(ddof=1)) / np.sqrt(len(diff)) if len(diff) > 1 else np.inf
    return best if best.val_acc - simple.val_acc > noise else simple


BLEND_WEIGHTS = (0.25, 0.5, 0.75)  # DeepSTN's share in the blends --model auto tries
STANDARDISE_IMAGES = 2048  # training images a blend standardises its parts' scores on, at most


@dataclass(frozen=True)
class Candidate:
    """One model ``--model auto`` considers, with its accuracy on the val pairs (%)."""

    kind: str  # linear | deepstn | blend
    model: Ranker
    correct: np.ndarray  # per non-equal val pair, whether the model orders it right
    weight: float = 1.0  # DeepSTN's share (1 for DeepSTN alone, 0 for the linear ranker)

    @property
    def val_acc(self) -> float:
        return 100.0 * float(self.correct.mean())


def auto_candidates(
    deep: DeepSTN, lin: LinearRanker, dataset: Dataset, attribute: str, train: str, val: str
) -> list[Candidate]:
    """``--model auto``'s candidates (``auto_choice``), the linear ranker first, then
    DeepSTN, then their blends (``models/blend.py``, DeepSTN's share ``BLEND_WEIGHTS``), each
    with its per-pair results on the val pairs. Each part scores the images once; the blends
    mix those scores (``scores_from_parts``)."""
    device = next(deep.parameters()).device
    lin = lin.to(device)
    val_pairs = dataset.pairs[val].for_attribute(attribute)
    train_pairs = dataset.pairs[train].for_attribute(attribute)
    ids = np.unique(np.concatenate([train_pairs.a, train_pairs.b]))
    ids = ids[np.linspace(0, len(ids) - 1, min(len(ids), STANDARDISE_IMAGES)).astype(int)]
    pixels = np.asarray(dataset.lookup(ids))
    parts = [torch.from_numpy(score_images(m, pixels, device=device)) for m in (deep, lin)]
    (deep_a, deep_b), (lin_a, lin_b) = (
        pair_scores(m, dataset, val_pairs, device=device) for m in (deep, lin)
    )

    def correct(model: Ranker) -> np.ndarray:
        a, b = scores_from_parts(model, deep_a, lin_a), scores_from_parts(model, deep_b, lin_b)
        return pairs_correct(a, b, val_pairs.label)

    out = [Candidate("linear", lin, correct(lin), 0.0), Candidate("deepstn", deep, correct(deep))]
    for w in BLEND_WEIGHTS:
        blend = BlendRanker(deep, lin, BlendConfig(w)).to(device)
        blend.standardise_on(*parts)
        out.append(Candidate("blend", blend, correct(blend), w))
    return out


def scores_from_parts(model: Ranker, deepstn: np.ndarray, linear: np.ndarray) -> np.ndarray:
    """A candidate's scores of images that its DeepSTN and linear ranker scored (each with its
    test-time views): the part itself, or a blend's mix, as the blend would score the images."""
    if isinstance(model, DeepSTN):
        return deepstn
    if isinstance(model, LinearRanker):
        return linear
    if not isinstance(model, BlendRanker):
        raise TypeError(f"not an --model auto candidate: {type(model).__name__}")
    device = model.centre.device
    mixed = model.mix(
        torch.as_tensor(deepstn, device=device), torch.as_tensor(linear, device=device)
    )
    return mixed.cpu().numpy()


def rankers_in(path: Path) -> dict[str, Path]:
    """Checkpoints of a run folder (``<attribute>/ranker.pt``) or a single checkpoint file."""
    if path.is_file():
        _, payload = load_ranker(path)
        return {str(payload["attribute"]): path}
    found = {p.parent.name: p for p in sorted(path.glob("*/ranker.pt"))}
    if not found:
        raise DataError("no trained ranker found (expected <attribute>/ranker.pt)", path=path)
    return found


def evaluate_run(
    run: Path, dataset: Dataset, tables: Sequence[str] = ("test",), *, device: str = "cpu"
) -> dict[str, dict[str, Any]]:
    """Per table of ``tables``: each ranker of ``run``'s accuracy (%, a tie is wrong, with the
    mean over attributes), the number of pairs it was measured on, and its 95% interval.

    A pair table counts its non-equal pairs (the interval treats them as independent). An IMAGE
    table with strengths (PubFig's "test": each person's rank) counts all its pairs of images
    of different groups with different strengths, the standard PubFig protocol; those pairs
    share their images too much for a binomial interval, so none is given.
    """
    ordering = {n for n, t in dataset.images.items() if t.strengths is not None}
    for t in tables:
        if t not in dataset.pairs and t not in ordering:
            raise UnknownNameError(
                "pair table (or image table with strengths)", t, [*dataset.pairs, *ordering]
            )
    rankers = rankers_in(run)
    foreign = sorted(set(rankers) - set(dataset.attribute_names))
    if foreign:
        message = (
            f"the run's rankers of {', '.join(foreign)} are for attributes dataset "
            f"'{dataset.name}' does not have (it has {', '.join(dataset.attribute_names)}; "
            "names are case-sensitive)"
        )
        if len(foreign) == len(rankers):
            raise DataError(message, path=run)
        warnings.warn(message + ": left out", stacklevel=2)
    out: dict[str, dict[str, Any]] = {
        t: {"accuracy_pct": {}, "pairs": {}, "interval95_pct": {}} for t in tables
    }
    for attribute, path in rankers.items():
        if attribute in foreign:
            continue
        model, _ = load_ranker(path, device=device)
        for t in tables:
            record = out[t]
            if t in dataset.pairs:
                pairs = dataset.pairs[t].for_attribute(attribute)
                n = int((pairs.label != 0).sum())
                if n:
                    acc = round(accuracy_on(model, dataset, pairs, device=device), 2)
                    record["accuracy_pct"][attribute] = acc
                    record["pairs"][attribute] = n
                    record["interval95_pct"][attribute] = list(wilson_interval(acc, n))
            elif attribute in dataset.images[t].attributes:
                images = dataset.images[t]
                groups = images.groups if images.groups is not None else images.ids
                scores = score_images(model, np.asarray(images.pixels), device=device)
                correct, n = ordering_counts(scores, images.strength(attribute), groups)
                record["accuracy_pct"][attribute] = round(100.0 * correct / n, 2)
                record["pairs"][attribute] = n
                record["interval95_pct"][attribute] = None
    for t in tables:
        accuracy = out[t]["accuracy_pct"]
        if accuracy:
            accuracy["mean"] = round(float(np.mean(list(accuracy.values()))), 2)
    return out


def record_evaluation(
    run: Path, dataset: Dataset, source: str, result: dict[str, dict[str, Any]]
) -> Path:
    """Add ``result`` to ``run/eval.json``, keyed ``TABLE of SOURCE`` (``source``: what the
    dataset was read from, ``open.spec_source``): an evaluation of another table or source is
    kept beside it, the same one is replaced."""
    path = run / "eval.json"
    kept: dict[str, Any] = {}
    if path.exists():
        try:
            kept = json.loads(path.read_text())["evaluations"]
        except (OSError, ValueError, KeyError, TypeError):
            kept = {}  # an unreadable or older file: start again
    for table, record in result.items():
        kept[f"{table} of {source}"] = {
            "dataset": dataset.name,
            "source": source,
            "table": table,
            **record,
        }
    with atomic_path(path) as tmp:
        tmp.write_text(json_text({"evaluations": kept}, indent=2) + "\n")
    return path


def score_folder(
    ranker: Path,
    images: Path,
    out: Path,
    *,
    crop: float = 1.0,
    fit: str = "center",
    force: bool = False,
) -> int:
    """Score every image in ``images`` with ``ranker``: ``out/scores.csv`` (highest first) and
    contact sheets of every image in that order, 64 a page (``sheet_name``). A file that cannot
    be decoded is left out with a warning naming it. Returns the number of images scored."""
    import csv

    from outpool.data.sources.folder_csv import scan_images
    from outpool.data.sources.images import load_images_skipping
    from outpool.report.gallery import image_grid, save_gallery

    check_output_dir(out, overwrite=force)
    model, payload = load_ranker(ranker)
    out_dir = Path(out).resolve()  # an output folder inside IMAGES is not scored
    names = [n for n in scan_images(images) if not (images / n).resolve().is_relative_to(out_dir)]
    if not names:
        raise DataError("no .jpg/.jpeg/.png images found", path=images)
    files = [images / n for n in names]
    pixels, skipped_at = load_images_skipping(
        files, source="score", crop=crop, fit=fit, optional=[True] * len(files)
    )
    if skipped_at:
        skipped = [names[i] for i in skipped_at]
        if len(skipped) == len(names):
            raise DataError(f"none of the {len(names)} image files could be decoded", path=images)
        listed = ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        warnings.warn(
            f"{images}: {len(skipped)} image file(s) could not be decoded and were left out: "
            f"{listed}",
            stacklevel=2,
        )
        gone = set(skipped_at)
        names = [n for i, n in enumerate(names) if i not in gone]
    pixels = np.asarray(pixels)
    scores = score_images(model, pixels)
    order = np.argsort(-scores, kind="stable")
    with atomic_dir(out, overwrite=force) as tmp:
        with open(tmp / "scores.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["rank", "image", "score"])
            for rank, i in enumerate(order, start=1):
                w.writerow([rank, names[i], f"{scores[i]:.6g}"])
        pages = -(-len(order) // SHEET_PAGE)
        for page in range(pages):
            shown = order[page * SHEET_PAGE : (page + 1) * SHEET_PAGE]
            first = page * SHEET_PAGE + 1
            title = (
                f"{payload['attribute']}: most to least, page {page + 1} of {pages} "
                f"(ranks {first}-{first + len(shown) - 1} of {len(names)})"
            )
            sheet = image_grid(
                pixels[shown], [f"{names[i]}\n{scores[i]:.2f}" for i in shown], title=title
            )
            save_gallery(sheet, tmp / sheet_name(page))
    return len(names)


SHEET_PAGE = 64  # images per contact sheet page (8 x 8)


def sheet_name(page: int) -> str:
    """``contact_sheet.png`` for the first page, ``contact_sheet_002.png``, ... after it."""
    return "contact_sheet.png" if page == 0 else f"contact_sheet_{page + 1:03d}.png"
