"""The annotator protocol: what is asked (``PairRequest``), what comes back (``LabelResult``).

One protocol serves the simulated crowd, people on a web page and file round trips, so the
active loop never switches on the annotator's type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from outpool.annotate.votes import EQUAL, MORE_A, MORE_B, VoteTable
from outpool.errors import DataError

STATUSES = ("accepted", "rejected", "pruned", "pending")
LABELS = (MORE_A, MORE_B, EQUAL)


@runtime_checkable
class Judge(Protocol):
    """What a simulated annotator perceives (a domain's pixel oracle or a teacher model)."""

    @property
    def attributes(self) -> tuple[str, ...]:
        """Attribute names, in the column order of ``measure``."""
        ...

    def assess(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 64, 64, 3) uint8 -> (values (N, K) in attribute units, roughly [0, 1];
        legibility (N,) in [0, 1], >= 0.5 meaning a recognisable object). One call for both,
        because both come from one look at the pixels."""
        ...


@dataclass(frozen=True, eq=False)
class PairRequest:
    """A batch of P pairs to label, one attribute per pair.

    ids (P,) str unique pair ids; attribute (P,) str attribute names;
    images_a, images_b (P, H, W, 3) uint8 (64 x 64 throughout outpool).
    """

    ids: np.ndarray
    attribute: np.ndarray
    images_a: np.ndarray
    images_b: np.ndarray

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids).astype(str).reshape(-1)
        attribute = np.asarray(self.attribute).astype(str).reshape(-1)
        p = len(ids)
        if len(attribute) != p:
            raise DataError(
                f"expected {p} attribute names, got {len(attribute)}", field="attribute"
            )
        if len(np.unique(ids)) != p:
            raise DataError("pair ids must be unique within a request", field="ids")
        for name in ("images_a", "images_b"):
            img = getattr(self, name)
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
                raise DataError("images must be a uint8 array", field=name)
            if img.ndim != 4 or img.shape[0] != p or img.shape[3] != 3:
                raise DataError(f"expected shape ({p}, H, W, 3), got {img.shape}", field=name)
        if self.images_a.shape != self.images_b.shape:
            raise DataError("images_a and images_b differ in shape", field="images_b")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "attribute", attribute)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, eq=False)
class LabelResult:
    """Aggregated labels for P pairs, row-aligned with the ``pair_ids`` that were asked.

    label (P,) int8 in {+1 a more, -1 b more, 0 equal}, meaningful where status is "accepted";
    confidence (P,) float32 in [0, 1], mean confidence of the majority's votes;
    agreement (P,) float32 in [0, 1], share of votes agreeing with the majority;
    status (P,) str: "accepted", "rejected" (illegible by majority), "pruned" (low
    agreement / confidence, or no votes when the batch closed) or "pending" (the batch is still
    being labelled and the pair has no final answer yet); votes: every individual vote on these
    pairs; pending: True while (human) annotators have not finished the batch.
    """

    pair_ids: np.ndarray
    label: np.ndarray
    confidence: np.ndarray
    agreement: np.ndarray
    status: np.ndarray
    votes: VoteTable
    pending: bool = False

    def __post_init__(self) -> None:
        p = len(self.pair_ids)
        for name in ("label", "confidence", "agreement", "status"):
            if len(getattr(self, name)) != p:
                raise DataError(f"expected length {p}", field=name)
        if not np.isin(self.label, LABELS).all():
            raise DataError(f"labels must be in {LABELS}", field="label")
        if not np.isin(self.status, STATUSES).all():
            raise DataError(f"status must be one of {STATUSES}", field="status")

    def __len__(self) -> int:
        return len(self.pair_ids)

    def accepted_indices(self) -> np.ndarray:
        """(A,) int64 row indices of accepted pairs, into this result and the request it answers.

        A pair table is ``request.ids[i], request.attribute[i], label[i], confidence[i]`` for
        these ``i``; rejected and pruned pairs must not be trained on.
        """
        return np.flatnonzero(self.status == "accepted")


@runtime_checkable
class Annotator(Protocol):
    """Anything that labels pairs: the simulated crowd, a web service, a file round trip."""

    def label(self, request: PairRequest) -> LabelResult: ...
