"""The pure losses: RankNet and label targets, the generator's likelihoods and KL term."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from outpool.train.losses import (
    gaussian_nll,
    kl_to_standard_normal,
    label_to_target,
    luma_chroma_nll,
    ranknet_loss,
)

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


# -- the generator's likelihoods and KL --------------------------------------------------
finite = st.floats(-5.0, 5.0, allow_nan=False, width=32)


def test_kl_is_zero_at_the_prior() -> None:
    kl = kl_to_standard_normal(torch.zeros(3, 8), torch.zeros(3, 8))
    assert kl.shape == (3,)
    assert torch.equal(kl, torch.zeros(3))


def test_kl_matches_the_analytic_formula() -> None:
    mu = torch.tensor([[1.0, -2.0], [0.0, 0.5]])
    lv = torch.tensor([[0.0, 1.0], [-1.0, 0.3]])
    expected = [
        0.5 * (1 + 1 - 1 - 0) + 0.5 * (4 + math.e - 1 - 1),
        0.5 * (0 + math.exp(-1) - 1 + 1) + 0.5 * (0.25 + math.exp(0.3) - 1 - 0.3),
    ]
    assert torch.allclose(kl_to_standard_normal(mu, lv), torch.tensor(expected), atol=1e-6)


@SETTINGS
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=6))
def test_kl_is_non_negative_and_analytic(rows: list[tuple[float, float]]) -> None:
    mu = torch.tensor([[m for m, _ in rows]])
    lv = torch.tensor([[v for _, v in rows]])
    kl = kl_to_standard_normal(mu, lv)
    expected = sum(0.5 * (m * m + math.exp(v) - 1 - v) for m, v in rows)
    assert kl.shape == (1,)
    assert kl.item() >= -1e-6
    assert kl.item() == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_gaussian_nll_value_and_shape() -> None:
    x = torch.full((2, 3, 4, 4), 0.75)
    mean = torch.full((2, 3, 4, 4), 0.25)
    lv = torch.full((2, 3, 4, 4), 0.5)
    nll = gaussian_nll(x, mean, lv)
    assert nll.shape == (2,)
    d = (0.75 - 0.25) * 2  # the error in [-1, 1] units
    per_pixel = 0.5 * (0.5 + d * d * math.exp(-0.5))
    assert torch.allclose(nll, torch.full((2,), 48 * per_pixel))


def test_gaussian_nll_falls_as_the_mean_approaches_x() -> None:
    x = torch.full((1, 3, 8, 8), 0.8)
    lv = torch.zeros(1, 3, 8, 8)
    means = [0.0, 0.2, 0.5, 0.7, 0.79, 0.8]
    nll = [gaussian_nll(x, torch.full_like(x, m), lv).item() for m in means]
    assert all(a > b for a, b in itertools.pairwise(nll))
    # from above too
    above = [gaussian_nll(x, torch.full_like(x, m), lv).item() for m in (1.0, 0.9, 0.8)]
    assert above[0] > above[1] > above[2] == pytest.approx(nll[-1])


@SETTINGS
@given(st.floats(0.01, 0.5), st.floats(0.0, 0.5))
def test_gaussian_nll_is_minimised_at_the_squared_error(error: float, x0: float) -> None:
    x = torch.full((1, 3, 2, 2), x0, dtype=torch.float64)
    mean = x + error
    best = math.log((2 * error) ** 2)  # log of the squared error in [-1, 1] units
    lv = torch.full_like(x, best, requires_grad=True)
    gaussian_nll(x, mean, lv).sum().backward()
    assert lv.grad is not None
    assert torch.allclose(lv.grad, torch.zeros_like(lv), atol=1e-9)  # stationary ...
    at_best = gaussian_nll(x, mean, torch.full_like(x, best)).item()
    for step in (-1.0, -0.1, 0.1, 1.0):  # ... and a minimum
        assert gaussian_nll(x, mean, torch.full_like(x, best + step)).item() > at_best


def test_gaussian_nll_grid_argmin() -> None:
    x = torch.zeros(1, 3, 4, 4)
    mean = torch.full_like(x, 0.1)  # error 0.2 in [-1, 1] units
    grid = torch.linspace(-8, 2, 1001)
    nll = torch.stack([gaussian_nll(x, mean, torch.full_like(x, float(g)))[0] for g in grid])
    assert grid[nll.argmin()].item() == pytest.approx(math.log(0.04), abs=0.011)


# RGB -> (luma, two chroma axes), written out here rather than taken from the code under test
LUMA_CHROMA_AXES = torch.tensor(
    [[3**-0.5] * 3, [2**-0.5, -(2**-0.5), 0.0], [6**-0.5, 6**-0.5, -2 * 6**-0.5]]
)


def one_variance_nll(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Gaussian NLL with one variance per image at its optimum (sigma-VAE's calibrated
    decoder), written out: the baseline the luma/chroma likelihood is compared with."""
    d = ((x - mean) * 2).flatten(1)
    return 0.5 * d.shape[1] * (torch.log((d * d).mean(1)) + 1)


