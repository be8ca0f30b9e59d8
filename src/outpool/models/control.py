"""ATTIC's control network: a fixed random seed q in, the control parameters of an image PAIR out.

One network per attribute (the authors' code). q (B, Q) ~ N(0, I) with Q = 2 x the generator's
latent size (512 for the original's z = 256); a y-branch Linear(Q, 512) + ReLU, then per side
Linear(512, 256) + ReLU, Linear(256, N), BatchNorm, scaled by the std and shifted by the mean of
the generator's training strengths (so y starts in the range the generator knows), and clamped to
the range of those strengths: the adversary would otherwise push y where the generator never
learned to draw, and its pictures would not show what they were commanded. The latents
are not learned: u^A and u^B are the two halves of q, read as the generator's standard latent
coordinates, so a pair renders as ``decode(y, from_standard(u))`` and gradients reach the control
network through the (frozen) generator. Weights start with He initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from outpool.errors import ConfigError


@dataclass(frozen=True)
class ControlConfig:
    """Widths of the control network's y-branch (the authors' code: 512, then 256 per side)."""

    hidden: int = 512
    side_hidden: int = 256

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.side_hidden < 1:
            raise ConfigError("hidden and side_hidden must be positive")


class ControlPair(NamedTuple):
    """The control parameters of B pairs: strengths y (B, N) in the dataset's units and latents
    u (B, M) in the generator's standard coordinates, for side A and side B."""

    y_a: torch.Tensor
    u_a: torch.Tensor
    y_b: torch.Tensor
    u_b: torch.Tensor


class ControlNet(nn.Module):
    """q (B, 2M) -> ``ControlPair`` for a generator with latent size M and N attributes."""

    y_mean: torch.Tensor
    y_std: torch.Tensor
    y_low: torch.Tensor
    y_high: torch.Tensor

    def __init__(
        self,
        config: ControlConfig,
        *,
        z_dim: int,
        y_mean: torch.Tensor,
        y_std: torch.Tensor,
        y_range: tuple[torch.Tensor, torch.Tensor],
    ) -> None:
        super().__init__()
        n = y_mean.numel()
        low, high = (torch.as_tensor(v).detach().float().reshape(-1) for v in y_range)
        if n < 1 or y_std.numel() != n or low.numel() != n or high.numel() != n:
            raise ConfigError(
                f"y_mean, y_std and the range's ends must be N > 0 values each, got {n}, "
                f"{y_std.numel()}, {low.numel()}, {high.numel()}"
            )
        if not bool((low <= high).all()):
            raise ConfigError("the strengths' range must have low <= high for every attribute")
        self.config = config
        self.z_dim = z_dim
        self.register_buffer("y_mean", y_mean.detach().float().reshape(n))
        self.register_buffer("y_std", y_std.detach().float().reshape(n))
        self.register_buffer("y_low", low)
        self.register_buffer("y_high", high)
        self.trunk = nn.Sequential(nn.Linear(2 * z_dim, config.hidden), nn.ReLU())
        self.sides = nn.ModuleList(
            nn.Sequential(
                nn.Linear(config.hidden, config.side_hidden),
                nn.ReLU(),
                nn.Linear(config.side_hidden, n),
                nn.BatchNorm1d(n),
            )
            for _ in range(2)
        )
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    @property
    def q_dim(self) -> int:
        return 2 * self.z_dim

    def forward(self, q: torch.Tensor) -> ControlPair:
        h = self.trunk(q)
        y_a, y_b = (
            torch.clamp(side(h) * self.y_std + self.y_mean, self.y_low, self.y_high)
            for side in self.sides
        )
        u_a, u_b = q[:, : self.z_dim], q[:, self.z_dim :]
        return ControlPair(y_a, u_a, y_b, u_b)


def control_seeds(n: int, q_dim: int, seed: int) -> torch.Tensor:
    """The FIXED seeds q (n, q_dim) ~ N(0, I): one per created pair, the same for a seed."""
    return torch.randn(n, q_dim, generator=torch.Generator().manual_seed(seed))
