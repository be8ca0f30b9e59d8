"""Draw the README's pictures of the built-in world: ``python docs/figures.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from outpool.report.gallery import attribute_strip, image_grid, save_gallery
from outpool.synth import ATTRIBUTE_NAMES, Nuisance, render
from outpool.synth.world import sample_catalogue

OUT = Path(__file__).resolve().parent / "images"


def main() -> None:
    rng = np.random.default_rng(7)
    attrs, groups = sample_catalogue(rng, 24, broad_share=0.2, spread=0.07)
    photos = render(attrs, Nuisance.sample(rng, 24), seed=7)
    save_gallery(
        image_grid(photos, [str(g) for g in groups], columns=12, scale=2), OUT / "shoes.png"
    )

    strips = []
    for k, name in enumerate(ATTRIBUTE_NAMES):
        sweep = np.full((8, len(ATTRIBUTE_NAMES)), 0.5, np.float32)
        sweep[:, k] = np.linspace(0.0, 1.0, 8)
        strips.append(attribute_strip(render(sweep, Nuisance.neutral(8)), sweep[:, k], name))
    width = max(s.width for s in strips)
    page = Image.new("RGB", (width, sum(s.height for s in strips)), "white")
    y = 0
    for s in strips:
        page.paste(s, (0, y))
        y += s.height
    save_gallery(page, OUT / "sweeps.png")


if __name__ == "__main__":
    main()
