"""The shoe model of the built-in world: attributes -> per-column side-view profiles.

The world draws one kind of object, a shoe seen from the side, toe to the right. In its canonical
frame (64x64 canvas, y down) the shoe spans ``LENGTH`` pixels from the back (``t = 0``) to the toe
tip (``t = 1``) and stands on the ground row ``GROUND``. Every part is a band between two heights
per column, so the renderer and the pixel oracle share one description of the shape: the renderer
rasterises these profiles, the oracle measures them back and re-draws them to check legibility.

Heights are in canonical pixels ABOVE the ground (positive is up). Shapes: ``(B, W)`` per column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# name -> what a person sees change when the attribute goes from 0 to 1
ATTRIBUTES: dict[str, str] = {
    "open": "how much of the foot the upper leaves uncovered (closed boot -> open pump/sandal)",
    "pointy": "how sharply the toe narrows to a point (round toe -> pointed toe)",
    "heel": "how high the heel lifts the back of the shoe (flat -> high heel)",
    "tall": "how far the shaft rises up the leg (low shoe -> ankle boot -> tall boot)",
    "colorful": "how saturated the colour of the upper is (grey/black -> vivid colour)",
    "chunky": "how thick the sole is (thin dress sole -> thick platform/sneaker sole)",
}
ATTRIBUTE_NAMES: tuple[str, ...] = tuple(ATTRIBUTES)

CANVAS = 64
LENGTH = 40.0  # shoe length in canonical pixels
BACK = (CANVAS - LENGTH) / 2  # x of the back of the shoe (t = 0)
GROUND = 50.0  # y of the ground line in the canonical frame, before vertical centring

# Geometry in units of the shoe length. Ranges are what attribute 0 -> 1 maps to (linear).
HEEL_RANGE = (0.0, 0.22)  # heel lift
SOLE_RANGE = (0.065, 0.18)  # sole thickness ("chunky")
COLLAR_RANGE = (0.22, 0.72)  # shaft height above the sole at the back ("tall")
THROAT_RANGE = (0.38, 0.07)  # upper height in front of the shaft ("open": high vamp -> cut low)
TOE_BOX = 0.20  # upper height over the toes
TOE_START = 0.72  # where the toe cap begins (fraction of the length)
TOE_POWER_RANGE = (0.35, 3.0)  # exponent q of the toe profile (1 - x^2)^q ("pointy")
SATURATION_RANGE = (0.04, 0.85)  # saturation of the upper ("colorful")

# Where each attribute shows most clearly (fractions of the length); the oracle measures there.
HEEL_WINDOW = (0.25, 0.33)
SOLE_WINDOW = (0.64, 0.74)
COLLAR_WINDOW = (0.14, 0.24)
THROAT_WINDOW = (0.45, 0.52)
TOE_WINDOW = (0.76, 0.95)


def lerp(lo_hi: tuple[float, float], w: np.ndarray) -> np.ndarray:
    """Map ``w`` in [0, 1] linearly onto the range ``lo_hi``."""
    lo, hi = lo_hi
    return lo + (hi - lo) * w


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    s = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return s * s * (3.0 - 2.0 * s)


def heel_width(heel: np.ndarray) -> np.ndarray:
    """Width of the heel block (fraction of length): wide block when flat, narrow when high."""
    return lerp((0.20, 0.10), heel)


@dataclass(frozen=True)
class Profiles:
    """Per-column heights above the ground, in canonical pixels; all ``(B, W)`` float32.

    A column holds, bottom to top: the gap under a raised sole (``sole_bottom``), the sole up to
    ``sole_top``, the upper up to ``upper_top``. Under the heel block the gap is filled by the
    heel (``heel_block`` is 1 there). ``inside`` is the horizontal coverage of the column (0..1).
    """

    sole_bottom: np.ndarray
    sole_top: np.ndarray
    upper_top: np.ndarray
    heel_block: np.ndarray
    inside: np.ndarray


def profiles(attrs: np.ndarray, t: np.ndarray) -> Profiles:
    """Side-view profiles of shoes with attributes ``attrs`` (B, 6) in [0, 1] at positions ``t``.

    ``t`` is (W,) or (B, W): fractions of the shoe length (0 = back, 1 = toe tip).
    """
    a = {name: attrs[:, i : i + 1].astype(np.float32) for i, name in enumerate(ATTRIBUTE_NAMES)}
    t = np.broadcast_to(t, (attrs.shape[0], t.shape[-1])).astype(np.float32)
    lift = lerp(HEEL_RANGE, a["heel"]) * LENGTH
    sole = lerp(SOLE_RANGE, a["chunky"]) * LENGTH
    collar = lerp(COLLAR_RANGE, a["tall"]) * LENGTH
    throat = lerp(THROAT_RANGE, a["open"]) * LENGTH
    toe_box = TOE_BOX * LENGTH
    q = lerp(TOE_POWER_RANGE, a["pointy"])

    # The sole is lifted under the heel seat and slopes down to the ball of the foot.
    sole_bottom = lift * (1.0 - smoothstep(0.22, 0.62, t))
    sole_top = sole_bottom + sole

    shaft = collar * (1.0 - smoothstep(0.30, 0.38, t))
    # The vamp runs from the toe box up to the throat in front of the ankle; behind the ankle
    # only the shaft counts, so "tall" is visible even when the vamp is higher than the collar.
    vamp = toe_box + (throat - toe_box) * (1.0 - smoothstep(0.45, TOE_START, t))
    vamp = vamp * smoothstep(0.27, 0.36, t)
    x = np.clip((t - TOE_START) / (1.0 - TOE_START), 0.0, 1.0)
    toe = toe_box * np.power(np.clip(1.0 - x * x, 0.0, 1.0), q)
    height = np.where(t < TOE_START, np.maximum(shaft, vamp), toe)
    upper_top = sole_top + height

    heel_block = ((t >= 0.0) & (t <= heel_width(a["heel"]))).astype(np.float32)
    # Horizontal anti-aliasing at the back and the tip: the fraction of the pixel inside [0, 1].
    half = 0.5 / LENGTH
    inside = np.clip((np.minimum(t + half, 1.0) - np.maximum(t - half, 0.0)) / (2 * half), 0, 1)
    return Profiles(sole_bottom, sole_top, upper_top, heel_block, inside.astype(np.float32))


def column_positions(width: int = CANVAS, scale: float = 1.0) -> np.ndarray:
    """``t`` at the centres of the canonical columns when the canvas is sampled ``scale`` x."""
    x = (np.arange(width * scale, dtype=np.float32) + 0.5) / scale
    return (x - BACK) / LENGTH


def total_height(attrs: np.ndarray) -> np.ndarray:
    """Height of the whole shoe above the ground (B,), canonical pixels: for vertical centring."""
    p = profiles(attrs, column_positions())
    return p.upper_top.max(axis=1)
