"""Uncertainty sampling: the unlabelled pool pairs the ranker is least sure of."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from outpool.creators import CREATORS, CreationContext
from outpool.creators.uncertainty import UncertaintyConfig
from outpool.errors import ConfigError, DataError, UnknownNameError
from outpool.models.ranker import DeepSTN, RankerConfig
from outpool.synth import World
from outpool.train.evaluate import score_images
from outpool.train.ranker import RankerTrainConfig

ATTR = "heel"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def context(small_world: World) -> CreationContext:
    cfg = RankerTrainConfig(model=RankerConfig(width=4), device="cpu")
    torch.manual_seed(0)
    return CreationContext(
        dataset=small_world.dataset, attribute=ATTR, ranker=DeepSTN(cfg.model), ranker_cfg=cfg
    )


def test_the_closest_scored_unlabelled_pairs_win(context: CreationContext, tmp_path: Path) -> None:
    cfg = UncertaintyConfig(candidates=400)
    made = CREATORS["uncertainty"].create(context, 20, tmp_path, cfg, progress=False)
    assert made.creator == "uncertainty" and len(made) == 20 and made.y_a is None
    table = context.dataset.images["train"]
    pixels = np.asarray(table.pixels)
    index = {bytes(img): i for i, img in enumerate(pixels)}
    a = np.array([index[bytes(img)] for img in made.images_a])
    b = np.array([index[bytes(img)] for img in made.images_b])
    assert (a != b).all()
    labelled = set()
    for pairs in context.dataset.pairs.values():
        mine = pairs.for_attribute(ATTR)
        labelled |= {frozenset(p) for p in zip(mine.a, mine.b, strict=True)}
    assert not any(
        frozenset((table.ids[i], table.ids[j])) in labelled for i, j in zip(a, b, strict=True)
    )
    scores = score_images(context.ranker, pixels)
    gaps = np.abs(scores[a] - scores[b])
    # no other candidate pair is closer than the widest chosen one
    rng = np.random.default_rng(cfg.seed)
    i = rng.integers(0, len(table), cfg.candidates)
    j = (i + rng.integers(1, len(table), cfg.candidates)) % len(table)
    candidates = {frozenset(p) for p in zip(i.tolist(), j.tolist(), strict=True)}
    chosen = {frozenset(p) for p in zip(a.tolist(), b.tolist(), strict=True)}
    others = [
        tuple(p)
        for p in candidates - chosen
        if frozenset((table.ids[min(p)], table.ids[max(p)])) not in labelled
    ]
    widest = gaps.max()
    assert all(abs(scores[p] - scores[q]) >= widest - 1e-7 for p, q in others)
    assert np.array_equal(made.label, np.sign(scores[a] - scores[b]).astype(np.int8))


def test_a_pool_too_small_for_the_budget_is_named(context: CreationContext, tmp_path: Path) -> None:
    few = UncertaintyConfig(candidates=5)
    with pytest.raises(DataError, match="fewer than the 50 asked for"):
        CREATORS["uncertainty"].create(context, 50, tmp_path, few, progress=False)
    with pytest.raises(UnknownNameError, match="nosuch"):
        CREATORS["uncertainty"].create(
            context, 5, tmp_path, UncertaintyConfig(pool="nosuch"), progress=False
        )
    with pytest.raises(ConfigError, match="candidates"):
        UncertaintyConfig(candidates=0)
