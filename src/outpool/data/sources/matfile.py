"""Reading MATLAB ``.mat`` files with every problem reported as a ``DataError``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from outpool.errors import DataError


def read_mat(path: Path, keys: Sequence[str]) -> dict[str, Any]:
    """The variables ``keys`` of the ``.mat`` file ``path``; a missing one names the field."""
    import scipy.io  # slow to import; only the .mat sources need it

    try:
        data = scipy.io.loadmat(str(path), variable_names=list(keys))
    except FileNotFoundError:
        raise DataError("file does not exist", path=path) from None
    except (
        OSError,
        ValueError,
        TypeError,
        NotImplementedError,
        scipy.io.matlab.MatReadError,
    ) as exc:
        # NotImplementedError: MATLAB v7.3 (HDF5) files, which scipy cannot read
        raise DataError(f"not a readable MATLAB file ({exc})", path=path) from None
    for key in keys:
        if key not in data:
            raise DataError("missing variable", path=path, field=key)
    return {k: data[k] for k in keys}


def strings(value: Any, *, path: Path, field: str) -> list[str]:
    """A MATLAB cell array of strings (any shape) as a flat list of Python strings."""
    arr = np.asarray(value)
    if arr.dtype.kind == "U":  # char matrix: one string per row
        return [str(s).strip() for s in arr.reshape(len(arr), -1)[:, 0]]
    out: list[str] = []
    for item in arr.reshape(-1):
        cell = np.asarray(item).reshape(-1)
        if cell.dtype.kind != "U" or len(cell) != 1:
            raise DataError("expected a cell array of strings", path=path, field=field)
        out.append(str(cell[0]))
    return out


def vector(
    value: Any, *, path: Path, field: str, length: int | None = None
) -> npt.NDArray[np.int64 | np.float64]:
    """A MATLAB row or column vector as a flat numeric array; integer types become int64 so
    that later subtractions cannot wrap (the stored uint8 would)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "uifb" or (arr.ndim == 2 and min(arr.shape) > 1) or arr.ndim > 2:
        raise DataError(
            f"expected a numeric vector, got {arr.shape} {arr.dtype}", path=path, field=field
        )
    flat = arr.reshape(-1)
    if length is not None and len(flat) != length:
        raise DataError(f"expected {length} values, got {len(flat)}", path=path, field=field)
    if arr.dtype.kind in "uib":
        return flat.astype(np.int64)
    return flat.astype(np.float64)


def cells(value: Any, *, path: Path, field: str, count: int) -> list[Any]:
    """The ``count`` entries of a 1 x ``count`` (or ``count`` x 1) MATLAB cell array."""
    arr = np.asarray(value)
    if arr.dtype != object or arr.size != count:
        raise DataError(
            f"expected a cell array of {count} entries, got {arr.shape}", path=path, field=field
        )
    return list(arr.reshape(-1))
