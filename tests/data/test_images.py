from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from outpool.data import ImageTable
from outpool.errors import DataError, UnknownNameError

from .conftest import make_images


def assert_tables_equal(x: ImageTable, y: ImageTable) -> None:
    np.testing.assert_array_equal(x.ids, y.ids)
    np.testing.assert_array_equal(x.pixels, y.pixels)
    assert (x.groups is None) == (y.groups is None)
    if x.groups is not None:
        np.testing.assert_array_equal(x.groups, y.groups)
    assert x.attributes == y.attributes
    if x.strengths is not None:
        assert y.strengths is not None
        np.testing.assert_array_equal(x.strengths, y.strengths)  # bit-exact float32 round trip
    assert x.provenance == y.provenance


def test_round_trip_is_exact_and_memory_mapped(tmp_path: Path, images: ImageTable) -> None:
    images.save(tmp_path, "train")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "train.csv",
        "train.npy",
        "train.provenance.jsonl",
    ]
    loaded = ImageTable.load(tmp_path, "train")
    assert isinstance(loaded.pixels, np.memmap)
    assert not loaded.pixels.flags.writeable
    assert_tables_equal(images, loaded)
    assert loaded.strengths is not None and loaded.strengths.dtype == np.float32
    assert not isinstance(ImageTable.load(tmp_path, "train", mmap=False).pixels, np.memmap)


def test_csv_and_jsonl_layout(tmp_path: Path, images: ImageTable) -> None:
    images.save(tmp_path, "t")
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[0] == "id,group,smile,age"
    assert lines[1].split(",")[:2] == ["img0", "g0"]
    first = (tmp_path / "t.provenance.jsonl").read_text().splitlines()[0]
    assert list(json.loads(first)) == ["id", "y", "round"]


def test_minimal_table_round_trip(tmp_path: Path) -> None:
    table = ImageTable(ids=np.array(["a", "b"]), pixels=np.zeros((2, 64, 64, 3), np.uint8))
    table.save(tmp_path, "m")
    assert (tmp_path / "m.csv").read_text() == "id,group\na,,\nb,,\n".replace(",,", ",")
    loaded = ImageTable.load(tmp_path, "m")
    assert loaded.groups is None and loaded.strengths is None and loaded.provenance is None
    assert loaded.attributes == ()
    assert_tables_equal(table, loaded)


def test_empty_table_round_trip(tmp_path: Path) -> None:
    table = make_images(5).subset(np.zeros(5, dtype=bool))
    assert len(table) == 0
    table.save(tmp_path, "e")
    assert len(ImageTable.load(tmp_path, "e")) == 0


def test_resave_without_provenance_drops_stale_file(tmp_path: Path, images: ImageTable) -> None:
    images.save(tmp_path, "t")
    make_images(5, provenance=False).save(tmp_path, "t")
    assert not (tmp_path / "t.provenance.jsonl").exists()
    assert ImageTable.load(tmp_path, "t").provenance is None


def test_index_of_subset_strength(images: ImageTable) -> None:
    np.testing.assert_array_equal(images.index_of(["img3", "img0", "img3"]), [3, 0, 3])
    np.testing.assert_array_equal(images.positions(["img1", "nope"]), [1, -1])
    with pytest.raises(DataError, match="'nope', 'zzz'"):
        images.index_of(["img1", "nope", "zzz"])
    sub = images.subset([4, 1])
    assert sub.ids.tolist() == ["img4", "img1"]
    np.testing.assert_array_equal(sub.pixels, images.pixels[[4, 1]])
    assert sub.provenance == (images.provenance[4], images.provenance[1])
    assert images.strengths is not None
    np.testing.assert_array_equal(images.strength("age"), images.strengths[:, 1])
    with pytest.raises(UnknownNameError, match="unknown attribute 'height'; valid: age, smile"):
        images.strength("height")


def test_concat_fills_missing_groups_and_provenance() -> None:
    x = make_images(2, prefix="x")
    y = ImageTable(
        ids=np.array(["y0"]),
        pixels=np.ones((1, 64, 64, 3), np.uint8),
        attributes=("smile", "age"),
        strengths=np.array([[1.0, 2.0]], np.float32),
    )
    both = ImageTable.concat([x, y])
    assert both.ids.tolist() == ["x0", "x1", "y0"]
    assert both.groups is not None and both.groups.tolist() == ["g0", "g1", ""]
    assert both.provenance is not None and both.provenance[2] == {}
    assert both.strengths is not None and both.strengths[2].tolist() == [1.0, 2.0]
    with pytest.raises(DataError, match="duplicate image id"):
        ImageTable.concat([x, x])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pixels": np.zeros((5, 32, 32, 3), np.uint8)}, r"pixels must be \(5, 64, 64, 3\)"),
        ({"pixels": np.zeros((5, 64, 64, 3), np.float32)}, "uint8"),
        ({"ids": np.array(["a", "b", "a", "c", "d"])}, "duplicate image id.*'a'"),
        ({"ids": np.array(["a", "b,c", "d", "e", "f"])}, "without commas"),
        ({"groups": np.array(["g"])}, "1 groups for 5 images"),
        ({"strengths": np.zeros((5, 3), np.float32)}, r"strengths must be \(5, 2\)"),
        ({"attributes": ("smile", "smile")}, "duplicate attribute"),
        ({"provenance": ({},)}, "1 provenance records"),
    ],
)
def test_constructor_rejects_bad_input(kwargs: dict[str, object], match: str) -> None:
    base = make_images(5)
    fields = {k: getattr(base, k) for k in ("ids", "pixels", "groups", "attributes", "strengths")}
    with pytest.raises(DataError, match=match):
        ImageTable(**{**fields, **kwargs})


