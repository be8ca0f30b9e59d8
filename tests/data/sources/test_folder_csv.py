"""A folder of images + a pairs CSV: round trip, ids, splits, every bad input, the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from outpool.data import Dataset
from outpool.data.sources import images as decode
from outpool.data.sources.folder_csv import load_folder
from outpool.errors import DataError, UnknownNameError

from .conftest import write_image

FILES = {
    "red.jpg": ((80, 60), (220, 20, 20)),
    "green.png": ((64, 64), (20, 220, 20)),
    "tall.png": ((30, 90), (20, 20, 220)),
    "sub/big.jpeg": ((300, 200), (200, 200, 20)),
    "sub/UPPER.JPG": ((50, 50), (20, 200, 200)),
}

PAIRS = """attribute,a,b,label,confidence,split
warm,red.jpg,tall.png,1,0.9,train
warm,tall.png,sub/big.jpeg,-1,,train
warm,green.png,sub\\UPPER.JPG,0,1,test
bright,sub/big.jpeg,green.png,+1,0.5,val
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for rel, (size, color) in FILES.items():
        write_image(tmp_path / "imgs" / rel, size, color)
    write_image(tmp_path / "imgs" / ".hidden" / "x.png")  # skipped
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    (tmp_path / "pairs.csv").write_text(PAIRS)
    return tmp_path


def _load(folder: Path, **kw: object) -> Dataset:
    kw.setdefault("cache", folder / "cache")
    return load_folder(folder / "imgs", folder / "pairs.csv", **kw)  # type: ignore[arg-type]


def test_round_trip(folder: Path) -> None:
    ds = _load(folder)
    images = ds.images["images"]
    assert images.ids.tolist() == sorted(FILES)  # ids are the relative paths; unlabelled too
    assert ds.attribute_names == ("warm", "bright")
    assert {t: len(p) for t, p in ds.pairs.items()} == {"train": 2, "val": 1, "test": 1}
    train = ds.pairs["train"]
    assert train.a.tolist() == ["red.jpg", "tall.png"] and train.label.tolist() == [1, -1]
    assert train.confidence.tolist() == pytest.approx([0.9, 1.0])
    assert ds.pairs["test"].b.tolist() == ["sub/UPPER.JPG"]  # backslash normalised
    assert ds.pairs["val"].label.tolist() == [1]
    px = ds.lookup(["red.jpg", "tall.png"])
    assert px.shape == (2, 64, 64, 3)
    assert abs(int(px[0, 32, 32, 0]) - 220) < 8 and abs(int(px[1, 32, 32, 2]) - 220) < 8
    ds.save(folder / "saved")
    back = Dataset.load(folder / "saved")
    for t, p in ds.pairs.items():
        np.testing.assert_array_equal(back.pairs[t].a, p.a)
        np.testing.assert_array_equal(back.pairs[t].label, p.label)
    np.testing.assert_array_equal(back.images["images"].pixels, images.pixels)


def test_optional_columns_and_default_split(folder: Path) -> None:
    (folder / "pairs.csv").write_text(
        "id,a,b,attribute,label,source,round\nq1,red.jpg,green.png,warm,1,synthetic,2\n"
    )
    ds = _load(folder)
    train = ds.pairs["train"]
    assert list(ds.pairs) == ["train"] and train.ids.tolist() == ["q1"]
    assert train.source.tolist() == ["synthetic"] and train.round.tolist() == [2]


