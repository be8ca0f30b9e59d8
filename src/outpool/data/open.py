"""One way to name a dataset on the command line: a dataset folder, or ``SOURCE:ARGS`` for a real
dataset read from its official layout.

    path/to/dataset                     a folder written by outpool (dataset.json inside)
    pubfig:ROOT                         PubFig relative attributes (data.mat + images/)
    lfw:ROOT                            LFW (lfw_attributes.txt + lfw-100/ or lfw/)
    zappos:IMAGES_ROOT,LABELS_ROOT      UT-Zappos50K images + its label .mat files
    folder:IMAGES_ROOT,PAIRS_CSV        your images and a CSV of pairs
"""

from __future__ import annotations

from pathlib import Path

from outpool.data.dataset import Dataset
from outpool.data.sources import SOURCES, load_source
from outpool.errors import DataError


def open_dataset(spec: str | Path) -> Dataset:
    """Load the dataset that ``spec`` names (see the module docstring)."""
    text = str(spec)
    name, sep, rest = text.partition(":")
    if not sep or name not in SOURCES:  # a plain path (also C:\\... on Windows)
        return Dataset.load(Path(text))
    parts = [Path(p) for p in rest.split(",")] if rest else []
    wanted = {"pubfig": 1, "lfw": 1, "zappos": 2, "folder": 2}[name]
    if len(parts) != wanted:
        raise DataError(
            f"'{text}': {name} needs {wanted} path(s) after '{name}:' (see 'outpool data import "
            "--help')"
        )
    if name in ("pubfig", "lfw"):
        return load_source(name, root=parts[0])
    if name == "zappos":
        return load_source(name, root=parts[0], labels_root=parts[1])
    return load_source(name, images_root=parts[0], pairs_csv=parts[1])
