"""A CNN that reads attribute scores off a picture: image (B, 3, 64, 64) in [0, 1] -> (B, K).

Two jobs use it, always as separate networks trained on separate images: the pseudo-label
regressor (gives strengths to generator-training faces that have no score row) and the teacher
(the simulated annotators' eyes on faces). It regresses K real-valued scores (e.g. Kumar et al.'s
LFW attribute scores), standardised with the training scores' mean and std, which travel in the
module as buffers so ``scores`` answers in the file's own units.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from outpool.errors import ConfigError, UnknownNameError
from outpool.models.backbone import BACKBONES


@dataclass(frozen=True)
class AttributeNetConfig:
    """Sizes of the attribute regressor: a registered backbone and a linear head."""

    backbone: str = "small"  # a key of ``BACKBONES``
    width: int = 32
    dropout: float = 0.2
    # the central fraction of the frame it looks at, at native resolution (LFW frames are
    # centred on the detected face, which fills about the middle 40%; 0.625 keeps the hair):
    # more of the net's capacity on the face, and 2.5x fewer operations than the whole frame
    crop: float = 0.625

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise UnknownNameError("backbone", self.backbone, BACKBONES)
        if not 0.25 <= self.crop <= 1.0:
            raise ConfigError(f"crop must be a fraction in [0.25, 1], got {self.crop}")


class AttributeNet(nn.Module):
    """Backbone features -> one linear layer -> K standardised scores."""

    score_mean: torch.Tensor
    score_std: torch.Tensor

    def __init__(
        self,
        config: AttributeNetConfig,
        *,
        attributes: tuple[str, ...],
        score_mean: torch.Tensor,
        score_std: torch.Tensor,
    ) -> None:
        super().__init__()
        if config.backbone not in BACKBONES:
            raise UnknownNameError("backbone", config.backbone, BACKBONES)
        self.config = config
        self.attributes = tuple(attributes)
        k = len(self.attributes)
        self.register_buffer("score_mean", score_mean.detach().float().reshape(k))
        self.register_buffer("score_std", score_std.detach().float().reshape(k).clamp_min(1e-6))
        self.backbone = BACKBONES[config.backbone](width=config.width, dropout=config.dropout)
        self.head = nn.Linear(self.backbone.out_features, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised scores (B, K) of images x (B, 3, 64, 64) in [0, 1]."""
        side = x.shape[-1]
        keep = max(8, round(side * self.config.crop))
        lo = (side - keep) // 2
        return self.head(self.backbone(x[:, :, lo : lo + keep, lo : lo + keep]))

    def standardise(self, scores: torch.Tensor) -> torch.Tensor:
        """Scores (B, K) in file units -> the standardised units ``forward`` predicts."""
        return (scores - self.score_mean) / self.score_std

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Scores (B, K) in the training file's units."""
        return self(x) * self.score_std + self.score_mean
