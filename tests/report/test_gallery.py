"""PNG galleries: layout computed from the inputs, tile pixels, symbols, order, determinism."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from outpool.data import AttributeInfo, Dataset, ImageTable, PairTable
from outpool.errors import UnknownNameError
from outpool.report import attribute_strip, dataset_gallery, image_grid, pair_grid, save_gallery
from outpool.report.gallery import PAD, line_height, symbol_width

COLOURS = [(255, 0, 0), (0, 160, 0), (0, 0, 255), (200, 200, 0), (0, 200, 200)]


def random_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 64, 64, 3), dtype=np.uint8)


def solid(colours: list[tuple[int, int, int]]) -> np.ndarray:
    out = np.zeros((len(colours), 64, 64, 3), dtype=np.uint8)
    out[:] = np.asarray(colours, dtype=np.uint8)[:, None, None, :]
    return out


def as_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def title_height(scale: int, lines: int = 1) -> int:
    return 2 * PAD + lines * line_height(scale, title=True)


# ---- image_grid --------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "columns", "scale"), [(10, 4, 2), (3, 8, 1), (8, 8, 3)])
def test_grid_size_follows_inputs(n: int, columns: int, scale: int) -> None:
    cols = min(columns, n)
    rows = -(-n // cols)
    cell = 64 * scale + 2 * PAD
    bare = image_grid(random_images(n), columns=columns, scale=scale)
    assert bare.size == (cols * cell, rows * cell)
    one_line = image_grid(
        random_images(n), [f"#{i}" for i in range(n)], columns=columns, scale=scale
    )
    assert one_line.size == (cols * cell, rows * (cell + line_height(scale)))
    two_lines = image_grid(
        random_images(n), ["a\nb"] * n, columns=columns, scale=scale, title="Title"
    )
    assert two_lines.size == (
        cols * cell,
        title_height(scale) + rows * (cell + 2 * line_height(scale)),
    )


def test_tile_pixels_are_the_upscaled_image() -> None:
    images = random_images(10, seed=3)
    scale, columns = 2, 4
    grid = as_array(image_grid(images, ["x"] * 10, columns=columns, scale=scale, title="T"))
    cell_w = 64 * scale + 2 * PAD
    cell_h = cell_w + line_height(scale)
    k = 6  # row 1, column 2
    x = (k % columns) * cell_w + PAD
    y = title_height(scale) + (k // columns) * cell_h + PAD
    expected = np.repeat(np.repeat(images[k], scale, axis=0), scale, axis=1)
    np.testing.assert_array_equal(grid[y : y + 64 * scale, x : x + 64 * scale], expected)
    # the page around tiles is white
    assert (grid[y - PAD, x - PAD] == 255).all()


def test_captions_are_drawn_and_bad_inputs_rejected() -> None:
    images = solid([(255, 255, 255)] * 2)  # white tiles: only caption ink is non-white
    blank = as_array(image_grid(images, ["", ""], scale=1))
    inked = as_array(image_grid(images, ["caption", "two\nlines"], scale=1))
    assert (blank == 255).all()
    assert (inked[64 + 2 * PAD :] < 255).any()
    with pytest.raises(ValueError, match="captions"):
        image_grid(images, ["only one"])
    with pytest.raises(ValueError, match="uint8"):
        image_grid(images.astype(np.float32))
    with pytest.raises(ValueError, match="columns"):
        image_grid(images, columns=0)


# ---- attribute_strip ---------------------------------------------------------------------------


def test_attribute_strip_orders_images_by_value() -> None:
    values = np.array([0.3, -1.0, 2.0, 0.5, 0.0])
    scale = 2
    strip = attribute_strip(solid(COLOURS), values, "redness", scale=scale)
    arr = as_array(strip)
    cell_w = 64 * scale + 2 * PAD
    assert strip.size == (5 * cell_w, title_height(scale) + cell_w + line_height(scale))
    centre_y = title_height(scale) + PAD + 32 * scale
    seen = [tuple(arr[centre_y, c * cell_w + PAD + 32 * scale]) for c in range(5)]
    assert seen == [COLOURS[i] for i in np.argsort(values)]


def test_attribute_strip_rejects_misaligned_values() -> None:
    with pytest.raises(ValueError, match="values"):
        attribute_strip(solid(COLOURS), [1.0, 2.0], "x")


# ---- pair_grid ---------------------------------------------------------------------------------


def test_pair_grid_size_and_symbols() -> None:
    scale = 2
    a, b = solid([(255, 0, 0)] * 3), solid([(0, 0, 255)] * 3)
    grids = {
        label: as_array(pair_grid(a, b, [label] * 3, "smile", columns=2, scale=scale))
        for label in (1, -1, 0)
    }
    tile_w = 2 * 64 * scale + symbol_width(scale)
    cell_h = 64 * scale + 2 * PAD + line_height(scale)
    assert grids[1].shape == (2 * cell_h, 2 * (tile_w + 2 * PAD), 3)
    # the symbol sits in the gap between A and B of each cell; tiles and captions are shared
    gap = np.s_[PAD : PAD + 64 * scale, PAD + 64 * scale : PAD + 64 * scale + symbol_width(scale)]
    gap_x = {
        c * (tile_w + 2 * PAD) + PAD + 64 * scale + i
        for c in range(2)
        for i in range(gap[1].stop - gap[1].start)
    }
    for one, other in ((1, -1), (1, 0), (-1, 0)):
        assert (grids[one][gap] != grids[other][gap]).any()
        differ = np.flatnonzero((grids[one] != grids[other]).any(axis=(0, 2)))
        assert set(differ.tolist()) <= gap_x  # only the symbols differ
    more, less = grids[1][gap], grids[-1][gap]
    np.testing.assert_array_equal(more, less[:, ::-1])  # ">" is "<" mirrored
    # A left, B right, both intact
    assert tuple(grids[1][PAD + 10, PAD + 10]) == (255, 0, 0)
    assert tuple(grids[1][PAD + 10, PAD + tile_w - 10]) == (0, 0, 255)


def test_pair_grid_extra_caption_adds_a_line() -> None:
    a, b = random_images(2, 1), random_images(2, 2)
    plain = pair_grid(a, b, [1, -1], ["smile", "age"])
    extra = pair_grid(a, b, [1, -1], ["smile", "age"], extra=["agree 0.8", "agree 1.0"])
    assert extra.height == plain.height + line_height(2)
    assert extra.width == plain.width


def test_pair_grid_rejects_bad_labels_and_lengths() -> None:
    a, b = random_images(2, 1), random_images(2, 2)
    with pytest.raises(ValueError, match="labels"):
        pair_grid(a, b, [1, 2], "smile")
    with pytest.raises(ValueError, match="disagree"):
        pair_grid(a, b[:1], [1, 1], "smile")


# ---- dataset_gallery ---------------------------------------------------------------------------


def make_dataset(*, n_pairs: int = 12, strengths: bool = True) -> Dataset:
    rng = np.random.default_rng(0)
    n = 20
    train = ImageTable(
        ids=np.array([f"tr{i:02d}" for i in range(n)]),
        pixels=random_images(n, seed=1),
        groups=np.array([f"g{i % 3}" for i in range(n)]),
        attributes=("smile", "sparkle") if strengths else (),
        strengths=rng.normal(size=(n, 2)).astype(np.float32) if strengths else None,
    )
    test = ImageTable(ids=np.array(["te0", "te1"]), pixels=random_images(2, seed=2))
    a = rng.integers(0, n, size=n_pairs)
    pairs = PairTable.build(
        attribute=rng.choice(["smile", "sparkle"], size=n_pairs),
        a=[f"tr{i:02d}" for i in a],
        b=[f"tr{(i + 1) % n:02d}" for i in a],
        label=rng.choice([1, -1, 0], size=n_pairs),
        confidence=rng.uniform(size=n_pairs),
    )
    return Dataset(
        name="toy",
        attributes=(AttributeInfo("smile"), AttributeInfo("sparkle")),
        images={"train": train, "test": test},
        pairs={"train": pairs},
    )


def test_dataset_gallery_is_deterministic_for_a_seed() -> None:
    dataset = make_dataset()
    first = dataset_gallery(dataset, n_images=8, n_pairs=4, per_attribute=5, seed=1)
    again = dataset_gallery(dataset, n_images=8, n_pairs=4, per_attribute=5, seed=1)
    other = dataset_gallery(dataset, n_images=8, n_pairs=4, per_attribute=5, seed=2)
    assert isinstance(first, Image.Image) and first.mode == "RGB"
    assert first.tobytes() == again.tobytes()
    assert first.size == other.size and first.tobytes() != other.tobytes()
    # as wide as its widest section: 8 image tiles, 5 strip tiles or 4 pair cells a row
    pair_cell = 2 * 64 * 2 + symbol_width(2) + 2 * PAD
    assert first.width == max(8 * (64 * 2 + 2 * PAD), 4 * pair_cell)


def test_dataset_gallery_sections_grow_with_counts() -> None:
    dataset = make_dataset()
    full = dataset_gallery(dataset, n_images=8, n_pairs=4, per_attribute=5)
    no_pairs = dataset_gallery(dataset, n_images=8, n_pairs=0, per_attribute=5)
    no_strips = dataset_gallery(dataset, n_images=8, n_pairs=4, per_attribute=0)
    assert full.height > no_pairs.height
    assert full.height > no_strips.height
    # the pairs shown do not depend on how many images are shown (separate random streams)
    fewer_images = dataset_gallery(dataset, n_images=1, n_pairs=4, per_attribute=0)
    tail = full.height - no_pairs.height
    np.testing.assert_array_equal(
        as_array(full)[-tail:], as_array(fewer_images)[-tail:, : full.width]
    )


def test_dataset_gallery_strips_from_given_values_when_table_has_no_strengths() -> None:
    dataset = make_dataset(strengths=False)
    values = {"smile": np.linspace(0, 1, 20), "sparkle": np.linspace(1, 0, 20)}
    without = dataset_gallery(dataset, n_images=4, n_pairs=0, per_attribute=4)
    with_values = dataset_gallery(dataset, n_images=4, n_pairs=0, per_attribute=4, values=values)
    assert with_values.height > without.height
    with pytest.raises(ValueError, match="smile"):
        dataset_gallery(dataset, values={"smile": np.zeros(3)})


def test_dataset_gallery_other_image_table() -> None:
    dataset = make_dataset()
    gallery = dataset_gallery(dataset, table="test", n_images=8, n_pairs=0)
    assert gallery.width >= 2 * (64 * 2 + 2 * PAD)


def test_dataset_gallery_with_empty_pair_table() -> None:
    dataset = make_dataset(n_pairs=0)
    assert len(dataset.pairs["train"]) == 0
    gallery = dataset_gallery(dataset, n_images=8, per_attribute=5)
    reference = dataset_gallery(make_dataset(), n_images=8, n_pairs=0, per_attribute=5)
    assert gallery.size == reference.size  # no pair section


def test_dataset_gallery_unknown_tables() -> None:
    dataset = make_dataset()
    with pytest.raises(UnknownNameError, match="valid: train") as info:
        dataset_gallery(dataset, pairs="nope")
    assert info.value.valid == ["train"]
    with pytest.raises(UnknownNameError, match="test, train"):
        dataset_gallery(dataset, table="nope")


# ---- save_gallery ------------------------------------------------------------------------------


def test_save_gallery_writes_png_atomically(tmp_path: Path) -> None:
    image = image_grid(random_images(3), ["a", "b", "c"], title="saved")
    path = tmp_path / "out" / "gallery.png"
    save_gallery(image, path)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as back:
        assert back.format == "PNG"
        np.testing.assert_array_equal(as_array(back), as_array(image))
    assert [p.name for p in path.parent.iterdir()] == ["gallery.png"]  # no temp file left
