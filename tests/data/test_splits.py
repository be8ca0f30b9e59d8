"""Splits without leaks: every image (or group) in one split, straddling pairs dropped and
counted, and the check that finds images in two splits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from outpool.data import Dataset, PairTable
from outpool.data.dataset import AttributeInfo
from outpool.data.images import ImageTable
from outpool.data.splits import leaks, read_groups_csv, split_pairs
from outpool.errors import DataError, UnknownNameError
from outpool.synth import World


def images_of(table: PairTable) -> set[str]:
    return set(table.a.tolist()) | set(table.b.tolist())


def test_an_image_split_keeps_every_image_in_one_split(small_world: World) -> None:
    dataset = small_world.dataset
    total = sum(len(dataset.pairs[t]) for t in ("train", "val", "test"))
    tables, report = split_pairs(dataset, by="image", test=0.3, val=0.1, seed=4)
    train, val, test = (images_of(tables[s]) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert sum(report["pairs"].values()) + report["dropped_straddling"] == total
    assert report["dropped_straddling"] > 0 and min(report["pairs"].values()) > 0
    assert report["units"]["test"] == round(0.3 * sum(report["units"].values()))
    again, _ = split_pairs(dataset, by="image", test=0.3, val=0.1, seed=4)
    assert np.array_equal(again["test"].a, tables["test"].a)  # repeatable from the seed
    for table in tables.values():
        assert len(set(table.ids.tolist())) == len(table)


def test_a_group_split_keeps_every_group_in_one_split(small_world: World) -> None:
    dataset = small_world.dataset
    tables, _ = split_pairs(dataset, by="group", seed=1)
    group = {}
    for table in dataset.images.values():
        assert table.groups is not None
        group.update(zip(table.ids.tolist(), table.groups.tolist(), strict=True))
    seen = {s: {group[i] for i in images_of(t)} for s, t in tables.items()}
    assert not (seen["train"] & seen["test"] or seen["train"] & seen["val"])
    assert not seen["val"] & seen["test"]


def test_leaks_finds_the_images_of_two_splits(small_world: World) -> None:
    dataset = small_world.dataset
    assert leaks(dataset) == []  # the built-in world's splits are disjoint
    train = dataset.pairs["train"]
    mixed = PairTable.concat([dataset.pairs["test"], train.subset(np.arange(2))])
    leaky = dataclasses.replace(dataset, pairs={**dataset.pairs, "test": mixed})
    found = leaks(leaky)
    assert found and set(found) <= images_of(train.subset(np.arange(2)))


def test_bad_splits_are_named(small_world: World) -> None:
    dataset = small_world.dataset
    with pytest.raises(DataError, match="test \\+ val < 1"):
        split_pairs(dataset, test=0.7, val=0.4)
    with pytest.raises(UnknownNameError, match="split unit 'person'"):
        split_pairs(dataset, by="person")
    no_groups = Dataset(
        name="x",
        attributes=dataset.attributes,
        images={"all": dataclasses.replace(dataset.images["train"], groups=None)},
        pairs={"train": dataset.pairs["train"]},
    )
    with pytest.raises(DataError, match="has no groups to split by"):
        split_pairs(no_groups, by="group")


def people(n_people: int = 10, per_person: int = 4) -> Dataset:
    """A folder import's shape: ids ``personK/N.jpg``, no group column, pairs across people."""
    ids = np.asarray([f"p{k}/{i}.jpg" for k in range(n_people) for i in range(per_person)])
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(ids), (2, 300))
    keep = a != b
    pairs = PairTable.build(
        attribute="x", a=ids[a[keep]], b=ids[b[keep]], label=np.ones(keep.sum(), int)
    )
    images = ImageTable(ids=ids, pixels=np.zeros((len(ids), 64, 64, 3), np.uint8))
    return Dataset("mine", (AttributeInfo("x"),), {"images": images}, {"train": pairs})


def test_a_folder_split_keeps_every_folder_in_one_split() -> None:
    tables, report = split_pairs(people(), by="folder", test=0.3, val=0.2, seed=2)
    seen = {s: {i.split("/")[0] for i in images_of(t)} for s, t in tables.items()}
    assert all(seen.values()) and report["units"] == {"train": 5, "val": 2, "test": 3}
    assert not (seen["train"] & seen["test"] or seen["train"] & seen["val"])
    assert not seen["val"] & seen["test"]
    flat = people()
    ids = np.asarray([i.replace("/", "_") for i in flat.images["images"].ids.tolist()])
    pairs = flat.pairs["train"]
    flat = dataclasses.replace(
        flat,
        images={"images": dataclasses.replace(flat.images["images"], ids=ids)},
        pairs={
            "train": dataclasses.replace(
                pairs, a=np.char.replace(pairs.a, "/", "_"), b=np.char.replace(pairs.b, "/", "_")
            )
        },
    )
    with pytest.raises(DataError, match="no image is in a folder"):
        split_pairs(flat, by="folder")


def test_a_groups_csv_keeps_its_groups_whole_and_must_place_every_paired_image(
    tmp_path: Path,
) -> None:
    dataset = people()
    path = tmp_path / "groups.csv"
    # two people per group: the groups file, not the folders, decides
    lines = [f"p{k}/{i}.jpg,g{k // 2}" for k in range(10) for i in range(4)]
    path.write_text("image,group\n" + "\n".join(lines) + "\n")
    groups = read_groups_csv(path)
    tables, report = split_pairs(dataset, by="group", groups=groups, test=0.4, val=0.2, seed=1)
    seen = {s: {groups[i] for i in images_of(t)} for s, t in tables.items()}
    assert sum(report["units"].values()) == 5 and report["units"]["test"] == 2
    assert not (seen["train"] & seen["test"] or seen["train"] & seen["val"])
    assert leaks(dataclasses.replace(dataset, pairs=tables), by="group", groups=groups) == []
    twice = dataclasses.replace(dataset, pairs={"train": tables["train"], "test": tables["train"]})
    assert leaks(twice, by="group", groups=groups) == sorted(
        {groups[i] for i in images_of(tables["train"])}
    )
    path.write_text("image,group\n" + "\n".join(lines[:-4]) + "\n")  # p9 has no group
    with pytest.raises(DataError, match=r"4 paired image\(s\) have no group: p9/0.jpg"):
        split_pairs(dataset, by="group", groups=read_groups_csv(path))
    with pytest.raises(DataError, match="splits by group, not by folder"):
        split_pairs(dataset, by="folder", groups=groups)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("image\na.jpg\n", "line 1: missing column\\(s\\) group"),
        ("image,group\na.jpg,\n", "line 2, field 'group': empty"),
        ("image,group\na.jpg,x,y\n", "line 2: expected 2 fields, got 3"),
        (
            "image,group\na.jpg,x\nb.jpg,y\na.jpg,z\n",
            "line 4, field 'group': image 'a.jpg' is in group 'x' on line 2",
        ),
    ],
)
def test_a_bad_groups_csv_is_named_by_line_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "groups.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_groups_csv(path)
