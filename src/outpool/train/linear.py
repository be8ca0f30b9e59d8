"""Training the linear ranker (``models/linear.py``) for one attribute, RankSVM-style.

The weights minimise, over the training pairs' feature differences ``d = f(a) - f(b)``::

    lambda / 2 * |w|^2 + mean_pairs( c * loss ),   loss = max(0, 1 - y w.d)^2  (y = +-1)
                                                          = (w.d)^2             (equal pairs)

(the squared-hinge RankSVM of Parikh & Grauman's relative attributes, equal pairs as similarity
constraints; ``c`` is the pair's confidence), solved exactly by L-BFGS on precomputed features:
seconds on a CPU. ``lambda`` is chosen from ``lambdas`` by accuracy on the validation pairs (the
strongest regularisation among the best); without validation pairs ``default_lambda`` is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from outpool.data import Dataset
from outpool.errors import ConfigError
from outpool.models.linear import LinearRanker, LinearRankerConfig, image_features
from outpool.models.tensors import to_tensor
from outpool.train.evaluate import accuracy_on
from outpool.train.ranker import checked_pairs


@dataclass(frozen=True)
class LinearTrainConfig:
    """How the linear ranker is fitted."""

    model: LinearRankerConfig = field(default_factory=LinearRankerConfig)
    lambdas: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # tried on val
    default_lambda: float = 1.0  # without validation pairs
    max_iter: int = 300  # L-BFGS iterations per fit
    use_confidence: bool = True

    def __post_init__(self) -> None:
        if not self.lambdas or any(not lam > 0 for lam in (*self.lambdas, self.default_lambda)):
            raise ConfigError("lambdas and default_lambda must be > 0 (and lambdas not empty)")
        if self.max_iter < 1:
            raise ConfigError(f"max_iter must be >= 1, got {self.max_iter}")


@torch.no_grad()
def _features(model: LinearRanker, pixels: np.ndarray, batch: int = 512) -> torch.Tensor:
    parts = [
        image_features(to_tensor(pixels[i : i + batch]), model.config)
        for i in range(0, len(pixels), batch)
    ]
    return torch.cat(parts).double()


def fit_weights(
    d: torch.Tensor, label: torch.Tensor, weight: torch.Tensor, lam: float, *, max_iter: int
) -> torch.Tensor:
    """(F,) weights minimising the objective of the module docstring on differences (P, F)."""
    w = torch.zeros(d.shape[1], dtype=d.dtype, requires_grad=True)
    ordered = label != 0
    y = label.to(d.dtype)
    c = weight.to(d.dtype) / weight.sum().clamp_min(1e-12)
    opt = torch.optim.LBFGS(
        [w], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        margin = d @ w
        loss = torch.where(ordered, torch.relu(1 - y * margin) ** 2, margin**2)
        total = (c * loss).sum() + 0.5 * lam * (w @ w)
        total.backward()
        return total

    opt.step(closure)
    return w.detach()


def train_linear_ranker(
    dataset: Dataset,
    attribute: str,
    cfg: LinearTrainConfig,
    *,
    train: str = "train",
    val: str | None = "val",
) -> tuple[LinearRanker, dict[str, Any]]:
    """The linear ranker of ``attribute`` fitted on table ``train``, its lambda chosen on
    ``val``; the summary names the lambda and every lambda's validation accuracy."""
    pairs, val_pairs = checked_pairs(dataset, attribute, train, val)
    model = LinearRanker(cfg.model)
    ids, inverse = np.unique(np.concatenate([pairs.a, pairs.b]), return_inverse=True)
    feats = _features(model, np.asarray(dataset.lookup(ids)))
    mean, std = feats.mean(0), feats.std(0).clamp_min(1e-6)
    feats = (feats - mean) / std
    n = len(pairs)
    d = feats[inverse[:n]] - feats[inverse[n:]]
    label = torch.from_numpy(pairs.label.astype(np.int64))
    weight = torch.from_numpy(
        pairs.confidence.astype(np.float64) if cfg.use_confidence else np.ones(n)
    ).clamp_min(1e-3)
    model.mean.copy_(mean.float())
    model.std.copy_(std.float())

    def fitted(lam: float) -> LinearRanker:
        model.weight.data.copy_(fit_weights(d, label, weight, lam, max_iter=cfg.max_iter).float())
        return model

    if val_pairs is None:
        fitted(cfg.default_lambda)
        return model.eval(), {
            "model": "linear", "lambda": cfg.default_lambda, "best_val_acc": None, "val_pairs": 0
        }  # fmt: skip
    by_lambda: dict[str, float] = {}
    best: tuple[float, float] | None = None  # (accuracy, lambda)
    for lam in sorted(cfg.lambdas, reverse=True):  # ties go to the stronger regularisation
        acc = accuracy_on(fitted(lam).eval(), dataset, val_pairs)
        by_lambda[f"{lam:g}"] = round(acc, 2)
        if best is None or acc > best[0]:
            best = (acc, lam)
    assert best is not None
    fitted(best[1])
    summary = {
        "model": "linear",
        "lambda": best[1],
        "best_val_acc": round(best[0], 2),
        "val_acc_by_lambda": by_lambda,
        "val_pairs": int((val_pairs.label != 0).sum()),
    }
    return model.eval(), summary
