"""PNG galleries for looking at a dataset: image grids, attribute strips and labelled pairs.

Pure functions (arrays and tables in, ``PIL.Image`` out) plus ``save_gallery``. Pillow only, with
its built-in font, so a gallery needs no font files and renders the same for the same Pillow.

Layout, shared by every grid: each tile (``W*scale`` by ``H*scale``) sits in a cell with ``PAD``
pixels on every side, above as many caption lines (``line_height(scale)`` each) as the longest
caption has; a title, when given, is a band of ``2*PAD + lines * line_height(scale, title=True)``
pixels on top.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from outpool.data import LABELS, Dataset, ImageTable, PairTable
from outpool.errors import UnknownNameError
from outpool.fileio import atomic_path

PAD = 4  # pixels around every tile and between stacked sections
MAX_CAPTION_LINES = 3
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)
CAPTION_INK = (60, 60, 60)

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


@functools.lru_cache(maxsize=16)
def _font(size: int) -> Font:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: scalable built-in font
    except TypeError:  # older Pillow: its one fixed-size bitmap font
        return ImageFont.load_default()


def _font_size(scale: int, title: bool = False) -> int:
    size = max(10, 6 * scale)
    return size * 3 // 2 if title else size


def _section_font() -> Font:
    """Font of section headings (larger than captions)."""
    return _font(18)


def _line_height(font: Font) -> int:
    return math.ceil(font.getbbox("Ag|jy")[3]) + 2  # ascender to descender, plus spacing


def line_height(scale: int = 2, *, title: bool = False) -> int:
    """Pixel height of one caption (or title) line at ``scale``."""
    return _line_height(_font(_font_size(scale, title)))


def _fit(text: str, width: float, font: Font) -> str:
    """``text``, cut with "..." where it would be wider than ``width``."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text + "..."


def _wrap(text: str, width: float, font: Font, max_lines: int = MAX_CAPTION_LINES) -> list[str]:
    """Lines of ``text`` that fit ``width``: split at newlines, wrapped at spaces, capped."""
    lines: list[str] = []
    for raw in text.splitlines():
        line = ""
        for word in raw.split():
            candidate = f"{line} {word}" if line else word
            if line and font.getlength(candidate) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1] + " ..."]
    return [_fit(line, width, font) for line in lines]


def _heading(text: str, width: int, font: Font, max_lines: int = MAX_CAPTION_LINES) -> Image.Image:
    lines = _wrap(text, width - 2 * PAD, font, max_lines)
    height = _line_height(font)
    page = Image.new("RGB", (width, 2 * PAD + len(lines) * height), BACKGROUND)
    draw = ImageDraw.Draw(page)
    for i, line in enumerate(lines):
        draw.text((PAD, PAD + i * height), line, font=font, fill=INK)
    return page


def _vstack(parts: Sequence[Image.Image]) -> Image.Image:
    """Sections top to bottom, left-aligned, ``PAD`` apart, on a page as wide as the widest."""
    width = max(p.width for p in parts)
    page = Image.new("RGB", (width, sum(p.height for p in parts) + PAD * (len(parts) - 1)))
    page.paste(BACKGROUND, (0, 0, *page.size))
    y = 0
    for part in parts:
        page.paste(part, (0, y))
        y += part.height + PAD
    return page


