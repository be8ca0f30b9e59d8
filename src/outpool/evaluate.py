"""Evaluation of rankers on pair tables: accuracy = share of non-equal pairs ordered correctly.

A tied score counts as wrong (the protocol of the published PubFig code), so a constant ranker
scores 0%, not 50%.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from outpool.data import Dataset, PairTable


def to_tensor(pixels: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 images (B, H, W, 3) -> float (B, 3, H, W) in [0, 1] on ``device``."""
    # a copy when the source is a read-only memory map: torch wants writable memory
    x = torch.from_numpy(np.array(pixels, copy=not np.asarray(pixels).flags.writeable)).to(device)
    return x.permute(0, 3, 1, 2).float().div_(255.0)


@torch.no_grad()
def score_images(
    model: nn.Module, pixels: np.ndarray, *, device: torch.device | str = "cpu", batch: int = 256
) -> np.ndarray:
    """Scores (N,) of uint8 images (N, 64, 64, 3), in eval mode."""
    was_training = model.training
    model.eval()
    out = [
        model(to_tensor(pixels[i : i + batch], device)).float().cpu().numpy()
        for i in range(0, len(pixels), batch)
    ]
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def pair_accuracy(score_a: np.ndarray, score_b: np.ndarray, label: np.ndarray) -> float:
    """Percent of non-equal pairs whose score order matches the label (ties are wrong)."""
    decided = label != 0
    if not decided.any():
        return float("nan")
    correct = np.sign(score_a[decided] - score_b[decided]) == label[decided]
    return 100.0 * float(correct.mean())


def score_table(
    model: nn.Module, dataset: Dataset, ids: np.ndarray, *, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Scores of the images ``ids`` (each scored once), keyed by id."""
    unique = np.unique(ids)
    scores = score_images(model, dataset.lookup(unique), device=device)
    return dict(zip(unique.tolist(), scores.tolist(), strict=True))


def accuracy_on(
    model: nn.Module, dataset: Dataset, pairs: PairTable, *, device: torch.device | str = "cpu"
) -> float:
    """Accuracy of ``model`` on ``pairs`` (one attribute's pairs)."""
    if len(pairs) == 0:
        return float("nan")
    scores = score_table(model, dataset, np.concatenate([pairs.a, pairs.b]), device=device)
    sa = np.array([scores[i] for i in pairs.a])
    sb = np.array([scores[i] for i in pairs.b])
    return pair_accuracy(sa, sb, pairs.label)
