"""Pair tables: which of two images shows an attribute more.

CSV format (the format users bring, and open in a spreadsheet), UTF-8, one pair per line::

    id,attribute,a,b,label,confidence,source,round
    p000000,smile,img_017,img_042,1,0.9,real,0

- ``id``: unique pair id (optional when loading: ``p000000``, ``p000001``... are generated).
- ``attribute``: the attribute's name (attributes are keyed by name, never by column index).
- ``a``, ``b``: image ids; they must differ.
- ``label``: ``1`` (or ``+1``): ``a`` shows the attribute more; ``-1``: ``b`` more; ``0``: equal.
- ``confidence``: a number in [0, 1] (optional, default 1.0).
- ``source``: ``real``, ``synthetic`` or ``pseudo`` (optional, default ``real``).
- ``round``: the active-learning round that created the pair, an integer >= 0 (optional, default 0).

Columns may come in any order; only ``attribute,a,b,label`` are required, and unknown columns are
errors (a typo never silently does nothing). A header-only file is an empty table. Blank lines are
skipped. ``save`` always writes all eight columns in the order above.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from outpool.data.images import format_float, parse_float, read_header, read_rows
from outpool.errors import DataError, UnknownNameError
from outpool.fileio import atomic_path

LABELS = (1, -1, 0)  # +1: a shows the attribute more, -1: b more, 0: equal
PAIR_SOURCES = ("real", "synthetic", "pseudo")
COLUMNS = ("id", "attribute", "a", "b", "label", "confidence", "source", "round")
REQUIRED_COLUMNS = ("attribute", "a", "b", "label")
_FIELDS = ("ids", *COLUMNS[1:])  # the dataclass fields, in CSV column order
_DEFAULTS: dict[str, Any] = {"confidence": 1.0, "source": "real", "round": 0}
_LABEL_TEXT = {"1": 1, "+1": 1, "-1": -1, "0": 0}


def _ids(n: int, prefix: str) -> npt.NDArray[np.str_]:
    return np.asarray([f"{prefix}{i:06d}" for i in range(n)], dtype=np.str_)


@dataclass(frozen=True, eq=False)
class PairTable:
    """Parallel ``(P,)`` arrays, one entry per pair; see the module docstring for the meaning."""

    ids: npt.NDArray[np.str_]
    attribute: npt.NDArray[np.str_]
    a: npt.NDArray[np.str_]
    b: npt.NDArray[np.str_]
    label: npt.NDArray[np.int8]
    confidence: npt.NDArray[np.float32]
    source: npt.NDArray[np.str_]
    round: npt.NDArray[np.int32]

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)  # frozen: normalise once, here
        dtypes = {"label": np.int8, "confidence": np.float32, "round": np.int32}
        for name in _FIELDS:
            col = np.asarray(getattr(self, name))
            dtype = dtypes.get(name, np.str_)
            if dtype is not np.str_ and col.size and not np.issubdtype(col.dtype, np.number):
                raise DataError(f"pair column '{name}' must be numeric, got {col.dtype}")
            if name == "label" and not np.isin(col, LABELS).all():  # check before int8 wraps
                bad = col[~np.isin(col, LABELS)].reshape(-1)[0].item()
                raise DataError(f"label {bad!r} must be one of {LABELS}", field="label")
            if name == "round" and col.size and not ((col >= 0) & (col < 2**31)).all():
                raise DataError("round must be an integer in [0, 2**31)", field="round")
            set_(name, np.asarray(col, dtype=dtype).reshape(-1))
        n = len(self.ids)
        for name in _FIELDS:
            if len(getattr(self, name)) != n:
                raise DataError(
                    f"pair column '{name}' has {len(getattr(self, name))} rows, not {n}"
                )
        if (np.char.str_len(self.ids) == 0).any():
            raise DataError("pair ids must be non-empty")
        if len(np.unique(self.ids)) != n:
            values, counts = np.unique(self.ids, return_counts=True)
            raise DataError(f"duplicate pair id(s): {', '.join(values[counts > 1][:5].tolist())}")
        conf = self.confidence
        self._check(
            ~(np.isfinite(conf) & (conf >= 0) & (conf <= 1)), "confidence", "must be in [0, 1]"
        )
        self._check(
            ~np.isin(self.source, PAIR_SOURCES),
            "source",
            f"must be one of {', '.join(PAIR_SOURCES)}",
        )
        self._check(self.a == self.b, "b", "must differ from a (an image compared with itself)")
        self._check(np.char.str_len(self.attribute) == 0, "attribute", "must be non-empty")

    def _check(self, bad: npt.NDArray[np.bool_], field: str, rule: str) -> None:
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            value = getattr(self, field)[i].item()
            raise DataError(f"pair '{self.ids[i]}': {value!r} {rule}", field=field)

    # ---- constructors ------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        *,
        attribute: str | Sequence[str] | npt.NDArray[Any],
        a: Sequence[str] | npt.NDArray[Any],
        b: Sequence[str] | npt.NDArray[Any],
        label: int | Sequence[int] | npt.NDArray[Any],
        confidence: float | Sequence[float] | npt.NDArray[Any] = 1.0,
        source: str | Sequence[str] | npt.NDArray[Any] = "real",
        round: int | Sequence[int] | npt.NDArray[Any] = 0,  # the column's name
        ids: Sequence[str] | npt.NDArray[Any] | None = None,
        id_prefix: str = "p",
    ) -> PairTable:
        """Pairs from columns; scalars broadcast; ids default to ``{id_prefix}000000``, ..."""
        cols: dict[str, Any] = {
            "attribute": attribute,
            "a": a,
            "b": b,
            "label": label,
            "confidence": confidence,
            "source": source,
            "round": round,
        }
        arrays = {k: np.asarray(v) for k, v in cols.items()}
        n = len(arrays["a"]) if arrays["a"].ndim else 1
        for k, v in arrays.items():
            if v.ndim == 0:
                arrays[k] = np.repeat(v, n)
        return cls(ids=_ids(n, id_prefix) if ids is None else np.asarray(ids), **arrays)

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], *, id_prefix: str = "p") -> PairTable:
        """Pairs from mappings keyed by the CSV columns; optional columns take their defaults."""
        rows = list(rows)
        for i, row in enumerate(rows):
            missing = [c for c in REQUIRED_COLUMNS if c not in row]
            unknown = [c for c in row if c not in COLUMNS]
            if missing or unknown:
                raise DataError(f"pair row {i}: missing {missing}, unknown {unknown}")
        cols = {c: [row.get(c, _DEFAULTS.get(c)) for row in rows] for c in COLUMNS if c != "id"}
        ids = [row.get("id", f"{id_prefix}{i:06d}") for i, row in enumerate(rows)]
        return cls._from_columns({**cols, "id": ids})

    @classmethod
    def _from_columns(cls, cols: Mapping[str, Sequence[Any]]) -> PairTable:
        arrays: dict[str, npt.NDArray[Any]] = {c: np.asarray(cols[c]) for c in COLUMNS}
        return cls(ids=arrays.pop("id"), **arrays)

    @classmethod
    def empty(cls) -> PairTable:
        """A table with no pairs."""
        return cls.build(attribute=[], a=[], b=[], label=[])

    @staticmethod
    def concat(tables: Iterable[PairTable]) -> PairTable:
        """All pairs of ``tables`` in order; pair ids must stay unique."""
        tables = list(tables)
        if not tables:
            return PairTable.empty()
        return PairTable(**{c: np.concatenate([getattr(t, c) for t in tables]) for c in _FIELDS})

    # ---- queries -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, mask_or_indices: Sequence[int] | npt.NDArray[Any]) -> PairTable:
        """The pairs selected by a boolean mask or integer positions."""
        sel = np.asarray(mask_or_indices)
        if sel.dtype != np.bool_:
            sel = sel.astype(np.int64).reshape(-1)
        return PairTable(**{c: getattr(self, c)[sel] for c in _FIELDS})

    def for_attribute(self, name: str) -> PairTable:
        """The pairs about attribute ``name`` (possibly none)."""
        return self.subset(self.attribute == name)

    def attributes_present(self) -> tuple[str, ...]:
        """Attribute names that occur, in order of first appearance."""
        return tuple(dict.fromkeys(self.attribute.tolist()))

    # ---- files -------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the CSV (all eight columns) atomically."""
        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(COLUMNS)
            for row in zip(
                self.ids.tolist(),
                self.attribute.tolist(),
                self.a.tolist(),
                self.b.tolist(),
                self.label.tolist(),
                map(format_float, self.confidence.tolist()),
                self.source.tolist(),
                self.round.tolist(),
                strict=True,
            ):
                writer.writerow(row)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        attributes: Collection[str] | None = None,
        image_ids: Collection[str] | None = None,
        id_prefix: str = "p",
    ) -> PairTable:
        """Read a pair CSV; each problem is a ``DataError`` naming the file, line and field.

        With ``attributes``/``image_ids`` every pair must name a known attribute and images that
        exist.
        """
        path = Path(path)
        valid_attrs = None if attributes is None else set(attributes)
        known_images = None if image_ids is None else set(image_ids)
        rows = iter(read_rows(path))
        header = read_header(path, rows, COLUMNS, REQUIRED_COLUMNS)
        cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        seen: dict[str, int] = {}
        for line, row in rows:
            if len(row) != len(header):
                raise DataError(f"{len(row)} fields, expected {len(header)}", path=path, line=line)
            rec = dict(zip(header, row, strict=True))

            def fail(field: str, message: str, line: int = line) -> DataError:
                return DataError(message, path=path, line=line, field=field)

            pair_id = rec.get("id", f"{id_prefix}{len(cols['id']):06d}")
            if not pair_id:
                raise fail("id", "empty pair id")
            if pair_id in seen:
                raise fail("id", f"duplicate pair id '{pair_id}' (first on line {seen[pair_id]})")
            seen[pair_id] = line
            attr = rec["attribute"]
            if not attr:
                raise fail("attribute", "empty attribute name")
            if valid_attrs is not None and attr not in valid_attrs:
                raise fail("attribute", str(UnknownNameError("attribute", attr, valid_attrs)))
            for side in ("a", "b"):
                if not rec[side]:
                    raise fail(side, "empty image id")
                if known_images is not None and rec[side] not in known_images:
                    raise fail(side, f"pair names a missing image '{rec[side]}'")
            if rec["a"] == rec["b"]:
                raise fail("b", f"a and b are the same image '{rec['a']}'")
            label, conf, source, round_ = parse_label_fields(rec, path=path, line=line)
            for c, v in zip(
                COLUMNS,
                (pair_id, attr, rec["a"], rec["b"], label, conf, source, round_),
                strict=True,
            ):
                cols[c].append(v)
        return cls._from_columns(cols)


