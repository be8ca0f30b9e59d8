"""The renderer of the built-in world: (attributes, nuisances) -> 64x64 RGB shoe photos.

Fast because it is vectorised over a batch: the shoe is rasterised in its canonical frame from the
per-column profiles of ``shoe.py`` (a few comparisons per pixel), posed with one bilinear warp,
then composited over a background and lit. Nuisances never change an attribute: pose, background,
lighting, the hue and brightness of the materials and sensor noise.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

from outpool.bench import progress_bar
from outpool.synth import shoe

NUISANCE_FACTORS = ("pose", "background", "lighting", "material", "noise")


@dataclass(frozen=True)
class Nuisance:
    """Per-image nuisance factors; every field is a (B,) float32 array."""

    rotation_deg: np.ndarray  # pose: in-plane rotation about the canvas centre
    scale: np.ndarray  # pose: zoom about the canvas centre
    shift_x: np.ndarray  # pose: translation in pixels
    shift_y: np.ndarray
    bg_hue: np.ndarray  # background: a light, low-saturation colour...
    bg_saturation: np.ndarray
    bg_value: np.ndarray
    bg_gradient: np.ndarray  # ...with a linear gradient of this strength
    bg_gradient_angle: np.ndarray
    upper_hue: np.ndarray  # material: hue and brightness of the upper and of the sole
    upper_value: np.ndarray
    sole_value: np.ndarray
    gain: np.ndarray  # lighting: exposure and a directional fall-off
    light: np.ndarray
    light_angle: np.ndarray
    noise_std: np.ndarray  # sensor noise, in [0, 1] intensity units

    def __len__(self) -> int:
        return len(self.scale)

    def subset(self, idx: np.ndarray | slice) -> Nuisance:
        return Nuisance(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def as_array(self) -> np.ndarray:
        """(B, F) in field order, for saving beside the true attribute values."""
        return np.stack([getattr(self, f.name) for f in fields(self)], axis=1)

    @staticmethod
    def names() -> tuple[str, ...]:
        return tuple(f.name for f in fields(Nuisance))

    @staticmethod
    def sample(rng: np.random.Generator, n: int) -> Nuisance:
        """Draw nuisances for ``n`` photos: the ranges a catalogue photo varies over."""

        def u(lo: float, hi: float) -> np.ndarray:
            return rng.uniform(lo, hi, n).astype(np.float32)

        return Nuisance(
            rotation_deg=u(-8.0, 8.0),
            scale=u(0.84, 1.0),
            shift_x=u(-3.0, 3.0),
            shift_y=u(-2.5, 2.5),
            bg_hue=u(0.0, 1.0),
            bg_saturation=u(0.0, 0.12),
            bg_value=u(0.84, 0.98),
            bg_gradient=u(0.0, 0.06),
            bg_gradient_angle=u(0.0, 2 * np.pi),
            upper_hue=u(0.0, 1.0),
            upper_value=u(0.46, 0.68),
            sole_value=u(0.09, 0.15),
            gain=u(0.86, 1.1),
            light=u(0.0, 0.1),
            light_angle=u(0.0, 2 * np.pi),
            noise_std=u(0.004, 0.016),
        )

    @staticmethod
    def neutral(n: int) -> Nuisance:
        """Centred, unlit, noiseless studio photos: for sweeps and calibration."""

        def c(v: float) -> np.ndarray:
            return np.full(n, v, np.float32)

        return Nuisance(
            rotation_deg=c(0),
            scale=c(0.92),
            shift_x=c(0),
            shift_y=c(0),
            bg_hue=c(0),
            bg_saturation=c(0),
            bg_value=c(0.92),
            bg_gradient=c(0),
            bg_gradient_angle=c(0),
            upper_hue=c(0.6),
            upper_value=c(0.58),
            sole_value=c(0.12),
            gain=c(1),
            light=c(0),
            light_angle=c(0),
            noise_std=c(0),
        )


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB; inputs (B,) in [0, 1], output (B, 3)."""
    k = np.stack([5.0 + 0 * h, 3.0 + 0 * h, 1.0 + 0 * h], axis=1)
    k = (k + h[:, None] * 6.0) % 6.0
    m = np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return (v[:, None] * (1.0 - s[:, None] * m)).astype(np.float32)


