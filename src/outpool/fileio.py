"""How the project writes files: atomically (an output is either complete or absent, never
half-written), as strict JSON, and with people's text in CSV cells a spreadsheet shows as text."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from outpool.errors import DataError

CACHE_ENV = "OUTPOOL_CACHE"


def default_cache_dir() -> Path:
    """Where derived data is cached (decoded images, the oracle's calibration):
    ``$OUTPOOL_CACHE`` or ``~/.cache/outpool``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "outpool"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def exclusive(lock: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``lock`` (created if missing) for the block: one
    process at a time, across processes on this machine or a shared POSIX file system."""
    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def try_exclusive(lock: str | Path) -> Iterator[bool]:
    """``exclusive`` without waiting: yields False (and holds nothing) while another process
    holds ``lock``."""
    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it over ``path`` in one rename.

    If the block raises, the temporary file is removed and ``path`` keeps its old content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def check_output_dir(path: str | Path, *, overwrite: bool) -> bool:
    """Whether writing folder ``path`` replaces a non-empty one; an error when that is not
    allowed. Call it before long work, so a user is not told only at the end."""
    from outpool.errors import DataError  # errors imports nothing from here; keep it that way

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DataError("exists and is not a folder", path=path)
    replace = path.exists() and any(path.iterdir())
    if replace and not overwrite:
        raise DataError("already exists and is not empty; pass --force to replace it", path=path)
    return replace


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it becomes ``path``.

    An existing non-empty ``path`` is an error unless ``overwrite``; then the new folder is
    built completely first and only then swapped in, so a failure (or an interrupt) while
    writing keeps the old one intact and leaves no half-written output.
    """
    path = Path(path).resolve()  # "." or "ds/" have no usable name for the siblings below
    replace = check_output_dir(path, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.new-", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if not replace:
            os.replace(tmp, path)  # renaming over an empty folder is allowed
            return
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
        os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.replace(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def sheet_safe(text: str) -> str:
    """``text`` for a CSV cell a spreadsheet shows as text: a leading ``'`` before a formula
    start (and before a leading ``'``, so ``sheet_text`` restores every text exactly)."""
    return "'" + text if text.startswith((*_FORMULA_START, "'")) else text


def sheet_text(cell: str) -> str:
    """The text ``sheet_safe`` wrote into ``cell``."""
    return cell[1:] if cell.startswith("'") else cell


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_text(value: Any, **kwargs: Any) -> str:
    """Strict JSON (what every JSON parser reads): an infinite float is written as the string
    ``"inf"`` or ``"-inf"`` (a config reads it back as the float), NaN as null. ``kwargs`` go
    to ``json.dumps``."""
    return json.dumps(_finite(value), allow_nan=False, **kwargs)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex); a missing file is a ``DataError`` naming it."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    return digest.hexdigest()
