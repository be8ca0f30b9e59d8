"""A generator's pictures (``outpool.report.generator_figures``) from a tiny untrained model: page
sizes from the grid layout, tiles that are the images they claim to be, and the three PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from outpool.judges.generator_check import sweep_images
from outpool.models.generator import ConditionalVAE, GeneratorConfig
from outpool.report.gallery import PAD, line_height
from outpool.report.generator_figures import (
    reconstructions_page,
    samples_page,
    save_generator_figures,
    sweeps_page,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAMES = ("open", "heel")
CELL = 64 * 2 + 2 * PAD  # a 64 px image at the pages' scale 2, padded on every side
TITLE = 2 * PAD + line_height(2, title=True)  # a one-line title band


@pytest.fixture(scope="module")
def model() -> ConditionalVAE:
    torch.manual_seed(0)
    cfg = GeneratorConfig(z_dim=8, width=4, feature=32, y_embed=8, hidden=32)
    y_mean, y_std = torch.tensor([0.5, 0.2]), torch.tensor([0.2, 0.1])
    return ConditionalVAE(cfg, attributes=NAMES, y_mean=y_mean, y_std=y_std).eval()


def tile(page: Image.Image, k: int, *, top: int, cell_h: int, columns: int = 8) -> np.ndarray:
    """The k-th 64 x 64 image of a scale-2 grid, read back at its own resolution."""
    r, c = divmod(k, columns)
    x, y = c * CELL + PAD, top + r * cell_h + PAD
    block = np.asarray(page.convert("RGB"))[y : y + 128, x : x + 128]
    assert (block[::2, ::2] == block[1::2, 1::2]).all()  # each pixel is a 2 x 2 block
    return block[::2, ::2]


def test_samples_page_is_a_grid_of_n_samples(model: ConditionalVAE) -> None:
    page = samples_page(model, n=10, seed=0)
    assert page.size == (8 * CELL, TITLE + 2 * CELL)  # 10 samples: 8 columns, 2 rows
    tiles = [tile(page, k, top=TITLE, cell_h=CELL) for k in range(10)]
    assert len({t.tobytes() for t in tiles}) == 10  # each sample has its own y and z
    # three columns are too narrow for the title on one line: it wraps onto a second
    two_lines = TITLE + line_height(2, title=True)
    assert samples_page(model, n=3, seed=0).size == (3 * CELL, two_lines + CELL)


def test_samples_page_is_fixed_by_the_seed(model: ConditionalVAE) -> None:
    a = np.asarray(samples_page(model, n=4, seed=1))
    assert np.array_equal(a, np.asarray(samples_page(model, n=4, seed=1)))
    assert not np.array_equal(a, np.asarray(samples_page(model, n=4, seed=2)))


def test_reconstructions_page_pairs_each_image_with_its_reconstruction(
    model: ConditionalVAE,
) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    strengths = np.array([[0.4, 0.1], [0.5, 0.2], [0.7, 0.3]], np.float32)
    page = reconstructions_page(model, pixels, strengths)
    cell_h = CELL + line_height(2)  # one caption line: "real" / "reconstructed"
    assert page.size == (6 * CELL, TITLE + cell_h)  # 3 pairs in one row of 6
    for i in range(3):
        assert np.array_equal(tile(page, 2 * i, top=TITLE, cell_h=cell_h, columns=6), pixels[i])
        recon = tile(page, 2 * i + 1, top=TITLE, cell_h=cell_h, columns=6)
        assert not np.array_equal(recon, pixels[i])  # an untrained decoder does not copy
    # eight pairs wrap onto two rows of 8
    many = reconstructions_page(model, np.repeat(pixels, 3, 0)[:8], np.repeat(strengths, 3, 0)[:8])
    assert many.size == (8 * CELL, TITLE + 2 * cell_h)


def test_reconstructions_page_needs_uint8_images(model: ConditionalVAE) -> None:
    pixels = np.full((2, 64, 64, 3), 128.0)  # float images: the grid refuses them
    with pytest.raises(ValueError, match=r"must be \(N, H, W, 3\) uint8"):
        reconstructions_page(model, pixels, np.zeros((2, 2), np.float32))


def test_sweeps_page_has_one_strip_per_attribute_and_latent(model: ConditionalVAE) -> None:
    steps, n_z = 4, 3
    page = sweeps_page(model, steps=steps, n_z=n_z, seed=0)
    strip_h = TITLE + CELL + line_height(2)  # title, one row of tiles, one caption line each
    assert page.size == (steps * CELL, len(NAMES) * n_z * strip_h)
    # the strip of attribute k at latent i shows that sweep, from its lowest strength
    images, _ = sweep_images(model, 1, steps=steps, n_z=n_z, seed=0)
    top = (1 * n_z + 2) * strip_h + TITLE  # attribute "heel" (k = 1), latent #3
    for j in range(steps):
        shown = tile(page, j, top=top, cell_h=CELL, columns=steps)
        assert np.array_equal(shown, images[2, j])


def test_save_generator_figures_writes_three_pngs(model: ConditionalVAE, tmp_path: Path) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    strengths = np.tile(np.array([[0.5, 0.2]], np.float32), (4, 1))
    run = tmp_path / "run"
    save_generator_figures(model, run, pixels, strengths)
    assert sorted(p.name for p in run.iterdir()) == [
        "reconstructions.png",
        "samples.png",
        "sweeps.png",
    ]
    sizes = {}
    for name in ("samples", "reconstructions", "sweeps"):
        with Image.open(run / f"{name}.png") as img:
            assert img.format == "PNG"
            sizes[name] = img.size
    assert sizes["samples"] == (8 * CELL, TITLE + 4 * CELL)  # 32 samples in rows of 8
    assert sizes["reconstructions"] == (8 * CELL, TITLE + CELL + line_height(2))
    # 8 steps per sweep, 2 latents per attribute
    assert sizes["sweeps"] == (8 * CELL, 2 * 2 * (TITLE + CELL + line_height(2)))
