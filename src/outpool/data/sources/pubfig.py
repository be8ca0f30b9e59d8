"""PubFig relative attributes (Parikh & Grauman, ICCV 2011): ``data.mat`` + ``images/``.

``load_pubfig(root)`` gives image tables ``train`` (``used_for_training == 1``: 241 images) and
``test`` (531), ids = file stems (``AlexRodriguez_1``), groups = person names, and strengths =
the person's human-made RANK for each of the 11 attributes (higher = more; equal ranks mean
"equal"). Both tables carry the ranks because they are category-level labels (the same for every
image of a person); the test ranks are what ``ordering_accuracy`` scores against.

Pair table ``train``: every pair (a, b) of training images, a before b in file order, whose
persons differ and whose ranks differ, label +1 when a's person ranks higher, else -1. On the
original file that is 25,410 pairs for each attribute where all 8 ranks differ, fewer where people
share a rank (Smiling 23,610, VisibleForehead 20,010, PointyNose 22,650): 269,550 in all;
``meta["train_pairs"]`` has each count. Test pairs are NOT materialised (about 110k-123k per
attribute): ``ordering_accuracy`` evaluates over all of them directly (the standard protocol of
the published DRN/DRA code).

``relative_ordering`` and ``class_labels`` are uint8 in the file; they are cast to int64 before
any subtraction, or rank differences would wrap around (1 - 8 = 249).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from outpool.data.dataset import AttributeInfo, Dataset
from outpool.data.images import ImageTable
from outpool.data.metrics import ordering_accuracy
from outpool.data.pairs import PairTable
from outpool.data.sources.images import load_images
from outpool.data.sources.matfile import read_mat, strings, vector
from outpool.errors import DataError

MAT_FILE = "data.mat"
IMAGE_DIR = "images"
_KEYS = (
    "im_names",
    "class_labels",
    "class_names",
    "used_for_training",
    "attribute_names",
    "relative_ordering",
)


@dataclass(frozen=True)
class PubFigMat:
    """The validated content of ``data.mat``; integer arrays are int64 (never uint8)."""

    path: Path
    im_names: list[str]  # (N,)
    person: npt.NDArray[np.int64]  # (N,) 0-based index into class_names
    class_names: list[str]  # (C,)
    train: npt.NDArray[np.bool_]  # (N,)
    attribute_names: list[str]  # (K,)
    ranks: npt.NDArray[np.int64]  # (K, C): rank of each person per attribute

    def image_ranks(self) -> npt.NDArray[np.int64]:
        """``(N, K)``: each image's person's rank per attribute."""
        return self.ranks[:, self.person].T


def read_data_mat(path: Path) -> PubFigMat:
    """Read and validate ``data.mat``; a missing key or bad shape names the file and the field."""
    raw = read_mat(path, _KEYS)
    names = strings(raw["im_names"], path=path, field="im_names")
    n = len(names)
    if len(set(names)) != n:
        raise DataError("image names are not unique", path=path, field="im_names")
    classes = strings(raw["class_names"], path=path, field="class_names")
    labels = vector(raw["class_labels"], path=path, field="class_labels", length=n)
    if n and not ((labels >= 1) & (labels <= len(classes))).all():
        raise DataError(f"values must be in 1..{len(classes)}", path=path, field="class_labels")
    used = vector(raw["used_for_training"], path=path, field="used_for_training", length=n)
    if not np.isin(used, (0, 1)).all():
        raise DataError("values must be 0 or 1", path=path, field="used_for_training")
    attrs = strings(raw["attribute_names"], path=path, field="attribute_names")
    if len(set(attrs)) != len(attrs) or "" in attrs:
        raise DataError("names must be non-empty and unique", path=path, field="attribute_names")
    ordering = np.asarray(raw["relative_ordering"])
    if ordering.dtype.kind not in "ui" or ordering.shape != (len(attrs), len(classes)):
        raise DataError(
            f"expected ({len(attrs)}, {len(classes)}) integers (attributes x people), "
            f"got {ordering.shape} {ordering.dtype}",
            path=path,
            field="relative_ordering",
        )
    return PubFigMat(
        path=path,
        im_names=names,
        person=labels.astype(np.int64) - 1,
        class_names=classes,
        train=used.astype(bool),
        attribute_names=attrs,
        ranks=ordering.astype(np.int64),  # the uint8 trap: cast before any subtraction
    )


def _upper_pairs(
    ranks: npt.NDArray[np.int64], groups: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Positions (i, j), i < j, of images of different people with different ranks."""
    i, j = np.triu_indices(len(ranks), k=1)
    keep = (groups[i] != groups[j]) & (ranks[i] != ranks[j])
    return i[keep], j[keep]


