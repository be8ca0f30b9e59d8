"""Where images and devices meet the networks: uint8 pixels to tensors, a device by name."""

from __future__ import annotations

import numpy as np
import torch

from outpool.errors import UnknownNameError

# ImageNet statistics: the centring pretrained backbones expect (a from-scratch net only needs
# some fixed centring).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_tensor(pixels: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 images (B, H, W, 3) -> float (B, 3, H, W) in [0, 1] on ``device``."""
    # a copy when the source is a read-only memory map: torch wants writable memory
    x = torch.from_numpy(np.array(pixels, copy=not np.asarray(pixels).flags.writeable)).to(device)
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def pick_device(name: str) -> torch.device:
    """``auto`` (a GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UnknownNameError("device", name, ("auto", "cpu", "cuda"))
    return torch.device(name)