def luma_chroma_by_hand(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    d = (x - mean) * 2
    r, g, b = d[:, 0], d[:, 1], d[:, 2]
    luma = ((r + g + b) / math.sqrt(3)).flatten(1)
    chroma = torch.cat(
        [((r - g) / math.sqrt(2)).flatten(1), ((r + g - 2 * b) / math.sqrt(6)).flatten(1)], 1
    )
    return sum(0.5 * p.shape[1] * (torch.log((p * p).mean(1)) + 1) for p in (luma, chroma))


def test_luma_chroma_nll_is_two_calibrated_gaussians_in_a_rotated_colour_basis() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 8, 8, generator=g)
    mean = x + torch.tensor([0.03, 0.08, 0.2]).view(3, 1, 1, 1) * torch.randn(
        3, 3, 8, 8, generator=g
    )
    nll = luma_chroma_nll(x, mean)
    assert nll.shape == (3,)
    assert torch.allclose(nll, luma_chroma_by_hand(x, mean), rtol=1e-5)
    assert nll[0] < nll[1] < nll[2]  # a larger error costs more


def test_luma_chroma_nll_floors_each_part_separately() -> None:
    x = torch.rand(2, 3, 4, 4)
    grey_error = x + 0.1  # the same error in R, G and B: luma only
    nll = luma_chroma_nll(x, grey_error, min_logvar=-7.0)
    luma_mse = 3 * 0.2**2  # (3 * 0.2 / sqrt(3))^2 per pixel
    expected = 0.5 * 16 * (math.log(luma_mse) + 1) + 0.5 * 32 * -7.0
    assert torch.allclose(nll, torch.full((2,), expected), rtol=1e-4)


def test_luma_chroma_nll_does_not_depend_on_which_hue_is_wrong() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 8, 8, generator=g)
    edges = 0.2 * torch.randn(1, 1, 8, 8, generator=g).expand(1, 3, 8, 8)  # grey errors
    nlls = []
    for angle in (0.0, 1.0, 2.5):
        chroma = torch.tensor([math.cos(angle), math.sin(angle)])
        rgb = (chroma @ LUMA_CHROMA_AXES[1:]).view(1, 3, 1, 1) * 0.1
        nlls.append(luma_chroma_nll(x, x + edges + rgb).item())
    assert nlls == pytest.approx([nlls[0]] * 3, rel=1e-5)


def test_luma_chroma_nll_prices_a_wrong_hue_beside_large_grey_errors() -> None:
    """An upper drawn grey where it is coloured (a tenth of the pixels), beside edge errors that
    are grey: the one-variance likelihood barely notices, the luma/chroma one does."""
    g = torch.Generator().manual_seed(2)
    x = torch.full((1, 3, 16, 16), 0.5)
    x[:, 0, :4, :6] += 0.1  # a reddish upper on 24 of 256 pixels
    x[:, 1, :4, :6] -= 0.05
    x[:, 2, :4, :6] -= 0.05
    edges = 0.15 * torch.randn(1, 1, 16, 16, generator=g).expand(1, 3, 16, 16)
    right = x + edges
    grey = right.clone()
    grey[:, :, :4, :6] = grey[:, :, :4, :6].mean(1, keepdim=True)  # the hue averaged away
    one = (one_variance_nll(x, grey) - one_variance_nll(x, right)).item()
    two = (luma_chroma_nll(x, grey) - luma_chroma_nll(x, right)).item()
    bounded = (
        luma_chroma_nll(x, grey, chroma_ratio=10.0) - luma_chroma_nll(x, right, chroma_ratio=10.0)
    ).item()
    assert 0 < one < 20  # nats: less than the KL of a few latent dimensions
    assert two > 10 * one
    assert bounded > 5 * one  # the default bound keeps most of it


