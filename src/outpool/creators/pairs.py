"""What a pair creator returns, and the pieces every generating creator shares.

``CreatedPairs`` holds P pairs of 64x64 images with their inferred labels and, for generated
images, the control parameters (strengths y in the dataset's units, latents u in the generator's
standard coordinates) that drew them; ``tables`` turns them into an image table with provenance
and a pair table a dataset saves, the annotation commands read and a ranker trains on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from outpool.data import ImageTable, PairTable
from outpool.errors import DataError
from outpool.fileio import atomic_path
from outpool.models.generator import ConditionalVAE


@dataclass(frozen=True, eq=False)
class CreatedPairs:
    """P created pairs for one attribute.

    ``images_a``, ``images_b`` (P, 64, 64, 3) uint8; ``label`` (P,) int8 inferred (+1 a more,
    -1 b more, 0 equal); ``y_a``, ``y_b`` (P, N) float32 and ``u_a``, ``u_b`` (P, M) float32 for
    generated images (None for copies of real ones); ``creator`` its registry name;
    ``source_a``, ``source_b`` (P,) str the dataset's image ids where the pairs show real
    pictures unchanged (their tables then name those images instead of copies).
    """

    attribute: str
    creator: str
    images_a: np.ndarray
    images_b: np.ndarray
    label: np.ndarray
    y_a: np.ndarray | None = None
    y_b: np.ndarray | None = None
    u_a: np.ndarray | None = None
    u_b: np.ndarray | None = None
    round: int = 0
    source_a: np.ndarray | None = None
    source_b: np.ndarray | None = None

    def __post_init__(self) -> None:
        p = len(self.label)
        if (self.source_a is None) != (self.source_b is None):
            raise DataError("source_a and source_b go together")
        for name in ("source_a", "source_b"):
            value = getattr(self, name)
            if value is not None and np.shape(value) != (p,):
                raise DataError(f"{name} must hold one image id per pair ({p})")
        for name in ("images_a", "images_b"):
            images = getattr(self, name)
            if images.shape != (p, 64, 64, 3) or images.dtype != np.uint8:
                raise DataError(f"{name} must be ({p}, 64, 64, 3) uint8, got {images.shape}")
        if not np.isin(self.label, (-1, 0, 1)).all():
            raise DataError("labels must be -1, 0 or 1", field="label")
        for name in ("y_a", "y_b", "u_a", "u_b"):
            value = getattr(self, name)
            if value is not None and (value.ndim != 2 or len(value) != p):
                raise DataError(f"{name} must have one row per pair ({p}), got {value.shape}")
            if value is not None and not np.isfinite(value).all():
                raise DataError(f"{name} has a non-finite value", field=name)

    def __len__(self) -> int:
        return len(self.label)

    def subset(self, rows: np.ndarray) -> CreatedPairs:
        """The pairs ``rows`` (indices), in that order."""

        def pick(value: np.ndarray | None) -> np.ndarray | None:
            return None if value is None else value[rows]

        return dataclasses.replace(
            self,
            images_a=self.images_a[rows],
            images_b=self.images_b[rows],
            label=self.label[rows],
            y_a=pick(self.y_a),
            y_b=pick(self.y_b),
            u_a=pick(self.u_a),
            u_b=pick(self.u_b),
            source_a=pick(self.source_a),
            source_b=pick(self.source_b),
        )

    def joined(self, more: CreatedPairs) -> CreatedPairs:
        """These pairs, then ``more`` (of the same attribute and creator)."""
        if (more.attribute, more.creator) != (self.attribute, self.creator):
            raise DataError("only pairs of one attribute and creator can be joined")

        def cat(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
            if (a is None) != (b is None):
                raise DataError("joined pairs must carry the same fields")
            return None if a is None or b is None else np.concatenate([a, b])

        return dataclasses.replace(
            self,
            images_a=np.concatenate([self.images_a, more.images_a]),
            images_b=np.concatenate([self.images_b, more.images_b]),
            label=np.concatenate([self.label, more.label]),
            y_a=cat(self.y_a, more.y_a),
            y_b=cat(self.y_b, more.y_b),
            u_a=cat(self.u_a, more.u_a),
            u_b=cat(self.u_b, more.u_b),
            source_a=cat(self.source_a, more.source_a),
            source_b=cat(self.source_b, more.source_b),
        )

    def provenance(self, i: int, side: str) -> dict[str, Any]:
        record: dict[str, Any] = {"creator": self.creator, "round": self.round, "side": side}
        for key in ("y", "u"):
            value = getattr(self, f"{key}_{side}")
            if value is not None:
                record[key] = [round(float(v), 6) for v in value[i]]
        return record

    def tables(self, prefix: str, *, source: str | None = None) -> tuple[ImageTable, PairTable]:
        """An image table (ids ``PREFIX_NNNNN_a`` / ``_b``, each with its provenance) and the
        pair table of the pairs, labelled as inferred, with confidence 1. Pairs of unchanged
        real pictures (``source_a``) name the dataset's images, and the image table is empty.
        ``source`` (default: "real" for those, else "synthetic") is the pairs' source."""
        n = len(self)
        ids_a = [f"{prefix}_{i:05d}_a" for i in range(n)]
        ids_b = [f"{prefix}_{i:05d}_b" for i in range(n)]
        if self.source_a is not None and self.source_b is not None:
            images = ImageTable(ids=np.asarray([], str), pixels=self.images_a[:0])
            a, b = np.asarray(self.source_a, str), np.asarray(self.source_b, str)
            source = source or "real"
        else:
            images = ImageTable(
                ids=np.asarray(ids_a + ids_b),
                pixels=np.concatenate([self.images_a, self.images_b]),
                provenance=tuple(
                    [self.provenance(i, "a") for i in range(n)]
                    + [self.provenance(i, "b") for i in range(n)]
                ),
            )
            a, b = np.asarray(ids_a), np.asarray(ids_b)
            source = source or "synthetic"
        pairs = PairTable(
            ids=np.asarray([f"{prefix}_{i:05d}" for i in range(n)]),
            attribute=np.full(n, self.attribute),
            a=a,
            b=b,
            label=self.label.astype(np.int8),
            confidence=np.ones(n, np.float32),
            source=np.full(n, source),
            round=np.full(n, self.round, np.int32),
        )
        return images, pairs


