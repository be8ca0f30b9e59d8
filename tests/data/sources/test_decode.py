"""Decoding (crop, resize), errors naming the file, and the memory-mapped decode cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from outpool.data.sources import images as decode
from outpool.data.sources.images import decode_image, default_cache_dir, load_images
from outpool.errors import DataError

from .conftest import write_image


def _bands(path: Path, w: int, h: int) -> Path:
    """Red | green | blue vertical bands; the central h x h square is exactly the green one."""
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    side = (w - h) // 2
    arr[:, :side] = (255, 0, 0)
    arr[:, side : side + h] = (0, 255, 0)
    arr[:, side + h :] = (0, 0, 255)
    Image.fromarray(arr).save(path)
    return path


def _framed(path: Path, n: int) -> Path:
    """An n x n blue image whose central half (n/2 x n/2) is red."""
    arr = np.zeros((n, n, 3), dtype=np.uint8)
    arr[:] = (0, 0, 255)
    arr[n // 4 : 3 * n // 4, n // 4 : 3 * n // 4] = (255, 0, 0)
    Image.fromarray(arr).save(path)
    return path


def test_non_square_is_centre_cropped(tmp_path: Path) -> None:
    px = decode_image(_bands(tmp_path / "wide.png", 120, 60))
    assert px.shape == (64, 64, 3) and px.dtype == np.uint8
    assert (px[..., 1] > 240).all() and (px[..., 0] < 15).all() and (px[..., 2] < 15).all()
    tall = np.asarray(
        Image.open(_bands(tmp_path / "w.png", 120, 60)).transpose(Image.Transpose.TRANSPOSE)
    )
    Image.fromarray(tall).save(tmp_path / "tall.png")
    assert (decode_image(tmp_path / "tall.png")[..., 1] > 240).all()


def test_crop_is_a_fraction_of_the_frame_not_pixels(tmp_path: Path) -> None:
    small = decode_image(_framed(tmp_path / "s.png", 100), crop=0.5)
    big = decode_image(_framed(tmp_path / "b.png", 256), crop=0.5)
    assert (small[..., 0] > 200).all() and (small[..., 2] < 50).all()  # only the red centre
    assert np.abs(small.astype(int) - big.astype(int)).mean() < 2
    whole = decode_image(tmp_path / "s.png")
    assert whole[0, 0, 2] > 200 and whole[32, 32, 0] > 200  # crop=1 keeps the blue frame


@pytest.mark.parametrize("crop", [0, -0.1, 1.5, float("nan")])
def test_bad_crop(tmp_path: Path, crop: float) -> None:
    with pytest.raises(DataError, match="crop"):
        load_images([write_image(tmp_path / "a.png")], source="t", crop=crop, cache=tmp_path)


def test_missing_and_corrupt_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    with pytest.raises(DataError, match="does not exist") as err:
        decode_image(missing)
    assert err.value.path == missing
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    with pytest.raises(DataError, match="cannot decode") as err:
        decode_image(junk)
    assert err.value.path == junk
    truncated = write_image(tmp_path / "t.jpg", (200, 200))
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(DataError, match="cannot decode"):
        decode_image(truncated)
    csv = tmp_path / "pairs.csv"
    with pytest.raises(DataError) as err:
        load_images([junk], source="t", cache=tmp_path / "c", origins=[(csv, 7)])
    assert err.value.path == csv and err.value.line == 7 and "junk.jpg" in str(err.value)


def test_cache_is_written_once_then_memory_mapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [write_image(tmp_path / f"{i}.png", (40 + i, 50), (i * 40, 0, 0)) for i in range(4)]
    first = load_images(files, source="t", cache=tmp_path / "cache")
    assert isinstance(first, np.memmap) and first.shape == (4, 64, 64, 3)
    assert len(list((tmp_path / "cache").glob("t-*.npy"))) == 1

    def boom(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("decoded again")

    monkeypatch.setattr(decode, "decode_image", boom)
    again = load_images(files, source="t", cache=tmp_path / "cache")
    assert isinstance(again, np.memmap)
    np.testing.assert_array_equal(first, again)
    # other crop, or a file that changed, is another key: it must decode
    with pytest.raises(AssertionError, match="decoded again"):
        load_images(files, source="t", crop=0.5, cache=tmp_path / "cache")
    st = files[0].stat()
    os.utime(files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoded again"):
        load_images(files, source="t", cache=tmp_path / "cache")


def test_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    files = [write_image(tmp_path / "a.png")]
    load_images(files, source="t", cache=tmp_path / "c")
    (cached,) = (tmp_path / "c").glob("*.npy")
    cached.write_bytes(cached.read_bytes()[:100])
    px = load_images(files, source="t", cache=tmp_path / "c")
    assert px.shape == (1, 64, 64, 3) and px[0, 0, 0, 0] == 200


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OUTPOOL_CACHE", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    load_images([write_image(tmp_path / "a.png")], source="t")
    assert list((tmp_path / "here").glob("t-*.npy"))
    monkeypatch.delenv("OUTPOOL_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "outpool"


def test_progress_bar_only_for_many_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    few = [write_image(tmp_path / "few" / f"{i}.png", (8, 8)) for i in range(3)]
    load_images(few, source="t", cache=tmp_path / "c")
    assert "decoding" not in capsys.readouterr().err
    many = [write_image(tmp_path / "many" / f"{i}.png", (8, 8)) for i in range(201)]
    load_images(many, source="t", cache=tmp_path / "c")
    assert "decoding t images" in capsys.readouterr().err