def _compose(
    tiles: Sequence[Image.Image],
    tile_size: tuple[int, int],
    captions: Sequence[str] | None,
    columns: int,
    scale: int,
    title: str | None,
) -> Image.Image:
    """Tiles of equal ``tile_size`` in rows of ``columns`` with captions below, title on top."""
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    if captions is not None and len(captions) != len(tiles):
        raise ValueError(f"{len(captions)} captions for {len(tiles)} images")
    font = _font(_font_size(scale))
    tile_w, tile_h = tile_size
    cols = max(1, min(columns, len(tiles)))
    cell_w = tile_w + 2 * PAD
    wrapped = [_wrap(c, cell_w - 2, font) for c in captions] if captions is not None else []
    height = _line_height(font)
    cell_h = tile_h + 2 * PAD + max((len(w) for w in wrapped), default=0) * height
    rows = math.ceil(len(tiles) / cols)
    head = _heading(title, cols * cell_w, _font(_font_size(scale, True))) if title else None
    top = head.height if head is not None else 0
    page = Image.new("RGB", (cols * cell_w, max(1, top + rows * cell_h)), BACKGROUND)
    if head is not None:
        page.paste(head, (0, 0))
    draw = ImageDraw.Draw(page)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        x, y = c * cell_w, top + r * cell_h
        page.paste(tile, (x + PAD, y + PAD))
        for i, line in enumerate(wrapped[k] if wrapped else []):
            left = x + (cell_w - int(font.getlength(line))) // 2
            draw.text((left, y + PAD + tile_h + i * height), line, font=font, fill=CAPTION_INK)
    return page


def _check_images(images: npt.NDArray[np.uint8], what: str = "images") -> npt.NDArray[np.uint8]:
    arr = np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[3] != 3:
        raise ValueError(f"{what} must be (N, H, W, 3) uint8, got {arr.shape} {arr.dtype}")
    return arr


def _upscale(pixels: npt.NDArray[np.uint8], scale: int) -> Image.Image:
    h, w = pixels.shape[:2]
    tile = Image.fromarray(np.ascontiguousarray(pixels))
    return tile.resize((w * scale, h * scale), Image.Resampling.NEAREST)  # crisp pixels


def _check_scale(scale: int) -> None:
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")


def image_grid(
    images: npt.NDArray[np.uint8],
    captions: Sequence[str] | None = None,
    *,
    columns: int = 8,
    scale: int = 2,
    title: str | None = None,
) -> Image.Image:
    """``(N, H, W, 3)`` uint8 images as tiles upscaled ``scale`` times, ``columns`` per row.

    Each caption (lines split at ``"\\n"``, wrapped, at most three) goes under its tile. The page
    is ``min(columns, N) * (W * scale + 2 * PAD)`` pixels wide.
    """
    _check_scale(scale)
    arr = _check_images(images)
    tiles = [_upscale(p, scale) for p in arr]
    size = (arr.shape[2] * scale, arr.shape[1] * scale)
    return _compose(tiles, size, captions, columns, scale, title)


def attribute_strip(
    images: npt.NDArray[np.uint8], values: npt.ArrayLike, name: str, *, scale: int = 2
) -> Image.Image:
    """One row of ``images`` sorted by ``values`` (lowest left), each value under its image."""
    arr = _check_images(images)
    vals = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(vals) != len(arr):
        raise ValueError(f"{len(vals)} values for {len(arr)} images")
    order = np.argsort(vals, kind="stable")
    captions = [f"{v:.2f}" for v in vals[order]]
    title = f"{name}: lowest to highest"
    return image_grid(arr[order], captions, columns=max(1, len(arr)), scale=scale, title=title)


