"""The paper's protocols (Tables I-II): every method gets exactly n labels and the same ranker.

- ``normal``: Real, Real+ and Jitter train on all n real pairs (Real+ and Jitter add their
  created pairs, whose labels cost nothing); a creating method (ATTIC, Semantic Jitter, random,
  uncertainty) trains on n/2 real pairs plus the n/2 pairs it sends to the annotator, of which
  only the accepted ones are trained on (a rejected or pruned pair still cost its label).
- ``auto``: every method trains on the n real pairs plus n created pairs with their inferred
  labels, and nothing is annotated.
- ``real_2n`` (either protocol): Real with 2n real pairs, what a created pair is worth beside
  real ones.

``run_cell`` runs one (attribute, method, protocol, n, seed) cell end to end into a folder:
the real pairs a seeded draw of the training table, the ranker that creators face trained on
the method's real pairs, creation (generated pairs through the legibility screen, when given
one), annotation through a ``LabelBudget``, the final ranker, and its accuracy on the test
tables. The same seed gives the same cell.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from outpool.annotate.apply import accepted_pairs, request_for
from outpool.annotate.protocol import Annotator, LabelResult, PairRequest
from outpool.creators import CreatedPairs, CreationContext, CreatorEntry, creator
from outpool.creators.pairs import load_created, save_created, top_up_seed
from outpool.creators.screen import LegibilityScreen, screened
from outpool.data import Dataset, ImageTable, PairTable
from outpool.errors import DataError, OutpoolError, UnknownNameError
from outpool.fileio import atomic_path, json_text
from outpool.models.generator import ConditionalVAE
from outpool.train.evaluate import accuracy_on
from outpool.train.ranker import RankerTrainConfig, train_ranker

PROTOCOLS = ("normal", "auto")
REAL_METHODS = ("real", "real_2n")  # no creator: real pairs only
FREE_METHODS = ("real_plus", "jitter")  # created pairs whose labels cost nothing
FACING_METHODS = ("attic", "uncertainty")  # creators that read the current ranker


class WaitingForLabels(OutpoolError):
    """A round's batch is still being labelled by people; run the same command again later."""

    def __init__(self, batch: str, missing: int, folder: Path) -> None:
        self.batch, self.missing = batch, missing
        super().__init__(
            f"waiting for {missing} labels on batch {batch}; run the same command again to "
            f"continue ({folder})"
        )


def check_answered(
    result: LabelResult, request: PairRequest, annotator: Annotator, folder: Path
) -> None:
    """Raise ``WaitingForLabels`` while people are labelling ``request`` (the batch named as
    the annotation service names it), or a ``DataError`` if other pairs were answered."""
    if result.pending:
        missing = int((result.status == "pending").sum())
        name = getattr(annotator, "batch_name", None)
        raise WaitingForLabels(name(request) if name else folder.name, missing, folder)
    if not np.array_equal(result.pair_ids, request.ids):
        raise DataError("the annotator answered other pairs than it was asked")


class LabelBudget:
    """Counts the labels a cell spends; asking for more than ``limit`` is refused before any
    annotator sees a pair."""

    def __init__(self, limit: int) -> None:
        self.limit, self.spent = limit, 0

    def spend(self, labels: int, what: str) -> None:
        if self.spent + labels > self.limit:
            raise DataError(
                f"{what} needs {labels} labels but only {self.limit - self.spent} of the "
                f"budget of {self.limit} are left"
            )
        self.spent += labels


def real_pairs(dataset: Dataset, attribute: str, count: int, seed: int) -> PairTable:
    """``count`` of the training table's pairs of ``attribute``, a seeded draw."""
    pairs = dataset.pairs["train"].for_attribute(attribute)
    if len(pairs) < count:
        raise DataError(f"the 'train' table has {len(pairs)} pairs of '{attribute}', not {count}")
    order = np.random.default_rng([seed, 17]).permutation(len(pairs))
    return pairs.subset(np.sort(order[:count]))


def with_pairs(
    dataset: Dataset, train: PairTable, images: Mapping[str, ImageTable] | None = None
) -> Dataset:
    """The dataset with ``train`` as its training table and extra image tables."""
    return dataclasses.replace(
        dataset,
        images={**dataset.images, **(images or {})},
        pairs={**dataset.pairs, "train": train},
    )


def make_batch(
    method: str,
    context: CreationContext,
    count: int,
    work_dir: Path,
    cfg: Any = None,
    screen: LegibilityScreen | None = None,
    *,
    progress: bool = False,
) -> tuple[CreatedPairs, dict[str, Any] | None]:
    """``count`` pairs of the creator ``method`` (its own training in ``work_dir``) and what the
    screen did, if it read them (``fill``). Copies of real pictures need no screen."""
    entry = creator(method)
    cfg = cfg if cfg is not None else entry.config()
    screening = screen if entry.generates else None
    asked = screening.cfg.candidates(count) if screening is not None else count
    made = entry.create(context, asked, work_dir, cfg, progress=progress)
    if screening is None:
        return made, None
    return fill(entry, made, count, screening, context, work_dir, cfg, progress=progress)


