"""UT-Zappos50K: the real label files (when present) with placeholder images for a subset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from outpool.data.sources.zappos import image_id, load_zappos, read_pairs
from outpool.errors import DataError, UnknownNameError

from .conftest import SHARED, require, write_image


@pytest.fixture(scope="module")
def labels() -> Path:
    return require(SHARED / "ut-zap50k-data")


@pytest.mark.slow
def test_real_table_sizes(labels: Path) -> None:
    sel = read_pairs(labels)
    sizes = {t: {a: int((p.attribute == a).sum()) for a in p.attributes_present()}
             for t, p in sel.pairs.items()}  # fmt: skip
    assert sizes["train"] == {"open": 1463, "pointy": 1228, "sporty": 1383, "comfort": 1477}
    assert sizes["test"] == dict.fromkeys(("open", "pointy", "sporty", "comfort"), 300)
    assert sizes["test_fine"] == {"open": 1100, "pointy": 1172, "sporty": 1083, "comfort": 979}
    assert sizes["equal"] == {"open": 1187, "pointy": 1270, "sporty": 1160, "comfort": 995}
    assert (sel.pairs["equal"].label == 0).all()
    assert set(sel.pairs["test_fine"].label.tolist()) == {1, -1}
    assert len(sel.paths) == 50025 and len(sel.indices) == 5551


@pytest.mark.slow
def test_real_label_direction_from_column_4(labels: Path) -> None:
    order = scipy.io.loadmat(labels / "zappos-labels.mat")["mturkOrder"][0, 0]
    idx = scipy.io.loadmat(labels / "train-test-splits.mat")["trainIndexAll"][0, 0][0, 0]
    rows = order[idx.ravel().astype(int) - 1]
    train = read_pairs(labels, attributes=["open"], fine_grained=False, equal=False).pairs["train"]
    np.testing.assert_array_equal(train.a, [image_id(int(i)) for i in rows[:, 0]])
    np.testing.assert_array_equal(train.b, [image_id(int(i)) for i in rows[:, 1]])
    np.testing.assert_array_equal(train.label, np.where(rows[:, 3] == 1, 1, -1))
    # row 1 of mturkOrder{1} is [1694 20316 1 1 ...] (A more open), row 2 [16859 21309 1 2 ...]
    assert order[0, :4].tolist() == [1694, 20316, 1, 1] and order[1, 3] == 2


@pytest.mark.slow
def test_real_splits_match_the_released_pair_lists(labels: Path) -> None:
    released = scipy.io.loadmat(labels / "train-test-splits-pairs.mat")["testPairsAll"]
    for split in (1, 7):
        test = read_pairs(labels, split=split, fine_grained=False, equal=False).pairs["test"]
        for k, name in enumerate(("open", "pointy", "sporty", "comfort")):
            want = released[0, k][0, split - 1]
            got = test.for_attribute(name)
            np.testing.assert_array_equal(got.a, [image_id(int(i)) for i in want[:, 0]])
            np.testing.assert_array_equal(got.label, np.where(want[:, 3] == 1, 1, -1))


@pytest.mark.slow
def test_real_load_with_placeholder_images(labels: Path, tmp_path: Path) -> None:
    options = {"attributes": ["open", "sporty"], "max_pairs": 4}
    needed = read_pairs(labels, **options).required_paths()  # type: ignore[arg-type]
    for k, rel in enumerate(needed):
        write_image(tmp_path / "img" / rel, (136, 102), (10 * k % 256, 100, 50))
    ds = load_zappos(tmp_path / "img", labels_root=labels, cache=tmp_path / "c", **options)  # type: ignore[arg-type]
    assert ds.attribute_names == ("open", "sporty")
    assert {t: len(p) for t, p in ds.pairs.items()} == dict.fromkeys(
        ("train", "test", "test_fine", "equal"), 8
    )
    images = ds.images["images"]
    assert len(images) == len(needed) and isinstance(images.pixels, np.memmap)
    assert all(i.startswith("z") and len(i) == 6 for i in images.ids.tolist())
    assert images.groups[0].startswith(("Shoes/", "Boots/", "Sandals/", "Slippers/"))
    assert ds.meta["split"] == 1
    # one image missing: the error names its path
    (tmp_path / "img" / needed[3]).unlink()
    with pytest.raises(DataError, match="does not exist") as err:
        load_zappos(tmp_path / "img", labels_root=labels, cache=tmp_path / "c", **options)  # type: ignore[arg-type]
    assert err.value.path == tmp_path / "img" / needed[3]


@pytest.mark.parametrize("split", [0, 11, -1, True, 1.5])
def test_bad_split(split: object, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"split must be an integer in 1\.\.10"):
        load_zappos(tmp_path, labels_root=tmp_path, split=split)  # type: ignore[arg-type]


def test_unknown_attribute(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="comfort, open, pointy, sporty"):
        read_pairs(tmp_path, attributes=["shiny"])


def _cells(arrays: list[np.ndarray]) -> np.ndarray:
    out = np.empty((1, len(arrays)), dtype=object)
    for i, a in enumerate(arrays):
        out[0, i] = a
    return out


def test_bad_label_files(tmp_path: Path) -> None:
    paths = np.empty((5, 1), dtype=object)
    for i in range(5):
        paths[i, 0] = np.array([f"Shoes/X/b/{i}.jpg"])
    scipy.io.savemat(tmp_path / "image-path.mat", {"imagepath": paths})
    rows = [np.array([[1.0, 2, k + 1, 1, 1, 1]]) for k in range(4)]
    split = np.empty((10, 1), dtype=object)
    for s in range(10):
        split[s, 0] = np.array([[1]], dtype=np.uint16)
    splits = _cells([split] * 4)
    scipy.io.savemat(tmp_path / "train-test-splits.mat",
                     {"trainIndexAll": splits, "testIndexAll": splits})  # fmt: skip

    def write_labels(order: list[np.ndarray]) -> None:
        scipy.io.savemat(tmp_path / "zappos-labels.mat",
                         {"mturkOrder": _cells(order), "mturkEqual": _cells(rows)})  # fmt: skip

    write_labels(rows)
    sel = read_pairs(tmp_path, fine_grained=False, equal=False)
    assert len(sel.pairs["train"]) == 4 and sel.required_paths()[0] == "Shoes/X/b/0.jpg"
    with pytest.raises(DataError, match="column 4") as err:  # mturkEqual rows must say 3
        read_pairs(tmp_path, fine_grained=False)
    assert err.value.field == "mturkEqual{1}"
    write_labels([np.array([[1.0, 9, 1, 1, 1, 1]]), *rows[1:]])
    with pytest.raises(DataError, match=r"outside 1\.\.5") as err:
        read_pairs(tmp_path, fine_grained=False, equal=False)
    assert err.value.path == tmp_path / "zappos-labels.mat"
    write_labels([rows[1], *rows[1:]])  # cell 1 holding attribute 2's rows
    with pytest.raises(DataError, match="column 3"):
        read_pairs(tmp_path, fine_grained=False, equal=False)
    write_labels(rows)
    with pytest.raises(DataError, match="does not exist") as err:
        read_pairs(tmp_path)  # zappos-labels-fg.mat is missing
    assert err.value.path == tmp_path / "zappos-labels-fg.mat"
