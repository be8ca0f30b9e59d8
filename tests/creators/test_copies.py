"""Jitter (copies of real pairs, labels inherited) and Real+ (pseudo pairs of the generator's real
training images, labelled from their strengths)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from outpool.creators import CREATORS, CreationContext
from outpool.creators.copies import JitterConfig, RealPlusConfig
from outpool.data import Dataset
from outpool.errors import ConfigError, DataError, UnknownNameError
from outpool.models.ranker import DeepSTN, RankerConfig
from outpool.synth import World
from outpool.train.ranker import RankerTrainConfig

ATTR = "heel"


@pytest.fixture(scope="module")
def context(small_world: World) -> CreationContext:
    cfg = RankerTrainConfig(model=RankerConfig(width=4), device="cpu")
    return CreationContext(
        dataset=small_world.dataset,
        attribute=ATTR,
        ranker=DeepSTN(cfg.model),
        ranker_cfg=cfg,
        equal_band=0.03,
    )


def test_jitter_copies_real_pairs_with_their_labels(
    context: CreationContext, tmp_path: Path
) -> None:
    real = context.pairs("train")
    lookup = context.dataset.lookup
    by_images = {
        (bytes(a), bytes(b)): label
        for a, b, label in zip(lookup(real.a), lookup(real.b), real.label, strict=True)
    }
    still = JitterConfig(shift=0, zoom=0, rotate=0, color=0)
    copies = CREATORS["jitter"].create(context, 50, tmp_path, still, progress=False)
    assert len(copies) == 50 and len(real) < 50  # more copies than pairs: each pair reused
    for a, b, label in zip(copies.images_a, copies.images_b, copies.label, strict=True):
        assert by_images[(bytes(a), bytes(b))] == label  # a real pair, its label inherited
    made = CREATORS["jitter"].create(context, 50, tmp_path, JitterConfig(), progress=False)
    assert made.creator == "jitter" and made.y_a is None
    assert np.array_equal(made.label, copies.label)  # the same pairs, moved
    moved = np.abs(made.images_a.astype(float) - copies.images_a).mean(axis=(1, 2, 3))
    assert (moved > 0).all() and moved.mean() < 40
    again = CREATORS["jitter"].create(context, 50, tmp_path, JitterConfig(), progress=False)
    assert np.array_equal(made.images_b, again.images_b)


def test_real_plus_labels_pairs_of_generator_images_by_their_strengths(
    context: CreationContext, tmp_path: Path
) -> None:
    table = context.dataset.images["generator"]
    made = CREATORS["real_plus"].create(context, 200, tmp_path, RealPlusConfig(), progress=False)
    assert made.creator == "real_plus" and len(made) == 200
    pixels = np.asarray(table.pixels).reshape(len(table), -1)
    index = {bytes(row): i for i, row in enumerate(pixels)}
    a = np.array([index[bytes(img.reshape(-1))] for img in made.images_a])
    b = np.array([index[bytes(img.reshape(-1))] for img in made.images_b])
    assert (a != b).all()
    diff = table.strength(ATTR)[a] - table.strength(ATTR)[b]
    expected = np.where(np.abs(diff) < 0.03, 0, np.sign(diff))
    assert np.array_equal(made.label, expected)


def test_bad_settings_are_named(context: CreationContext, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rotate must be >= 0"):
        JitterConfig(rotate=-1)
    with pytest.raises(UnknownNameError, match="nosuch"):
        CREATORS["real_plus"].create(
            context, 5, tmp_path, RealPlusConfig(table="nosuch"), progress=False
        )
    with pytest.raises(DataError, match="'train' has no strengths of 'heel'"):
        CREATORS["real_plus"].create(
            context, 5, tmp_path, RealPlusConfig(table="train"), progress=False
        )


def test_an_empty_pair_table_cannot_be_jittered(small_world: World, tmp_path: Path) -> None:
    dataset: Dataset = small_world.dataset
    train = dataset.pairs["train"]
    other = dataclasses.replace(
        dataset, pairs={**dataset.pairs, "train": train.subset(train.attribute != ATTR)}
    )
    cfg = RankerTrainConfig(model=RankerConfig(width=4), device="cpu")
    ctx = CreationContext(dataset=other, attribute=ATTR, ranker=DeepSTN(cfg.model), ranker_cfg=cfg)
    with pytest.raises(DataError, match="no 'train' pairs of 'heel' to jitter"):
        CREATORS["jitter"].create(ctx, 5, tmp_path, JitterConfig(), progress=False)
