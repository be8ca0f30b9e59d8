"""A ResNet-18 backbone whose parameter names are those of the standard ResNet-18 state dict
(``conv1``, ``bn1``, ``layer1.0.conv1``, ... as torchvision writes them), so a user whose
machine holds pretrained weights can start the ranker from them (``load_backbone_weights``).

At 64 px the stem (7x7 stride 2, max-pool) leaves 16x16 maps and ``layer4`` 2x2; global average
pooling gives 512 features. Nothing is downloaded: without a weights file it starts random.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from outpool.errors import DataError
from outpool.models.tensors import IMAGENET_MEAN, IMAGENET_STD


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(out + skip)


class ResNet18(nn.Module):
    """(B, 3, H, W) in [0, 1] -> (B, 512). ``width`` is accepted for the backbone interface and
    ignored: pretrained weights fix the widths."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, *, width: int = 32, dropout: float = 0.2) -> None:
        super().__init__()
        del width
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        channels = [64, 64, 128, 256, 512]
        for i in range(1, 5):
            stride = 1 if i == 1 else 2
            layer = nn.Sequential(
                BasicBlock(channels[i - 1], channels[i], stride),
                BasicBlock(channels[i], channels[i], 1),
            )
            setattr(self, f"layer{i}", layer)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.out_features = 512

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.maxpool(self.relu(self.bn1(self.conv1(self.normalise(x)))))
        for i in range(1, 5):
            h = getattr(self, f"layer{i}")(h)
        return self.drop(self.pool(h).flatten(1))


def load_backbone_weights(backbone: nn.Module, path: Path) -> None:
    """Copy a state dict file's weights into ``backbone``: a plain state dict, or one under
    ``state_dict`` / ``model``, keys optionally prefixed ``module.``; a classifier head
    (``fc.*``) and the backbone's own normalisation buffers are not expected. Every missing,
    unexpected or mis-shaped key is named in a ``DataError``."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError("backbone weights file not found", path=path) from None
    except Exception as exc:  # torch raises many kinds on a corrupt or non-tensor file
        raise DataError(f"not a readable state dict ({type(exc).__name__})", path=path) from None
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise DataError("not a state dict (a mapping of names to tensors)", path=path)
    named = {k.removeprefix("module."): v for k, v in loaded.items()}
    state = {k: v for k, v in named.items() if not k.startswith("fc.")}
    own = {k: v for k, v in backbone.state_dict().items() if k not in ("mean", "std")}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    problems = [
        f"{what}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape", wrong))
        if keys
    ]
    if problems:
        raise DataError(
            f"weights do not fit the {type(backbone).__name__} backbone ({'; '.join(problems)})",
            path=path,
        )
    backbone.load_state_dict(state, strict=False)
