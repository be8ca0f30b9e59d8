from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from outpool.data import AttributeInfo, Dataset, PairTable
from outpool.errors import DataError, UnknownNameError

from .conftest import make_images, make_pairs
from .test_images import assert_tables_equal
from .test_pairs import assert_pairs_equal


def assert_datasets_equal(x: Dataset, y: Dataset) -> None:
    assert x.name == y.name and x.attributes == y.attributes and x.meta == y.meta
    assert list(x.images) == list(y.images) and list(x.pairs) == list(y.pairs)
    for t in x.images:
        assert_tables_equal(x.images[t], y.images[t])
    for t in x.pairs:
        assert_pairs_equal(x.pairs[t], y.pairs[t])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_round_trip(tmp_path: Path, dataset: Dataset) -> None:
    folder = tmp_path / "ds"
    dataset.save(folder)
    assert sorted(snapshot(folder)) == [
        "dataset.json",
        "images/test.csv",
        "images/test.npy",
        "images/train.csv",
        "images/train.npy",
        "images/train.provenance.jsonl",
        "pairs/test.csv",
        "pairs/train.csv",
    ]
    manifest = json.loads((folder / "dataset.json").read_text())
    assert manifest["format"] == "outpool-dataset" and manifest["version"] == 1
    assert manifest["attributes"][0] == {
        "name": "smile",
        "description": "how much the person smiles",
    }
    loaded = Dataset.load(folder)
    assert all(isinstance(t.pixels, np.memmap) for t in loaded.images.values())
    assert_datasets_equal(dataset, loaded)
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary folders left behind


def test_attributes_and_ids(dataset: Dataset) -> None:
    assert dataset.attribute_names == ("smile", "age")
    assert dataset.attribute("age") == AttributeInfo("age", "")
    with pytest.raises(UnknownNameError, match="unknown attribute 'height'; valid: age, smile"):
        dataset.attribute("height")
    assert dataset.image_ids().tolist() == ["tr0", "tr1", "tr2", "tr3", "tr4", "te0", "te1", "te2"]


def test_lookup_gathers_across_tables_in_order(tmp_path: Path, dataset: Dataset) -> None:
    dataset.save(tmp_path / "ds")
    for ds in (dataset, Dataset.load(tmp_path / "ds")):
        got = ds.lookup(["te2", "tr0", "te0", "tr0"])
        assert got.shape == (4, 64, 64, 3) and got.dtype == np.uint8
        tr, te = ds.images["train"].pixels, ds.images["test"].pixels
        np.testing.assert_array_equal(got, np.stack([te[2], tr[0], te[0], tr[0]]))
        assert ds.lookup([]).shape == (0, 64, 64, 3)
        with pytest.raises(DataError, match=r"unknown image id\(s\) 'zz'"):
            ds.lookup(["tr1", "zz"])


def test_constructor_validates(dataset: Dataset) -> None:
    clash = make_images(2, prefix="tr")
    with pytest.raises(
        DataError, match="image id 'tr0' is in both image tables 'train' and 'more'"
    ):
        Dataset("x", dataset.attributes, {**dataset.images, "more": clash})
    bad = PairTable.build(attribute="height", a=["tr0"], b=["tr1"], label=1)
    with pytest.raises(DataError, match="pair table 'bad': unknown attribute 'height'"):
        Dataset("x", dataset.attributes, dataset.images, {"bad": bad})
    gone = PairTable.build(attribute="age", a=["tr0"], b=["nope"], label=1)
    with pytest.raises(DataError, match="pair table 'gone' names a missing image 'nope'"):
        Dataset("x", dataset.attributes, dataset.images, {"gone": gone})
    with pytest.raises(DataError, match=re.escape("invalid table name '../up'")):
        Dataset("x", dataset.attributes, {"../up": dataset.images["train"]})


