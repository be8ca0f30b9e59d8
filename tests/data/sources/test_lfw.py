"""LFW: person-disjoint splits, score-derived pairs, strengths only for the generator, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from outpool.data import Dataset
from outpool.data.dataset import Truth
from outpool.data.sources.lfw import (
    PAPER_ATTRIBUTES,
    RANKER_SPLITS,
    SPLITS,
    UNSCORED,
    load_lfw,
    read_attributes,
    sample_pairs,
    split_people,
    unscored_files,
)
from outpool.errors import DataError, UnknownNameError

from .conftest import SHARED, require, write_image


@pytest.fixture(scope="session")
def lfw(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dataset, dict[str, Truth]]:
    root = require(SHARED / "lfw")
    return load_lfw(root, cache=tmp_path_factory.mktemp("lfw-cache"))


COLUMNS = ["Male", "Smiling", "Youth"]


def _tiny(root: Path, rows: list[str] | None = None, *, images: bool = True) -> Path:
    """An attribute file in the official layout: 4 people x 2 images, 3 score columns."""
    if rows is None:
        rows = [
            f"{p}\t{k}\t{m}\t{s}\t{y}"
            for i, p in enumerate(["Ann Lee", "Bob Ray", "Cy Dee", "Di Fox"])
            for k, (m, s, y) in enumerate([(i, -i, 0.5 * i), (i + 0.2, 1 - i, -i)], start=1)
        ]
    header = "#\tperson\timagenum\t" + "\t".join(COLUMNS)
    text = "# PubFig Dataset v1.2 - lfw_attributes.txt - test\n" + header + "\n"
    (root / "lfw_attributes.txt").write_text(text + "\n".join(rows) + "\n")
    if images:
        for row in rows:
            person, num = row.split("\t")[:2]
            stem = person.replace(" ", "_")
            write_image(root / "lfw-100" / stem / f"{stem}_{int(num):04d}.jpg", (30, 30))
    return root


def _load_tiny(root: Path, **kw: object) -> tuple[Dataset, dict[str, Truth]]:
    kwargs: dict[str, object] = {
        "attributes": {"masculine": "Male", "smiling": "Smiling"},
        "split_fractions": {"generator": 0.25, "train": 0.25, "val": 0.25, "test": 0.25},
        "pairs_per_attribute": 3,
        "cache": root / "cache",
    }
    kwargs.update(kw)
    return load_lfw(root, **kwargs)  # type: ignore[arg-type]


@pytest.mark.slow
def test_real_splits_are_person_disjoint(lfw: tuple[Dataset, dict[str, Truth]]) -> None:
    ds = lfw[0]
    assert tuple(ds.images) == (*SPLITS, UNSCORED) and tuple(ds.pairs) == RANKER_SPLITS
    assert ds.meta["rows_with_scores"] == 4144
    assert sum(ds.meta["people"][s] for s in SPLITS) == 1920
    assert sum(len(ds.images[s]) for s in SPLITS) == 4144
    people = {s: set(t.groups.tolist()) for s, t in ds.images.items()}
    for a in SPLITS:
        for b in SPLITS:
            assert a == b or not people[a] & people[b]
    shares = {s: len(t) / 4144 for s, t in ds.images.items()}
    for s, want in {"generator": 0.4, "train": 0.3, "val": 0.1, "test": 0.2}.items():
        assert abs(shares[s] - want) < 0.03  # whole people per split: close, not exact
    assert "stand-in for LFW-10" in ds.meta["note"]


@pytest.mark.slow
def test_real_unscored_table_is_identity_disjoint_from_ranker_splits(
    lfw: tuple[Dataset, dict[str, Truth]],
) -> None:
    ds = lfw[0]
    extra = ds.images[UNSCORED]
    assert extra.strengths is None and extra.attributes == ()
    assert len(extra) == ds.meta["images"][UNSCORED] == 9072  # 13,233 - 4,144 - 17 (below)
    ranker_people = set().union(*(ds.images[s].groups.tolist() for s in RANKER_SPLITS))
    assert not set(extra.groups.tolist()) & ranker_people
    # the generator's people gain their unscored images; everyone else is absent from the file
    rows = read_attributes(SHARED / "lfw" / "lfw_attributes.txt", ["Male"])
    scored_ids = {
        f"{p.replace(' ', '_')}_{k:04d}" for p, k in zip(rows.persons, rows.numbers, strict=True)
    }
    assert not scored_ids & set(extra.ids.tolist())
    with_rows = set(rows.persons)
    generator_people = set(ds.images["generator"].groups.tolist())
    for person in set(extra.groups.tolist()):
        assert person in generator_people or person not in with_rows
    # every image of the folder is in exactly one table, except ranker people's unscored ones
    files = {f.stem for f in (SHARED / "lfw" / "lfw-100").glob("*/*.jpg")}
    assert len(files) == 13233
    held = np.concatenate([t.ids for t in ds.images.values()]).tolist()
    assert len(held) == len(set(held)) and set(held) <= files
    left = files - set(held)
    assert len(left) == 17 and not left & scored_ids
    assert all(f.rsplit("_", 1)[0].replace("_", " ") in ranker_people for f in left)


@pytest.mark.slow
def test_real_strengths_only_for_generator(lfw: tuple[Dataset, dict[str, Truth]]) -> None:
    ds, truth = lfw
    gen = ds.images["generator"]
    assert gen.attributes == tuple(PAPER_ATTRIBUTES) and gen.strengths is not None
    assert ds.attribute_names == tuple(PAPER_ATTRIBUTES)
    for s in RANKER_SPLITS:
        assert ds.images[s].strengths is None and ds.images[s].attributes == ()
        ids, values = truth[s]
        np.testing.assert_array_equal(ids, ds.images[s].ids)
        assert values.shape == (len(ids), 8) and np.isfinite(values).all()
    assert set(truth) == set(RANKER_SPLITS)
    assert ds.images["train"].ids[0].count("_") >= 2  # file stems: Person_Name_0001


@pytest.mark.slow
def test_real_pairs(lfw: tuple[Dataset, dict[str, Truth]]) -> None:
    ds, truth = lfw
    for split, per_attr in {"train": 500, "val": 200, "test": 500}.items():
        pairs, table = ds.pairs[split], ds.images[split]
        assert len(pairs) == 8 * per_attr
        values = truth[split][1]
        ia, ib = table.index_of(pairs.a), table.index_of(pairs.b)
        assert (table.groups[ia] != table.groups[ib]).all()
        k = np.asarray([list(PAPER_ATTRIBUTES).index(a) for a in pairs.attribute])
        diff = values[ia, k] - values[ib, k]
        assert (np.abs(diff) >= 0.5).all()
        np.testing.assert_array_equal(pairs.label, np.sign(diff))
        assert 0.3 < (pairs.label == 1).mean() < 0.7  # a/b order is randomised
        keys = {tuple(sorted(p)) for p in zip(pairs.a, pairs.b, pairs.attribute, strict=True)}
        assert len(keys) == len(pairs)  # no pair repeated within an attribute


def test_sample_pairs_rules() -> None:
    scores = np.array([0.0, 0.1, 1.0, 2.0, 2.05])
    groups = np.array(["x", "y", "x", "z", "y"])
    a, b = sample_pairs(scores, groups, 100, margin=0.5, rng=np.random.default_rng(0))
    got = {frozenset(p) for p in zip(a.tolist(), b.tolist(), strict=True)}
    want = {
        frozenset((i, j))
        for i in range(5)
        for j in range(i + 1, 5)
        if groups[i] != groups[j] and abs(scores[i] - scores[j]) >= 0.5
    }
    assert got == want and len(a) == len(want)  # fewer valid than asked: all of them
    a2, _ = sample_pairs(scores, groups, 2, margin=0.5, rng=np.random.default_rng(0))
    assert len(a2) == 2


def test_split_people_balances_images() -> None:
    people = [f"p{i}" for i in range(100)]
    counts = [1 + (i % 5) for i in range(100)]
    fr = {"generator": 0.4, "train": 0.3, "val": 0.1, "test": 0.2}
    out = split_people(people, counts, fr, seed=1)
    assert sorted(p for group in out.values() for p in group) == sorted(people)
    total = sum(counts)
    for s, want in fr.items():
        got = sum(counts[int(p[1:])] for p in out[s]) / total
        assert abs(got - want) < 0.05
    assert out == split_people(people, counts, fr, seed=1)
    assert out != split_people(people, counts, fr, seed=2)


def test_tiny_file_loads_and_is_seeded(tmp_path: Path) -> None:
    ds = _load_tiny(_tiny(tmp_path))[0]
    assert ds.meta["rows_with_scores"] == 8
    assert ds.meta["people"] == {**dict.fromkeys(SPLITS, 1), UNSCORED: 0}
    assert len(ds.images[UNSCORED]) == 0  # every image of the folder has a score row
    everyone = {g for t in ds.images.values() for g in t.groups.tolist()}
    assert everyone == {"Ann Lee", "Bob Ray", "Cy Dee", "Di Fox"}  # names keep their spaces
    assert ds.images["generator"].strengths is not None
    again, _ = _load_tiny(tmp_path)
    for s in SPLITS:
        np.testing.assert_array_equal(ds.images[s].ids, again.images[s].ids)
    small, _ = _load_tiny(tmp_path, max_people=2)
    assert sum(len(t) for t in small.images.values()) == 4


def _add_unscored(root: Path, person: str, numbers: list[int]) -> None:
    stem = person.replace(" ", "_")
    for k in numbers:
        write_image(root / "lfw-100" / stem / f"{stem}_{k:04d}.jpg", (30, 30), (10, 20 * k, 90))


def test_tiny_unscored_table(tmp_path: Path) -> None:
    root = _tiny(tmp_path)
    first, _ = _load_tiny(root, unscored=False)
    assert UNSCORED not in first.images and UNSCORED not in first.meta["people"]
    gen_person = str(first.images["generator"].groups[0])
    ranker_person = str(first.images["train"].groups[0])
    _add_unscored(root, gen_person, [3, 7])  # a generator person's images without a row
    _add_unscored(root, ranker_person, [3])  # a ranker person's: never for the generator
    _add_unscored(root, "Eve New", [1, 2])  # a person absent from the file
    _add_unscored(root, "Flo Other", [1])
    (root / "lfw-100" / "Eve_New" / "notes.txt").write_text("not an image")
    ds, truth = _load_tiny(root)
    extra = ds.images[UNSCORED]
    gs = gen_person.replace(" ", "_")
    want = ["Eve_New_0001", "Eve_New_0002", "Flo_Other_0001", f"{gs}_0003", f"{gs}_0007"]
    assert sorted(extra.ids.tolist()) == sorted(want)
    assert set(extra.groups.tolist()) == {gen_person, "Eve New", "Flo Other"}  # names: spaces
    assert extra.strengths is None and extra.pixels.shape == (5, 64, 64, 3)
    at = extra.index_of([f"{gs}_0007"])[0]
    assert tuple(extra.pixels[at, 32, 32]) == pytest.approx((10, 140, 90), abs=3)
    assert ds.meta["people"][UNSCORED] == 3 and ds.meta["images"][UNSCORED] == 5
    # the scored tables and the truth are the same as without the option
    for s in SPLITS:
        np.testing.assert_array_equal(ds.images[s].ids, first.images[s].ids)
    assert set(truth) == set(RANKER_SPLITS)
    # max_people keeps a seeded subset of the people absent from the file
    small, _ = _load_tiny(root, max_people=1)
    absent = set(small.images[UNSCORED].groups.tolist()) - {
        "Ann Lee",
        "Bob Ray",
        "Cy Dee",
        "Di Fox",
    }
    assert len(absent) == 1


def test_unscored_files_needs_the_image_folder(tmp_path: Path) -> None:
    root = _tiny(tmp_path, images=False)
    rows = read_attributes(root / "lfw_attributes.txt", COLUMNS)
    with pytest.raises(DataError, match="image folder does not exist") as err:
        unscored_files(root / "lfw-100", rows, [], max_people=None, seed=0)
    assert err.value.path == root / "lfw-100"


def _expect(root: Path, match: str, line: int | None, field: str | None = None) -> DataError:
    with pytest.raises(DataError, match=match) as err:
        _load_tiny(root)
    assert err.value.path == root / "lfw_attributes.txt"
    assert err.value.line == line
    if field is not None:
        assert err.value.field == field
    return err.value


def test_wrong_field_count(tmp_path: Path) -> None:
    rows = ["Ann Lee\t1\t0.1\t0.2\t0.3", "Bob Ray\t1\t0.1\t0.2"]
    _expect(_tiny(tmp_path, rows), "4 TAB-separated fields, expected 5", line=4)


@pytest.mark.parametrize("value", ["nan", "abc", ""])
def test_bad_score(tmp_path: Path, value: str) -> None:
    rows = ["Ann Lee\t1\t0.1\t0.2\t0.3", f"Bob Ray\t1\t0.1\t{value}\t0.3"]
    _expect(_tiny(tmp_path, rows), "not a finite number", line=4, field="Smiling")


def test_bad_imagenum(tmp_path: Path) -> None:
    rows = ["Ann Lee\t1\t0.1\t0.2\t0.3", "Ann Lee\tx\t0.1\t0.2\t0.3"]
    _expect(_tiny(tmp_path, rows, images=False), "imagenum", line=4, field="imagenum")


def test_unknown_column_in_mapping(tmp_path: Path) -> None:
    root = _tiny(tmp_path)
    with pytest.raises(DataError, match="no column 'Bald'") as err:
        _load_tiny(root, attributes={"bald": "Bald"})
    assert err.value.line == 2 and err.value.field == "Bald"


def test_missing_image_names_row_and_file(tmp_path: Path) -> None:
    root = _tiny(tmp_path)
    (root / "lfw-100" / "Cy_Dee" / "Cy_Dee_0002.jpg").unlink()
    err = _expect(root, "Cy_Dee_0002.jpg", line=8)
    assert "does not exist" in str(err)


def test_missing_header(tmp_path: Path) -> None:
    (tmp_path / "lfw_attributes.txt").write_text("# comment\nAnn Lee\t1\t0.1\n")
    _expect(tmp_path, "header", line=2)


def test_bad_options(tmp_path: Path) -> None:
    root = _tiny(tmp_path)
    with pytest.raises(DataError, match="sum to 1"):
        _load_tiny(root, split_fractions={"generator": 0.5, "train": 0.6})
    with pytest.raises(UnknownNameError, match="valid: generator, test, train, val"):
        _load_tiny(root, split_fractions={"gen": 1.0})
    with pytest.raises(UnknownNameError):
        _load_tiny(root, pairs_per_attribute={"generator": 3})
    with pytest.raises(DataError, match="crop"):
        _load_tiny(root, crop=2.0)
