"""Semantic Jitter: pairs that share a starting image's identity u and every strength but the
target attribute's, which moves by the hand-set step; labels from that move."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from outpool.creators import CREATORS, CreationContext
from outpool.creators.context import PRIOR_SPREAD
from outpool.creators.pairs import CreatedPairs, freeze, inferred_labels, render
from outpool.creators.semantic_jitter import SemanticJitterConfig
from outpool.data import Dataset
from outpool.errors import ConfigError, DataError
from outpool.judges.generator_check import to_uint8
from outpool.models.generator import ConditionalVAE
from outpool.models.ranker import DeepSTN, RankerConfig
from outpool.models.tensors import to_tensor
from outpool.synth import World
from outpool.train.ranker import RankerTrainConfig
from tiny_models import tiny_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ATTR = "heel"
BAND = 0.03
RANKER_CFG = RankerTrainConfig(model=RankerConfig(width=4), device="cpu")


def make_context(dataset: Dataset, generator: ConditionalVAE | None) -> CreationContext:
    return CreationContext(
        dataset=dataset,
        attribute=ATTR,
        ranker=DeepSTN(RANKER_CFG.model),
        ranker_cfg=RANKER_CFG,
        generator=generator,
        equal_band=BAND,
    )


@pytest.fixture(scope="module")
def dataset(small_world: World) -> Dataset:
    return small_world.dataset


@pytest.fixture(scope="module")
def context(dataset: Dataset) -> CreationContext:
    return make_context(dataset, tiny_generator(dataset))


def create(
    context: CreationContext, budget: int, tmp_path: Path, cfg: SemanticJitterConfig
) -> CreatedPairs:
    return CREATORS["semantic_jitter"].create(context, budget, tmp_path, cfg, progress=False)


def check_one_attribute_moves(
    made: CreatedPairs, k: int, std: float, cfg: SemanticJitterConfig
) -> np.ndarray:
    """u and every other strength shared; the target moved by min..max std; labels inferred."""
    assert made.y_a is not None and made.y_b is not None
    assert made.u_a is not None and made.u_b is not None
    assert np.array_equal(made.u_a, made.u_b)
    others = np.arange(made.y_a.shape[1]) != k
    assert np.array_equal(made.y_a[:, others], made.y_b[:, others])
    moved = np.abs(made.y_b[:, k] - made.y_a[:, k]) / std
    assert (moved >= cfg.min_step - 1e-4).all() and (moved <= cfg.max_step + 1e-4).all()
    diff = made.y_a[:, k] - made.y_b[:, k]
    assert np.array_equal(made.label, inferred_labels(diff, BAND))
    assert np.array_equal(made.label, np.where(np.abs(diff) < BAND, 0, np.sign(diff)))
    return diff


def test_pairs_start_from_real_images_and_move_only_the_target(
    context: CreationContext, tmp_path: Path
) -> None:
    cfg = SemanticJitterConfig(min_step=0.1, max_step=0.8)
    generator = context.require_generator()
    k = generator.attributes.index(ATTR)
    std = float(generator.y_std[k])
    table = context.dataset.images["generator"]
    made = create(context, 40, tmp_path, cfg)
    assert made.creator == "semantic_jitter" and made.attribute == ATTR and len(made) == 40
    diff = check_one_attribute_moves(made, k, std, cfg)
    assert made.y_a is not None and made.y_b is not None and made.u_a is not None
    assert (diff > 0).any() and (diff < 0).any()  # both directions
    # side a is a real image of the generator's table: its strengths and its encoded identity
    strengths = np.asarray(table.strengths, np.float32)
    rows = [int(np.flatnonzero((strengths == y).all(1))[0]) for y in made.y_a]
    assert len(set(rows)) == len(rows)  # no repeats while the table lasts
    x = to_tensor(np.asarray(table.pixels)[rows])
    u = freeze(generator).latent(x, torch.from_numpy(strengths[rows]))
    assert np.allclose(made.u_a, u.numpy(), atol=1e-5)
    # moves stay within the table's strengths (room enough to turn round at either end)
    lo, hi = strengths[:, k].min(), strengths[:, k].max()
    assert ((made.y_b[:, k] >= lo - 1e-6) & (made.y_b[:, k] <= hi + 1e-6)).all()
    # the images are the frozen generator's drawings of y and u
    with torch.no_grad():
        for y, side in ((made.y_a, made.images_a), (made.y_b, made.images_b)):
            drawn = render(generator, torch.from_numpy(y[:5]), torch.from_numpy(made.u_a[:5]))
            assert np.abs(to_uint8(drawn).astype(int) - side[:5]).max() <= 1


def test_symmetric_moves_split_the_step_over_both_sides(
    context: CreationContext, tmp_path: Path
) -> None:
    cfg = SemanticJitterConfig(symmetric=True, seed=3)
    generator = context.require_generator()
    k = generator.attributes.index(ATTR)
    made = create(context, 30, tmp_path, cfg)
    check_one_attribute_moves(made, k, float(generator.y_std[k]), cfg)
    assert made.y_a is not None and made.y_b is not None
    middle = (made.y_a[:, k] + made.y_b[:, k]) / 2
    strengths = context.dataset.images["generator"].strength(ATTR)
    gaps = np.abs(middle[:, None] - strengths[None, :]).min(1)
    assert gaps.max() < 1e-5  # both sides moved by half from a real image's strength


def test_repeatable_from_the_seed(context: CreationContext, tmp_path: Path) -> None:
    one = create(context, 12, tmp_path, SemanticJitterConfig(seed=5))
    again = create(context, 12, tmp_path, SemanticJitterConfig(seed=5))
    other = create(context, 12, tmp_path, SemanticJitterConfig(seed=6))
    for name in ("images_a", "images_b", "label", "y_a", "y_b", "u_a", "u_b"):
        assert np.array_equal(getattr(one, name), getattr(again, name))
    assert one.y_b is not None and other.y_b is not None
    assert not np.array_equal(one.y_b, other.y_b)


def test_without_the_generator_s_table_starts_are_drawn(
    dataset: Dataset, context: CreationContext, tmp_path: Path
) -> None:
    images = {name: t for name, t in dataset.images.items() if name != "generator"}
    bare = make_context(dataclasses.replace(dataset, images=images), context.generator)
    generator = context.require_generator()
    k = generator.attributes.index(ATTR)
    cfg = SemanticJitterConfig()
    made = create(bare, 300, tmp_path, cfg)
    check_one_attribute_moves(made, k, float(generator.y_std[k]), cfg)
    assert made.y_a is not None and made.y_b is not None and made.u_a is not None
    # y around the generator's training strengths, u from N(0, I)
    mean, std = generator.y_mean.numpy(), generator.y_std.numpy()
    z = (made.y_a - mean) / std
    assert np.abs(z.mean(0)).max() < 0.3 and np.abs(z.std(0) - 1).max() < 0.3
    assert abs(made.u_a.mean()) < 0.1 and abs(made.u_a.std() - 1) < 0.1
    assert made.u_a.shape == (300, generator.config.z_dim)
    # a move from inside mean +- PRIOR_SPREAD std stays inside; one from outside heads back
    start, end = np.abs(z[:, k]), np.abs((made.y_b[:, k] - mean[k]) / std[k])
    inside = start <= PRIOR_SPREAD
    assert inside.any() and (~inside).any()
    assert (end[inside] <= PRIOR_SPREAD + 1e-5).all() and (end[~inside] < start[~inside]).all()


def test_a_table_without_the_strengths_is_refused(context: CreationContext, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="image table 'train' has no images with strengths"):
        create(context, 5, tmp_path, SemanticJitterConfig(table="train"))


def test_a_context_without_a_generator_is_refused(dataset: Dataset, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="needs a generator"):
        create(make_context(dataset, None), 5, tmp_path, SemanticJitterConfig())


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"min_step": 0.0}, "min_step"),
        ({"min_step": float("nan")}, "min_step"),
        ({"min_step": 0.5, "max_step": 0.2}, "max_step"),
        ({"max_step": float("inf")}, "max_step"),
        ({"table": ""}, "table"),
    ],
)
def test_bad_settings_are_named(kwargs: dict[str, object], option: str) -> None:
    with pytest.raises(ConfigError, match=option):
        SemanticJitterConfig(**kwargs)  # type: ignore[arg-type]
