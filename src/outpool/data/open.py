"""One way to name a dataset on the command line: a dataset folder, or ``SOURCE:ARGS`` for a real
dataset read from its official layout.

    path/to/dataset                     a folder written by outpool (dataset.json inside)
    pubfig:ROOT                         PubFig relative attributes (data.mat + images/)
    lfw:ROOT                            LFW (lfw_attributes.txt + lfw-100/ or lfw/)
    zappos:IMAGES_ROOT,LABELS_ROOT      UT-Zappos50K images + its label .mat files
    folder:IMAGES_ROOT,PAIRS_CSV        your images and a CSV of pairs

``crop`` (LFW and folder sources) keeps the central fraction of each square frame, e.g. 0.6
for LFW faces that fill the image. The folder source also takes ``fit`` (how a frame becomes
square: ``center``, ``top``, ``letterbox``) and the ``duplicates`` / ``conflicts`` policy for
repeated pairs (``data/duplicates.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from outpool.data.dataset import Dataset, Truth
from outpool.data.sources import LOADERS, load_source
from outpool.data.sources.images import check_crop
from outpool.data.sources.lfw import load_lfw
from outpool.errors import DataError


def _parse(spec: str | Path) -> tuple[str, list[Path]] | None:
    """(source name, its paths) of ``SOURCE:ARGS``, or None for a dataset folder."""
    text = str(spec)
    name, sep, rest = text.partition(":")
    if not sep or name not in LOADERS:  # a plain path (also C:\\... on Windows)
        return None
    parts = [Path(p) for p in rest.split(",")] if rest else []
    wanted = {"pubfig": 1, "lfw": 1, "zappos": 2, "folder": 2}[name]
    if len(parts) != wanted:
        raise DataError(
            f"'{text}': {name} needs {wanted} path(s) after '{name}:' (see 'outpool data import "
            "--help')"
        )
    return name, parts


CROPPABLE = ("lfw", "folder")  # the sources that read image files at a chosen crop


def _crop(spec: str | Path, parsed: tuple[str, list[Path]] | None, crop: float | None) -> float:
    """The crop to read ``spec`` at (1.0: the whole frame); an error naming ``spec`` where a
    crop is asked of a source that does not read image files."""
    if crop is None:
        return 1.0
    if parsed is None or parsed[0] not in CROPPABLE:
        raise DataError(
            f"'{spec}': a crop applies only to the {' and '.join(CROPPABLE)} sources, which "
            "read image files (a dataset folder keeps the crop it was imported with)"
        )
    return check_crop(crop)


FOLDER_OPTIONS = ("fit", "duplicates", "conflicts")  # what only the folder source reads


def _folder_options(
    spec: str | Path, parsed: tuple[str, list[Path]] | None, given: dict[str, str | None]
) -> dict[str, str]:
    """The options given (not None); an error naming ``spec`` where its source takes none."""
    options = {k: v for k, v in given.items() if v is not None}
    unknown = sorted(set(given) - set(FOLDER_OPTIONS))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown}; valid: {FOLDER_OPTIONS}")
    if options and (parsed is None or parsed[0] != "folder"):
        raise DataError(
            f"'{spec}': {', '.join(options)} apply only to the folder source, which reads your "
            "image files and pairs CSV"
        )
    return options


def open_dataset(
    spec: str | Path, *, crop: float | None = None, **folder_options: str | None
) -> Dataset:
    """Load the dataset that ``spec`` names (see the module docstring); ``folder_options``
    (``fit``, ``duplicates``, ``conflicts``; None: the default) apply to ``folder:`` only."""
    parsed = _parse(spec)
    crop = _crop(spec, parsed, crop)
    options = _folder_options(spec, parsed, folder_options)
    if parsed is None:
        return Dataset.load(Path(str(spec)))
    name, parts = parsed
    if name == "lfw":
        return load_source(name, root=parts[0], crop=crop)
    if name == "pubfig":
        return load_source(name, root=parts[0])
    if name == "zappos":
        return load_source(name, root=parts[0], labels_root=parts[1])
    return load_source(name, images_root=parts[0], pairs_csv=parts[1], crop=crop, **options)


def spec_source(spec: str | Path) -> str:
    """What ``spec`` reads, with absolute paths: two specs that name the same files give the
    same text, two datasets that share a name (a folder import is named after its image
    folder) do not."""
    parsed = _parse(spec)
    if parsed is None:
        return str(Path(str(spec)).resolve())
    name, parts = parsed
    return f"{name}:" + ",".join(str(p.resolve()) for p in parts)


def open_dataset_with_truth(
    spec: str | Path, *, crop: float | None = None, **folder_options: str | None
) -> tuple[Dataset, dict[str, Truth]]:
    """The dataset and the true attribute values kept apart from it, by table: LFW's ranker
    splits' scores (``lfw:ROOT``), or a folder's ``truth/`` files; ``{}`` where there are none.
    Columns follow the dataset's attribute names."""
    parsed = _parse(spec)
    if parsed is not None and parsed[0] == "lfw":
        _folder_options(spec, parsed, folder_options)
        return load_lfw(parsed[1][0], crop=_crop(spec, parsed, crop))
    dataset = open_dataset(spec, crop=crop, **folder_options)
    truth: dict[str, Truth] = {}
    if parsed is None:
        folder = Path(str(spec))
        for table in dataset.images:
            if not (folder / "truth" / f"{table}.csv").is_file():
                continue
            ids, values, names = Dataset.load_truth(folder, table)
            if sorted(names) != sorted(dataset.attribute_names):
                raise DataError(
                    f"columns {list(names)} are not the dataset's attributes "
                    f"{list(dataset.attribute_names)}",
                    path=folder / "truth" / f"{table}.csv",
                    line=1,
                )
            order = [names.index(n) for n in dataset.attribute_names]
            truth[table] = (ids, np.asarray(values)[:, order])
    return dataset, truth