def test_nan_strength_names_attribute_and_image() -> None:
    base = make_images(3, provenance=False)
    assert base.strengths is not None
    bad = base.strengths.copy()
    bad[2, 1] = np.nan
    with pytest.raises(DataError, match=r"field 'age': strength of image 'img2' is nan"):
        ImageTable(base.ids, base.pixels, base.groups, base.attributes, bad)


# ---- bad files --------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path, images: ImageTable) -> Path:
    images.save(tmp_path, "t")
    return tmp_path


def test_missing_files(saved: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.npy: image file does not exist"):
        ImageTable.load(saved, "nope")
    (saved / "t.csv").unlink()
    with pytest.raises(DataError, match=r"t\.csv: file does not exist"):
        ImageTable.load(saved, "t")


@pytest.mark.parametrize("mmap", [True, False])
def test_truncated_npy(saved: Path, mmap: bool) -> None:
    npy = saved / "t.npy"
    data = npy.read_bytes()
    npy.write_bytes(data[: len(data) - 1000])  # header intact, pixels cut short
    with pytest.raises(DataError, match=r"t\.npy: corrupt or truncated"):
        ImageTable.load(saved, "t", mmap=mmap)
    npy.write_bytes(data[:40])  # header cut short
    with pytest.raises(DataError, match=r"t\.npy: corrupt or truncated"):
        ImageTable.load(saved, "t", mmap=mmap)


def test_corrupt_npy(saved: Path) -> None:
    (saved / "t.npy").write_bytes(b"garbage bytes " * 100)
    with pytest.raises(DataError, match=r"t\.npy: not a \.npy array file"):
        ImageTable.load(saved, "t")


def test_wrong_dtype_and_shape(saved: Path) -> None:
    np.save(saved / "t.npy", np.zeros((5, 64, 64, 3), np.float32))
    with pytest.raises(DataError, match=r"t\.npy: expected \(N, 64, 64, 3\) uint8 pixels"):
        ImageTable.load(saved, "t")
    np.save(saved / "t.npy", np.zeros((5, 32, 32, 3), np.uint8))
    with pytest.raises(DataError, match=r"got \(5, 32, 32, 3\)"):
        ImageTable.load(saved, "t")


def test_row_count_mismatch(saved: Path) -> None:
    np.save(saved / "t.npy", np.zeros((4, 64, 64, 3), np.uint8))
    with pytest.raises(DataError, match=r"t\.csv: 5 rows but t\.npy holds 4 images"):
        ImageTable.load(saved, "t")


def edit_csv(folder: Path, line: int, text: str) -> None:
    path = folder / "t.csv"
    lines = path.read_text().splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")


def test_malformed_row_names_line(saved: Path) -> None:
    edit_csv(saved, 4, "img2,g0,1.0")
    with pytest.raises(DataError, match=r"t\.csv, line 4: 3 fields, expected 4"):
        ImageTable.load(saved, "t")


def test_bad_header(saved: Path) -> None:
    edit_csv(saved, 1, "name,group,smile,age")
    with pytest.raises(DataError, match="line 1: header must start with id,group"):
        ImageTable.load(saved, "t")


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ("img1,g0,1.5,nan", r"line 3, field 'age': 'nan' is not a finite number"),
        ("img2,g0,abc,1", r"line 3, field 'smile': not a number: 'abc'"),
        ("img2,g0,1e39,1", r"line 3, field 'smile': '1e39' is not a finite number"),
        ("img0,g0,1,1", r"line 3, field 'id': duplicate id 'img0' \(first on line 2\)"),
        (",g0,1,1", r"line 3, field 'id': invalid id ''"),
    ],
)
def test_bad_csv_values(saved: Path, row: str, match: str) -> None:
    edit_csv(saved, 3, row)
    with pytest.raises(DataError, match=match):
        ImageTable.load(saved, "t")


def test_malformed_provenance(saved: Path) -> None:
    path = saved / "t.provenance.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{not json", *lines[2:]]) + "\n")
    with pytest.raises(DataError, match=r"t\.provenance\.jsonl, line 2: not valid JSON"):
        ImageTable.load(saved, "t")
    path.write_text("\n".join([lines[1], *lines[1:]]) + "\n")
    with pytest.raises(DataError, match=r"line 1, field 'id': id 'img1' but image 1 .* 'img0'"):
        ImageTable.load(saved, "t")
    path.write_text("\n".join(lines[:3]) + "\n")
    with pytest.raises(DataError, match="3 records for 5 images"):
        ImageTable.load(saved, "t")


def test_provenance_must_be_json_able(tmp_path: Path) -> None:
    base = make_images(2, provenance=False)
    table = ImageTable(base.ids, base.pixels, provenance=({"f": object()}, {}))
    with pytest.raises(DataError, match="provenance of image 'img0' is not JSON-able"):
        table.save(tmp_path, "t")
    assert not any(tmp_path.iterdir())  # nothing half-written
    arrays = ImageTable(base.ids, base.pixels, provenance=({"z": np.arange(3)}, {"s": np.int64(4)}))
    arrays.save(tmp_path, "t")
    assert ImageTable.load(tmp_path, "t").provenance == ({"z": [0, 1, 2]}, {"s": 4})