def test_truth_round_trip(tmp_path: Path, dataset: Dataset) -> None:
    ids = np.array(["tr0", "tr1", "te0"])
    values = np.array([[0.1, 1e-300], [-2.5, 3.0], [1 / 3, 7.0]])
    dataset.save(tmp_path / "ds", truth={"all": (ids, values)})
    assert not hasattr(Dataset.load(tmp_path / "ds"), "truth")
    got_ids, got, names = Dataset.load_truth(tmp_path / "ds", "all")
    assert got_ids.tolist() == ids.tolist() and names == ("smile", "age")
    np.testing.assert_array_equal(got, values)  # float64, bit-exact
    with pytest.raises(DataError, match=r"truth/nope\.csv: file does not exist"):
        Dataset.load_truth(tmp_path / "ds", "nope")
    path = tmp_path / "ds" / "truth" / "all.csv"
    path.write_text("id,smile,age\ntr0,1.0,nan\n")
    with pytest.raises(
        DataError, match=r"all\.csv, line 2, field 'age': 'nan' is not a finite number"
    ):
        Dataset.load_truth(tmp_path / "ds", "all")
    path.write_text("id,smile,age\ntr0,high,1\n")
    with pytest.raises(DataError, match="line 2, field 'smile': 'high' is not a finite number"):
        Dataset.load_truth(tmp_path / "ds", "all")


def test_truth_is_validated_before_anything_is_written(tmp_path: Path, dataset: Dataset) -> None:
    bad = (np.array(["tr0"]), np.array([[np.inf, 1.0]]))
    with pytest.raises(DataError, match="field 'smile': true value of image 'tr0' is inf"):
        dataset.save(tmp_path / "ds", truth={"all": bad})
    assert not any(tmp_path.iterdir())


def test_existing_folder_needs_overwrite(tmp_path: Path, dataset: Dataset) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="ds: already exists and is not empty; pass --force"):
        dataset.save(folder)
    assert snapshot(folder) == {"notes.txt": b"mine"}
    empty = tmp_path / "empty"
    empty.mkdir()
    dataset.save(empty)  # an empty folder is fine
    assert_datasets_equal(dataset, Dataset.load(empty))


def test_overwrite_replaces(tmp_path: Path, dataset: Dataset) -> None:
    folder = tmp_path / "ds"
    dataset.save(folder)
    smaller = Dataset("v2", dataset.attributes, {"train": dataset.images["train"]})
    smaller.save(folder, overwrite=True)
    assert_datasets_equal(smaller, Dataset.load(folder))
    assert not (folder / "pairs").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]
    # overwriting a dataset with itself while its pixels are memory-mapped from that folder
    loaded = Dataset.load(folder)
    loaded.save(folder, overwrite=True)
    assert_datasets_equal(smaller, Dataset.load(folder))


@pytest.mark.parametrize("overwrite", [False, True])
def test_failure_while_saving_leaves_old_dataset(
    tmp_path: Path, dataset: Dataset, monkeypatch: pytest.MonkeyPatch, overwrite: bool
) -> None:
    folder = tmp_path / "ds"
    if overwrite:
        dataset.save(folder)
    before = snapshot(folder) if overwrite else {}

    def boom(self: PairTable, path: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(PairTable, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        dataset.save(folder, overwrite=overwrite)
    assert [p.name for p in tmp_path.iterdir()] == (["ds"] if overwrite else [])
    if overwrite:
        assert snapshot(folder) == before
        monkeypatch.undo()
        assert_datasets_equal(dataset, Dataset.load(folder))


# ---- bad folders ------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path, dataset: Dataset) -> Path:
    dataset.save(tmp_path / "ds")
    return tmp_path / "ds"


def edit_manifest(folder: Path, **changes: object) -> None:
    path = folder / "dataset.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"format": "other"}, "field 'format': must be 'outpool-dataset'"),
        ({"version": 2}, "field 'version': unsupported version 2"),
        ({"name": 3}, "field 'name': must be a string"),
        ({"attributes": ["smile"]}, "field 'attributes': must be a list of"),
        ({"image_tables": "train"}, "field 'image_tables': must be a list"),
        ({"pair_tables": ["../../etc"]}, "invalid table name '../../etc'"),
        ({"meta": []}, "field 'meta': must be a JSON object"),
    ],
)
def test_bad_manifest(saved: Path, changes: dict[str, object], match: str) -> None:
    edit_manifest(saved, **changes)
    with pytest.raises(DataError, match=match) as info:
        Dataset.load(saved)
    assert "dataset.json" in str(info.value)


