"""Active rounds (seed 000 Sec. IV-C, Fig. 5). Starting from all n real pairs, each round a
creator makes a batch facing the current ranker, the annotator labels it, the accepted pairs join
the training set, and the ranker restarts from its pre-trained state and retrains; the creator's
folder of one round is the next round's ``CreationContext.previous`` (ATTIC: the control network
keeps its weights). The ranker is measured after every round. Creators whose labels cost nothing
(``jitter``, ``real_plus``) add their batch unlabelled; ``real`` adds nothing (the flat line the
gains are measured from).

The folder holds everything, and the loop resumes after any interruption, SIGKILL included:

    pretrained/            the ranker on the n real pairs (round 0; may be shared by methods)
    round_001/creator/     the creator's own training (ATTIC: the control network, snapshots)
    round_001/created.npz  the batch as drawn: images, y, u, inferred labels, the screen's report
    round_001/labels.npz   the annotators' answer per pair: label, confidence, status
    round_001/votes.csv    every vote
    round_001/ranker/      the ranker retrained on the real and accepted pairs so far
    round_001/result.json  the round's row; a round with it is done

Each file is written in one rename once its step is finished, and a restarted loop redoes only
the steps whose files are missing. A redone annotation neither loses nor duplicates a label: the
simulated crowd's votes are a function of the pair ids, and people's live in the annotation
service under the batch's fingerprint. While people are still labelling a batch, the loop stops
with ``WaitingForLabels``; the same call later picks the labels up.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from outpool.annotate.apply import request_for
from outpool.annotate.protocol import Annotator
from outpool.creators import CreationContext, creator
from outpool.creators.pairs import load_created, save_created
from outpool.creators.screen import LegibilityScreen
from outpool.data import Dataset, ImageTable, PairTable
from outpool.errors import ConfigError, DataError
from outpool.fileio import atomic_path, exclusive, json_text
from outpool.models.generator import ConditionalVAE
from outpool.models.ranker import DeepSTN
from outpool.rounds.protocols import (
    FACING_METHODS,
    FREE_METHODS,
    LabelBudget,
    check_answered,
    make_batch,
    real_pairs,
    with_pairs,
)
from outpool.train.evaluate import accuracy_on
from outpool.train.ranker import RankerTrainConfig, load_deepstn, train_ranker

RESULT = "result.json"


@dataclasses.dataclass(frozen=True)
class ActiveSchedule:
    """The rounds: ``n`` real pairs to start from, then ``rounds`` batches of ``batch`` pairs."""

    n: int
    batch: int
    rounds: int

    def __post_init__(self) -> None:
        if self.n < 2 or self.batch < 1 or self.rounds < 1:
            raise ConfigError("active rounds need n >= 2, batch >= 1 and rounds >= 1")


def round_dir(work_dir: Path, r: int) -> Path:
    return work_dir / f"round_{r:03d}"


def round_seed(cfg: Any, r: int) -> Any:
    """The creator's config for round ``r``: its seed moved on, so every batch has its own draw
    (ATTIC: its own fixed seeds q)."""
    return dataclasses.replace(cfg, seed=cfg.seed * 1000 + r) if hasattr(cfg, "seed") else cfg


def pretrain(
    dataset: Dataset,
    attribute: str,
    real: PairTable,
    ranker_cfg: RankerTrainConfig,
    folder: Path,
    *,
    progress: bool,
) -> Path:
    """The ranker on the real pairs alone (round 0), trained once into ``folder`` even when
    several processes ask for it at the same time; returns its ranker.pt."""
    done = folder / "ranker.pt"
    with exclusive(folder.parent / f".{folder.name}.lock"):
        if not done.exists():
            train_ranker(
                with_pairs(dataset, real), attribute, ranker_cfg, folder, progress=progress
            )
    return done


def run_active(
    dataset: Dataset,
    *,
    attribute: str,
    method: str,
    schedule: ActiveSchedule,
    seed: int,
    ranker_cfg: RankerTrainConfig,
    work_dir: Path,
    pretrained: Path | None = None,
    creator_cfg: Any = None,
    generator: ConditionalVAE | None = None,
    annotator: Annotator | None = None,
    equal_band: float = 0.0,
    screen: LegibilityScreen | None = None,
    tables: Sequence[str] = ("test",),
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Round 0 (the pre-trained ranker) and every round of ``method``, resuming what the folder
    holds; returns one row per round: labels spent, pairs trained on, the batch's fate and the
    ranker's accuracy (%) per table in ``tables``. ``pretrained`` (default
    ``work_dir/pretrained``) is where round 0's ranker lives; methods with the same real pairs
    and seed may share it."""
    annotated = method != "real" and method not in FREE_METHODS
    entry = creator(method) if method != "real" else None  # an unknown name fails first
    if annotated and annotator is None:
        raise DataError(f"method '{method}' in active rounds needs an annotator")
    ranker_cfg = dataclasses.replace(ranker_cfg, seed=seed)
    real = real_pairs(dataset, attribute, schedule.n, seed)
    start = pretrain(
        dataset,
        attribute,
        real,
        ranker_cfg,
        pretrained or work_dir / "pretrained",
        progress=progress,
    )
    base = {"attribute": attribute, "method": method, "protocol": "active", "seed": seed}
    base |= {"n": schedule.n, "batch": schedule.batch}
    ranker, _ = load_deepstn(start)
    rows = [
        base
        | {
            "round": 0,
            "labels_spent": len(real),
            "pairs_trained": len(real),
            "accuracy_pct": accuracy(ranker, with_pairs(dataset, real), attribute, tables),
        }
    ]
    if entry is None:
        return rows
    budget = LabelBudget(schedule.n + schedule.rounds * schedule.batch)
    budget.spend(len(real), "the real pairs")
    added: list[PairTable] = []  # what each round adds to the training set
    sent: dict[str, PairTable] = {}  # every pair each round asked about: never asked again
    images: dict[str, ImageTable] = {}
    cfg = creator_cfg if creator_cfg is not None else entry.config()
    for r in range(1, schedule.rounds + 1):
        folder = round_dir(work_dir, r)
        started = time.perf_counter()
        # copies are of the real pairs only (never copies of copies)
        known = real if method in FREE_METHODS else PairTable.concat([real, *added])
        current = with_pairs(dataset, known, images)
        current = dataclasses.replace(current, pairs={**current.pairs, **sent})
        made_path = folder / "created.npz"
        screen_report = None
        if made_path.exists():
            made = load_created(made_path)
            with np.load(made_path) as saved:
                if "screen" in saved.files:
                    screen_report = json.loads(str(saved["screen"]))
        else:
            faced = ranker if method in FACING_METHODS else None
            context = CreationContext(
                dataset=current,
                attribute=attribute,
                ranker=faced,
                ranker_cfg=ranker_cfg,
                generator=generator,
                equal_band=equal_band,
                previous=round_dir(work_dir, r - 1) / "creator" if r > 1 else None,
            )
            made, screen_report = make_batch(
                method,
                context,
                schedule.batch,
                folder / "creator",
                round_seed(cfg, r),
                screen,
                progress=progress,
            )
            made = dataclasses.replace(made, round=r)
            kept = {"screen": np.asarray(json_text(screen_report))} if screen_report else {}
            save_created(made_path, made, kept)
        table = f"created_r{r:03d}"
        new_images, created = made.tables(f"{method}_s{seed}_r{r:03d}")
        images[table] = new_images
        sent[f"sent_r{r:03d}"] = created
        status: dict[str, int] | None = None
        if annotated:
            assert annotator is not None
            budget.spend(len(created), f"round {r}'s {len(created)} pairs")
            labelled = with_pairs(dataset, real, images)
            created, status = annotate(labelled, created, annotator, folder, r)
        added.append(created)
        done = folder / RESULT
        if done.exists():
            row = json.loads(done.read_text())
        else:
            trained = with_pairs(dataset, PairTable.concat([real, *added]), images)
            ranker, summary = train_ranker(
                trained, attribute, ranker_cfg, folder / "ranker", start=start, progress=progress
            )
            row = base | {
                "round": r,
                "labels_spent": budget.spent,
                "pairs_trained": len(trained.pairs["train"].for_attribute(attribute)),
                "accuracy_pct": accuracy(ranker, trained, attribute, tables),
                "best_val_acc_pct": summary["best_val_acc"],
                "created_status": status,
                "screen": screen_report,
                "wall_s": round(time.perf_counter() - started, 1),
            }
            with atomic_path(done) as tmp:
                tmp.write_text(json_text(row, indent=2) + "\n")
        if r < schedule.rounds:  # the next round faces this round's ranker
            ranker, _ = load_deepstn(folder / "ranker" / "ranker.pt")
        rows.append(row)
    return rows


