"""Losses are pure functions of scores and targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def label_to_target(label: torch.Tensor) -> torch.Tensor:
    """Pair labels +1 (a more) / -1 (b more) / 0 (equal) -> RankNet targets 1 / 0 / 0.5."""
    return (label.to(torch.float32) + 1.0) / 2.0


def ranknet_loss(
    s_a: torch.Tensor, s_b: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """RankNet: p = sigmoid(s_a - s_b), cross-entropy against ``target`` in [0, 1].

    For a "more" pair this is -log p (ATTIC eq. 2); "equal" pairs use target 0.5, as DeepSTN
    does, which pulls the two scores together. Optional per-pair ``weight`` (e.g. confidence).
    """
    loss = F.binary_cross_entropy_with_logits((s_a - s_b).float(), target.float(), reduction="none")
    if weight is not None:
        return (loss * weight).sum() / weight.sum().clamp_min(1e-8)
    return loss.mean()


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """-log N(x; mean, exp(logvar)) per image, summed over pixels (constant dropped): (B,).

    x and mean in [0, 1] are compared in [-1, 1] units, where the decoder's log-variance lives.
    """
    d = (x - mean) * 2
    return 0.5 * (logvar + d * d * torch.exp(-logvar)).flatten(1).sum(1)


def calibrated_gaussian_nll(
    x: torch.Tensor, mean: torch.Tensor, min_logvar: float = -7.0
) -> torch.Tensor:
    """``gaussian_nll`` with one variance per image, set to its optimum, the image's mean squared
    error (the calibrated decoder of sigma-VAE, Rybkin et al. 2021): (B,).

    A per-pixel variance lets the decoder call what it cannot predict (the random hue of an
    upper) noise; one variance per image makes every pixel's error count. (On the built-in
    world it brought some hue back only with colour layers and many small steps:
    benchmarks/RESULTS.md.)
    """
    d = ((x - mean) * 2).flatten(1)
    logvar = torch.log((d * d).mean(1)).clamp_min(min_logvar)
    return 0.5 * d.shape[1] * (logvar + (d * d).mean(1) * torch.exp(-logvar))


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per row, summed over latent dims: (B,)."""
    return 0.5 * (mu * mu + torch.exp(logvar) - 1.0 - logvar).sum(1)