def face_like_errors(chroma_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """An image and a guess whose errors are mostly grey, with colour errors ``chroma_scale``
    times as large (a face's are ~0.14: its colour variance ~1/50 of its luma variance)."""
    g = torch.Generator().manual_seed(3)
    x = torch.full((1, 3, 8, 8), 0.5)
    grey = 0.1 * torch.randn(1, 1, 8, 8, generator=g).expand(1, 3, 8, 8)
    colour = 0.1 * chroma_scale * torch.randn(1, 3, 8, 8, generator=g)
    colour = colour - colour.mean(1, keepdim=True)  # no grey part
    return x, x + grey + colour


def error_weights(x: torch.Tensor, mean: torch.Tensor, chroma_ratio: float) -> tuple[float, float]:
    """d NLL / d (squared error), for a luma and for a chroma error: what one unit of each costs."""
    mean = mean.clone().requires_grad_()
    luma_chroma_nll(x, mean, chroma_ratio=chroma_ratio).sum().backward()
    assert mean.grad is not None
    err = torch.einsum("cr,brhw->bchw", LUMA_CHROMA_AXES, (x - mean.detach()) * 2)
    grad = torch.einsum("cr,brhw->bchw", LUMA_CHROMA_AXES, mean.grad)
    # nll = sum w_part * err^2 locally, and d err / d mean = -2: grad = -4 w err
    w = (-grad / (4 * err)).flatten(2)
    return w[0, 0].mean().item(), w[0, 1:].mean().item()


def test_chroma_ratio_bounds_what_a_colour_error_costs_against_a_grey_one() -> None:
    x, mean = face_like_errors(0.14)
    luma, chroma = error_weights(x, mean, math.inf)
    assert chroma / luma > 30  # unbounded: the colour errors' own small variance
    luma, chroma = error_weights(x, mean, 10.0)
    assert chroma / luma == pytest.approx(10.0, rel=1e-3)
    luma_4, chroma_4 = error_weights(x, mean, 4.0)
    assert chroma_4 / luma_4 == pytest.approx(4.0, rel=1e-3)


def test_chroma_ratio_is_the_optimum_under_the_bound_and_free_where_it_does_not_bind() -> None:
    x, mean = face_like_errors(0.14)
    d = (x - mean) * 2
    total = (d * d).sum()
    luma = ((d.sum(1) / math.sqrt(3)) ** 2).sum()
    chroma = total - luma
    n = 64
    var = (luma + 10.0 * chroma) / (3 * n)  # the tied optimum: one variance, chroma scaled
    by_hand = 0.5 * (3 * n * torch.log(var) + 2 * n * math.log(1 / 10.0) + 3 * n)
    bounded = luma_chroma_nll(x, mean, chroma_ratio=10.0)
    assert torch.allclose(bounded, by_hand.view(1), rtol=1e-5)
    assert (bounded > luma_chroma_nll(x, mean)).all()  # a constrained optimum is no better
    colourful_x, colourful = face_like_errors(1.0)  # colour errors as large as grey ones
    assert torch.allclose(
        luma_chroma_nll(colourful_x, colourful, chroma_ratio=10.0),
        luma_chroma_nll(colourful_x, colourful),
    )


def test_chroma_ratio_1_is_one_shared_variance_unless_colour_errors_are_the_larger() -> None:
    # the faces config: sigma-VAE's calibrated decoder wherever grey errors dominate
    x, mean = face_like_errors(0.14)
    assert torch.allclose(luma_chroma_nll(x, mean, chroma_ratio=1.0), one_variance_nll(x, mean))
    colourful_x, colourful = face_like_errors(3.0)  # colour errors larger than grey ones
    assert torch.allclose(
        luma_chroma_nll(colourful_x, colourful, chroma_ratio=1.0),
        luma_chroma_nll(colourful_x, colourful),
    )
    assert (
        luma_chroma_nll(colourful_x, colourful, chroma_ratio=1.0)
        < one_variance_nll(colourful_x, colourful)
    ).all()
