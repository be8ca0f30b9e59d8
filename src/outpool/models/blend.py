"""A blend of a DeepSTN and a linear ranker: ``--model auto``'s choice where mixing the two
orders the validation pairs best.

    score(x) = w * (deepstn(x) - m_d) / s_d + (1 - w) * (linear(x) - m_l) / s_l

Each part's scores are standardised by their mean and standard deviation over the training
images, so that ``w`` weighs the two on one scale. Two rankers that err on different pairs
(a CNN's learnt features, a linear model's pixels and gradients) often order better together
than either alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from outpool.errors import ConfigError
from outpool.models.linear import LinearRanker
from outpool.models.ranker import DeepSTN


@dataclass(frozen=True)
class BlendConfig:
    """The weight of the DeepSTN part (the linear part has ``1 - weight``)."""

    weight: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.weight < 1:
            raise ConfigError(f"a blend's weight must be in (0, 1), got {self.weight}")


class BlendRanker(nn.Module):
    """Scores images (B, 3, H, W) in [0, 1] -> (B,) with both parts (module docstring)."""

    centre: torch.Tensor
    spread: torch.Tensor

    def __init__(self, deepstn: DeepSTN, linear: LinearRanker, config: BlendConfig) -> None:
        super().__init__()
        self.config = config
        self.deepstn = deepstn
        self.linear = linear
        self.register_buffer("centre", torch.zeros(2))  # (DeepSTN, linear)
        self.register_buffer("spread", torch.ones(2))

    def standardise_on(self, deepstn_scores: torch.Tensor, linear_scores: torch.Tensor) -> None:
        """Set each part's centre and spread from its scores of the training images."""
        for i, s in enumerate((deepstn_scores, linear_scores)):
            self.centre[i] = s.float().mean()
            self.spread[i] = s.float().std().clamp_min(1e-6)

    def mix(self, deepstn_scores: torch.Tensor, linear_scores: torch.Tensor) -> torch.Tensor:
        w = self.config.weight
        d = (deepstn_scores.float() - self.centre[0]) / self.spread[0]
        lin = (linear_scores.float() - self.centre[1]) / self.spread[1]
        return w * d + (1 - w) * lin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(self.deepstn(x), self.linear(x))

    def score_views(self, x: torch.Tensor) -> torch.Tensor:
        """Each part scored with its own test-time views."""
        return self.mix(self.deepstn.score_views(x), self.linear.score_views(x))
