"""The teacher: a face ``Judge`` (attribute values + legibility) learnt from real faces only.

What it is for: the simulated crowd's eyes on LFW faces, and the judge of the generator's
controllability check on LFW (the built-in world has its pixel oracle; faces have none).

- values: an ``AttributeNet`` trained on the attribute scores of NON-TEST images (by default the
  ranker ``train`` and ``val`` splits' scores, which load_lfw returns as ``truth``), each
  prediction mapped to [0, 1] through the empirical CDF of those training scores (so 0.5 is a
  median face; monotone in the predicted score);
- legibility: a ``FaceSpace`` (eigenfaces + face-scale detail) fitted on the same real faces.

Why it is kept independent of the pseudo-label regressor: the generator's training strengths
for unscored faces come from a regressor trained on the GENERATOR split's scores. If that same
network (or one trained on the same faces) judged the generator, a generator that merely
reproduced the regressor's mistakes would score as perfectly controllable: the check would be
the labeller agreeing with itself. The teacher is a separate network trained on different
people's images (the ranker splits), and its legibility comes from real faces, not from the
generator. Its quality is measured on the ``test`` split, which it never trains on.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from outpool.config import to_dict
from outpool.data import Dataset
from outpool.data.dataset import Truth
from outpool.errors import DataError
from outpool.fileio import atomic_path, json_text
from outpool.judges.face_space import FaceSpace, FaceSpaceConfig, check_images, screening_rates
from outpool.models.attribute_net import AttributeNet
from outpool.train.attribute_net import (
    AttributeNetTrainConfig,
    ScoredImages,
    net_from_payload,
    net_payload,
    predict_scores,
    quality,
    score_quantiles,
    train_attribute_net,
)
from outpool.train.checkpoints import code_version, read_checkpoint, write_checkpoint


@dataclass(frozen=True)
class TeacherConfig:
    """Which tables the teacher learns from and is tested on, and how."""

    net: AttributeNetTrainConfig = field(default_factory=AttributeNetTrainConfig)
    face_space: FaceSpaceConfig = field(default_factory=FaceSpaceConfig)
    train_tables: tuple[str, ...] = ("train", "val")  # non-test images with true scores
    test_table: str = "test"  # held out: only measured on


def to_unit(scores: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Scores (N, K) -> [0, 1] through each column's empirical CDF, given by its (Q, K) knots:
    non-decreasing, strictly increasing inside the training range, 0 / 1 beyond it."""
    q = len(quantiles)
    levels = np.linspace(0.0, 1.0, q)
    out = np.empty(scores.shape, np.float64)
    for k in range(scores.shape[1]):
        knots = quantiles[:, k]
        tiny = 1e-9 * (1.0 + float(np.ptp(knots)))  # ties (repeated scores) -> increasing knots
        out[:, k] = np.interp(scores[:, k], knots + np.arange(q) * tiny, levels)
    return out