def top_up_seed(seed: int, draw: int) -> int:
    """The seed of a creator's ``draw``-th top-up (draw 0 is ``seed`` itself), clear of the
    seeds other cells use for their first draw."""
    return seed + 10_000 * draw


def inferred_labels(diff: torch.Tensor | np.ndarray, equal_band: float) -> np.ndarray:
    """Labels (P,) int8 from strength differences y_a - y_b of the target attribute: +1, -1, or
    0 where |difference| is below ``equal_band`` (the dataset's "equal", in its units)."""
    d = np.asarray(diff.detach().cpu().numpy() if isinstance(diff, torch.Tensor) else diff)
    return np.where(np.abs(d) < equal_band, 0, np.sign(d)).astype(np.int8)


def render(generator: ConditionalVAE, y: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Images (B, 3, 64, 64) in [0, 1] of strengths y (B, N) at standard latents u (B, M), with
    gradients flowing back to y and u (the generator's own weights are the caller's to freeze)."""
    return generator.decode(y, generator.from_standard(u))[0]


def freeze(generator: ConditionalVAE) -> ConditionalVAE:
    """The generator in eval mode with no gradient to its weights: it draws, it never learns."""
    generator.eval()
    generator.requires_grad_(False)
    return generator


_ARRAYS = ("images_a", "images_b", "label", "y_a", "y_b", "u_a", "u_b", "source_a", "source_b")


def save_created(
    path: Path, made: CreatedPairs, extra: Mapping[str, np.ndarray] | None = None
) -> None:
    """The created pairs as a person would see them, with what drew them and, in ``extra``,
    what was decided of them (e.g. the annotators' ``status``); written atomically."""
    arrays: dict[str, Any] = {k: getattr(made, k) for k in _ARRAYS if getattr(made, k) is not None}
    arrays["meta"] = np.asarray([made.attribute, made.creator, str(made.round)])
    arrays.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def load_created(path: Path) -> CreatedPairs:
    """The pairs ``save_created`` wrote (its ``extra`` arrays are left in the file)."""
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in _ARRAYS if k in data.files}
            attribute, creator, round_ = (str(v) for v in data["meta"])
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"not a file of created pairs ({exc})", path=path) from None
    return CreatedPairs(attribute=attribute, creator=creator, round=int(round_), **arrays)
