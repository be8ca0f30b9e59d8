"""Splits without leaks: every image (or group) in one split, straddling pairs dropped and
counted, and the check that finds images in two splits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from outpool.data import Dataset, PairTable
from outpool.data.splits import leaks, split_pairs
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
