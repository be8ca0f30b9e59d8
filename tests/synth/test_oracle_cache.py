"""The pixel oracle's calibration is cached on disk in ``default_cache_dir()``, keyed by the
code; a second process loads it instead of rendering again; a corrupt file is recomputed.

A real calibration takes tens of seconds, so these tests calibrate on ``N`` renders (about a
second) with their own seed, in a temporary ``OUTPOOL_CACHE``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from outpool.synth import oracle

SEED, N = 1, 100
First = tuple[np.ndarray, np.ndarray, bytes]  # raw_q, true_q, the cache file's bytes


def _no_render(*args: object, **kwargs: object) -> None:
    raise AssertionError("rendered again instead of loading the cached calibration")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("oracle-cache")
    oracle._calibration.cache_clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OUTPOOL_CACHE", str(folder))
        yield folder
    oracle._calibration.cache_clear()


@pytest.fixture(scope="module")
def first(cache: Path) -> First:
    """The one real computation of this module: (raw_q, true_q, the cache file's bytes)."""
    assert list(cache.iterdir()) == []
    raw_q, true_q = oracle._calibration(seed=SEED, n=N)
    files = list(cache.glob("oracle-calibration-*.npz"))
    assert len(files) == 1 and list(cache.iterdir()) == files
    return raw_q.copy(), true_q.copy(), files[0].read_bytes()


@pytest.fixture
def fresh_process(first: First) -> Iterator[Path]:
    """What a new process sees: an empty in-memory cache; yields the calibration file (put
    back as the first call wrote it afterwards)."""
    path = oracle._calibration_file(SEED, N)
    oracle._calibration.cache_clear()
    yield path
    oracle._calibration.cache_clear()
    path.write_bytes(first[2])


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as saved:
        return saved["raw_q"], saved["true_q"]


def check(raw_q: np.ndarray, true_q: np.ndarray, first: First) -> None:
    assert raw_q.shape == true_q.shape == (201, 6)
    assert raw_q.dtype == true_q.dtype == np.float32
    assert np.array_equal(raw_q, first[0], equal_nan=True)
    assert np.array_equal(true_q, first[1])


def test_first_call_writes_one_file(cache: Path, first: First) -> None:
    path = oracle._calibration_file(SEED, N)
    assert path.parent == cache and path.name.startswith("oracle-calibration-")
    assert path.suffix == ".npz" and path.read_bytes() == first[2]  # not rewritten since
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temporary file left
    check(*load(path), first)
    # quantiles go up (true values may go down: a measure that falls as its attribute rises)
    assert (np.diff(first[0], axis=0) >= 0).all()
    assert np.isfinite(first[0]).all() and np.isfinite(first[1]).all()


def test_the_key_follows_seed_count_and_cache_dir(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = {oracle._calibration_file(s, n).name for s, n in ((1, 100), (2, 100), (1, 101))}
    assert len(names) == 3
    assert oracle._calibration_file(1, 100) == oracle._calibration_file(1, 100)
    monkeypatch.setenv("OUTPOOL_CACHE", str(tmp_path))
    assert oracle._calibration_file(1, 100).parent == tmp_path


def test_second_process_loads_without_rendering(
    first: First, fresh_process: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oracle, "render", _no_render)
    raw_q, true_q = oracle._calibration(seed=SEED, n=N)
    check(raw_q, true_q, first)
    assert oracle._calibration(seed=SEED, n=N)[0] is raw_q  # then from memory


@pytest.mark.slow
def test_garbage_file_is_recomputed(
    first: First, fresh_process: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_process.write_bytes(b"not an npz file" * 10)
    calls: list[int] = []
    real = oracle.render

    def counted(*args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(oracle, "render", counted)
    raw_q, true_q = oracle._calibration(seed=SEED, n=N)
    assert calls == [1]  # computed again, not trusted
    check(raw_q, true_q, first)
    check(*load(fresh_process), first)  # and a good file is back


def _truncated(good: bytes) -> bytes:
    return good[: len(good) // 2]


def _bad_crc(good: bytes) -> bytes:
    data = bytearray(good)
    data[200] ^= 0xFF  # inside raw_q's stored bytes
    return bytes(data)


def _wrong_shape(good: bytes) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, raw_q=np.zeros(3, np.float32), true_q=np.zeros(3, np.float32))
    return buf.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(_truncated, id="truncated"),
        pytest.param(_bad_crc, id="bad-crc"),
        pytest.param(lambda good: b"", id="empty"),
        pytest.param(_wrong_shape, id="wrong-shape"),
    ],
)
def test_corrupt_file_is_recomputed(
    first: First, fresh_process: Path, corrupt: Callable[[bytes], bytes]
) -> None:
    fresh_process.write_bytes(corrupt(first[2]))
    raw_q, true_q = oracle._calibration(seed=SEED, n=N)
    check(raw_q, true_q, first)
    check(*load(fresh_process), first)