class TeacherJudge:
    """Implements the annotators' ``Judge``: ``assess(images)`` -> (values (N, K) in [0, 1],
    legibility (N,) in [0, 1], >= 0.5 a recognisable face)."""

    def __init__(
        self,
        net: AttributeNet,
        quantiles: np.ndarray,
        face_space: FaceSpace,
        *,
        record: Mapping[str, Any] | None = None,
        batch: int = 256,
    ) -> None:
        quantiles = np.asarray(quantiles, np.float64)
        if quantiles.ndim != 2 or quantiles.shape[1] != len(net.attributes):
            raise DataError(
                f"quantiles must be (Q, {len(net.attributes)}), got {quantiles.shape}",
                field="quantiles",
            )
        self.net = net.eval()
        self.quantiles = quantiles
        self.face_space = face_space
        self.record = dict(record or {})
        self.batch = batch

    @property
    def attributes(self) -> tuple[str, ...]:
        return self.net.attributes

    def values(self, images: np.ndarray) -> np.ndarray:
        """(N, K) float32 in [0, 1]: each predicted score's place among the training scores."""
        images = check_images(images)
        scores = predict_scores(self.net, images, batch=self.batch)
        return to_unit(scores, self.quantiles).astype(np.float32)

    def assess(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values (N, K), legibility (N,)) of uint8 images (N, 64, 64, 3)."""
        images = check_images(images)
        return self.values(images), self.face_space.legibility(images)

    def save(self, path: Path) -> None:
        payload = {
            "kind": "outpool-teacher",
            "net": net_payload(self.net),
            "quantiles": self.quantiles.tolist(),
            "face_space": self.face_space.state(),
            "record": self.record,
        }
        write_checkpoint(payload, path)

    @classmethod
    def load(
        cls, path: Path, *, attributes: tuple[str, ...] | None = None, device: str = "cpu"
    ) -> TeacherJudge:
        """A saved teacher; ``attributes``, when given, must be its names in the same order."""
        payload = read_checkpoint(path, "teacher", device=device)
        try:
            net_state, quantiles = payload["net"], np.asarray(payload["quantiles"], np.float64)
            face_space = FaceSpace.from_state(payload["face_space"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"incomplete teacher ({type(exc).__name__}: {exc})", path=path
            ) from None
        net = net_from_payload(net_state, path, attributes=attributes).to(device)
        return cls(net, quantiles, face_space, record=payload.get("record"))


def scored_images(
    dataset: Dataset, truth: Mapping[str, Truth], tables: tuple[str, ...], *, source: str
) -> ScoredImages:
    """The images of ``tables`` with their true scores (``truth[table]``), groups attached."""
    missing = [t for t in tables if t not in truth or t not in dataset.images]
    if missing:
        raise DataError(
            f"no true scores for table(s) {missing} (have: {sorted(truth)}); the teacher learns "
            "from the scores kept apart from the dataset: open LFW as lfw:ROOT, or a folder "
            "made by 'outpool data import' (it keeps them in truth/)"
        )
    ids = np.concatenate([np.asarray(truth[t][0], np.str_) for t in tables])
    scores = np.concatenate([np.asarray(truth[t][1], np.float64) for t in tables])
    groups = []
    for t in tables:
        table, t_ids = dataset.images[t], np.asarray(truth[t][0], np.str_)
        rows = table.positions(t_ids)
        if (rows < 0).any():
            raise DataError(f"true scores name image '{t_ids[rows < 0][0]}', not in table '{t}'")
        groups.append(table.groups[rows] if table.groups is not None else t_ids)
    return ScoredImages(
        ids=ids,
        pixels=np.asarray(dataset.lookup(ids)),
        scores=scores,
        groups=np.concatenate(groups),
        attributes=dataset.attribute_names,
        source=source,
    )


def fit_teacher(
    dataset: Dataset,
    truth: Mapping[str, Truth],
    work_dir: Path,
    cfg: TeacherConfig | None = None,
    *,
    progress: bool = True,
) -> TeacherJudge:
    """Train the teacher into ``work_dir`` (or load the one there); ``record`` holds its held-out
    quality: R² / Spearman on the test split, and the legibility check's acceptance of real test
    faces and rejection of noise / blank / smear pictures made from them."""
    cfg = cfg or TeacherConfig()
    path = work_dir / "teacher.pt"
    if path.exists():
        teacher = TeacherJudge.load(path, attributes=dataset.attribute_names)
        if teacher.record.get("config") != to_dict(cfg):
            raise DataError(
                "this teacher was trained with another config; use a new folder or delete it",
                path=path,
            )
        return teacher
    if cfg.test_table in cfg.train_tables:
        raise DataError(f"the teacher must not train on its test table '{cfg.test_table}'")
    data = scored_images(
        dataset,
        truth,
        cfg.train_tables,
        source=f"true scores of {dataset.name} tables {list(cfg.train_tables)} (non-test)",
    )
    if progress:
        print(f"teacher: training on {len(data)} scored images ...", file=sys.stderr, flush=True)
    net, net_summary = train_attribute_net(
        data, cfg.net, work_dir / "net", progress=progress, desc="teacher"
    )
    face_space = FaceSpace.fit(data.pixels, data.groups, cfg.face_space, seed=cfg.net.seed)
    record: dict[str, Any] = {
        "trained_on": data.source,
        "images": len(data),
        "people": len(np.unique(data.groups)),
        "attributes": list(data.attributes),
        "net": net_summary,
        "config": to_dict(cfg),
        "code_version": code_version(),
    }
    if cfg.test_table in truth and cfg.test_table in dataset.images:
        test_ids, test_scores = truth[cfg.test_table]
        test_pixels = np.asarray(dataset.lookup(test_ids))
        record["test"] = quality(
            predict_scores(net, test_pixels), np.asarray(test_scores), data.attributes
        )
        record["legibility"] = screening_rates(face_space, test_pixels, seed=cfg.net.seed)
        record["test"]["table"] = cfg.test_table
    teacher = TeacherJudge(net, score_quantiles(data.scores), face_space, record=record)
    teacher.save(path)
    with atomic_path(work_dir / "teacher.json") as tmp:
        tmp.write_text(json_text(record, indent=2) + "\n")
    return teacher
