"""Synthetic stand-ins for face photos, and a tiny LFW folder made of them (for the teacher,
face-space, regressor and LFW generator tests; the real LFW tests skip when it is absent).

A fake face: a smooth background, a skin-coloured ellipse near the centre with hair above, two
eyes, a nose and a mouth, slightly blurred, with a little noise. Two planted attributes: ``tone``
(the skin's brightness) and ``mouth`` (how open the mouth is), both in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
from PIL import Image

LFW_COLUMNS = (
    "Bald",
    "Black Hair",
    "Eyes Open",
    "Male",
    "Mouth Wide Open",
    "Smiling",
    "Fully Visible Forehead",
    "Youth",
)


def _ellipse(
    xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, a: float, b: float
) -> np.ndarray:
    """A soft (anti-aliased) filled ellipse: 1 inside, 0 outside, a 1 px ramp at the edge."""
    d = (np.sqrt(((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2) - 1.0) * min(a, b)
    return np.clip(0.5 - d, 0.0, 1.0)


def fake_faces(
    n: int, seed: int = 0, attrs: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(pixels (n, 64, 64, 3) uint8, planted attributes (n, 2) float64 in [0, 1]: tone, mouth)."""
    rng = np.random.default_rng(seed)
    if attrs is None:
        attrs = rng.uniform(0.0, 1.0, (n, 2))
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float64) + 0.5
    out = np.empty((n, 64, 64, 3), np.uint8)
    for i in range(n):
        tone, mouth = attrs[i]
        bg = (
            rng.uniform(0.2, 0.9, 3)[None, None]
            + rng.normal(0, 0.1, 3) * (xx / 64 - 0.5)[..., None]
        )
        img = np.broadcast_to(bg, (64, 64, 3)).copy()
        cx, cy = 32 + rng.normal(0, 1.0), 34 + rng.normal(0, 1.0)
        s = rng.uniform(0.9, 1.1)
        a, b = 11 * s, 14 * s
        hair = _ellipse(xx, yy, cx, cy - 3 * s, a + 1.5, b + 1.0)
        strands = ndi.gaussian_filter(rng.normal(0, 1, (64, 64)), (2.0, 0.7)) * 0.25
        img = (
            img * (1 - hair[..., None])
            + (rng.uniform(0.05, 0.35) + strands)[..., None] * hair[..., None]
        )
        skin = (0.45 + 0.45 * tone) * np.array([1.0, 0.8, 0.66])
        face = _ellipse(xx, yy, cx, cy + 1.5 * s, a, b - 1.0)
        img = img * (1 - face[..., None]) + skin * face[..., None]
        for ex in (cx - 4.5 * s, cx + 4.5 * s):
            eye = _ellipse(xx, yy, ex, cy - 2 * s, 1.8 * s, 1.3 * s)
            img = img * (1 - eye[..., None]) + 0.08 * eye[..., None]
            brow = _ellipse(xx, yy, ex, cy - 5 * s, 2.6 * s, 0.6)
            img = img * (1 - 0.6 * brow[..., None])
        nose = _ellipse(xx, yy, cx, cy + 2.5 * s, 0.8, 2.5 * s)
        img = img * (1 - 0.35 * nose[..., None])
        lips = _ellipse(xx, yy, cx, cy + 8 * s, 4.5 * s, 0.7 + 2.6 * mouth)
        img = img * (1 - lips[..., None]) + np.array([0.35, 0.08, 0.1]) * lips[..., None]
        img = ndi.gaussian_filter(img, (0.6, 0.6, 0)) + rng.normal(0, 0.012, img.shape)
        out[i] = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    return out, np.asarray(attrs, np.float64)


def write_lfw(
    root: Path,
    *,
    scored_people: int = 24,
    unscored_people: int = 8,
    images_per_person: int = 3,
    seed: int = 0,
    rows: Sequence[str] | None = None,
) -> Path:
    """An LFW folder in the official layout (``lfw_attributes.txt`` with the paper's 8 columns
    + ``lfw-100/``) of fake faces; scores: 'Male' = tone, 'Mouth Wide Open' and 'Smiling' =
    mouth (standardised, plus noise), the rest noise. ``rows`` replaces the score rows."""
    rng = np.random.default_rng(seed)
    n_people = scored_people + unscored_people
    pixels, attrs = fake_faces(n_people * images_per_person, seed)
    header = "#\tperson\timagenum\t" + "\t".join(LFW_COLUMNS)
    lines = ["# PubFig Dataset v1.2 - lfw_attributes.txt - fake faces", header]
    for p in range(n_people):
        person = f"Person {chr(65 + p % 26)}{p:02d}"
        stem = person.replace(" ", "_")
        for k in range(images_per_person):
            i = p * images_per_person + k
            path = root / "lfw-100" / stem / f"{stem}_{k + 1:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels[i]).resize((100, 100), Image.Resampling.BICUBIC).save(
                path, quality=95
            )
            if p < scored_people:
                tone, mouth = (attrs[i] - 0.5) * 3
                noise = rng.normal(0, 0.3, len(LFW_COLUMNS))
                values = noise * 3
                values[LFW_COLUMNS.index("Male")] = tone + noise[3]
                values[LFW_COLUMNS.index("Mouth Wide Open")] = mouth + noise[4]
                values[LFW_COLUMNS.index("Smiling")] = mouth + noise[5]
                lines.append(f"{person}\t{k + 1}\t" + "\t".join(f"{v:.6f}" for v in values))
    if rows is not None:
        lines = lines[:2] + list(rows)
    (root / "lfw_attributes.txt").write_text("\n".join(lines) + "\n")
    return root