def _band(height: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Share of each pixel row [height - 1/2, height + 1/2] that lies inside [lo, hi]."""
    return (torch.minimum(hi, height + 0.5) - torch.maximum(lo, height - 0.5)).clamp_(0.0, 1.0)


def _pose_grid(n: Nuisance) -> torch.Tensor:
    """Sampling grid mapping each output pixel to the canonical frame, (B, 64, 64, 2)."""
    a = np.deg2rad(n.rotation_deg)
    cos, sin, s = np.cos(a) / n.scale, np.sin(a) / n.scale, n.scale
    half = shoe.CANVAS / 2
    # affine_grid works in [-1, 1] coordinates: translation in pixels -> /half.
    tx, ty = -n.shift_x / half, -n.shift_y / half
    theta = np.zeros((len(n), 2, 3), np.float32)
    theta[:, 0, 0], theta[:, 0, 1] = cos, sin
    theta[:, 1, 0], theta[:, 1, 1] = -sin, cos
    theta[:, 0, 2] = cos * tx + sin * ty
    theta[:, 1, 2] = -sin * tx + cos * ty
    del s
    size = [len(n), 4, shoe.CANVAS, shoe.CANVAS]
    return F.affine_grid(torch.from_numpy(theta), size, align_corners=False)


def _canonical_rgba(attrs: np.ndarray, n: Nuisance) -> torch.Tensor:
    """The shoe alone in its canonical frame, premultiplied RGBA (B, 4, 64, 64) in [0, 1]."""
    b = len(attrs)
    p = shoe.profiles(attrs, shoe.column_positions())
    ground = shoe.CANVAS / 2 + shoe.total_height(attrs) / 2  # centre the shoe vertically
    rows = torch.arange(shoe.CANVAS, dtype=torch.float32) + 0.5
    # height above the ground of each pixel row: (B, 64, 1)
    height = torch.from_numpy(ground.astype(np.float32))[:, None, None] - rows[None, :, None]

    def col(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[:, None, :]

    inside = col(p.inside)
    sole = _band(height, col(p.sole_bottom), col(p.sole_top))
    heel = _band(height, torch.zeros(1), col(p.sole_bottom)) * col(p.heel_block)
    upper = _band(height, col(p.sole_top), col(p.upper_top))
    dark = (sole + heel) * inside  # (B, 64, 64)
    upper = upper * inside

    sat = shoe.lerp(shoe.SATURATION_RANGE, attrs[:, shoe.ATTRIBUTE_NAMES.index("colorful")])
    c_upper = torch.from_numpy(hsv_to_rgb(n.upper_hue, sat.astype(np.float32), n.upper_value))
    c_sole = torch.from_numpy(np.stack([n.sole_value * 1.05, n.sole_value, n.sole_value], 1))
    rgb = dark[:, None] * c_sole[:, :, None, None] + upper[:, None] * c_upper[:, :, None, None]
    return torch.cat([rgb, (dark + upper)[:, None]], dim=1).reshape(b, 4, shoe.CANVAS, -1)


def _screen_xy() -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates in [-1, 1], each (1, 64, 64)."""
    c = (torch.arange(shoe.CANVAS, dtype=torch.float32) + 0.5) / shoe.CANVAS * 2 - 1
    return c[None, None, :].expand(1, shoe.CANVAS, -1), c[None, :, None].expand(1, -1, shoe.CANVAS)


def _render_batch(attrs: np.ndarray, n: Nuisance, rng: np.random.Generator) -> np.ndarray:
    rgba = F.grid_sample(
        _canonical_rgba(attrs, n), _pose_grid(n), mode="bilinear", align_corners=False
    )
    x, y = _screen_xy()

    def per_image(v: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(v, np.float32))[:, None, None]

    bg_dir = per_image(np.cos(n.bg_gradient_angle)) * x + per_image(np.sin(n.bg_gradient_angle)) * y
    bg = torch.from_numpy(hsv_to_rgb(n.bg_hue, n.bg_saturation, n.bg_value))[:, :, None, None]
    bg = bg * (1.0 + per_image(n.bg_gradient) * bg_dir)[:, None]
    img = rgba[:, :3] + (1.0 - rgba[:, 3:4]) * bg
    light_dir = per_image(np.cos(n.light_angle)) * x + per_image(np.sin(n.light_angle)) * y
    img = img * (per_image(n.gain) * (1.0 + per_image(n.light) * light_dir))[:, None]
    noise = torch.from_numpy(rng.standard_normal(img.shape, dtype=np.float32))
    img = img + noise * per_image(n.noise_std)[:, None]
    img = (img.clamp_(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
    return img.permute(0, 2, 3, 1).contiguous().numpy()


def render(
    attrs: np.ndarray,
    nuisance: Nuisance,
    *,
    seed: int = 0,
    batch_size: int = 500,
    progress: str = "",
) -> np.ndarray:
    """Render shoes: ``attrs`` (N, 6) in [0, 1] (columns in ``shoe.ATTRIBUTE_NAMES`` order).

    Returns (N, 64, 64, 3) uint8. Deterministic given ``seed`` (which only drives sensor noise).
    ``progress``: a label for a progress bar on stderr ("" for none).
    """
    attrs = np.clip(np.asarray(attrs, np.float32), 0.0, 1.0)
    if attrs.ndim != 2 or attrs.shape[1] != len(shoe.ATTRIBUTE_NAMES):
        raise ValueError(f"attrs must be (N, {len(shoe.ATTRIBUTE_NAMES)}), got {attrs.shape}")
    if len(nuisance) != len(attrs):
        raise ValueError(f"{len(nuisance)} nuisances for {len(attrs)} images")
    rng = np.random.default_rng(seed)
    out = np.empty((len(attrs), shoe.CANVAS, shoe.CANVAS, 3), np.uint8)
    with torch.no_grad():
        starts = range(0, len(attrs), batch_size)
        for start in progress_bar(starts, progress, unit="batch"):
            sl = slice(start, start + batch_size)
            out[sl] = _render_batch(attrs[sl], nuisance.subset(sl), rng)
    return out