def fill(
    entry: CreatorEntry,
    made: CreatedPairs,
    count: int,
    screen: LegibilityScreen,
    context: CreationContext,
    work_dir: Path,
    cfg: Any,
    *,
    progress: bool = False,
) -> tuple[CreatedPairs, dict[str, Any]]:
    """The first ``count`` of a generating creator's pairs ``made`` that pass the screen; when
    too many fail, drawn again for the shortfall (at the pass rate seen so far, from new seeds)
    up to the screen's ``top_ups`` times: ATTIC from the control network it trained
    (``entry.more``), the others by creating again in ``work_dir/top_up_I``."""
    batch, report = screened(made, count, screen)
    report["top_ups"] = 0
    for i in range(1, screen.cfg.top_ups + 1):
        short = count - len(batch)
        if short == 0:
            break
        rate = max(report["passed"] / report["candidates"], 0.05)
        asked = screen.cfg.candidates(int(np.ceil(short / rate)))
        if entry.more is not None:
            more = entry.more(context, asked, work_dir, cfg, i)
        else:
            again = dataclasses.replace(cfg, seed=top_up_seed(cfg.seed, i))
            more = entry.create(context, asked, work_dir / f"top_up_{i}", again, progress=progress)
        extra, seen = screened(more, short, screen)
        batch = batch.joined(extra)
        for key in ("candidates", "passed"):
            report[key] += seen[key]
        report.update(kept=len(batch), short=count - len(batch), top_ups=i)
    return batch, report


def run_cell(
    dataset: Dataset,
    *,
    attribute: str,
    method: str,
    protocol: str,
    n: int,
    seed: int,
    ranker_cfg: RankerTrainConfig,
    work_dir: Path,
    creator_cfg: Any = None,
    generator: ConditionalVAE | None = None,
    annotator: Annotator | None = None,
    equal_band: float = 0.0,
    screen: LegibilityScreen | None = None,
    tables: Sequence[str] = ("test",),
    progress: bool = False,
) -> dict[str, Any]:
    """One cell; returns (and writes to ``work_dir/result.json``) its labels spent, the
    created pairs' fate and the final ranker's accuracy (%) per table in ``tables``.

    With a ``screen``, a generating creator's failed pairs are replaced from its spare
    candidates before annotation (``ScreenConfig.spare``, then ``top_ups`` new draws).
    ``work_dir/batch.npz`` keeps the batch as drawn, before anyone labels it (a cell waiting
    for people draws nothing again); ``work_dir/created.npz`` the created pairs with the
    annotators' verdicts where there are any."""
    if protocol not in PROTOCOLS:
        raise UnknownNameError("protocol", protocol, PROTOCOLS)
    budget = LabelBudget(n)
    ranker_cfg = dataclasses.replace(ranker_cfg, seed=seed)
    creating = method not in REAL_METHODS + FREE_METHODS
    n_real = n // 2 if creating and protocol == "normal" else n
    if method == "real_2n":
        n_real = 2 * n
        budget = LabelBudget(2 * n)  # what Real would need for twice the labels
    entry = creator(method) if method not in REAL_METHODS else None  # unknown: named first
    annotated = creating and protocol == "normal"
    if annotated and annotator is None:  # before minutes of training
        raise DataError(f"method '{method}' in the normal protocol needs an annotator")
    real = real_pairs(dataset, attribute, n_real, seed)
    budget.spend(len(real), "the real pairs")
    real_set = with_pairs(dataset, real)
    result: dict[str, Any] = {
        "attribute": attribute,
        "method": method,
        "protocol": protocol,
        "n": n,
        "seed": seed,
        "real_pairs": len(real),
    }
    train = real
    if entry is not None:
        count = n - n_real if annotated else n
        batch = work_dir / "batch.npz"  # the batch as drawn, kept before anyone labels it
        if batch.exists():
            made = load_created(batch)
            with np.load(batch) as saved:
                if "screen" in saved.files:
                    result["screen"] = json.loads(str(saved["screen"]))
        else:
            faced = None  # the ranker a creator faces, trained on the real pairs, if it reads one
            if method in FACING_METHODS:
                faced, _ = train_ranker(
                    real_set, attribute, ranker_cfg, work_dir / "ranker_faced", progress=progress
                )
            context = CreationContext(
                dataset=real_set,
                attribute=attribute,
                ranker=faced,
                ranker_cfg=ranker_cfg,
                generator=generator,
                equal_band=equal_band,
            )
            made, report = make_batch(
                method, context, count, work_dir / "creator", creator_cfg, screen, progress=progress
            )
            kept = {}
            if report is not None:
                result["screen"] = report
                kept["screen"] = np.asarray(json_text(report))
            save_created(batch, made, kept)
        verdicts: dict[str, np.ndarray] = {}
        images, created = made.tables(f"{method}_s{seed}")
        table = f"created_{method}"
        if annotated:
            assert annotator is not None
            budget.spend(len(created), f"{len(created)} created pairs")
            labelled = with_pairs(dataset, real, {table: images})
            request = request_for(labelled, created)
            answer = annotator.label(request)
            check_answered(answer, request, annotator, work_dir)
            created = accepted_pairs(created, answer)
            result["created_status"] = {
                s: int((answer.status == s).sum()) for s in ("accepted", "rejected", "pruned")
            }
            verdicts["status"] = np.asarray(answer.status, dtype=np.str_)
        save_created(work_dir / "created.npz", made, verdicts)
        result["created_pairs_trained"] = len(created)
        train = PairTable.concat([real, created])
        dataset = with_pairs(dataset, train, {table: images})
    else:
        dataset = with_pairs(dataset, train)
    result["labels_spent"] = budget.spent
    ranker, summary = train_ranker(
        dataset, attribute, ranker_cfg, work_dir / "ranker", progress=progress
    )
    result["best_val_acc_pct"] = summary["best_val_acc"]
    result["accuracy_pct"] = {
        t: round(accuracy_on(ranker, dataset, dataset.pairs[t].for_attribute(attribute)), 2)
        for t in tables
    }
    work_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(work_dir / "result.json") as tmp:
        tmp.write_text(json_text(result, indent=2) + "\n")
    return result