def _draw_symbol(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], label: int) -> None:
    """Draw ">", "<" or "=" as strokes: crisp at any scale, independent of the font."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = (x1 - x0) * 0.3
    stroke = max(2, (x1 - x0) // 8)
    if label == 0:
        for dy in (-half / 2, half / 2):
            draw.line([(cx - half, cy + dy), (cx + half, cy + dy)], fill=INK, width=stroke)
    else:
        tip, tail = (cx + half, cx - half) if label == 1 else (cx - half, cx + half)
        points = [(tail, cy - half), (tip, cy), (tail, cy + half)]
        draw.line(points, fill=INK, width=stroke, joint="curve")


def symbol_width(scale: int = 2) -> int:
    """Pixel width of the gap between A and B in a pair cell, where the symbol is drawn."""
    return 12 * scale


def pair_grid(
    images_a: npt.NDArray[np.uint8],
    images_b: npt.NDArray[np.uint8],
    labels: npt.ArrayLike,
    attribute: Sequence[str] | str,
    *,
    extra: Sequence[str] | None = None,
    columns: int = 4,
    scale: int = 2,
) -> Image.Image:
    """Pairs as cells "A symbol B", the attribute (and ``extra`` line) under each.

    The symbol is ``>`` for label 1 (A shows the attribute more), ``<`` for -1 and ``=`` for 0.
    A cell's tile is ``2 * W * scale + symbol_width(scale)`` pixels wide.
    """
    _check_scale(scale)
    a, b = _check_images(images_a, "images_a"), _check_images(images_b, "images_b")
    lab = np.asarray(labels).reshape(-1)
    names = [attribute] * len(a) if isinstance(attribute, str) else list(attribute)
    if a.shape != b.shape or not len(lab) == len(names) == len(a):
        raise ValueError(
            f"pairs disagree: images_a {a.shape}, images_b {b.shape}, "
            f"{len(lab)} labels, {len(names)} attributes"
        )
    if not np.isin(lab, LABELS).all():
        raise ValueError(f"labels must be in {LABELS}, got {lab[~np.isin(lab, LABELS)][0]!r}")
    if extra is not None and len(extra) != len(a):
        raise ValueError(f"{len(extra)} extra captions for {len(a)} pairs")
    tile_w, tile_h, gap = a.shape[2] * scale, a.shape[1] * scale, symbol_width(scale)
    tiles = []
    for img_a, img_b, label in zip(a, b, lab.tolist(), strict=True):
        cell = Image.new("RGB", (2 * tile_w + gap, tile_h), BACKGROUND)
        cell.paste(_upscale(img_a, scale), (0, 0))
        cell.paste(_upscale(img_b, scale), (tile_w + gap, 0))
        _draw_symbol(ImageDraw.Draw(cell), (tile_w, 0, tile_w + gap, tile_h), int(label))
        tiles.append(cell)
    captions = names if extra is None else [f"{n}\n{e}" for n, e in zip(names, extra, strict=True)]
    return _compose(tiles, (2 * tile_w + gap, tile_h), captions, columns, scale, None)


def _abbreviations(names: Sequence[str]) -> list[str]:
    """Shortest prefixes (at least two letters) that still tell the names apart."""
    longest = max((len(n) for n in names), default=0)
    for size in range(2, longest + 1):
        short = [n[:size] for n in names]
        if len(set(short)) == len(short):
            return short
    return list(names)


def _strip_values(
    images: ImageTable, values: Mapping[str, npt.ArrayLike] | None
) -> tuple[dict[str, npt.NDArray[np.float64]], str]:
    """Per-attribute ``(N,)`` values for the strips: the table's strengths, else ``values``."""
    if images.strengths is not None:
        return {n: images.strength(n).astype(np.float64) for n in images.attributes}, "strength"
    out: dict[str, npt.NDArray[np.float64]] = {}
    for name, vals in (values or {}).items():
        arr = np.asarray(vals, dtype=np.float64).reshape(-1)
        if len(arr) != len(images):
            raise ValueError(f"values of '{name}' has {len(arr)} entries for {len(images)} images")
        out[name] = arr
    return out, "given value"


