"""What a creator may read: the strengths' range comes from the generator's own pictures."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from outpool.creators import CreationContext
from outpool.creators.context import PRIOR_SPREAD
from outpool.data import Dataset
from outpool.synth import World
from tiny_models import tiny_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_strengths_range_is_the_generator_table_s_or_the_prior_s(
    small_world: World,
) -> None:
    dataset: Dataset = small_world.dataset
    generator = tiny_generator(dataset)
    low, high = CreationContext(dataset=dataset, attribute="heel").strength_range(generator)
    strengths = np.asarray(dataset.images["generator"].strengths)
    assert np.allclose(low, strengths.min(0)) and np.allclose(high, strengths.max(0))
    # without the generator's pictures: the training mean +- PRIOR_SPREAD std
    bare = dataclasses.replace(
        dataset, images={k: v for k, v in dataset.images.items() if k != "generator"}
    )
    low, high = CreationContext(dataset=bare, attribute="heel").strength_range(generator)
    mean, std = generator.y_mean.numpy(), generator.y_std.numpy()
    assert np.allclose(low, mean - PRIOR_SPREAD * std) and np.allclose(
        high, mean + PRIOR_SPREAD * std
    )