def test_missing_or_invalid_manifest(tmp_path: Path, saved: Path) -> None:
    with pytest.raises(DataError, match=re.escape("not an outpool dataset (no dataset.json)")):
        Dataset.load(tmp_path / "nowhere")
    (saved / "dataset.json").write_text('{\n  "format": "outpool-dataset",\n  oops\n}')
    with pytest.raises(DataError, match=r"dataset\.json, line 3: not valid JSON"):
        Dataset.load(saved)


def test_pair_naming_missing_image(saved: Path) -> None:
    path = saved / "pairs" / "train.csv"
    lines = path.read_text().splitlines()
    lines[2] = "p000001,smile,tr0,te9,1,1.0,real,0"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"train\.csv, line 3, field 'b': pair names a missing image 'te9'"
    ):
        Dataset.load(saved)


def test_pair_with_unknown_attribute(saved: Path) -> None:
    path = saved / "pairs" / "test.csv"
    path.write_text(path.read_text().replace(",age,", ",height,").replace(",smile,", ",height,"))
    with pytest.raises(DataError, match=r"test\.csv, line 2, field 'attribute': unknown attribute"):
        Dataset.load(saved)


def test_pairs_may_cross_image_tables(saved: Path) -> None:
    cross = PairTable.build(attribute="age", a=["tr0", "te1"], b=["te1", "tr3"], label=[1, 0])
    Dataset.save_pairs(saved, "cross", cross)
    ds = Dataset.load(saved)
    assert list(ds.pairs) == ["train", "test", "cross"]
    assert_pairs_equal(ds.pairs["cross"], cross)


def test_duplicate_id_across_tables_on_disk(saved: Path, dataset: Dataset) -> None:
    make_images(2, prefix="tr").save(saved / "images", "test")
    with pytest.raises(
        DataError, match=r"test\.csv: image id 'tr0' is also in image table 'train'"
    ):
        Dataset.load(saved)


def test_save_pairs_replaces_and_validates(saved: Path, dataset: Dataset) -> None:
    new = make_pairs(dataset.images["train"].ids.tolist(), 2, seed=9)
    Dataset.save_pairs(saved, "train", new)
    ds = Dataset.load(saved)
    assert list(ds.pairs) == ["train", "test"]
    assert_pairs_equal(ds.pairs["train"], new)
    before = snapshot(saved)
    bad = PairTable.build(attribute="age", a=["tr0"], b=["ghost"], label=1)
    with pytest.raises(DataError, match="names a missing image 'ghost'"):
        Dataset.save_pairs(saved, "round1", bad)
    assert snapshot(saved) == before


def test_add_tables_adds_checked_tables_and_keeps_the_old_on_error(
    saved: Path, dataset: Dataset
) -> None:
    made = make_images(3, prefix="made")
    pairs = PairTable.build(attribute="age", a=["made0"], b=["tr0"], label=-1)
    Dataset.add_tables(saved, images={"made": made}, pairs={"made": pairs})
    ds = Dataset.load(saved)
    assert_tables_equal(ds.images["made"], made)
    assert_pairs_equal(ds.pairs["made"], pairs)
    assert list(ds.pairs) == ["train", "test", "made"]
    before = snapshot(saved)
    with pytest.raises(DataError, match=r"made exist \(--force replaces\)"):
        Dataset.add_tables(saved, images={}, pairs={"made": pairs})
    ghost = PairTable.build(attribute="age", a=["made0"], b=["ghost"], label=1)
    with pytest.raises(DataError, match="names a missing image 'ghost'"):
        Dataset.add_tables(
            saved, images={"more": make_images(2, prefix="more")}, pairs={"more": ghost}
        )
    assert snapshot(saved) == before  # nothing written
    Dataset.add_tables(saved, images={}, pairs={"made": pairs.subset([0])}, overwrite=True)
