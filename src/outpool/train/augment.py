"""Label-preserving jitter of image batches, in plain torch (one affine resample + colour).

Every transform is off by default: whether it preserves a label depends on the attribute (a flip
changes nothing about a smile; a colour jitter changes "colorful"), so a config turns on what
suits its data. Draws from the global torch RNG, which the training loop re-seeds every epoch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment(
    x: torch.Tensor,
    *,
    flip: bool,
    shift: float,
    zoom: float = 0.0,
    rotate: float = 0.0,
    color: float = 0.0,
) -> torch.Tensor:
    """Jitter a batch (B, 3, H, W) in [0, 1].

    flip: mirror half the images; shift: translate by up to this fraction of the side; zoom:
    magnify by up to this fraction (0.2: show as little as 1/1.2 of the side); rotate: up to
    this many degrees; color: scale brightness, contrast and saturation by up to 1 +- color.
    """
    b = len(x)
    if flip or shift > 0 or zoom > 0 or rotate > 0:
        mirror = torch.where(torch.rand(b) < 0.5, -1.0, 1.0) if flip else torch.ones(b)
        scale = 1.0 / (1.0 + torch.rand(b) * zoom)  # the sampled window's side, as a fraction
        angle = (torch.rand(b) * 2 - 1) * math.radians(rotate)
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = cos * mirror, -sin
        theta[:, 1, 0], theta[:, 1, 1] = sin * mirror, cos
        theta[:, :, 2] = (torch.rand(b, 2) * 2 - 1) * 2 * shift  # affine_grid units: side is 2
        grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if color > 0:
        brightness, contrast, saturation = (
            1 + (torch.rand(3, b, 1, 1, 1) * 2 - 1).to(x.device, x.dtype) * color
        )
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * contrast + mean
        grey = x.mean(dim=1, keepdim=True)
        x = ((x - grey) * saturation + grey) * brightness
        x = x.clamp(0.0, 1.0)
    return x
