"""Pure losses: functions of scores, images and targets (``ranknet_loss``, the generator's
likelihoods, the KL term). The losses of a model and a batch that the ``Trainer`` minimises
(``ranker_loss``, ``generator_loss``, ``regression_loss``) live beside each model's training."""

from __future__ import annotations

import math

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


# An orthonormal basis of RGB: luma (the grey axis) and two chroma axes orthogonal to it.
_LUMA_CHROMA = torch.tensor(
    [
        [3**-0.5, 3**-0.5, 3**-0.5],
        [2**-0.5, -(2**-0.5), 0.0],
        [6**-0.5, 6**-0.5, -2 * 6**-0.5],
    ]
)


def luma_chroma_errors(x: torch.Tensor, mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean squared error per image (B,) along the grey axis of RGB and along the two colour
    axes orthogonal to it, in [-1, 1] units: the two variances' optima in ``luma_chroma_nll``."""
    basis = _LUMA_CHROMA.to(x.device, x.dtype)
    sq = torch.einsum("cr,brhw->bchw", basis, (x - mean) * 2) ** 2
    return sq[:, 0].flatten(1).mean(1), sq[:, 1:].flatten(1).mean(1)


def luma_chroma_nll(
    x: torch.Tensor, mean: torch.Tensor, min_logvar: float = -7.0, chroma_ratio: float = math.inf
) -> torch.Tensor:
    """Gaussian NLL with two variances per image, each at its optimum: one along the grey axis
    of RGB (luma) and one shared by the two axes orthogonal to it (chroma): (B,).

    The basis is a rotation of RGB, so this is a Gaussian likelihood on the pixels, with a
    per-image covariance that is diagonal in that basis (the calibrated decoder of sigma-VAE,
    Rybkin et al. 2021, with two variances instead of one): colour errors are scored against
    the colour errors of the same image, whatever its saturation, so a wrong hue costs as much
    as a wrong shape.

    ``chroma_ratio`` R bounds the chroma variance below by the luma variance / R (the optimum
    under that constraint: where it binds, one variance for luma and chroma scaled by sqrt(R)).
    At R = 1 luma and chroma share one variance unless the colour errors are the larger; this
    suits photos whose colour errors are small beside their shape errors (faces).
    """
    var_luma, var_chroma = luma_chroma_errors(x, mean)
    n_luma, n_chroma = x[0, 0].numel(), 2 * x[0, 0].numel()
    luma, chroma = var_luma * n_luma, var_chroma * n_chroma
    if math.isfinite(chroma_ratio):
        tied = (luma + chroma_ratio * chroma) / (n_luma + n_chroma)
        binds = var_chroma * chroma_ratio < var_luma
        var_luma = torch.where(binds, tied, var_luma)
        var_chroma = torch.where(binds, tied / chroma_ratio, var_chroma)
    nll = x.new_zeros(len(x))
    for total, n, var in ((luma, n_luma, var_luma), (chroma, n_chroma, var_chroma)):
        logvar = torch.log(var).clamp_min(min_logvar)
        nll = nll + 0.5 * (n * logvar + total * torch.exp(-logvar))
    return nll


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per row, summed over latent dims: (B,)."""
    return 0.5 * (mu * mu + torch.exp(logvar) - 1.0 - logvar).sum(1)