def accuracy(
    ranker: DeepSTN, dataset: Dataset, attribute: str, tables: Sequence[str]
) -> dict[str, float]:
    return {
        t: round(accuracy_on(ranker, dataset, dataset.pairs[t].for_attribute(attribute)), 2)
        for t in tables
    }


def annotate(
    dataset: Dataset, created: PairTable, annotator: Annotator, folder: Path, r: int
) -> tuple[PairTable, dict[str, int]]:
    """The accepted pairs of round ``r``'s batch and the count of each verdict; the answer is
    kept in ``folder`` (``labels.npz``, ``votes.csv``) and read from there when it exists."""
    answer_path = folder / "labels.npz"
    if answer_path.exists():
        with np.load(answer_path) as saved:
            label, confidence, status = saved["label"], saved["confidence"], saved["status"]
    else:
        request = request_for(dataset, created)
        result = annotator.label(request)
        check_answered(result, request, annotator, folder)
        label, confidence, status = result.label, result.confidence, result.status
        result.votes.save(folder / "votes.csv")
        with atomic_path(answer_path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, label=label, confidence=confidence, status=status.astype(str))
    keep = np.flatnonzero(status == "accepted")
    accepted = PairTable.build(
        attribute=created.attribute[keep],
        a=created.a[keep],
        b=created.b[keep],
        label=label[keep],
        confidence=confidence[keep],
        source=created.source[keep],
        round=created.round[keep],
        ids=created.ids[keep],
    )
    counts = {s: int((status == s).sum()) for s in ("accepted", "rejected", "pruned")}
    return accepted, counts
