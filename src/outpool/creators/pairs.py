"""What a pair creator returns, and the pieces every generating creator shares.

``CreatedPairs`` holds P pairs of 64x64 images with their inferred labels and, for generated
images, the control parameters (strengths y in the dataset's units, latents u in the generator's
standard coordinates) that drew them; ``tables`` turns them into an image table with provenance
and a pair table a dataset saves, the annotation commands read and a ranker trains on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from outpool.data import ImageTable, PairTable
from outpool.errors import DataError
from outpool.models.generator import ConditionalVAE


@dataclass(frozen=True, eq=False)
class CreatedPairs:
    """P created pairs for one attribute.

    ``images_a``, ``images_b`` (P, 64, 64, 3) uint8; ``label`` (P,) int8 inferred (+1 a more,
    -1 b more, 0 equal); ``y_a``, ``y_b`` (P, N) float32 and ``u_a``, ``u_b`` (P, M) float32 for
    generated images (None for copies of real ones); ``creator`` its registry name.
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

    def __post_init__(self) -> None:
        p = len(self.label)
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
        )

    def provenance(self, i: int, side: str) -> dict[str, Any]:
        record: dict[str, Any] = {"creator": self.creator, "round": self.round, "side": side}
        for key in ("y", "u"):
            value = getattr(self, f"{key}_{side}")
            if value is not None:
                record[key] = [round(float(v), 6) for v in value[i]]
        return record

    def tables(self, prefix: str, *, source: str = "synthetic") -> tuple[ImageTable, PairTable]:
        """An image table (ids ``PREFIX_NNNNN_a`` / ``_b``, each with its provenance) and the
        pair table of the pairs, labelled as inferred, with confidence 1."""
        n = len(self)
        ids_a = [f"{prefix}_{i:05d}_a" for i in range(n)]
        ids_b = [f"{prefix}_{i:05d}_b" for i in range(n)]
        images = ImageTable(
            ids=np.asarray(ids_a + ids_b),
            pixels=np.concatenate([self.images_a, self.images_b]),
            provenance=tuple(
                [self.provenance(i, "a") for i in range(n)]
                + [self.provenance(i, "b") for i in range(n)]
            ),
        )
        pairs = PairTable(
            ids=np.asarray([f"{prefix}_{i:05d}" for i in range(n)]),
            attribute=np.full(n, self.attribute),
            a=np.asarray(ids_a),
            b=np.asarray(ids_b),
            label=self.label.astype(np.int8),
            confidence=np.ones(n, np.float32),
            source=np.full(n, source),
            round=np.full(n, self.round, np.int32),
        )
        return images, pairs


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
