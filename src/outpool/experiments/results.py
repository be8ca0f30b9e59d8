"""The results file: one JSON line per cell (normal, auto) or per cell and round (active).

Shards of one grid add to the same file. Under a lock, each cell's rows are added by rewriting
the file in one rename, so a reader sees every cell whole or not at all, a kill leaves no half
line, and a cell already in the file is never written twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from outpool.errors import DataError
from outpool.fileio import atomic_path, exclusive, json_text

RESULTS = "results.jsonl"
REQUIRED = ("attribute", "method", "protocol", "seed", "accuracy_pct", "labels_spent")


def cell_key(row: Mapping[str, Any]) -> str:
    return f"{row['attribute']}/{row['method']}/{row['protocol']}/seed_{row['seed']}"


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every row of a results file (a missing file has none)."""
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise DataError("not a JSON line", path=path, line=number) from None
        if not isinstance(row, dict) or not set(REQUIRED) <= set(row):
            raise DataError(f"not a result row ({', '.join(REQUIRED)})", path=path, line=number)
        if not isinstance(row["accuracy_pct"], dict):
            raise DataError("accuracy_pct must map test tables to %", path=path, line=number)
        rows.append(row)
    return rows


def append_cell(path: Path, rows: Iterable[Mapping[str, Any]]) -> bool:
    """Add one cell's rows unless the file holds that cell already; True if written."""
    rows = list(rows)
    key = cell_key(rows[0])
    with exclusive(path.with_name(f".{path.name}.lock")):
        if key in {cell_key(r) for r in read_rows(path)}:
            return False
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        with atomic_path(path) as tmp:
            tmp.write_text(old + "".join(json_text(dict(r)) + "\n" for r in rows), "utf-8")
    return True
