"""Dataset folders: a manifest, image tables, pair tables and (synthetic world) true values.

Layout::

    DIR/
      dataset.json        {"format": "outpool-dataset", "version": 1, "name": ...,
                           "attributes": [{"name": ..., "description": ...}, ...],
                           "image_tables": [...], "pair_tables": [...], "meta": {...}}
      images/<table>.npy, images/<table>.csv [, images/<table>.provenance.jsonl]
      pairs/<table>.csv
      truth/<table>.csv   optional: header id,<attr1>,...; true attribute values, read only by
                          ``Dataset.load_truth`` so nothing can train on them by accident

Image ids are unique across all image tables, and every pair names a dataset attribute and two
images of the dataset. ``save`` builds the folder under a temporary name and renames it into
place, so a failure never leaves a half-written (or half-overwritten) dataset.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from outpool.data.images import (
    IMAGE_SIZE,
    ImageTable,
    check_finite,
    check_ids,
    json_default,
    read_rows,
)
from outpool.data.pairs import PairTable
from outpool.errors import DataError, UnknownNameError
from outpool.fileio import atomic_dir, atomic_path, json_text

FORMAT = "outpool-dataset"
VERSION = 1
MANIFEST = "dataset.json"
_TABLE_NAME = re.compile(
    r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
)  # a plain file name: no paths, no dots first

Truth = tuple[npt.NDArray[np.str_], npt.NDArray[np.float64]]


@dataclass(frozen=True)
class AttributeInfo:
    """An attribute of the dataset, keyed by name everywhere."""

    name: str
    description: str = ""


def _check_table_name(name: str, where: str | Path | None = None) -> None:
    if not isinstance(name, str) or not _TABLE_NAME.fullmatch(name):
        raise DataError(f"invalid table name {name!r} (letters, digits, _ . - only)", path=where)


@dataclass
class Dataset:
    """Named image and pair tables over a fixed list of attributes, plus free JSON ``meta``."""

    name: str
    attributes: tuple[AttributeInfo, ...]
    images: dict[str, ImageTable] = field(default_factory=dict)
    pairs: dict[str, PairTable] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.attributes = tuple(self.attributes)
        self.validate()

    def validate(self) -> None:
        """Unique attribute names and image ids; pairs name known attributes and images."""
        names = self.attribute_names
        if len(set(names)) != len(names) or "" in names:
            raise DataError(f"attribute names must be non-empty and unique: {names}")
        for table in (*self.images, *self.pairs):
            _check_table_name(table)
        owner: dict[str, str] = {}
        for table, images in self.images.items():
            for i in images.ids.tolist():
                if i in owner:
                    raise DataError(
                        f"image id '{i}' is in both image tables '{owner[i]}' and '{table}'"
                    )
                owner[i] = table
        for table, pairs in self.pairs.items():
            unknown = set(pairs.attributes_present()) - set(names)
            if unknown:
                raise DataError(
                    f"pair table '{table}': {UnknownNameError('attribute', min(unknown), names)}"
                )
            for side in (pairs.a, pairs.b):
                missing = [i for i in side.tolist() if i not in owner]
                if missing:
                    raise DataError(f"pair table '{table}' names a missing image '{missing[0]}'")

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes)

    def attribute(self, name: str) -> AttributeInfo:
        for info in self.attributes:
            if info.name == name:
                return info
        raise UnknownNameError("attribute", name, self.attribute_names)

    def image_ids(self) -> npt.NDArray[np.str_]:
        """All image ids, table by table in insertion order."""
        if not self.images:
            return np.asarray([], dtype=np.str_)
        return np.concatenate([t.ids for t in self.images.values()])

    def lookup(self, ids: Sequence[str] | npt.NDArray[np.str_]) -> npt.NDArray[np.uint8]:
        """``(n, 64, 64, 3)`` uint8 pixels of ``ids``, in order, from whichever table holds each."""
        query = np.asarray(ids, dtype=np.str_).reshape(-1)
        out = np.empty((len(query), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        found = np.zeros(len(query), dtype=bool)
        for table in self.images.values():
            rows = table.positions(query)
            hit = rows >= 0
            if hit.any():
                out[hit] = table.pixels[rows[hit]]  # one gather per table
                found |= hit
        if not found.all():
            missing = query[~found]
            shown = ", ".join(repr(m) for m in missing[:5].tolist())
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DataError(f"unknown image id(s) {shown}{more}")
        return out

    # ---- files -------------------------------------------------------------------------------

    def _manifest(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "attributes": [{"name": a.name, "description": a.description} for a in self.attributes],
            "image_tables": list(self.images),
            "pair_tables": list(self.pairs),
            "meta": self.meta,
        }

    def save(
        self,
        folder: str | Path,
        *,
        truth: Mapping[str, Truth] | None = None,
        overwrite: bool = False,
    ) -> None:
        """Write the dataset to ``folder``; ``truth`` maps a table name to ``(ids, (N, K) values)``
        with one column per dataset attribute.

        An existing non-empty ``folder`` is an error unless ``overwrite``; then the new dataset is
        built completely first, and only then swapped in, so a failure keeps the old one intact.
        """
        self.validate()
        with atomic_dir(folder, overwrite=overwrite) as tmp:
            self._write(tmp, truth)

    def _write(self, folder: Path, truth: Mapping[str, Truth] | None) -> None:
        for table, images in self.images.items():
            images.save(folder / "images", table)
        for table, pairs in self.pairs.items():
            pairs.save(folder / "pairs" / f"{table}.csv")
        for table, (ids, values) in (truth or {}).items():
            _save_truth(folder / "truth" / f"{table}.csv", ids, values, self.attribute_names)
        _write_manifest(folder / MANIFEST, self._manifest())  # last: marks the folder complete

    @classmethod
    def load(cls, folder: str | Path, *, mmap: bool = True) -> Dataset:
        """Read and validate a dataset folder; each problem is a ``DataError`` naming the file."""
        folder = Path(folder)
        manifest = _read_manifest(folder)
        names = [a.name for a in manifest["attributes"]]
        images = {
            t: ImageTable.load(folder / "images", t, mmap=mmap) for t in manifest["image_tables"]
        }
        owner: dict[str, str] = {}
        for table, tab in images.items():
            for i in tab.ids.tolist():
                if i in owner:
                    raise DataError(
                        f"image id '{i}' is also in image table '{owner[i]}'",
                        path=folder / "images" / f"{table}.csv",
                    )
                owner[i] = table
        pairs = {
            t: PairTable.load(folder / "pairs" / f"{t}.csv", attributes=names, image_ids=owner)
            for t in manifest["pair_tables"]
        }
        return cls(
            name=manifest["name"],
            attributes=manifest["attributes"],
            images=images,
            pairs=pairs,
            meta=manifest["meta"],
        )

    @staticmethod
    def load_truth(
        folder: str | Path, table: str
    ) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.float64], tuple[str, ...]]:
        """``(ids (N,), values (N, K) float64, attribute names (K,))`` of ``truth/<table>.csv``."""
        _check_table_name(table)
        path = Path(folder) / "truth" / f"{table}.csv"
        rows = iter(read_rows(path))
        try:
            _, header = next(rows)
        except StopIteration:
            raise DataError("empty file; expected header id,<attributes>", path=path) from None
        header = [h.strip() for h in header]
        names = tuple(header[1:])
        if header[:1] != ["id"] or len(set(names)) != len(names) or "" in names:
            raise DataError("header must be id,<unique attribute names>", path=path, line=1)
        ids: list[str] = []
        values: list[list[float]] = []
        seen: set[str] = set()
        for line, row in rows:
            if len(row) != len(header):
                raise DataError(f"{len(row)} fields, expected {len(header)}", path=path, line=line)
            if not row[0] or row[0] in seen:
                raise DataError(
                    f"empty or duplicate id {row[0]!r}", path=path, line=line, field="id"
                )
            seen.add(row[0])
            ids.append(row[0])
            values.append([])
            for name, text in zip(names, row[1:], strict=True):
                try:
                    value = float(text)
                except ValueError:
                    value = float("nan")
                if not np.isfinite(value):
                    raise DataError(
                        f"{text!r} is not a finite number", path=path, line=line, field=name
                    )
                values[-1].append(value)
        arr = np.asarray(values, dtype=np.float64).reshape(len(ids), len(names))
        return np.asarray(ids, dtype=np.str_), arr, names

    @staticmethod
    def add_tables(
        folder: str | Path,
        *,
        images: Mapping[str, ImageTable],
        pairs: Mapping[str, PairTable],
        overwrite: bool = False,
    ) -> None:
        """Add image and pair tables to the dataset at ``folder``, checked against it (unique
        image ids, pairs naming known images and attributes). A table of the same name is an
        error unless ``overwrite``. The manifest is written last: until then the dataset reads
        as it was."""
        folder = Path(folder)
        dataset = Dataset.load(folder)
        for name in [*images, *pairs]:
            _check_table_name(name)
        clash = [n for n in images if n in dataset.images]
        clash += [n for n in pairs if n in dataset.pairs]
        if clash and not overwrite:
            raise DataError(f"table(s) {', '.join(clash)} exist (--force replaces)", path=folder)
        merged = Dataset(
            name=dataset.name,
            attributes=dataset.attributes,
            images={**dataset.images, **images},
            pairs={**dataset.pairs, **pairs},
            meta=dataset.meta,
        )
        merged.validate()
        for name, table in images.items():
            table.save(folder / "images", name)
        for name, pair_table in pairs.items():
            pair_table.save(folder / "pairs" / f"{name}.csv")
        _write_manifest(folder / MANIFEST, merged._manifest())

    @staticmethod
    def save_pairs(folder: str | Path, name: str, table: PairTable) -> None:
        """Add or replace pair table ``name`` of the dataset at ``folder``, checked against it."""
        folder = Path(folder)
        _check_table_name(name)
        dataset = Dataset.load(folder)  # validates the folder; pixels stay memory-mapped
        Dataset(  # raises if the pairs name unknown attributes or images
            name=dataset.name,
            attributes=dataset.attributes,
            images=dataset.images,
            pairs={name: table},
        )
        table.save(folder / "pairs" / f"{name}.csv")
        if name not in dataset.pairs:
            manifest = dataset._manifest()
            manifest["pair_tables"].append(name)
            _write_manifest(folder / MANIFEST, manifest)


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    try:
        text = json_text(manifest, indent=2, default=json_default)
    except (TypeError, ValueError) as exc:
        raise DataError(f"dataset meta is not JSON-able ({exc})", field="meta") from None
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"not an outpool dataset (no {MANIFEST})", path=path) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg})", path=path, line=exc.lineno) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read ({exc})", path=path) from None
    if not isinstance(data, dict):
        raise DataError("expected a JSON object", path=path)
    if data.get("format") != FORMAT:
        raise DataError(
            f"must be {FORMAT!r}, got {data.get('format')!r}", path=path, field="format"
        )
    if data.get("version") != VERSION:
        raise DataError(
            f"unsupported version {data.get('version')!r} (this outpool reads {VERSION})",
            path=path,
            field="version",
        )
    if not isinstance(data.get("name"), str):
        raise DataError("must be a string", path=path, field="name")
    attributes = data.get("attributes")
    if not isinstance(attributes, list) or not all(
        isinstance(a, dict) and isinstance(a.get("name"), str) for a in attributes
    ):
        raise DataError(
            'must be a list of {"name": ..., "description": ...}', path=path, field="attributes"
        )
    data["attributes"] = tuple(
        AttributeInfo(a["name"], str(a.get("description", ""))) for a in attributes
    )
    for key in ("image_tables", "pair_tables"):
        tables = data.get(key, [])
        if not isinstance(tables, list):
            raise DataError("must be a list of table names", path=path, field=key)
        for t in tables:
            _check_table_name(t, path)
        data[key] = tables
    data.setdefault("meta", {})
    if not isinstance(data["meta"], dict):
        raise DataError("must be a JSON object", path=path, field="meta")
    return data


def _save_truth(
    path: Path, ids: npt.NDArray[Any], values: npt.NDArray[Any], names: tuple[str, ...]
) -> None:
    ids = np.asarray(ids, dtype=np.str_).reshape(-1)
    values = np.asarray(values, dtype=np.float64)
    check_ids(ids)
    if values.shape != (len(ids), len(names)):
        raise DataError(f"truth values must be ({len(ids)}, {len(names)}), got {values.shape}")
    check_finite(values, ids, names, what="true value")
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("id", *names))
        for i, row in zip(ids.tolist(), values.tolist(), strict=True):
            writer.writerow((i, *map(repr, row)))  # repr: float64 values read back exactly
