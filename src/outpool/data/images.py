"""Image tables: ids, 64x64 RGB pixels and optional group, attribute strengths and provenance.

On disk a table ``NAME`` is two or three files in one folder:

- ``NAME.npy``: the pixels, ``(N, 64, 64, 3)`` uint8, written by ``np.save`` so later loads are
  memory-mapped (images are decoded once, never again).
- ``NAME.csv``: header ``id,group,<attr1>,<attr2>,...``; row ``i`` describes image ``i`` of the
  ``.npy``. ``group`` is always present (empty when the table has no groups; a column of only
  empty groups reads back as no groups). Strengths are
  written with the fewest digits that read back to the same float32.
- ``NAME.provenance.jsonl`` (only when the table has provenance): line ``i`` is a JSON object for
  image ``i`` whose first key is ``"id"``.

Attributes are keyed by name, never by column index.
"""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from outpool.errors import DataError, UnknownNameError
from outpool.fileio import atomic_path, json_text

IMAGE_SIZE = 64
_RESERVED_COLUMNS = ("id", "group")
_NPY_MAGIC = b"\x93NUMPY"
_FLOAT32_LIMIT = float(2**128 - 2**103)  # float64 values from here on round to inf in float32


def format_float(value: float) -> str:
    """Shortest text that reads back (via ``float``) to the same float32 as ``value``."""
    v = np.float32(value)
    text = str(v)
    # Parsing goes through float64 first; fall back to the exact float64 repr in the (rare) case
    # double rounding would change the float32, so files always round-trip exactly.
    if np.float32(float(text)) != v:
        text = repr(float(v))
    return text


def json_default(obj: Any) -> Any:
    """``json.dumps`` hook: numpy arrays and scalars become lists and Python numbers."""
    if isinstance(obj, np.ndarray | np.generic):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def check_ids(ids: npt.NDArray[np.str_], what: str = "image") -> None:
    """Ids must be non-empty, unique and free of commas and line breaks."""
    for i in ids.tolist():
        if not i or any(c in i for c in ",\n\r"):
            raise DataError(f"{what} id {i!r} must be non-empty without commas or line breaks")
    if len(np.unique(ids)) != len(ids):
        values, counts = np.unique(ids, return_counts=True)
        dup = values[counts > 1][:5].tolist()
        raise DataError(f"duplicate {what} id(s): {', '.join(map(repr, dup))}")


def check_finite(
    values: npt.NDArray[np.floating[Any]],
    ids: npt.NDArray[np.str_],
    names: Sequence[str],
    what: str = "strength",
) -> None:
    """Every value of ``(N, K)`` must be finite; the error names the attribute and the image."""
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        i, k = bad[0]
        raise DataError(
            f"{what} of image '{ids[i]}' is {values[i, k]} (must be a finite number)",
            field=names[k],
        )


