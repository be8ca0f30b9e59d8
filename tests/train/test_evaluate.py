"""Scoring images with a ranker (its test-time views where asked) and accuracy on pair tables,
each image scored once."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from outpool.data import Dataset, PairTable
from outpool.models.ranker import DeepSTN, RankerConfig
from outpool.models.tensors import to_tensor
from outpool.synth import World
from outpool.train.evaluate import accuracy_on, score_images, score_table

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Counting(nn.Module):
    """Scores an image by its mean red value; counts the images it was asked to score."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.seen += len(x)
        return x[:, 0].mean(dim=(1, 2))

    score_views = forward  # one view: what a ranker without test-time views does


def red(pixels: np.ndarray) -> np.ndarray:
    return pixels[..., 0].astype(np.float64).mean(axis=(1, 2)) / 255.0


def test_to_tensor_layout() -> None:
    pixels = np.zeros((2, 64, 64, 3), np.uint8)
    pixels[1, 3, 5] = (255, 0, 51)
    x = to_tensor(pixels)
    assert x.shape == (2, 3, 64, 64) and x.dtype == torch.float32
    assert x[1, :, 3, 5].tolist() == pytest.approx([1.0, 0.0, 0.2])
    ro = pixels.copy()
    ro.flags.writeable = False
    assert torch.equal(to_tensor(ro), x)


def test_score_images_batches_and_restores_mode() -> None:
    model = Counting()
    model.train()
    pixels = np.random.default_rng(0).integers(0, 256, (7, 64, 64, 3), dtype=np.uint8)
    scores = score_images(model, pixels, batch=3)
    assert model.calls == 3 and model.seen == 7
    assert np.allclose(scores, red(pixels), atol=1e-6)
    assert model.training
    assert score_images(model, pixels[:0]).shape == (0,)


def test_accuracy_on_scores_each_image_once(small_world: World) -> None:
    dataset: Dataset = small_world.dataset
    pairs = dataset.pairs["test"].for_attribute("heel")
    ids = np.concatenate([pairs.a, pairs.b])
    unique = np.unique(ids)
    assert len(unique) < len(ids)  # images do repeat across pairs here
    model = Counting()
    got = accuracy_on(model, dataset, pairs)
    assert model.seen == len(unique)
    # brute force: score every pair's two images directly
    sa = red(dataset.lookup(pairs.a))
    sb = red(dataset.lookup(pairs.b))
    decided = pairs.label != 0
    right = np.where(pairs.label == 1, sa > sb, sb > sa)[decided]
    assert got == pytest.approx(100.0 * right.mean())
    assert 0.0 < got < 100.0  # a weak "ranker": the check is not trivially 0 or 100


def test_score_table_keys_by_id(small_world: World) -> None:
    dataset = small_world.dataset
    ids = dataset.pairs["test"].a[:5]
    table = score_table(Counting(), dataset, np.concatenate([ids, ids]))
    assert set(table) == set(ids.tolist())
    for i in ids.tolist():
        assert table[i] == pytest.approx(float(red(dataset.lookup([i]))[0]), abs=1e-6)


def test_accuracy_on_an_empty_table_is_nan(small_world: World) -> None:
    model = Counting()
    assert math.isnan(accuracy_on(model, small_world.dataset, PairTable.empty()))
    assert model.calls == 0


def test_score_images_uses_the_test_time_views_only_when_asked() -> None:
    torch.manual_seed(0)
    model = DeepSTN(RankerConfig(width=4, mirror_average=True, test_zooms=(1.25,)))
    pixels = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    x = to_tensor(pixels)
    model.eval()
    with torch.no_grad():
        one, views = model(x).numpy(), model.score_views(x).numpy()
    assert not np.allclose(one, views, atol=1e-5)
    assert np.allclose(score_images(model, pixels), views, atol=1e-6)
    assert np.allclose(score_images(model, pixels, views=False), one, atol=1e-6)
