"""Accuracy on pair tables: ties are wrong, equal pairs ignored, each image scored once."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from outpool.data import Dataset, PairTable
from outpool.evaluate import accuracy_on, pair_accuracy, score_images, score_table, to_tensor
from outpool.synth import World

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_perfect_and_reversed() -> None:
    sa = np.array([3.0, 1.0, 0.5, -2.0])
    sb = np.array([1.0, 2.0, 0.0, -1.0])
    label = np.sign(sa - sb).astype(np.int8)
    assert pair_accuracy(sa, sb, label) == 100.0
    assert pair_accuracy(sa, sb, -label) == 0.0
    assert pair_accuracy(sb, sa, label) == 0.0


def test_partial_accuracy() -> None:
    sa = np.array([1.0, 1.0, 1.0, 1.0])
    sb = np.array([0.0, 0.0, 2.0, 2.0])
    label = np.array([1, 1, 1, -1], np.int8)  # right, right, wrong, right
    assert pair_accuracy(sa, sb, label) == 75.0


def test_ties_count_as_wrong() -> None:
    s = np.full(6, 0.7)
    label = np.array([1, -1, 1, -1, 1, -1], np.int8)
    assert pair_accuracy(s, s.copy(), label) == 0.0
    # one tie among otherwise right pairs
    assert pair_accuracy(np.array([2.0, 1.0]), np.array([1.0, 1.0]), np.array([1, 1])) == 50.0


def test_equal_labelled_pairs_are_ignored() -> None:
    sa = np.array([2.0, 0.0, 5.0, 5.0])
    sb = np.array([1.0, 1.0, 1.0, 9.0])
    label = np.array([1, 1, 0, 0], np.int8)  # the last two are "equal" and ignored
    assert pair_accuracy(sa, sb, label) == 50.0
    assert pair_accuracy(sa[:2], sb[:2], label[:2]) == 50.0


def test_all_equal_is_nan() -> None:
    assert math.isnan(pair_accuracy(np.ones(3), np.zeros(3), np.zeros(3, np.int8)))
    assert math.isnan(pair_accuracy(np.zeros(0), np.zeros(0), np.zeros(0, np.int8)))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-3, 3).map(float),
            st.integers(-3, 3).map(float),
            st.sampled_from([-1, 0, 1]),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_matches_a_brute_force_count(rows: list[tuple[float, float, int]]) -> None:
    sa, sb, label = (np.array(c) for c in zip(*rows, strict=True))
    decided = [(a, b, lab) for a, b, lab in rows if lab != 0]
    got = pair_accuracy(sa, sb, label.astype(np.int8))
    if not decided:
        assert math.isnan(got)
        return
    right = sum((lab == 1 and a > b) or (lab == -1 and b > a) for a, b, lab in decided)
    assert got == pytest.approx(100.0 * right / len(decided))
    # swapping the two sides and the label keeps the accuracy
    assert pair_accuracy(sb, sa, -label.astype(np.int8)) == pytest.approx(got)


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