def test_second_load_is_memory_mapped_without_decoding(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _load(folder)

    def boom(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("decoded again")

    monkeypatch.setattr(decode, "decode_image", boom)
    second = _load(folder)
    assert isinstance(second.images["images"].pixels, np.memmap)
    np.testing.assert_array_equal(first.images["images"].pixels, second.images["images"].pixels)
    with pytest.raises(AssertionError):  # another crop is another cache entry
        _load(folder, crop=0.5)


def test_strengths_csv(folder: Path) -> None:
    (folder / "s.csv").write_text("image,warm,size\nred.jpg,0.8,1\nsub/big.jpeg,0.3,-2\n")
    ds = _load(folder, attributes_csv=folder / "s.csv")
    gen = ds.images["generator"]
    assert gen.ids.tolist() == ["red.jpg", "sub/big.jpeg"] and gen.attributes == ("warm", "size")
    assert gen.strengths is not None and gen.strengths[1].tolist() == pytest.approx([0.3, -2])
    assert "red.jpg" not in ds.images["images"].ids.tolist()
    assert ds.attribute_names == ("warm", "bright", "size")


def _bad(folder: Path, text: str, match: str, line: int, field: str | None = None) -> None:
    (folder / "pairs.csv").write_text(text)
    with pytest.raises(DataError, match=match) as err:
        _load(folder)
    assert err.value.path == folder / "pairs.csv" and err.value.line == line
    if field is not None:
        assert err.value.field == field


HEAD = "attribute,a,b,label,split\n"
OK = "warm,red.jpg,green.png,1,train\n"


@pytest.mark.parametrize(
    ("text", "match", "line", "field"),
    [
        ("attribute,a,label\n" + OK, "missing column.*b", 1, None),
        ("attribute,a,b,label,colour\n", "unknown column.*colour", 1, None),
        (HEAD + OK + "warm,red.jpg,x.jpg,1,train\n", "pair names a missing image 'x.jpg'", 3, "b"),
        (HEAD + OK + "warm,red.jpg,green.png,2,train\n", "label '2'", 3, "label"),
        (HEAD + OK + OK + ",red.jpg,green.png,1,train\n", "empty attribute", 4, "attribute"),
        (HEAD + "warm,red.jpg,green.png,1,holdout\n", "unknown split 'holdout'", 2, "split"),
        (HEAD + "warm,red.jpg,red.jpg,1,train\n", "same image", 2, "b"),
        (HEAD + "warm,../red.jpg,green.png,1,train\n", "relative", 2, "a"),
        (HEAD + "warm,red.jpg,green.png,1\n", "4 fields, expected 5", 2, None),
        ("attribute,a,b,label,confidence\nwarm,red.jpg,green.png,1,1.5\n", r"\[0, 1\]", 2, None),
    ],
)
def test_bad_pairs_csv(folder: Path, text: str, match: str, line: int, field: str | None) -> None:
    _bad(folder, text, match, line, field)


def test_corrupt_image_names_csv_line(folder: Path) -> None:
    (folder / "imgs" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    _bad(folder, HEAD + OK + "warm,green.png,broken.jpg,1,train\n", "broken.jpg", 3)


def test_unreadable_image_no_pair_names_is_skipped_with_a_warning(folder: Path) -> None:
    (folder / "imgs" / "broken.png").write_bytes(b"junk")
    (folder / "imgs" / "sub" / "empty.jpg").write_bytes(b"")
    for attempt in ("decoded", "cached"):  # the cache remembers what it left out
        with pytest.warns(UserWarning, match="2 image file") as caught:
            ds = _load(folder)
        message = str(caught[0].message)
        assert "broken.png" in message and "sub/empty.jpg" in message, attempt
        assert ds.images["images"].ids.tolist() == sorted(FILES)
        assert ds.meta["skipped_images"] == ["broken.png", "sub/empty.jpg"]
        assert ds.lookup(["tall.png"])[0, 32, 32].tolist() == [20, 20, 220]  # rows stay aligned
    # the same file named by a pair is still an error naming the CSV line
    (folder / "pairs.csv").write_text(PAIRS + "warm,red.jpg,broken.png,1,,train\n")
    with pytest.raises(DataError, match=r"broken\.png") as err:
        _load(folder)
    assert err.value.line == 6


def _tall_image(path: Path) -> None:
    """60 wide, 120 tall: red top quarter (the 'head'), green middle, blue bottom quarter."""
    pixels = np.zeros((120, 60, 3), np.uint8)
    pixels[:30] = (255, 0, 0)
    pixels[30:90] = (0, 255, 0)
    pixels[90:] = (0, 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def test_fit_top_keeps_the_top_of_a_tall_image(tmp_path: Path) -> None:
    _tall_image(tmp_path / "tall.png")
    center = decode.decode_image(tmp_path / "tall.png")
    top = decode.decode_image(tmp_path / "tall.png", fit="top")
    red, green = (255, 0, 0), (0, 255, 0)
    assert _near(center[2, 32], green)  # the central square loses the head
    assert _near(top[2, 32], red) and _near(top[-2, 32], green)
    # a crop fraction of the top square stays anchored at the top
    assert _near(decode.decode_image(tmp_path / "tall.png", fit="top", crop=0.5)[2, 32], red)


def _near(pixel: np.ndarray, rgb: tuple[int, int, int]) -> bool:
    """Equal but for resampling's ringing next to an edge."""
    return bool((np.abs(pixel.astype(int) - rgb) < 8).all())


def test_fit_letterbox_keeps_the_whole_picture(tmp_path: Path) -> None:
    _tall_image(tmp_path / "tall.png")
    box = decode.decode_image(tmp_path / "tall.png", fit="letterbox").astype(int)
    middle = box[:, 32]
    assert _near(middle[1], (255, 0, 0))  # the head, at the very top
    assert _near(middle[-2], (0, 0, 255))  # and the feet, at the bottom
    # the sides are padding in the border's mean colour, not black
    assert box[32, 1].tolist() == box[32, -2].tolist() and box[32, 1].sum() > 0


def test_fit_is_part_of_the_cache_key_and_checked(folder: Path) -> None:
    files = [folder / "imgs" / "tall.png"]
    keys = {decode.cache_key(files, source="s", crop=1.0, size=64, fit=f) for f in decode.FITS}
    assert len(keys) == 3
    with pytest.raises(UnknownNameError, match="fit"):
        _load(folder, fit="stretch")
    assert _load(folder, fit="top").meta["fit"] == "top"


DUPLICATED = """attribute,a,b,label,confidence,split
warm,red.jpg,tall.png,1,0.9,train
warm,tall.png,red.jpg,-1,0.5,train
warm,red.jpg,tall.png,1,1,train
warm,green.png,tall.png,1,,train
warm,tall.png,green.png,1,,train
bright,red.jpg,tall.png,-1,,train
warm,red.jpg,tall.png,1,,test
warm,tall.png,red.jpg,1,,val
"""


def test_duplicates_merge_and_conflicts_are_kept_out(folder: Path) -> None:
    (folder / "pairs.csv").write_text(DUPLICATED)
    with pytest.warns(UserWarning) as caught:
        ds = _load(folder)
    train = ds.pairs["train"]
    # lines 3 and 4 repeat line 2 (one reversed): one pair, mean confidence
    assert train.a.tolist() == ["red.jpg", "red.jpg"]
    assert train.attribute.tolist() == ["warm", "bright"]  # another attribute is another pair
    assert train.confidence.tolist() == pytest.approx([0.8, 1.0])
    conflicts = ds.pairs["train_conflicts"]  # green vs tall, answered both ways
    assert conflicts.a.tolist() == ["green.png", "tall.png"]
    assert len(ds.pairs["test"]) == len(ds.pairs["val"]) == 1  # each split resolved apart
    found = ds.meta["duplicates"]["train"]
    assert found["duplicate_rows"] == 2 and found["reversed_rows"] == 1
    assert found["conflicting_questions"] == 1 and found["conflicting_rows"] == 2
    message = str(caught[0].message)
    assert "line 3, line 4 repeat line 2" in message
    assert "line 5: +1, line 6: +1" in message and "train_conflicts" in message
    # a pair asked in two splits is reported too: the test would measure memory
    assert ds.meta["duplicates"]["across_splits"] == {
        "train/val": {"rows": 1, "opposite_answers": 1},
        "train/test": {"rows": 1, "opposite_answers": 0},
        "val/test": {"rows": 1, "opposite_answers": 1},
    }
    across = [str(w.message) for w in caught if "ask what a pair of" in str(w.message)]
    assert (
        "1 pair(s) of split 'test' ask what a pair of 'train' asks (0 with the opposite "
        "answer): line 8 asks line 2" in across[1]
    )
    assert "(1 with the opposite answer): line 9 asks line 2" in across[0]


def test_duplicates_policy_keep(folder: Path) -> None:
    (folder / "pairs.csv").write_text(DUPLICATED)
    with pytest.warns(UserWarning) as caught:
        ds = _load(folder, duplicates="keep", conflicts="keep")
    assert "kept (--duplicates keep)" in str(caught[0].message)
    assert len(ds.pairs["train"]) == 6 and "train_conflicts" not in ds.pairs
    with pytest.raises(UnknownNameError, match="duplicates policy"):
        _load(folder, duplicates="vote")


@pytest.mark.parametrize(
    ("text", "match", "line", "field"),
    [
        ("image,warm\nred.jpg,nan\n", "not a finite number", 2, "warm"),
        ("image,warm\nred.jpg,0.1\ngreen.png,abc\n", "not a number", 3, "warm"),
        ("image,warm\nnope.png,1\n", "missing image 'nope.png'", 2, "image"),
        ("image,warm\nred.jpg,1\nred.jpg,2\n", "listed twice", 3, "image"),
        ("image,group\nred.jpg,1\n", "attribute columns", 1, None),
    ],
)
def test_bad_strengths_csv(
    folder: Path, text: str, match: str, line: int, field: str | None
) -> None:
    (folder / "s.csv").write_text(text)
    with pytest.raises(DataError, match=match) as err:
        _load(folder, attributes_csv=folder / "s.csv")
    assert err.value.path == folder / "s.csv" and err.value.line == line
    if field is not None:
        assert err.value.field == field


def test_missing_folder_or_csv(folder: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_folder(folder / "nope", folder / "pairs.csv")
    with pytest.raises(DataError, match="does not exist") as err:
        load_folder(folder / "imgs", folder / "nope.csv", cache=folder / "c")
    assert err.value.path == folder / "nope.csv"


def test_image_name_with_comma(folder: Path) -> None:
    write_image(folder / "imgs" / "a,b.png")
    with pytest.raises(DataError, match="commas") as err:
        _load(folder)
    assert err.value.path == folder / "imgs" / "a,b.png"
