"""Scoring images with a ranker and its accuracy on pair tables (``outpool.data.metrics``: the
share of non-equal pairs ordered correctly, a tie wrong). Scores average the test-time views
the ranker's config asks for."""

from __future__ import annotations

import numpy as np
import torch

from outpool.data import Dataset, PairTable
from outpool.data.metrics import pair_accuracy
from outpool.models import Ranker
from outpool.models.tensors import to_tensor


@torch.no_grad()
def score_images(
    model: Ranker,
    pixels: np.ndarray,
    *,
    device: torch.device | str = "cpu",
    batch: int = 256,
    views: bool = True,
) -> np.ndarray:
    """Scores (N,) of uint8 images (N, 64, 64, 3), in eval mode; with ``views``, averaged over
    the test-time views of the model's config (``DeepSTN.score_views``), else one view."""
    was_training = model.training
    model.eval()
    score = model.score_views if views else model
    out = [
        score(to_tensor(pixels[i : i + batch], device)).float().cpu().numpy()
        for i in range(0, len(pixels), batch)
    ]
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def score_table(
    model: Ranker, dataset: Dataset, ids: np.ndarray, *, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Scores of the images ``ids`` (each scored once), keyed by id."""
    unique = np.unique(ids)
    scores = score_images(model, dataset.lookup(unique), device=device)
    return dict(zip(unique.tolist(), scores.tolist(), strict=True))


def accuracy_on(
    model: Ranker, dataset: Dataset, pairs: PairTable, *, device: torch.device | str = "cpu"
) -> float:
    """Accuracy of ``model`` on ``pairs`` (one attribute's pairs)."""
    if len(pairs) == 0:
        return float("nan")
    return pair_accuracy(*pair_scores(model, dataset, pairs, device=device), pairs.label)


def pair_scores(
    model: Ranker, dataset: Dataset, pairs: PairTable, *, device: torch.device | str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of each pair's a and b images (each image scored once)."""
    scores = score_table(model, dataset, np.concatenate([pairs.a, pairs.b]), device=device)
    return np.array([scores[i] for i in pairs.a]), np.array([scores[i] for i in pairs.b])
