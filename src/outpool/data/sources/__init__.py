"""Loaders for real datasets, each returning an ``outpool.data.Dataset`` of 64x64 RGB images.

``LOADERS`` maps the names used in configs to the loaders; ``load_source(name, **kwargs)`` calls
one. Images are decoded once and cached (see ``outpool.data.sources.images``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from outpool.data.dataset import Dataset
from outpool.data.sources.folder_csv import load_folder
from outpool.data.sources.lfw import load_lfw, load_lfw_dataset
from outpool.data.sources.pubfig import load_pubfig
from outpool.data.sources.zappos import load_zappos
from outpool.errors import UnknownNameError

# "lfw" gives the Dataset only; call load_lfw for the ranker tables' true scores as well.
LOADERS: dict[str, Callable[..., Dataset]] = {
    "pubfig": load_pubfig,
    "lfw": load_lfw_dataset,
    "zappos": load_zappos,
    "folder": load_folder,
}


def load_source(name: str, **kwargs: Any) -> Dataset:
    """Call the loader registered as ``name``; an unknown name lists the valid ones."""
    if name not in LOADERS:
        raise UnknownNameError("data source", name, LOADERS)
    return LOADERS[name](**kwargs)


__all__ = [
    "LOADERS",
    "Dataset",
    "load_folder",
    "load_lfw",
    "load_pubfig",
    "load_source",
    "load_zappos",
]