@dataclass(frozen=True, eq=False)
class ImageTable:
    """A table of N images.

    ``pixels`` is ``(N, 64, 64, 3)`` uint8 (a read-only ``np.memmap`` after ``load``); ``groups``
    ``(N,)`` str (identity, category or style cluster); ``strengths`` ``(N, K)`` float32 with one
    column per name in ``attributes``; ``provenance`` one JSON-able dict per image.
    """

    ids: npt.NDArray[np.str_]
    pixels: npt.NDArray[np.uint8]
    groups: npt.NDArray[np.str_] | None = None
    attributes: tuple[str, ...] = ()
    strengths: npt.NDArray[np.float32] | None = None
    provenance: tuple[dict[str, Any], ...] | None = None

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)  # frozen: normalise once, here
        ids = np.asarray(self.ids, dtype=np.str_).reshape(-1)
        set_("ids", ids)
        n = len(ids)
        check_ids(ids)
        pixels = self.pixels
        if not isinstance(pixels, np.ndarray):  # keep memmaps as they are: no copy
            pixels = np.asarray(pixels)
            set_("pixels", pixels)
        if pixels.dtype != np.uint8 or pixels.shape != (n, IMAGE_SIZE, IMAGE_SIZE, 3):
            raise DataError(
                f"pixels must be ({n}, {IMAGE_SIZE}, {IMAGE_SIZE}, 3) uint8 for {n} ids, "
                f"got {pixels.shape} {pixels.dtype}"
            )
        if self.groups is not None:
            groups = np.asarray(self.groups, dtype=np.str_).reshape(-1)
            if len(groups) != n:
                raise DataError(f"{len(groups)} groups for {n} images")
            set_("groups", groups)
        attributes = tuple(self.attributes)
        set_("attributes", attributes)
        for name in attributes:
            if not name or name in _RESERVED_COLUMNS or any(c in name for c in "\n\r"):
                raise DataError(f"invalid attribute name {name!r}")
        if len(set(attributes)) != len(attributes):
            raise DataError(f"duplicate attribute names in {attributes}")
        if self.strengths is None:
            if attributes:
                raise DataError(f"attributes {attributes} given without strengths")
        else:
            strengths = np.asarray(self.strengths, dtype=np.float32)
            if strengths.shape != (n, len(attributes)):
                raise DataError(
                    f"strengths must be ({n}, {len(attributes)}) for {n} images and "
                    f"{len(attributes)} attributes, got {strengths.shape}"
                )
            check_finite(strengths, ids, attributes)
            set_("strengths", strengths if attributes else None)
        if self.provenance is not None:
            provenance = tuple(self.provenance)
            if len(provenance) != n:
                raise DataError(f"{len(provenance)} provenance records for {n} images")
            for i, rec in enumerate(provenance):
                if not isinstance(rec, dict) or "id" in rec:
                    raise DataError(f"provenance of image '{ids[i]}' must be a dict without 'id'")
            set_("provenance", provenance)

    def __len__(self) -> int:
        return len(self.ids)

    @functools.cached_property
    def _sorter(self) -> npt.NDArray[np.intp]:
        return np.argsort(self.ids, kind="stable")

    def positions(self, ids: Sequence[str] | npt.NDArray[np.str_]) -> npt.NDArray[np.int64]:
        """Row of each id, ``-1`` where the table does not hold it (vectorised lookup)."""
        query = np.asarray(ids, dtype=np.str_).reshape(-1)
        if len(self) == 0 or len(query) == 0:
            return np.full(len(query), -1, dtype=np.int64)
        sorted_ids = self.ids[self._sorter]
        at = np.minimum(np.searchsorted(sorted_ids, query), len(self) - 1)
        rows = self._sorter[at].astype(np.int64)
        rows[sorted_ids[at] != query] = -1
        return rows

    def index_of(self, ids: Sequence[str] | npt.NDArray[np.str_]) -> npt.NDArray[np.int64]:
        """Row of each id; unknown ids raise ``DataError`` naming up to five of them."""
        rows = self.positions(ids)
        if (rows < 0).any():
            missing = np.asarray(ids, dtype=np.str_).reshape(-1)[rows < 0]
            shown = ", ".join(repr(m) for m in missing[:5].tolist())
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DataError(f"unknown image id(s) {shown}{more}")
        return rows

    def subset(self, indices: Sequence[int] | npt.NDArray[Any]) -> ImageTable:
        """The rows ``indices`` (integer positions or a boolean mask), in that order."""
        idx = np.asarray(indices)
        if idx.dtype == np.bool_:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        return ImageTable(
            ids=self.ids[idx],
            pixels=np.asarray(self.pixels[idx]),
            groups=None if self.groups is None else self.groups[idx],
            attributes=self.attributes,
            strengths=None if self.strengths is None else self.strengths[idx],
            provenance=None if self.provenance is None else tuple(self.provenance[i] for i in idx),
        )

    def strength(self, name: str) -> npt.NDArray[np.float32]:
        """The ``(N,)`` strengths of attribute ``name``."""
        if name not in self.attributes or self.strengths is None:
            raise UnknownNameError("attribute", name, self.attributes)
        return self.strengths[:, self.attributes.index(name)]

    @staticmethod
    def concat(tables: Iterable[ImageTable]) -> ImageTable:
        """Stack tables with equal attributes; missing groups become ``""``, provenance ``{}``."""
        tables = list(tables)
        if not tables:
            raise ValueError("concat needs at least one table")
        attributes = tables[0].attributes
        for t in tables[1:]:
            if t.attributes != attributes:
                raise DataError(
                    f"cannot concat tables with attributes {attributes} and {t.attributes}"
                )
        groups = None
        if any(t.groups is not None for t in tables):
            groups = np.concatenate(
                [np.full(len(t), "") if t.groups is None else t.groups for t in tables]
            )
        provenance = None
        if any(t.provenance is not None for t in tables):
            provenance = tuple(
                rec
                for t in tables
                for rec in (
                    t.provenance if t.provenance is not None else [{} for _ in range(len(t))]
                )
            )
        strengths = [t.strengths for t in tables if t.strengths is not None]
        return ImageTable(
            ids=np.concatenate([t.ids for t in tables]),
            pixels=np.concatenate([np.asarray(t.pixels) for t in tables]),
            groups=groups,
            attributes=attributes,
            strengths=np.concatenate(strengths) if strengths else None,
            provenance=provenance,
        )

    # ---- files -------------------------------------------------------------------------------

    def save(self, folder: str | Path, name: str) -> None:
        """Write ``NAME.npy``, ``NAME.csv`` and (with provenance) ``NAME.provenance.jsonl``."""
        folder = Path(folder)
        lines: list[str] = []
        if self.provenance is not None:
            for i, rec in zip(self.ids.tolist(), self.provenance, strict=True):
                try:
                    lines.append(json_text({"id": i, **rec}, default=json_default))
                except (TypeError, ValueError) as exc:
                    raise DataError(f"provenance of image '{i}' is not JSON-able: {exc}") from None
        with atomic_path(folder / f"{name}.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.asarray(self.pixels), allow_pickle=False)  # a handle: no ".npy" added
        with atomic_path(folder / f"{name}.csv") as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow([*_RESERVED_COLUMNS, *self.attributes])
            groups = self.groups.tolist() if self.groups is not None else [""] * len(self)
            for i, row_id in enumerate(self.ids.tolist()):
                values = [] if self.strengths is None else self.strengths[i].tolist()
                writer.writerow([row_id, groups[i], *map(format_float, values)])
        prov_path = folder / f"{name}.provenance.jsonl"
        if self.provenance is not None:
            with atomic_path(prov_path) as tmp:
                tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        elif prov_path.exists():
            prov_path.unlink()  # a stale file from an earlier save would be read back

    @classmethod
    def load(cls, folder: str | Path, name: str, *, mmap: bool = True) -> ImageTable:
        """Read a table written by ``save``; every problem is a ``DataError`` naming the file."""
        folder = Path(folder)
        npy, csv_path = folder / f"{name}.npy", folder / f"{name}.csv"
        pixels = _load_pixels(npy, mmap=mmap)
        ids, groups, attributes, strengths = _read_csv(csv_path)
        if len(ids) != len(pixels):
            raise DataError(
                f"{len(ids)} rows but {npy.name} holds {len(pixels)} images", path=csv_path
            )
        prov_path = folder / f"{name}.provenance.jsonl"
        provenance = _read_provenance(prov_path, ids) if prov_path.exists() else None
        return cls(
            ids=ids,
            pixels=pixels,
            groups=groups if (groups != "").any() else None,
            attributes=attributes,
            strengths=strengths if attributes else None,
            provenance=provenance,
        )


def _load_pixels(path: Path, *, mmap: bool) -> npt.NDArray[np.uint8]:
    try:
        with open(path, "rb") as fh:
            magic = fh.read(len(_NPY_MAGIC))
    except FileNotFoundError:
        raise DataError("image file does not exist", path=path) from None
    except OSError as exc:
        raise DataError(f"cannot read image file ({exc})", path=path) from None
    if magic != _NPY_MAGIC:
        raise DataError("not a .npy array file (corrupt or wrong format)", path=path)
    try:
        # memmap raises ValueError when the file is shorter than its header claims (truncated)
        pixels = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise DataError(f"corrupt or truncated .npy file ({exc})", path=path) from None
    if (
        pixels.dtype != np.uint8
        or pixels.ndim != 4
        or pixels.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3)
    ):
        raise DataError(
            f"expected (N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3) uint8 pixels, "
            f"got {pixels.shape} {pixels.dtype}",
            path=path,
        )
    return pixels


