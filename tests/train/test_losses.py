"""RankNet and label targets: property tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from outpool.train.losses import label_to_target, ranknet_loss

score = st.floats(-20.0, 20.0, allow_nan=False, width=32)
target = st.floats(0.0, 1.0, allow_nan=False, width=32)
SETTINGS = settings(max_examples=60, deadline=None)


def vec(xs: list[float]) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float32)


@SETTINGS
@given(st.lists(st.tuples(score, score, target), min_size=1, max_size=8))
def test_antisymmetry(rows: list[tuple[float, float, float]]) -> None:
    sa, sb, t = (vec(list(c)) for c in zip(*rows, strict=True))
    left = ranknet_loss(sa, sb, t)
    right = ranknet_loss(sb, sa, 1 - t)
    assert torch.allclose(left, right, atol=1e-5, rtol=1e-5)


@SETTINGS
@given(score, score)
def test_matches_the_ranknet_formula(sa: float, sb: float) -> None:
    # target 1: -log sigmoid(sa - sb); target 0: -log sigmoid(sb - sa)
    d = sa - sb
    expected = math.log1p(math.exp(-d)) if d > -30 else -d
    got = ranknet_loss(vec([sa]), vec([sb]), vec([1.0])).item()
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-5)
    got0 = ranknet_loss(vec([sa]), vec([sb]), vec([0.0])).item()
    assert got0 == pytest.approx(expected + d, rel=1e-4, abs=1e-4)


@SETTINGS
@given(score, st.floats(-10.0, 10.0, allow_nan=False).filter(lambda d: abs(d) > 1e-3))
def test_a_tie_is_minimised_at_equal_scores(s: float, d: float) -> None:
    sa = torch.tensor([s], requires_grad=True)
    sb = torch.tensor([s], requires_grad=True)
    at_tie = ranknet_loss(sa, sb, vec([0.5]))
    at_tie.backward()
    assert at_tie.item() == pytest.approx(math.log(2.0), abs=1e-6)
    assert sa.grad is not None and sb.grad is not None
    assert sa.grad.abs().item() < 1e-7 and sb.grad.abs().item() < 1e-7
    apart = ranknet_loss(vec([s + d]), vec([s]), vec([0.5])).item()
    assert apart > at_tie.item()


@SETTINGS
@given(score, score)
def test_a_more_pair_pushes_a_up_and_b_down(sa: float, sb: float) -> None:
    a = torch.tensor([sa], requires_grad=True)
    b = torch.tensor([sb], requires_grad=True)
    ranknet_loss(a, b, vec([1.0])).backward()
    assert a.grad is not None and b.grad is not None
    assert a.grad.item() <= 0 <= b.grad.item()
    assert a.grad.item() == pytest.approx(-b.grad.item())


def test_label_to_target() -> None:
    labels = torch.tensor([1, -1, 0, 1], dtype=torch.int8)
    out = label_to_target(labels)
    assert out.dtype == torch.float32
    assert out.tolist() == [1.0, 0.0, 0.5, 1.0]
    np_out = label_to_target(torch.from_numpy(np.array([-1, 0, 1], np.int8)))
    assert np_out.tolist() == [0.0, 0.5, 1.0]


@SETTINGS
@given(
    st.lists(st.tuples(score, score, target, st.floats(0.05, 1.0)), min_size=1, max_size=6),
    score,
    score,
    target,
)
def test_a_zero_weight_removes_the_pair(
    rows: list[tuple[float, float, float, float]], xa: float, xb: float, xt: float
) -> None:
    sa, sb, t, w = (vec(list(c)) for c in zip(*rows, strict=True))
    base = ranknet_loss(sa, sb, t, w)
    with_extra = ranknet_loss(
        torch.cat([sa, vec([xa])]),
        torch.cat([sb, vec([xb])]),
        torch.cat([t, vec([xt])]),
        torch.cat([w, vec([0.0])]),
    )
    assert torch.allclose(base, with_extra, atol=1e-6, rtol=1e-5)
    # and its scores get no gradient
    a = torch.cat([sa, vec([xa])]).requires_grad_(True)
    ranknet_loss(
        a, torch.cat([sb, vec([xb])]), torch.cat([t, vec([xt])]), torch.cat([w, vec([0.0])])
    ).backward()
    assert a.grad is not None and a.grad[-1].item() == 0.0


@SETTINGS
@given(st.lists(st.tuples(score, score, target), min_size=1, max_size=6), st.floats(0.1, 5.0))
def test_uniform_weights_equal_the_plain_mean(
    rows: list[tuple[float, float, float]], c: float
) -> None:
    sa, sb, t = (vec(list(col)) for col in zip(*rows, strict=True))
    plain = ranknet_loss(sa, sb, t)
    weighted = ranknet_loss(sa, sb, t, torch.full_like(sa, c))
    assert torch.allclose(plain, weighted, atol=1e-6, rtol=1e-5)


def test_weights_scale_each_pairs_share() -> None:
    sa, sb, t = vec([2.0, 0.0]), vec([0.0, 0.0]), vec([1.0, 1.0])
    per_pair = [ranknet_loss(sa[i : i + 1], sb[i : i + 1], t[i : i + 1]).item() for i in (0, 1)]
    got = ranknet_loss(sa, sb, t, vec([3.0, 1.0])).item()
    assert got == pytest.approx((3 * per_pair[0] + per_pair[1]) / 4, rel=1e-6)
