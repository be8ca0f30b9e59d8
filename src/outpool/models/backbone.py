"""Backbones: image (B, 3, 64, 64) in [0, 1] -> feature vector (B, D).

The default is a small CNN trained from scratch at 64 px (nothing is downloaded). ``resnet18``
(``models/resnet.py``) takes the names of the standard ResNet-18 state dict, so a user whose
machine holds pretrained weights starts from them (``RankerTrainConfig.backbone_weights``).
Another backbone is one more entry of ``BACKBONES`` (keyed by the name used in configs) with
``normalise``, ``forward`` and ``out_features``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from outpool.models.resnet import ResNet18
from outpool.models.tensors import IMAGENET_MEAN, IMAGENET_STD


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 conv, BatchNorm, ReLU, 2x2 max-pool: halves the resolution."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class SmallCNN(nn.Module):
    """Four conv blocks (64 -> 4 px) and global average pooling: (B, 3, 64, 64) -> (B, 8w)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, *, width: int = 32, dropout: float = 0.2) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.stem = nn.Sequential(conv_block(3, width), conv_block(width, 2 * width))
        self.body = nn.Sequential(
            conv_block(2 * width, 4 * width), conv_block(4 * width, 8 * width)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.out_features = 8 * width

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(self.stem(self.normalise(x)))
        return self.drop(self.pool(h).flatten(1))


BACKBONES: dict[str, Callable[..., SmallCNN | ResNet18]] = {"small": SmallCNN, "resnet18": ResNet18}