def read_rows(path: Path) -> Iterable[tuple[int, list[str]]]:
    """CSV rows with their 1-based starting file line; blank lines are skipped."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: spreadsheets add a BOM
            reader = csv.reader(fh, strict=True)
            line = 1
            try:
                for row in reader:
                    if row:
                        yield line, row
                    line = reader.line_num + 1
            except csv.Error as exc:
                raise DataError(f"malformed CSV ({exc})", path=path, line=line) from None
    except FileNotFoundError:
        raise DataError("file does not exist", path=path) from None
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text", path=path) from None


def parse_float(text: str, *, path: Path, line: int, field: str) -> float:
    """A finite number (float32 range), else ``DataError`` at ``path``/``line``/``field``."""
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"not a number: {text!r}", path=path, line=line, field=field) from None
    if not abs(value) < _FLOAT32_LIMIT:  # also catches NaN
        raise DataError(f"{text!r} is not a finite number", path=path, line=line, field=field)
    return value


def _read_csv(
    path: Path,
) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.str_], tuple[str, ...], npt.NDArray[np.float32]]:
    rows = iter(read_rows(path))
    try:
        _, header = next(rows)
    except StopIteration:
        raise DataError("empty file; expected header id,group,<attributes>", path=path) from None
    header = [h.strip() for h in header]
    if header[:2] != list(_RESERVED_COLUMNS):
        raise DataError(
            f"header must start with id,group; got {','.join(header)}", path=path, line=1
        )
    attributes = tuple(header[2:])
    if len(set(attributes)) != len(attributes) or "" in attributes:
        raise DataError("attribute columns must be non-empty and unique", path=path, line=1)
    ids: list[str] = []
    groups: list[str] = []
    values: list[list[float]] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        if len(row) != len(header):
            raise DataError(f"{len(row)} fields, expected {len(header)}", path=path, line=line)
        row_id = row[0]
        if not row_id or any(c in row_id for c in ",\n\r"):
            raise DataError(f"invalid id {row_id!r}", path=path, line=line, field="id")
        if row_id in seen:
            raise DataError(
                f"duplicate id '{row_id}' (first on line {seen[row_id]})",
                path=path,
                line=line,
                field="id",
            )
        seen[row_id] = line
        ids.append(row_id)
        groups.append(row[1])
        values.append(
            [
                parse_float(t, path=path, line=line, field=a)
                for t, a in zip(row[2:], attributes, strict=True)
            ]
        )
    strengths = np.asarray(values, dtype=np.float32).reshape(len(ids), len(attributes))
    return np.asarray(ids, dtype=np.str_), np.asarray(groups, dtype=np.str_), attributes, strengths


def _read_provenance(path: Path, ids: npt.NDArray[np.str_]) -> tuple[dict[str, Any], ...]:
    records: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as fh:
        for line_no, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                rec = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"not valid JSON ({exc.msg})", path=path, line=line_no) from None
            if not isinstance(rec, dict):
                raise DataError("expected a JSON object", path=path, line=line_no)
            i = len(records)
            expected = str(ids[i]) if i < len(ids) else None
            if rec.get("id") != expected:
                raise DataError(
                    f"id {rec.get('id')!r} but image {i + 1} of the table is {expected!r}",
                    path=path,
                    line=line_no,
                    field="id",
                )
            del rec["id"]
            records.append(rec)
    if len(records) != len(ids):
        raise DataError(f"{len(records)} records for {len(ids)} images", path=path)
    return tuple(records)


def read_header(
    path: Path,
    rows: Iterator[tuple[int, list[str]]],
    allowed: tuple[str, ...],
    required: tuple[str, ...],
) -> list[str]:
    """The stripped header row of a CSV whose first row ``rows`` yields: every ``required``
    column present, none unknown (when ``allowed`` is given), none repeated; else a
    ``DataError`` on line 1 naming the columns and what was expected."""
    try:
        _, header = next(rows)
    except StopIteration:
        raise DataError(f"empty file; expected a header {','.join(required)}", path=path) from None
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    unknown = [c for c in header if c not in allowed] if allowed else []
    repeated = sorted({c for c in header if header.count(c) > 1})
    problems = [
        f"{what} column(s) {', '.join(cols)}"
        for what, cols in (("missing", missing), ("unknown", unknown), ("repeated", repeated))
        if cols
    ]
    if problems:
        optional = [c for c in allowed if c not in required]
        expected = ",".join(required) + (f"[,{','.join(optional)}]" if optional else "")
        raise DataError(f"{'; '.join(problems)}; expected {expected}", path=path, line=1)
    return header
