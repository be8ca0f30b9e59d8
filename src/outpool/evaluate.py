"""Evaluation of rankers on pair tables: accuracy = share of non-equal pairs ordered correctly.

A tied score counts as wrong (the protocol of the published PubFig code), so a constant ranker
scores 0%, not 50%.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from outpool.data import Dataset, PairTable

_BLOCK = 1024  # rows per block in ordering_accuracy: bounds memory at O(block * N)


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


def ordering_accuracy(scores: npt.ArrayLike, ranks: npt.ArrayLike, groups: npt.ArrayLike) -> float:
    """Percent of pairs i < j (different ``groups``, different ``ranks``) whose ``scores`` order
    matches the ``ranks`` order; a tied score counts as wrong. All inputs are ``(N,)``.

    Higher rank = more of the attribute = should get the higher score.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    r = np.asarray(ranks).reshape(-1).astype(np.float64)  # never subtract in uint8
    g = np.asarray(groups).reshape(-1)
    if not len(s) == len(r) == len(g):
        raise ValueError(f"scores, ranks, groups lengths differ: {len(s)}, {len(r)}, {len(g)}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    correct = total = 0
    for start in range(0, len(s), _BLOCK):
        rows = slice(start, start + _BLOCK)
        dr = np.sign(r[rows, None] - r[None, :])  # (B, N)
        ds = np.sign(s[rows, None] - s[None, :])
        upper = np.arange(start, start + dr.shape[0])[:, None] < np.arange(len(s))[None, :]
        valid = upper & (g[rows, None] != g[None, :]) & (dr != 0)
        total += int(valid.sum())
        correct += int((valid & (ds == dr)).sum())  # ds == 0 never equals dr != 0: ties wrong
    if total == 0:
        raise ValueError("no pairs of different groups with different ranks")
    return 100.0 * correct / total