def _image_sections(
    images: ImageTable,
    table: str,
    rng: np.random.Generator,
    n_images: int,
    per_attribute: int,
    values: Mapping[str, npt.ArrayLike] | None,
) -> list[Image.Image]:
    sections: list[Image.Image] = []
    n = len(images)
    if n and n_images:
        pick = np.sort(rng.choice(n, size=min(n_images, n), replace=False))
        short = _abbreviations(images.attributes)
        captions = []
        for i in pick.tolist():
            first = str(images.groups[i]) if images.groups is not None else str(images.ids[i])
            vals = [] if images.strengths is None else images.strengths[i].tolist()
            shown = " ".join(f"{s} {v:.2f}" for s, v in zip(short, vals, strict=True))
            captions.append(f"{first}\n{shown}" if shown else first)
        legend = ", ".join(f"{s}={a}" for s, a in zip(short, images.attributes, strict=True))
        first_line = "group" if images.groups is not None else "id"
        title = f"Images of '{table}': {len(pick)} random of {n} (caption: {first_line}"
        title += f"; {legend})" if legend else ")"
        sections.append(image_grid(images.pixels[pick], captions, title=title))
    strips, kind = _strip_values(images, values)
    if n and per_attribute and strips:
        k = min(per_attribute, n)
        # evenly spaced ranks, so each strip spans the whole range from lowest to highest
        ranks = np.round(np.linspace(0, n - 1, k)).astype(np.int64)
        rows = []
        for name, vals in strips.items():
            chosen = np.argsort(vals, kind="stable")[ranks]
            rows.append(attribute_strip(images.pixels[chosen], vals[chosen], name))
        note = f"Attributes of '{table}': {k} of {n} images at evenly spaced {kind} ranks"
        sections += [_heading(note, max(r.width for r in rows), _section_font()), *rows]
    return sections


def dataset_gallery(
    dataset: Dataset,
    *,
    table: str | None = None,
    pairs: str | None = None,
    n_images: int = 32,
    n_pairs: int = 16,
    per_attribute: int = 8,
    seed: int = 0,
    values: Mapping[str, npt.ArrayLike] | None = None,
) -> Image.Image:
    """One page: a title with counts, random images of ``table``, one strip per attribute (by
    the table's strengths, else by ``values``: name -> ``(N,)`` aligned with the table's ids),
    and random labelled pairs of ``pairs``. Tables default to the first ones; the same ``seed``
    gives the same page. Empty sections are left out."""
    if min(n_images, n_pairs, per_attribute) < 0:
        raise ValueError("n_images, n_pairs and per_attribute must be >= 0")
    if table is not None and table not in dataset.images:
        raise UnknownNameError("image table", table, dataset.images)
    if pairs is not None and pairs not in dataset.pairs:
        raise UnknownNameError("pair table", pairs, dataset.pairs)
    table = table if table is not None else next(iter(dataset.images), None)
    pairs = pairs if pairs is not None else next(iter(dataset.pairs), None)
    # separate streams: changing n_images does not change which pairs are shown
    image_rng, pair_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    sections: list[Image.Image] = []
    if table is not None:
        images = dataset.images[table]
        sections += _image_sections(images, table, image_rng, n_images, per_attribute, values)
    pair_table = dataset.pairs[pairs] if pairs is not None else None
    if pair_table is not None and len(pair_table) and n_pairs:
        pick = np.sort(pair_rng.choice(len(pair_table), min(n_pairs, len(pair_table)), False))
        sub = pair_table.subset(pick)
        a, b = dataset.lookup(sub.a), dataset.lookup(sub.b)
        extra = [
            f"{s} conf {c:.2f}"
            for s, c in zip(sub.source.tolist(), sub.confidence.tolist(), strict=True)
        ]
        grid = pair_grid(a, b, sub.label, sub.attribute.tolist(), extra=extra)
        title = f"Pairs of '{pairs}': {len(sub)} random of {len(pair_table)} ('>': A shows more)"
        sections += [_heading(title, grid.width, _section_font()), grid]
    width = max((s.width for s in sections), default=640)

    def listing(tables: Mapping[str, ImageTable] | Mapping[str, PairTable]) -> str:
        return ", ".join(f"{t} {len(v)}" for t, v in tables.items()) or "none"

    counts = (
        f"image tables: {listing(dataset.images)}; pair tables: {listing(dataset.pairs)}; "
        f"attributes: {', '.join(dataset.attribute_names) or 'none'}"
    )
    header = [_heading(dataset.name, width, _font(24), 1), _heading(counts, width, _font(12))]
    return _vstack([*header, *sections])


def save_gallery(image: Image.Image, path: str | Path) -> None:
    """Write ``image`` as a PNG at ``path`` atomically (complete or absent, never half-written)."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")  # explicit: the temporary name ends in ".tmp"
