"""Asking an annotator about a dataset's pairs and keeping what comes back."""

from __future__ import annotations

import numpy as np

from outpool.annotate.protocol import Annotator, LabelResult, PairRequest
from outpool.data import Dataset, PairTable


def request_for(dataset: Dataset, pairs: PairTable) -> PairRequest:
    """The images of ``pairs`` looked up in ``dataset``, as a request to annotators."""
    return PairRequest(
        ids=pairs.ids,
        attribute=pairs.attribute,
        images_a=dataset.lookup(pairs.a),
        images_b=dataset.lookup(pairs.b),
    )


def accepted_pairs(pairs: PairTable, result: LabelResult) -> PairTable:
    """The pairs annotators accepted, with their aggregated labels and confidences.

    Rejected (illegible) and pruned (low agreement or confidence) pairs are left out: they
    must never reach training.
    """
    if not np.array_equal(result.pair_ids, pairs.ids):
        raise ValueError("the label result does not answer these pairs in this order")
    keep = result.accepted_indices()
    return PairTable.build(
        attribute=pairs.attribute[keep],
        a=pairs.a[keep],
        b=pairs.b[keep],
        label=result.label[keep],
        confidence=result.confidence[keep],
        source=pairs.source[keep],
        round=pairs.round[keep],
        ids=pairs.ids[keep],
    )


def label_pairs(
    dataset: Dataset, pairs: PairTable, annotator: Annotator
) -> tuple[PairTable, LabelResult]:
    """Label ``pairs`` with ``annotator``: (accepted pairs, the full result with every vote)."""
    result = annotator.label(request_for(dataset, pairs))
    return accepted_pairs(pairs, result), result
