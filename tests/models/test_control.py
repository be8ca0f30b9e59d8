"""ATTIC's control network: shapes, the range of its strengths, its fixed seeds, and gradients
that reach it through a frozen generator and never the generator's weights."""

from __future__ import annotations

import pytest
import torch

from outpool.errors import ConfigError
from outpool.models.control import ControlConfig, ControlNet, control_seeds
from outpool.models.generator import ConditionalVAE, GeneratorConfig

Y_MEAN = torch.tensor([0.2, 0.5, 3.0])
Y_STD = torch.tensor([0.1, 0.3, 2.0])
WIDE = (Y_MEAN - 10 * Y_STD, Y_MEAN + 10 * Y_STD)  # a range the initial strengths never reach
SMALL = ControlConfig(hidden=32, side_hidden=16)


def control(z_dim: int = 8, y_range: tuple[torch.Tensor, torch.Tensor] = WIDE) -> ControlNet:
    torch.manual_seed(0)
    return ControlNet(SMALL, z_dim=z_dim, y_mean=Y_MEAN, y_std=Y_STD, y_range=y_range)


def test_a_pair_of_strengths_and_the_two_halves_of_q_as_latents() -> None:
    net = control()
    q = control_seeds(64, net.q_dim, seed=1)
    pair = net(q)
    assert pair.y_a.shape == pair.y_b.shape == (64, 3)
    assert torch.equal(pair.u_a, q[:, :8]) and torch.equal(pair.u_b, q[:, 8:])
    assert not torch.allclose(pair.y_a, pair.y_b)  # two sides, two branches


def test_strengths_start_in_the_generator_s_range() -> None:
    # BatchNorm then the training strengths' std and mean: each attribute of a batch has the
    # generator's mean and spread, whatever its units
    pair = control()(control_seeds(512, 16, seed=2))
    for y in (pair.y_a, pair.y_b):
        assert torch.allclose(y.mean(0), Y_MEAN, atol=1e-4)
        assert torch.allclose(y.std(0, unbiased=False), Y_STD, rtol=1e-2)


def test_strengths_never_leave_the_generator_s_range() -> None:
    low, high = torch.tensor([0.1, 0.3, 1.0]), torch.tensor([0.3, 0.6, 5.0])
    net = control(y_range=(low, high))
    with torch.no_grad():  # as an adversary might grow them: far beyond the range
        for side in net.sides:
            side[3].weight.mul_(50.0)
    pair = net(control_seeds(256, 16, seed=5))
    for y in (pair.y_a, pair.y_b):
        assert bool((y >= low).all() and (y <= high).all())
        assert bool((y == low).any() and (y == high).any())  # it was pushed to both ends


def test_the_seeds_are_fixed_by_their_seed() -> None:
    assert torch.equal(control_seeds(5, 16, seed=3), control_seeds(5, 16, seed=3))
    assert not torch.equal(control_seeds(5, 16, seed=3), control_seeds(5, 16, seed=4))


def test_linear_layers_start_with_he_initialisation() -> None:
    net = ControlNet(ControlConfig(), z_dim=256, y_mean=Y_MEAN, y_std=Y_STD, y_range=WIDE)
    first = net.trunk[0]
    assert first.in_features == 512 and first.out_features == 512  # the authors' Q = 512
    assert first.weight.std().item() == pytest.approx((2 / 512) ** 0.5, rel=0.05)
    assert torch.equal(first.bias, torch.zeros(512))


def test_gradients_reach_the_control_network_through_a_frozen_generator() -> None:
    torch.manual_seed(0)
    generator = ConditionalVAE(
        GeneratorConfig(z_dim=8, width=4, feature=16, y_embed=8, hidden=16, colour_layers=2),
        attributes=("a", "b", "c"),
        y_mean=Y_MEAN,
        y_std=Y_STD,
    ).eval()
    generator.requires_grad_(False)
    net = control()
    pair = net(control_seeds(6, net.q_dim, seed=0))
    image_a = generator.decode(pair.y_a, generator.from_standard(pair.u_a))[0]
    image_b = generator.decode(pair.y_b, generator.from_standard(pair.u_b))[0]
    assert image_a.shape == (6, 3, 64, 64) and image_a.requires_grad
    (image_a - image_b).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in generator.parameters())


def test_bad_sizes_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="positive"):
        ControlConfig(hidden=0)
    with pytest.raises(ConfigError, match="N > 0"):
        ControlNet(SMALL, z_dim=8, y_mean=torch.zeros(0), y_std=torch.zeros(0), y_range=WIDE)
    with pytest.raises(ConfigError, match="N > 0"):
        ControlNet(SMALL, z_dim=8, y_mean=Y_MEAN, y_std=Y_STD, y_range=(Y_MEAN[:2], Y_MEAN[:2]))
    with pytest.raises(ConfigError, match="low <= high"):
        ControlNet(SMALL, z_dim=8, y_mean=Y_MEAN, y_std=Y_STD, y_range=(WIDE[1], WIDE[0]))