def load_pubfig(root: Path, *, cache: Path | None = None) -> Dataset:
    """The PubFig relative-attributes dataset at ``root`` (``data.mat`` and ``images/``)."""
    root = Path(root)
    mat = read_data_mat(root / MAT_FILE)
    ids = np.asarray([Path(n).stem for n in mat.im_names], dtype=np.str_)
    files = [root / IMAGE_DIR / n for n in mat.im_names]
    order = np.concatenate([np.flatnonzero(mat.train), np.flatnonzero(~mat.train)])
    pixels = load_images([files[i] for i in order], source="pubfig", cache=cache)
    strengths = mat.image_ranks().astype(np.float32)
    groups = np.asarray(mat.class_names, dtype=np.str_)[mat.person]
    n_train = int(mat.train.sum())
    tables: dict[str, ImageTable] = {}
    for name, rows, px in (
        ("train", order[:n_train], pixels[:n_train]),
        ("test", order[n_train:], pixels[n_train:]),
    ):
        tables[name] = ImageTable(
            ids=ids[rows],
            pixels=px,  # slices of the memmap stay memory-mapped
            groups=groups[rows],
            attributes=tuple(mat.attribute_names),
            strengths=strengths[rows],
        )

    train_rows = np.flatnonzero(mat.train)
    person = mat.person[train_rows]
    parts: list[PairTable] = []
    counts: dict[str, int] = {}
    for k, attr in enumerate(mat.attribute_names):
        r = mat.ranks[k, person]
        i, j = _upper_pairs(r, person)
        counts[attr] = len(i)
        parts.append(
            PairTable.build(
                attribute=attr,
                a=ids[train_rows[i]],
                b=ids[train_rows[j]],
                label=np.where(r[i] > r[j], 1, -1),
                id_prefix=f"{attr}-",
            )
        )
    pairs = PairTable.concat(parts)
    return Dataset(
        name="pubfig",
        attributes=tuple(
            AttributeInfo(
                a, f"PubFig relative attribute '{a}' (category-level human ordering of people)"
            )
            for a in mat.attribute_names
        ),
        images=tables,
        pairs={"train": pairs},
        meta={
            "source": "pubfig",
            "data_mat": str(mat.path),
            "people": mat.class_names,
            "train_pairs": counts,
            "test_protocol": (
                "all pairs of test images of different people with different ranks; "
                "use outpool.data.sources.pubfig.ordering_accuracy"
            ),
        },
    )


def ranksvm_baseline(root: Path) -> dict[str, float]:
    """``ordering_accuracy`` (percent) of the original RankSVM predictions stored in
    ``data.mat`` (``relative_att_predictions``) on the test images, per attribute name, plus
    their unweighted ``"mean"`` (81.48 on the original file)."""
    path = Path(root) / MAT_FILE
    mat = read_data_mat(path)
    preds = np.asarray(read_mat(path, ["relative_att_predictions"])["relative_att_predictions"])
    shape = (len(mat.im_names), len(mat.attribute_names))
    if preds.shape != shape or preds.dtype.kind not in "uif":
        raise DataError(
            f"expected {shape} numbers, got {preds.shape} {preds.dtype}",
            path=path,
            field="relative_att_predictions",
        )
    test = ~mat.train
    ranks = mat.image_ranks()
    out = {
        a: ordering_accuracy(preds[test, k], ranks[test, k], mat.person[test])
        for k, a in enumerate(mat.attribute_names)
    }
    out["mean"] = float(np.mean(list(out.values())))
    return out
