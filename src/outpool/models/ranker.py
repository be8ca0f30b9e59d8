"""DeepSTN (Singh & Lee): a relative-attribute ranker that learns where to look.

One score per image, ``ranker(x) -> (B,)``; a pair is compared by the difference of the two
scores (Siamese: both images go through the same weights). A localisation network predicts a
spatial transformer (scale + x/y translation, no rotation) that crops the informative region;
the crop and the whole image go through ONE shared CNN, their features are concatenated along
the FEATURE axis and one linear layer gives the score.

Facts from the authors' code that matter: the localisation net is a copy
of the backbone's first conv layers, a 1x1 conv, FC -> 128 -> (scale, tx, ty); the scale row
starts at zero weight with its bias set so the initial scale is ``scale_init`` (0.33-0.4), and
the scale output is multiplied by ``scale_ratio`` (0.05) so it moves slower than the shifts; a
penalty keeps the crop inside the image; training has two stages (crop stream only, then both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from outpool.errors import ConfigError, UnknownNameError
from outpool.models.backbone import BACKBONES, conv_block

STAGES = ("crop", "full")  # stage 1: crop stream alone; stage 2: crop + global streams


@dataclass(frozen=True)
class RankerConfig:
    """Architecture of the DeepSTN ranker."""

    backbone: str = "small"
    width: int = 32
    dropout: float = 0.2
    scale_init: float = 0.35  # side of the initial crop, as a fraction of the image side
    scale_ratio: float = 0.05  # the scale output moves this much slower than the shifts
    loc_hidden: int = 128
    crop_size: int = 64  # the crop is resampled to this many pixels before the shared CNN
    # Test-time views (``DeepSTN.score_views``, used by evaluation and ``outpool score``):
    # also score the mirror image (where a flip preserves the attribute; train with ``flip``)...
    mirror_average: bool = False
    # ...and magnifications about the centre by these factors (e.g. 1.125, the mean magnification
    # of training with ``zoom=0.25``); the score is the mean over all views.
    test_zooms: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if any(not z > 0 for z in self.test_zooms):  # also rejects NaN
            raise ConfigError(f"test_zooms must be > 0, got {list(self.test_zooms)}")


class DeepSTN(nn.Module):
    """Scores images (B, 3, H, W) in [0, 1] -> (B,) relative-attribute strengths."""

    def __init__(self, config: RankerConfig) -> None:
        super().__init__()
        if config.backbone not in BACKBONES:
            raise UnknownNameError("backbone", config.backbone, BACKBONES)
        self.config = config
        self.cnn = BACKBONES[config.backbone](width=config.width, dropout=config.dropout)
        w = config.width
        # The localisation net's own copy of the first conv layers (the crop is decided from
        # the whole image before the shared CNN sees either stream).
        self.loc_features = nn.Sequential(
            conv_block(3, w), conv_block(w, 2 * w), nn.Conv2d(2 * w, w, 1), nn.ReLU(inplace=True)
        )
        self.loc_fc = nn.Sequential(nn.Flatten(), nn.LazyLinear(config.loc_hidden), nn.ReLU())
        self.loc_scale = nn.Linear(config.loc_hidden, 1)
        self.loc_shift = nn.Linear(config.loc_hidden, 2)
        nn.init.zeros_(self.loc_scale.weight)
        nn.init.constant_(self.loc_scale.bias, config.scale_init / config.scale_ratio)
        nn.init.zeros_(self.loc_shift.weight)
        nn.init.zeros_(self.loc_shift.bias)
        d = self.cnn.out_features
        self.head_crop = nn.Linear(d, 1)  # stage 1
        self.head = nn.Linear(2 * d, 1)  # stage 2: [crop features, global features]
        self.stage = "crop"
        # Materialise the lazy layer so parameters exist before training; in eval mode, so the
        # BatchNorm statistics are not touched by the dummy input.
        self.loc_features.eval()
        with torch.no_grad():
            self.loc_fc(self.loc_features(torch.zeros(1, 3, 64, 64)))
        self.loc_features.train()

    def set_stage(self, stage: str) -> None:
        if stage not in STAGES:
            raise UnknownNameError("training stage", stage, STAGES)
        self.stage = stage

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Crop parameters (B, 3): scale s in (0, 1], shift tx, ty in [-1, 1] image units."""
        h = self.loc_fc(self.loc_features(self.cnn.normalise(x)))
        scale = self.loc_scale(h) * self.config.scale_ratio
        shift = torch.tanh(self.loc_shift(h))
        return torch.cat([scale.clamp(0.05, 1.0), shift], dim=1)

    @staticmethod
    def theta(params: torch.Tensor) -> torch.Tensor:
        """Affine matrices (B, 2, 3) [[s, 0, tx], [0, s, ty]] for ``affine_grid``.

        Built with ``torch.stack`` from the network's outputs: rebuilding it through
        ``torch.tensor(list)`` would cut the gradient to the localisation net.
        """
        s, tx, ty = params.unbind(dim=1)
        zero = torch.zeros_like(s)
        return torch.stack([torch.stack([s, zero, tx], 1), torch.stack([zero, s, ty], 1)], 1)

    def crop(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """The region chosen by ``params``, resampled to (B, 3, crop_size, crop_size)."""
        size = [x.shape[0], x.shape[1], self.config.crop_size, self.config.crop_size]
        grid = F.affine_grid(self.theta(params).to(x.dtype), size, align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def score_and_transform(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (B,) and the crop parameters (B, 3) that produced them."""
        params = self.transform(x)
        f_crop = self.cnn(self.crop(x, params))
        if self.stage == "crop":
            return self.head_crop(f_crop).squeeze(1), params
        f_global = self.cnn(x)
        return self.head(torch.cat([f_crop, f_global], dim=1)).squeeze(1), params

    def forward(self, x: torch.Tensor, *, with_transform: bool = False) -> Any:
        """Scores (B,) of one view, in training and in eval mode alike; with ``with_transform``
        also the crop parameters (B, 3). (One entry point, so a DistributedDataParallel wrapper
        sees every training forward.)"""
        scores, params = self.score_and_transform(x)
        return (scores, params) if with_transform else scores

    def score_views(self, x: torch.Tensor) -> torch.Tensor:
        """Scores (B,) averaged over the test-time views the config asks for: the image, its
        ``test_zooms`` magnifications and, with ``mirror_average``, the mirror image of each.
        Without extra views this is ``forward``."""
        views = [x] + [zoom_in(x, z) for z in self.config.test_zooms]
        views += [v.flip(-1) for v in views] if self.config.mirror_average else []
        if len(views) == 1:
            return self(x)
        return torch.stack([self(v) for v in views]).mean(0)


def zoom_in(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Images (B, 3, H, W) magnified about the centre by ``factor`` (> 1 shows less)."""
    theta = torch.tensor([[1 / factor, 0.0, 0.0], [0.0, 1 / factor, 0.0]], dtype=x.dtype)
    theta = theta.to(x.device).expand(len(x), 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def crop_penalty(params: torch.Tensor) -> torch.Tensor:
    """Squared amount by which crops (B, 3) leave the image, averaged over the batch."""
    s, tx, ty = params.unbind(dim=1)
    return (F.relu(tx.abs() + s - 1.0) ** 2 + F.relu(ty.abs() + s - 1.0) ** 2).mean()