def parse_label_fields(
    rec: Mapping[str, str], *, path: Path, line: int
) -> tuple[int, float, str, int]:
    """``(label, confidence, source, round)`` of one pair row; an absent or empty optional cell
    takes its default (confidence 1, source real, round 0). Errors name path, line and field."""

    def fail(field: str, message: str) -> DataError:
        return DataError(message, path=path, line=line, field=field)

    label = _LABEL_TEXT.get(rec["label"].strip())
    if label is None:
        raise fail("label", f"label {rec['label']!r} must be 1 (or +1), -1 or 0")
    conf = float(_DEFAULTS["confidence"])
    if rec.get("confidence"):
        conf = parse_float(rec["confidence"], path=path, line=line, field="confidence")
        if not 0.0 <= conf <= 1.0:
            raise fail("confidence", f"confidence {rec['confidence']!r} must be in [0, 1]")
    source = rec.get("source") or str(_DEFAULTS["source"])
    if source not in PAIR_SOURCES:
        raise fail("source", f"unknown source {source!r}; valid: {', '.join(PAIR_SOURCES)}")
    round_ = int(_DEFAULTS["round"])
    if rec.get("round"):
        try:
            round_ = int(rec["round"])
        except ValueError:
            raise fail("round", f"round {rec['round']!r} is not an integer") from None
        if not 0 <= round_ < 2**31:
            raise fail("round", f"round {round_} must be >= 0")
    return label, conf, source, round_
