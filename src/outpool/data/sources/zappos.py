"""UT-Zappos50K relative attributes (Yu & Grauman, CVPR 2014) from the official label files.

Label files in ``labels_root`` (as released):

- ``image-path.mat``: ``imagepath``, the 50,025 image paths relative to the image root.
- ``zappos-labels.mat``: ``mturkOrder`` / ``mturkEqual``, one cell per attribute (1 open,
  2 pointy, 3 sporty, 4 comfort), rows ``[imgA, imgB, attribute, label, ., .]`` with 1-based
  image indices. Column 3 is the attribute index (checked against the cell); column 4 is 1 for
  A > B, 2 for B > A (per the authors' ``demo_script.m``) and 3 in ``mturkEqual`` ("equal").
  Columns 5-6 are not documented there and are not used (confidence stays 1).
- ``train-test-splits.mat``: ``trainIndexAll`` / ``testIndexAll``, per attribute 10 splits of
  1-based row indices into ``mturkOrder`` (the selected rows equal
  ``train-test-splits-pairs.mat``, which this loader does not need).
- ``zappos-labels-fg.mat``: ``mturkHard``, the UT-Zap50K-2 fine-grained test pairs (same rows).

Pair tables: ``train`` and ``test`` (UT-Zap50K-1, split ``split`` in 1..10), ``test_fine``
(UT-Zap50K-2, when ``fine_grained``) and ``equal`` (``mturkEqual``, label 0, when ``equal``;
it is outside the official splits and shares images with them). Labels: +1 when A shows the
attribute more. Image table ``images`` holds exactly the images the selected pairs name, id
``z<5-digit 1-based index into imagepath>`` (``z01694`` is ``imagepath[1693]``; see
``image_path``), group = the first two path parts (category/subcategory, e.g.
``Shoes/Oxfords``), loaded from ``root/<imagepath>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from outpool.data.dataset import AttributeInfo, Dataset
from outpool.data.images import ImageTable
from outpool.data.pairs import PairTable
from outpool.data.sources.images import load_images
from outpool.data.sources.matfile import cells, read_mat, strings
from outpool.errors import DataError, UnknownNameError

ATTRIBUTES = ("open", "pointy", "sporty", "comfort")  # the files' cell order
SPLITS = 10
PATHS_FILE = "image-path.mat"
LABELS_FILE = "zappos-labels.mat"
SPLITS_FILE = "train-test-splits.mat"
FINE_FILE = "zappos-labels-fg.mat"
_LABEL = {1: 1, 2: -1, 3: 0}  # column 4: A > B, B > A, equal


def image_id(index: int) -> str:
    """The image id of the 1-based ``imagepath`` index ``index``."""
    return f"z{index:05d}"


def image_path(labels_root: Path, image: str) -> str:
    """The relative path (from ``image-path.mat``) of image id ``image``."""
    paths = read_paths(Path(labels_root) / PATHS_FILE)
    return paths[int(image[1:]) - 1]


def read_paths(path: Path) -> list[str]:
    """The ``imagepath`` list of ``image-path.mat``."""
    return strings(read_mat(path, ["imagepath"])["imagepath"], path=path, field="imagepath")


def _rows(
    value: Any, *, path: Path, field: str, attr: int, n_images: int, labels: Sequence[int]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int8]]:
    """``(a, b, label)`` of one attribute's cell: 1-based image indices and +1/-1/0 labels."""
    where = f"{field}{{{attr + 1}}}"
    arr = np.asarray(value)
    if arr.dtype.kind not in "uif" or arr.ndim != 2 or arr.shape[1] < 4:
        raise DataError(f"expected rows of >= 4 numbers, got {arr.shape}", path=path, field=where)
    if not (np.isfinite(arr[:, :4]).all() and (arr[:, :4] == np.round(arr[:, :4])).all()):
        raise DataError("columns 1-4 must be integers", path=path, field=where)
    cols = arr[:, :4].astype(np.int64)
    a, b, att, lab = cols.T
    bad = (a < 1) | (a > n_images) | (b < 1) | (b > n_images)
    if bad.any():
        raise DataError(
            f"row {int(np.argmax(bad)) + 1}: image index outside 1..{n_images}",
            path=path,
            field=where,
        )
    if (att != attr + 1).any():
        raise DataError(
            f"row {int(np.argmax(att != attr + 1)) + 1}: column 3 (attribute) is not {attr + 1}",
            path=path,
            field=where,
        )
    if not np.isin(lab, labels).all():
        raise DataError(
            f"row {int(np.argmax(~np.isin(lab, labels))) + 1}: column 4 (label) must be one of "
            f"{list(labels)}",
            path=path,
            field=where,
        )
    label = np.asarray([_LABEL[int(v)] for v in lab], dtype=np.int8)
    return a, b, label


@dataclass(frozen=True)
class ZapposPairs:
    """The pair tables of one selection, the 1-based image indices they name, and all paths."""

    pairs: dict[str, PairTable]
    indices: list[int]  # sorted
    paths: list[str]  # the whole imagepath list

    def required_paths(self) -> list[str]:
        """Relative paths of the images the pairs name: the files ``root`` must hold."""
        return [self.paths[i - 1] for i in self.indices]


