"""Decode image files to 64x64 RGB once, and cache the result as one memory-mapped array.

``load_images(files, source=...)`` returns ``(N, 64, 64, 3)`` uint8 pixels in the order of
``files``. The first call decodes every file (Pillow: EXIF orientation applied, converted to RGB,
made square by ``fit``, then optionally cut to the ``crop`` fraction of that square, resized with
LANCZOS) and writes one ``.npy`` file to the cache folder; later calls with the same files, sizes,
mtimes, fit, crop and size memory-map that file instead of decoding again.

``fit`` says how a frame that is not square becomes square:

- ``center`` (default): the central square; the long side loses its two ends.
- ``top``: the square at the top of a tall frame (centred across a wide one), for portraits
  whose heads a central square would cut; ``crop`` then keeps the top-centre fraction.
- ``letterbox``: the whole frame, padded to a square with the colour of its border, for
  pictures whose every edge matters (a shoe's toe and heel).

The cache folder is ``cache`` when given, else ``$OUTPOOL_CACHE``, else ``~/.cache/outpool``.
A cache file that is unreadable or has the wrong shape is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from outpool.bench import progress_bar
from outpool.data.images import IMAGE_SIZE
from outpool.errors import DataError, UnknownNameError
from outpool.fileio import atomic_path, default_cache_dir, json_text

CACHE_VERSION = 1  # bump when decoding changes, so old cache files are not reused
PROGRESS_MIN = 200  # decoding fewer images is quick enough to go without a progress bar

# Where an image was named: (file, 1-based line), so errors point at the user's CSV row.
Origin = tuple[Path, int]


FITS = ("center", "top", "letterbox")


def check_fit(fit: str) -> str:
    if fit not in FITS:
        raise UnknownNameError("fit", fit, FITS)
    return fit


def check_crop(crop: float) -> float:
    """``crop`` must be a fraction in (0, 1] of the square frame (never pixels)."""
    if not isinstance(crop, int | float) or not 0.0 < float(crop) <= 1.0:
        raise DataError(f"crop must be a fraction in (0, 1] of the frame, got {crop!r}")
    return float(crop)


def _fail(file: Path, message: str, origin: Origin | None) -> DataError:
    if origin is None:
        return DataError(message, path=file)
    return DataError(f"image '{file}': {message}", path=origin[0], line=origin[1])


def decode_image(
    file: Path,
    *,
    crop: float = 1.0,
    fit: str = "center",
    size: int = IMAGE_SIZE,
    origin: Origin | None = None,
) -> npt.NDArray[np.uint8]:
    """``(size, size, 3)`` uint8: the square of ``file`` that ``fit`` chooses, its ``crop``
    fraction, resized. A missing or undecodable file is a ``DataError`` naming it (and
    ``origin``)."""
    try:
        with Image.open(file) as im:
            im.load()  # decode now: a truncated file must fail here, inside the try
            rgb = _on_white(ImageOps.exif_transpose(im))
    except FileNotFoundError:
        raise _fail(file, "image file does not exist", origin) from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        # PIL raises UnidentifiedImageError (an OSError) for junk, OSError for truncation and
        # SyntaxError/ValueError for some malformed headers.
        raise _fail(file, f"cannot decode image ({exc})", origin) from None
    if fit == "letterbox":
        rgb = _letterbox(rgb)
    w, h = rgb.size
    side = min(w, h) * crop
    left = (w - side) / 2
    top = 0.0 if fit == "top" else (h - side) / 2
    # A float box crops with sub-pixel precision inside the resampling, so fractions of any frame
    # size give the same region.
    out = rgb.resize(
        (size, size), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side)
    )
    return np.asarray(out, dtype=np.uint8)


def _letterbox(im: Image.Image) -> Image.Image:
    """``im`` centred on a square canvas of its long side, filled with its border's mean
    colour (so the padding reads as background, not as a black frame)."""
    w, h = im.size
    if w == h:
        return im
    a = np.asarray(im, dtype=np.float32)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    fill = tuple(round(float(c)) for c in border.mean(axis=0))
    side = max(w, h)
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(im, ((side - w) // 2, (side - h) // 2))
    return canvas


def _on_white(im: Image.Image) -> Image.Image:
    """RGB; transparent pixels are composited over white (not dropped to black)."""
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def cache_key(
    files: Sequence[Path], *, source: str, crop: float, size: int, fit: str = "center"
) -> str:
    """Hash of the source name, the files (in order) with their sizes and mtimes, fit, crop and
    size.

    The order is part of the key because it is the row order of the cached array; loaders pass
    their files in a fixed (sorted) order so the same data always gives the same key.
    """
    entries = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            entries.append([str(f), -1, -1])  # decoding will report it with the right context
            continue
        entries.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    # the default fit leaves the key as it was before fits existed, so old caches stay valid
    shape = [crop, size] if fit == "center" else [crop, size, fit]
    text = json_text([CACHE_VERSION, source, entries, *shape], separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _read_cache(path: Path, n: int, size: int) -> tuple[npt.NDArray[np.uint8], list[int]] | None:
    """The cached pixels and the indices of the files that were skipped, or None to rebuild."""
    skipped: list[int] = []
    skip_file = _skip_file(path)
    if skip_file.exists():
        try:
            skipped = [int(i) for i in json.loads(skip_file.read_text(encoding="utf-8"))]
        except (OSError, ValueError, TypeError):
            return None
    try:
        pixels = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None  # absent, truncated or not .npy: rebuild
    if pixels.dtype != np.uint8 or pixels.shape != (n - len(skipped), size, size, 3):
        return None
    return pixels, skipped


def _skip_file(path: Path) -> Path:
    return path.with_name(path.name + ".skipped.json")


def load_images(
    files: Sequence[Path],
    *,
    source: str,
    crop: float = 1.0,
    fit: str = "center",
    size: int = IMAGE_SIZE,
    cache: Path | None = None,
    origins: Sequence[Origin | None] | None = None,
) -> npt.NDArray[np.uint8]:
    """``(N, size, size, 3)`` uint8 pixels of ``files`` in order: a read-only ``np.memmap`` of
    the cache file (decoded and written on the first call). ``origins[i]`` names the CSV line
    that named ``files[i]``, for error messages. Any file that fails is a ``DataError``."""
    pixels, _ = load_images_skipping(
        files, source=source, crop=crop, fit=fit, size=size, cache=cache, origins=origins
    )
    return pixels


def load_images_skipping(
    files: Sequence[Path],
    *,
    source: str,
    crop: float = 1.0,
    fit: str = "center",
    size: int = IMAGE_SIZE,
    cache: Path | None = None,
    origins: Sequence[Origin | None] | None = None,
    optional: Sequence[bool] | None = None,
) -> tuple[npt.NDArray[np.uint8], list[int]]:
    """``load_images`` where a file marked ``optional`` that cannot be decoded is left out:
    ``(pixels of the other files in order, indices of the files left out)``. A file not marked
    optional that fails is still a ``DataError``."""
    crop, fit = check_crop(crop), check_fit(fit)
    files = [Path(f) for f in files]
    for name, given in (("origins", origins), ("optional", optional)):
        if given is not None and len(given) != len(files):
            raise ValueError(f"{name} must have one entry per file")
    if not files:  # np.load cannot memory-map an empty array
        return np.empty((0, size, size, 3), dtype=np.uint8), []
    folder = Path(cache) if cache is not None else default_cache_dir()
    key = cache_key(files, source=source, crop=crop, size=size, fit=fit)
    path = folder / f"{source}-{key}.npy"
    cached = _read_cache(path, len(files), size)
    # a cache that left out a file this call needs is decoded again, to report that file
    if cached is not None and all(optional is not None and optional[i] for i in cached[1]):
        return cached
    pixels = np.empty((len(files), size, size, 3), dtype=np.uint8)
    failed = np.zeros(len(files), dtype=bool)

    def one(i: int) -> None:
        origin = None if origins is None else origins[i]
        try:
            pixels[i] = decode_image(files[i], crop=crop, fit=fit, size=size, origin=origin)
        except DataError:
            if optional is None or not optional[i]:
                raise
            failed[i] = True

    # Pillow releases the GIL while decoding, so threads give a real speed-up.
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            # map re-raises the first failure in file order, so the error is deterministic
            for _ in progress_bar(
                pool.map(one, range(len(files))),
                f"decoding {source} images" if len(files) > PROGRESS_MIN else "",
                total=len(files),
                unit="img",
            ):
                pass
        except BaseException:
            pool.shutdown(cancel_futures=True)  # do not decode the rest after a failure
            raise
    skipped = np.flatnonzero(failed).tolist()
    try:
        # the list of skipped files first: pixels without it would be read as complete
        if skipped:
            with atomic_path(_skip_file(path)) as tmp:
                tmp.write_text(json_text(skipped), encoding="utf-8")
        else:
            _skip_file(path).unlink(missing_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, pixels[~failed], allow_pickle=False)
    except OSError as exc:
        raise DataError(f"cannot write the image cache ({exc})", path=path) from None
    cached = _read_cache(path, len(files), size)
    if cached is None:  # pragma: no cover - a file we just wrote should always read back
        raise DataError("image cache file did not read back", path=path)
    return cached
