"""The attribute regressor network (pseudo-label regressor and teacher): shapes, units, crop."""

from __future__ import annotations

import pytest
import torch

from outpool.errors import ConfigError, UnknownNameError
from outpool.models.attribute_net import AttributeNet, AttributeNetConfig

NAMES = ("smiling", "young", "bald")
TINY = AttributeNetConfig(width=4)


def tiny(config: AttributeNetConfig = TINY) -> AttributeNet:
    torch.manual_seed(0)
    return AttributeNet(
        config,
        attributes=NAMES,
        score_mean=torch.tensor([1.0, -2.0, 0.5]),
        score_std=torch.tensor([2.0, 0.5, 0.0]),
    ).eval()


def test_output_shape_and_units() -> None:
    model = tiny()
    x = torch.rand(5, 3, 64, 64)
    z = model(x)
    assert z.shape == (5, 3) and torch.isfinite(z).all()
    # scores are the standardised output in the training file's units
    assert torch.allclose(model.scores(x), z * model.score_std + model.score_mean)
    assert model.score_std[2] > 0  # a constant column: clamped, no division by zero
    s = torch.tensor([[3.0, -1.5, 0.5]])
    assert torch.allclose(model.standardise(s), (s - model.score_mean) / model.score_std)


def test_only_the_central_crop_matters() -> None:
    model = tiny(AttributeNetConfig(width=4, crop=0.5))
    x = torch.rand(2, 3, 64, 64)
    y = x.clone()
    y[:, :, :16] = 0.0  # outside the central 32 x 32
    y[:, :, :, 48:] = 1.0
    assert torch.equal(model(x), model(y))
    y[:, :, 30, 30] += 0.5  # inside it
    assert not torch.equal(model(x), model(y))


def test_whole_frame_when_crop_is_one() -> None:
    model = tiny(AttributeNetConfig(width=4, crop=1.0))
    x = torch.rand(2, 3, 64, 64)
    y = x.clone()
    y[:, :, 0, 0] = 1 - y[:, :, 0, 0]
    assert not torch.equal(model(x), model(y))


def test_bad_config() -> None:
    with pytest.raises(UnknownNameError, match="valid: resnet18, small"):
        AttributeNetConfig(backbone="resnet")
    with pytest.raises(ConfigError, match="crop"):
        AttributeNetConfig(crop=0.1)