def read_pairs(
    labels_root: Path,
    *,
    split: int = 1,
    fine_grained: bool = True,
    equal: bool = True,
    attributes: Sequence[str] | None = None,
    max_pairs: int | None = None,
) -> ZapposPairs:
    """The pair tables ``load_zappos`` builds (same options), without touching any image."""
    labels_root = Path(labels_root)
    if isinstance(split, bool) or not isinstance(split, int) or not 1 <= split <= SPLITS:
        raise DataError(f"split must be an integer in 1..{SPLITS}, got {split!r}", field="split")
    chosen = tuple(ATTRIBUTES if attributes is None else attributes)
    for name in chosen:
        if name not in ATTRIBUTES:
            raise UnknownNameError("Zappos attribute", name, ATTRIBUTES)
    if max_pairs is not None and max_pairs < 0:
        raise DataError(f"max_pairs must be >= 0, got {max_pairs}")

    paths = read_paths(labels_root / PATHS_FILE)
    n = len(paths)
    labels_path = labels_root / LABELS_FILE
    split_path = labels_root / SPLITS_FILE
    fine_path = labels_root / FINE_FILE
    lab = read_mat(labels_path, ["mturkOrder", "mturkEqual"] if equal else ["mturkOrder"])
    idx = read_mat(split_path, ["trainIndexAll", "testIndexAll"])
    fine = read_mat(fine_path, ["mturkHard"]) if fine_grained else {}

    def cell(data: dict[str, Any], key: str, path: Path, k: int) -> Any:
        return cells(data[key], path=path, field=key, count=len(ATTRIBUTES))[k]

    tables: dict[str, list[tuple[str, Any, Any, Any]]] = {}
    for name in chosen:
        k = ATTRIBUTES.index(name)
        a, b, y = _rows(
            cell(lab, "mturkOrder", labels_path, k),
            path=labels_path, field="mturkOrder", attr=k, n_images=n, labels=(1, 2),
        )  # fmt: skip
        for table, key in (("train", "trainIndexAll"), ("test", "testIndexAll")):
            splits = cells(cell(idx, key, split_path, k), path=split_path, field=key, count=SPLITS)
            rows = np.asarray(splits[split - 1]).reshape(-1).astype(np.int64)
            if rows.size and not ((rows >= 1) & (rows <= len(a))).all():
                raise DataError(
                    f"split {split}: row index outside 1..{len(a)}",
                    path=split_path,
                    field=f"{key}{{{k + 1}}}",
                )
            tables.setdefault(table, []).append((name, a[rows - 1], b[rows - 1], y[rows - 1]))
        if fine_grained:
            tables.setdefault("test_fine", []).append(
                (name, *_rows(
                    cell(fine, "mturkHard", fine_path, k),
                    path=fine_path, field="mturkHard", attr=k, n_images=n, labels=(1, 2),
                ))
            )  # fmt: skip
        if equal:
            tables.setdefault("equal", []).append(
                (name, *_rows(
                    cell(lab, "mturkEqual", labels_path, k),
                    path=labels_path, field="mturkEqual", attr=k, n_images=n, labels=(3,),
                ))
            )  # fmt: skip

    pairs: dict[str, PairTable] = {}
    used: set[int] = set()
    for table, parts in tables.items():
        built = []
        for name, a, b, y in parts:
            a, b, y = a[:max_pairs], b[:max_pairs], y[:max_pairs]
            used.update(a.tolist())
            used.update(b.tolist())
            built.append(
                PairTable.build(
                    attribute=name,
                    a=[image_id(i) for i in a.tolist()],
                    b=[image_id(i) for i in b.tolist()],
                    label=y,
                    id_prefix=f"{name}-",
                )
            )
        pairs[table] = PairTable.concat(built)
    return ZapposPairs(pairs=pairs, indices=sorted(used), paths=paths)


def load_zappos(
    root: Path,
    *,
    labels_root: Path,
    split: int = 1,
    fine_grained: bool = True,
    equal: bool = True,
    attributes: Sequence[str] | None = None,
    max_pairs: int | None = None,
    cache: Path | None = None,
) -> Dataset:
    """UT-Zap50K pairs of split ``split`` (1..10) with the images they name under ``root``.

    ``attributes`` keeps only some of open/pointy/sporty/comfort; ``max_pairs`` keeps the first
    pairs (file order) of each attribute in each table: both for quick tests and demos.
    """
    root = Path(root)
    sel = read_pairs(
        labels_root,
        split=split,
        fine_grained=fine_grained,
        equal=equal,
        attributes=attributes,
        max_pairs=max_pairs,
    )
    indices, paths, pairs = sel.indices, sel.paths, sel.pairs
    chosen = tuple(ATTRIBUTES if attributes is None else attributes)
    files = [root / paths[i - 1] for i in indices]
    pixels = load_images(files, source="zappos", cache=cache)
    images = ImageTable(
        ids=np.asarray([image_id(i) for i in indices], dtype=np.str_),
        pixels=pixels,
        groups=np.asarray(["/".join(paths[i - 1].split("/")[:2]) for i in indices], dtype=np.str_),
    )
    return Dataset(
        name="zappos",
        attributes=tuple(
            AttributeInfo(a, f"UT-Zappos50K relative attribute '{a}' (MTurk pairwise labels)")
            for a in chosen
        ),
        images={"images": images},
        pairs=pairs,
        meta={
            "source": "zappos",
            "labels_root": str(Path(labels_root)),
            "split": split,
            "fine_grained": fine_grained,
            "equal": equal,
            "max_pairs": max_pairs,
            "pairs": {t: len(p) for t, p in pairs.items()},
            "image_ids": "z<1-based index into image-path.mat imagepath, 5 digits>",
        },
    )
