"""The conditional VAE (Attribute2Image-style generator) and its controllability check.

Tiny sizes throughout; no training here (see tests/train/test_generator_training.py).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from outpool.annotate.protocol import Judge
from outpool.errors import ConfigError, DataError
from outpool.judges.generator_check import (
    colour_error_share,
    colour_recovery,
    controllability,
    random_inputs,
    sweep_images,
    sweep_strengths,
)
from outpool.models.generator import ConditionalVAE, GeneratorConfig, chi2_median

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = GeneratorConfig(z_dim=8, width=4, feature=32, y_embed=8, hidden=32)
NAMES = ("open", "heel", "colorful")
Y_MEAN = torch.tensor([0.5, 0.2, 0.7])
Y_STD = torch.tensor([0.2, 0.1, 0.3])


def tiny(seed: int = 0, names: tuple[str, ...] = NAMES) -> ConditionalVAE:
    torch.manual_seed(seed)
    n = len(names)
    return ConditionalVAE(TINY, attributes=names, y_mean=Y_MEAN[:n], y_std=Y_STD[:n]).eval()


def inputs(b: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, 64, 64, generator=gen)
    y = Y_MEAN + Y_STD * torch.randn(b, 3, generator=gen)
    z = torch.randn(b, TINY.z_dim, generator=gen)
    return x, y, z


# -- shapes and ranges -----------------------------------------------------------------------
def test_encode_returns_mean_and_logvar_of_z() -> None:
    model = tiny()
    x, y, _ = inputs(5)
    mu, logvar = model.encode(x, y)
    assert mu.shape == logvar.shape == (5, TINY.z_dim)
    assert torch.isfinite(mu).all() and torch.isfinite(logvar).all()


def test_decode_mean_in_unit_range_and_logvar_clamped() -> None:
    model = tiny()
    _, y, z = inputs(4)
    mean, logvar = model.decode(y, z)
    assert mean.shape == logvar.shape == (4, 3, 64, 64)
    lo, hi = TINY.logvar_range
    assert mean.min() >= 0.0 and mean.max() <= 1.0
    assert lo <= logvar.min() and logvar.max() <= hi
    # drive the heads far out of range: the mean saturates inside [0, 1], the log-variance clamps
    with torch.no_grad():
        model.dec_mean.bias.fill_(50.0)
        model.dec_logvar.bias.fill_(50.0)
    mean, logvar = model.decode(y, z)
    assert torch.allclose(mean, torch.ones_like(mean))
    assert torch.equal(logvar, torch.full_like(logvar, hi))
    with torch.no_grad():
        model.dec_mean.bias.fill_(-50.0)
        model.dec_logvar.bias.fill_(-50.0)
    mean, logvar = model.decode(y, z)
    assert torch.allclose(mean, torch.zeros_like(mean))
    assert torch.equal(logvar, torch.full_like(logvar, lo))


def test_forward_and_reconstruct_shapes() -> None:
    model = tiny()
    x, y, _ = inputs(3)
    mean, pix_logvar, mu, logvar, excess = model(x, y)
    assert mean.shape == pix_logvar.shape == (3, 3, 64, 64)
    assert mu.shape == logvar.shape == (3, TINY.z_dim)
    assert excess.shape == (3,)
    recon = model.reconstruct(x, y)
    assert recon.shape == (3, 3, 64, 64)
    # the reconstruction is the decoder's mean at the encoder's mean z
    assert torch.equal(recon, model.decode(y, model.encode(x, y)[0])[0])


def test_sample_with_and_without_z() -> None:
    model = tiny()
    _, y, z = inputs(4)
    with_z = model.sample(y, z)
    assert with_z.shape == (4, 3, 64, 64)
    assert with_z.min() >= 0.0 and with_z.max() <= 1.0
    assert not with_z.requires_grad
    assert torch.equal(with_z, model.decode(y, z)[0])
    torch.manual_seed(7)
    drawn = model.sample(y)
    torch.manual_seed(7)
    again = model.sample(y)
    torch.manual_seed(7)
    z_default = torch.randn(4, TINY.z_dim)
    assert drawn.shape == (4, 3, 64, 64)
    assert torch.equal(drawn, again)
    assert torch.equal(drawn, model.sample(y, z_default))  # the default z is N(0, I) of size M
    assert not torch.equal(drawn, with_z)


def test_same_z_and_y_give_identical_samples_in_eval_mode() -> None:
    model = tiny()
    _, y, z = inputs(6)
    first = model.sample(y, z)
    assert torch.equal(first, model.sample(y, z))
    # in eval mode an image does not depend on the rest of its batch (up to float rounding)
    assert torch.allclose(first[2:3], model.sample(y[2:3], z[2:3]), atol=1e-6)
    # a second model with the same seed draws the same pictures
    assert torch.equal(first, tiny().sample(y, z))
    # different z, different pictures
    assert not torch.equal(first, model.sample(y, z + 1.0))


# -- the fitted latent prior -----------------------------------------------------------------
def test_fit_prior_makes_the_codes_gaussian_the_prior() -> None:
    model = tiny()
    gen = torch.Generator().manual_seed(2)
    mix = torch.randn(TINY.z_dim, TINY.z_dim, generator=gen)
    codes = 3.0 + torch.randn(4000, TINY.z_dim, generator=gen) @ mix.T  # mean 3, cov mix mix^T
    model.fit_prior(codes)
    assert torch.allclose(model.prior_mean, codes.mean(0), atol=1e-5)
    # Gaussian codes: the robust scale is the covariance itself, up to sampling noise
    cov = model.prior_scale @ model.prior_scale.T
    plain = torch.cov(codes.T) + 1e-4 * torch.eye(TINY.z_dim)
    ratio = torch.trace(torch.linalg.solve(plain, cov)) / TINY.z_dim
    assert ratio.item() == pytest.approx(1.0, abs=0.03)
    assert torch.allclose(cov / ratio, plain, atol=1e-3)
    # a sample decodes the code prior_mean + prior_scale u
    _, y, u = inputs(4)
    z = model.prior_mean + u @ model.prior_scale.T
    assert torch.allclose(model.sample(y, u), model.decode(y, z)[0], atol=1e-6)
    assert not torch.allclose(model.sample(y, u), model.decode(y, u)[0], atol=1e-4)


def test_the_prior_s_scale_follows_the_bulk_of_heavy_tailed_codes() -> None:
    # 90% of the codes at spread 1, 10% at spread 4: the covariance (2.5 per dimension) is
    # inflated by the few far out; the prior's typical radius is the codes' median radius
    model = tiny()
    gen = torch.Generator().manual_seed(5)
    spread = torch.where(torch.rand(4000, 1, generator=gen) < 0.9, 1.0, 4.0)
    codes = spread * torch.randn(4000, TINY.z_dim, generator=gen)
    model.fit_prior(codes)
    per_dim = torch.diagonal(model.prior_scale @ model.prior_scale.T)
    assert per_dim.mean().item() < 0.6 * codes.var(0).mean().item()
    centred = (codes - model.prior_mean).T
    u = torch.linalg.solve_triangular(model.prior_scale, centred, upper=False).T
    assert u.norm(dim=1).median().item() == pytest.approx(chi2_median(TINY.z_dim) ** 0.5, rel=1e-3)
    samples = torch.randn(4000, TINY.z_dim, generator=gen) @ model.prior_scale.T
    assert samples.norm(dim=1).median().item() == pytest.approx(
        codes.norm(dim=1).median().item(), rel=0.05
    )


def test_chi2_median() -> None:
    # scipy.stats.chi2.median, for comparison: 7.3441 (8), 63.3346 (64), 255.3336 (256)
    assert chi2_median(8) == pytest.approx(7.3441, rel=2e-3)
    assert chi2_median(64) == pytest.approx(63.3346, rel=1e-4)
    assert chi2_median(256) == pytest.approx(255.3336, rel=1e-5)


def test_latent_inverts_the_prior_so_a_sample_of_it_is_the_reconstruction() -> None:
    model = tiny()
    x, y, _ = inputs(6)
    gen = torch.Generator().manual_seed(4)
    model.fit_prior(1.0 + 2.0 * torch.randn(500, TINY.z_dim, generator=gen))
    u = model.latent(x, y)
    assert u.shape == (6, TINY.z_dim)
    assert torch.allclose(model.sample(y, u), model.reconstruct(x, y), atol=1e-5)


def test_before_a_fit_the_prior_is_the_standard_normal() -> None:
    model = tiny()
    x, y, _ = inputs(3)
    assert torch.equal(model.prior_mean, torch.zeros(TINY.z_dim))
    assert torch.equal(model.prior_scale, torch.eye(TINY.z_dim))
    assert torch.allclose(model.latent(x, y), model.encode(x, y)[0])


def test_a_prior_fitted_to_one_code_is_a_data_error() -> None:
    with pytest.raises(DataError, match="at least 2 images, got 1"):
        tiny().fit_prior(torch.zeros(1, TINY.z_dim))


# -- y standardisation -------------------------------------------------------------------------
def shifted(model: ConditionalVAE, *, mean: torch.Tensor, std: torch.Tensor) -> ConditionalVAE:
    other = copy.deepcopy(model)
    other.y_mean.copy_(mean)
    other.y_std.copy_(std)
    return other


def test_y_is_standardised_with_the_stored_mean() -> None:
    model = tiny()
    x, y, z = inputs(4)
    delta = torch.tensor([0.3, -1.0, 2.0])
    other = shifted(model, mean=Y_MEAN + delta, std=Y_STD)
    assert torch.allclose(model.standardise(y), (y - Y_MEAN) / Y_STD)
    # y == y_mean is the standardised origin
    origin = Y_MEAN.expand(2, 3)
    assert torch.allclose(model.standardise(origin), torch.zeros(2, 3))
    # the same standardised input gives the same output, whatever the stored statistics
    assert torch.allclose(model.decode(y, z)[0], other.decode(y + delta, z)[0], atol=1e-5)
    assert torch.allclose(model.encode(x, y)[0], other.encode(x, y + delta)[0], atol=1e-5)
    assert torch.allclose(model.decode(origin, z[:2])[0], other.decode(origin + delta, z[:2])[0])
    # ... and changing y_mean alone moves the decoder's input, hence the picture
    assert not torch.allclose(model.decode(y, z)[0], other.decode(y, z)[0], atol=1e-4)


def test_y_is_standardised_with_the_stored_std() -> None:
    model = tiny()
    _, y, z = inputs(4)
    other = shifted(model, mean=Y_MEAN, std=2 * Y_STD)
    assert torch.allclose(model.decode(y, z)[0], other.decode(Y_MEAN + 2 * (y - Y_MEAN), z)[0])
    assert not torch.allclose(model.decode(y, z)[0], other.decode(y, z)[0], atol=1e-4)


def test_statistics_are_buffers_and_a_constant_attribute_is_safe() -> None:
    model = tiny()
    state = model.state_dict()
    assert torch.equal(state["y_mean"], Y_MEAN) and torch.equal(state["y_std"], Y_STD)
    assert "y_mean" not in dict(model.named_parameters())
    flat = ConditionalVAE(
        TINY, attributes=NAMES, y_mean=Y_MEAN, y_std=torch.tensor([0.2, 0.0, 0.3])
    ).eval()
    assert flat.y_std[1] > 0  # clamped, no division by zero
    _, y, z = inputs(2)
    assert torch.isfinite(flat.sample(y, z)).all()


# -- gradients (the control network steers y and z through the frozen decoder) ---------------
def test_gradient_flows_from_the_image_to_y_and_z() -> None:
    model = tiny()
    for p in model.parameters():
        p.requires_grad_(False)  # frozen, as under the control network
    _, y, z = inputs(3)
    y = y.clone().requires_grad_()
    z = z.clone().requires_grad_()
    mean, _ = model.decode(y, z)
    mean.sum().backward()
    assert y.grad is not None and z.grad is not None
    assert y.grad.shape == (3, 3) and z.grad.shape == (3, TINY.z_dim)
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    # each image's gradient reaches its own y row
    assert (y.grad.abs().sum(1) > 0).all()


# -- sweeps --------------------------------------------------------------------------------
def test_sweep_strengths_vary_only_column_k_centred_on_the_mean() -> None:
    model = tiny()
    mean, std = Y_MEAN.numpy(), Y_STD.numpy()
    for k in range(3):
        y = sweep_strengths(model, k, steps=9)
        assert y.shape == (9, 3) and y.dtype == np.float32
        others = [j for j in range(3) if j != k]
        assert np.array_equal(y[:, others], np.tile(mean[others], (9, 1)))
        assert np.all(np.diff(y[:, k]) > 0)
        np.testing.assert_allclose(y[4, k], mean[k], atol=1e-6)  # the middle step is the mean
        np.testing.assert_allclose(y[:, k].mean(), mean[k], atol=1e-6)
        np.testing.assert_allclose(y[[0, -1], k], mean[k] + np.array([-1.5, 1.5]) * std[k], 1e-5)
    y = sweep_strengths(model, 1, steps=4, spread=1.0)
    np.testing.assert_allclose(y[:, 1], np.linspace(0.1, 0.3, 4), atol=1e-6)


def test_sweep_images_shape_and_fixed_latent_per_row() -> None:
    model = tiny()
    images, y = sweep_images(model, 0, steps=5, n_z=3, seed=4)
    assert images.shape == (3, 5, 64, 64, 3) and images.dtype == np.uint8
    assert np.array_equal(y, sweep_strengths(model, 0, 5))
    again, _ = sweep_images(model, 0, steps=5, n_z=3, seed=4)
    assert np.array_equal(images, again)
    z = torch.randn(3, TINY.z_dim, generator=torch.Generator().manual_seed(4))
    row = model.sample(torch.from_numpy(y), z[1].expand(5, -1))
    expected = (row.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(images[1], expected)


# -- controllability -----------------------------------------------------------------------
class RedJudge:
    """Every attribute measured as the mean of the red channel; everything legible."""

    def __init__(self, attributes: Sequence[str]) -> None:
        self.attributes = tuple(attributes)
        self.calls: list[int] = []

    def assess(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert images.dtype == np.uint8 and images.shape[1:] == (64, 64, 3)
        self.calls.append(len(images))
        red = images[..., 0].reshape(len(images), -1).mean(1) / 255.0
        values = np.repeat(red[:, None], len(self.attributes), axis=1).astype(np.float32)
        return values, np.ones(len(images), np.float32)


@pytest.mark.slow
def test_controllability_reports_every_attribute() -> None:
    model = tiny()
    judge = RedJudge(model.attributes)
    assert isinstance(judge, Judge)
    out = controllability(model, judge, steps=5, n_z=3, seed=0)
    assert set(out) == {
        "spearman",
        "latents_missed_pct",
        "leakage",
        "sweep_legible_pct",
        "samples_legible_pct",
        "samples_judged",
        "spearman_min",
    }
    for key in ("spearman", "latents_missed_pct", "leakage", "sweep_legible_pct"):
        assert list(out[key]) == list(NAMES)
    for name in NAMES:
        assert -1.0 <= out["spearman"][name] <= 1.0
        assert out["sweep_legible_pct"][name] == 100.0
        # every column measures the same thing: the others move exactly as much as the swept one
        assert out["leakage"][name] == pytest.approx(1.0, abs=1e-4)
    assert out["samples_legible_pct"] == 100.0
    assert out["spearman_min"] == min(out["spearman"].values())
    # one judge call per attribute sweep (n_z * steps images) and one for the random samples
    assert judge.calls == [15, 15, 15, 96] and out["samples_judged"] == 96  # 32 per latent
    assert controllability(model, judge, steps=5, n_z=3, samples=10, seed=0)["samples_judged"] == 10
    # deterministic for a seed
    assert controllability(model, RedJudge(NAMES), steps=5, n_z=3, seed=0) == out


class Painted(ConditionalVAE):
    """A hand-made 'generator': red rises with attribute a, green falls with attribute b."""

    def decode(self, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.standardise(y)
        img = torch.full((len(z), 3, 64, 64), 0.5)
        img[:, 0] = torch.sigmoid(s[:, 0])[:, None, None]
        img[:, 1] = torch.sigmoid(-s[:, 1])[:, None, None]
        img[:, 2] = torch.sigmoid(z[:, :1])[:, :, None]  # z changes the picture, not the values
        return img, torch.zeros_like(img)


class ChannelJudge:
    """Columns in its own order (b, extra, a): b = green, a = red; legible while red > 0.45."""

    attributes = ("b", "extra", "a")

    def assess(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        px = images.reshape(len(images), -1, 3).mean(1) / 255.0
        values = np.stack([px[:, 1], np.zeros(len(images)), px[:, 0]], 1).astype(np.float32)
        return values, (px[:, 0] > 0.45).astype(np.float32)


def test_controllability_numbers_on_a_known_generator() -> None:
    torch.manual_seed(0)
    model = Painted(
        TINY,
        attributes=("a", "b"),
        y_mean=torch.tensor([1.0, -2.0]),
        y_std=torch.tensor([0.5, 3.0]),
    ).eval()
    out = controllability(model, ChannelJudge(), steps=9, n_z=4, seed=0)
    assert out["spearman"] == {"a": 1.0, "b": -1.0}
    assert out["latents_missed_pct"] == {"a": 0.0, "b": 100.0}  # b's sweeps all run backwards
    assert out["spearman_min"] == -1.0
    assert out["leakage"] == {"a": 0.0, "b": 0.0}  # the other attribute stays at its mean
    # a's sweep: red = sigmoid(-1.5 .. 1.5), legible from the middle step on (5 of 9)
    assert out["sweep_legible_pct"] == {"a": round(100 * 5 / 9, 2), "b": 100.0}
    assert 0.0 < out["samples_legible_pct"] < 100.0


class HalfPainted(Painted):
    """Red rises with attribute a where z's first coordinate is positive and falls elsewhere."""

    def decode(self, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        img, logvar = super().decode(y, z)
        img[:, 0] = torch.sigmoid(self.standardise(y)[:, 0] * z[:, 0].sign())[:, None, None]
        return img, logvar


def test_latents_missed_counts_the_sweeps_that_go_the_wrong_way() -> None:
    model = HalfPainted(
        TINY, attributes=("a", "b"), y_mean=torch.zeros(2), y_std=torch.ones(2)
    ).eval()
    out = controllability(model, ChannelJudge(), steps=5, n_z=16, seed=3)
    images, _ = sweep_images(model, 0, steps=5, n_z=16, seed=3)
    backwards = (images[:, 0, 0, 0, 2] < 128).mean()  # blue = sigmoid(z0): z0 < 0
    assert 0.0 < backwards < 1.0
    assert out["latents_missed_pct"]["a"] == pytest.approx(100.0 * backwards, abs=0.01)
    assert out["spearman"]["a"] == pytest.approx(1.0 - 2.0 * backwards, abs=1e-3)


def test_a_judge_that_cannot_measure_an_attribute_is_an_error() -> None:
    model = tiny()
    judge = RedJudge(("open", "colorful", "pointy"))
    with pytest.raises(DataError, match="heel"):
        controllability(model, judge, steps=3, n_z=2)
    assert judge.calls == []  # refused before any image is drawn


class FlatJudge(RedJudge):
    """Measures nothing that moves: every value constant (an unreadable generator's output)."""

    def assess(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values, legible = super().assess(images)
        return np.full_like(values, 0.5), legible


def test_controllability_of_an_unmeasurable_generator_is_json_safe() -> None:
    out = controllability(tiny(), FlatJudge(NAMES), steps=3, n_z=2, seed=0)
    json.dumps(out, allow_nan=False)
    assert out["latents_missed_pct"] == dict.fromkeys(NAMES, 100.0)  # nothing moved: all miss


# -- colour layers ---------------------------------------------------------------------------
def with_colour_layers(k: int, seed: int = 0) -> ConditionalVAE:
    torch.manual_seed(seed)
    cfg = dataclasses.replace(TINY, colour_layers=k)
    return ConditionalVAE(cfg, attributes=NAMES, y_mean=Y_MEAN, y_std=Y_STD).eval()


def test_colour_layers_start_as_the_plain_decoder() -> None:
    plain, coloured = with_colour_layers(0), with_colour_layers(3, seed=5)
    missing = coloured.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == sorted(
        [
            *("colour_masks.weight", "colour_masks.bias"),
            *("colour_values.weight", "colour_values.bias"),
            *("colour_gains.weight", "colour_gains.bias"),
        ]
    )
    _, y, z = inputs(3)
    assert torch.allclose(coloured.decode(y, z)[0], plain.decode(y, z)[0], atol=1e-6)


def test_a_colour_layer_paints_its_colour_where_its_mask_is() -> None:
    model = with_colour_layers(1)
    _, y, z = inputs(2)
    before = model.decode(y, z)[0]
    assert model.colour_masks is not None and model.colour_values is not None
    with torch.no_grad():
        model.colour_values.bias.copy_(torch.tensor([2.0, 0.0, -2.0]))  # red up, blue down
        model.colour_masks.weight.zero_()
        model.colour_masks.bias.fill_(-50.0)  # mask off: no change
        assert torch.allclose(model.decode(y, z)[0], before, atol=1e-6)
        model.colour_masks.bias.fill_(50.0)  # mask on everywhere
        after = model.decode(y, z)[0]
    change = (after - before).mean(dim=(0, 2, 3))
    assert change[0] > 0.05 and change[2] < -0.05
    assert torch.allclose(after[:, 1], before[:, 1], atol=1e-6)


def test_the_colour_is_chosen_per_image_by_z() -> None:
    model = with_colour_layers(2)
    assert model.colour_masks is not None and model.colour_values is not None
    with torch.no_grad():
        model.colour_masks.weight.zero_()
        model.colour_masks.bias.fill_(50.0)  # both masks on everywhere
        model.colour_values.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(2))
    plain = copy.deepcopy(model)
    with torch.no_grad():
        assert plain.colour_values is not None
        plain.colour_values.weight.zero_()

    def colour_shift(z: torch.Tensor) -> torch.Tensor:
        """Mean RGB change (B, 3) the colour layers make."""
        return (model.decode(y, z)[0] - plain.decode(y, z)[0]).mean(dim=(2, 3))

    _, y, z = inputs(2)
    first, second = colour_shift(z), colour_shift(-z)
    assert first.abs().max() > 0.02
    assert (first - second).abs().max() > 0.02  # another z, another colour


def trained_looking_hue_layers(seed: int = 3) -> ConditionalVAE:
    """Two hue_from_z layers with random (trained-looking) colour and strength weights."""
    model = with_colour_layers(2)
    assert model.colour_values is not None and model.colour_gains is not None
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.colour_values.weight.normal_(0, 1.0, generator=g)
        model.colour_gains.weight.normal_(0, 1.0, generator=g)
    return model


def layer_colours(model: ConditionalVAE, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return model.layer_colours(model.standardise(y), z)


def test_a_hue_layer_takes_its_hue_from_z_and_its_strength_from_y() -> None:
    model = trained_looking_hue_layers()
    _, y, z = inputs(4)
    colours = layer_colours(model, y, z)  # (B, K, RGB)
    assert torch.allclose(colours.mean(-1), torch.zeros(4, 2), atol=1e-6)  # pure chroma
    # another y at the same z: the same hue (direction), another strength (length)
    other = layer_colours(model, y.flip(0), z)
    cosine = nn.functional.cosine_similarity(colours, other, dim=-1)
    assert torch.allclose(cosine, torch.ones(4, 2), atol=1e-5)
    assert (colours.norm(dim=-1) - other.norm(dim=-1)).abs().max() > 0.05
    # another z at the same y: another hue, the same strength
    turned = layer_colours(model, y, -z)
    assert torch.allclose(turned.norm(dim=-1), colours.norm(dim=-1), atol=1e-5)
    assert nn.functional.cosine_similarity(colours, turned, dim=-1).max() < 0.99


def test_a_hue_layer_s_strength_rises_with_y_the_same_way_for_every_z() -> None:
    model = trained_looking_hue_layers()
    assert model.colour_gains is not None
    _, _, z = inputs(5)
    with torch.no_grad():
        model.colour_gains.weight.zero_()
        model.colour_gains.weight[:, 2] = 1.0  # both layers follow "colorful" only
    strengths = []
    for c in (0.1, 0.5, 0.9, 1.3):
        y = Y_MEAN.clone().repeat(5, 1)
        y[:, 2] = c
        strengths.append(layer_colours(model, y, z).norm(dim=-1))  # (B, K)
    rise = torch.stack(strengths)  # (steps, B, K)
    assert (rise[1:] > rise[:-1]).all()  # monotone in the command ...
    # ... and z plays no part (beyond the soft unit length: within 1%)
    assert torch.allclose(rise, rise[:, :1].expand_as(rise), rtol=0.01)


def test_the_pre_tanh_excess_is_zero_in_the_live_range_and_pulls_back_beyond_it() -> None:
    # a tanh saturated at a pixel passes no gradient (the white spots of unpenalised runs);
    # the excess term does
    model = tiny()
    model.train()
    x, y, _ = inputs(2)
    torch.manual_seed(0)
    assert model(x, y).excess.abs().max() == 0  # a fresh decoder stays well inside +-3
    with torch.no_grad():
        model.dec_mean.bias.fill_(20.0)  # every pixel far past white
    torch.manual_seed(0)
    out = model(x, y)
    assert torch.allclose(out.mean, torch.ones_like(out.mean))
    assert (out.excess > 64 * 64 * 3 * 15.0**2).all()  # at least (20 - 2 - 3)^2 per pixel
    ((out.mean - x) ** 2).sum().backward()
    assert model.dec_mean.bias.grad is not None
    assert model.dec_mean.bias.grad.abs().max() < 1e-6  # the likelihood alone: stuck
    model.zero_grad()
    torch.manual_seed(0)
    model(x, y).excess.sum().backward()
    assert model.dec_mean.bias.grad is not None
    assert (model.dec_mean.bias.grad > 1.0).all()  # the excess: pulled back down


def test_negative_colour_layers_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="colour_layers"):
        GeneratorConfig(colour_layers=-1)


# -- colour recovery -------------------------------------------------------------------------
def coloured_squares(n: int = 6, seed: int = 0) -> np.ndarray:
    """Light grey images (n, 64, 64, 3) uint8, each with a square of one vivid random colour."""
    rng = np.random.default_rng(seed)
    images = np.full((n, 64, 64, 3), 200, np.uint8)
    for i in range(n):
        colour = rng.permutation([230, 40, rng.integers(40, 230)])
        images[i, 20:44, 16:48] = colour
    return images


@pytest.mark.parametrize(
    ("rebuild", "cosine", "ratio"),
    [
        (lambda x: x, (0.999, 1.001), (0.999, 1.001)),  # perfect
        (lambda x: x.mean(1, keepdim=True).expand_as(x), None, (-0.001, 0.001)),  # grey
        (lambda x: x[:, [1, 2, 0]], (-1.0, 0.5), (0.5, 1.5)),  # vivid, wrong hue
    ],
)
def test_colour_recovery_scores_hue_and_vividness(
    monkeypatch: pytest.MonkeyPatch,
    rebuild: Any,
    cosine: tuple[float, float] | None,
    ratio: tuple[float, float],
) -> None:
    model = tiny()
    monkeypatch.setattr(model, "reconstruct", lambda x, y: rebuild(x))
    out = colour_recovery(model, coloured_squares(), np.zeros((6, 3), np.float32))
    assert out["images"] == 6
    if cosine is not None:
        assert cosine[0] <= out["hue_cosine"] <= cosine[1]  # type: ignore[operator]
    assert ratio[0] <= out["chroma_ratio"] <= ratio[1]  # type: ignore[operator]


def test_colour_recovery_without_coloured_images_has_no_figures() -> None:
    grey = np.full((3, 64, 64, 3), 120, np.uint8)
    out = colour_recovery(tiny(), grey, np.zeros((3, 3), np.float32))
    assert out == {"images": 0, "hue_cosine": None, "chroma_ratio": None}


def test_colour_error_share_splits_reconstruction_errors_into_grey_and_colour(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = tiny()
    images = coloured_squares()
    # every pixel 0.1 too bright in R, G and B alike, plus a colour error on the square only
    colour = torch.tensor([0.05, -0.05, 0.0]).view(1, 3, 1, 1)

    def rebuild(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = x + 0.1
        out[:, :, 20:44, 16:48] += colour
        return out

    monkeypatch.setattr(model, "reconstruct", rebuild)
    out = colour_error_share(model, images, np.zeros((6, 3), np.float32))
    luma = 3 * 0.2**2  # (3 * 0.2 / sqrt(3))^2 in [-1, 1] units, on every pixel
    chroma = (0.1**2 + 0.1**2) / 2 * (24 * 32) / (64 * 64)  # |(0.1, -0.1, 0)|^2 over 2 axes
    assert out["images"] == 6
    assert out["luma_mse"] == pytest.approx(luma, rel=1e-3)  # 4 significant digits
    assert out["chroma_mse"] == pytest.approx(chroma, rel=1e-3)
    assert out["luma_to_chroma"] == pytest.approx(luma / chroma, rel=1e-3)


def test_random_inputs_draw_each_strength_around_its_mean_and_repeat_from_the_seed() -> None:
    model = tiny()
    y, u = random_inputs(model, 4000, seed=3)
    assert y.shape == (4000, 3) and u.shape == (4000, TINY.z_dim)
    # 0.7 of each attribute's own std around its own mean, independently of the others
    assert torch.allclose(y.mean(0), Y_MEAN, atol=0.03 * Y_STD.max())
    assert torch.allclose(y.std(0), 0.7 * Y_STD, rtol=0.05)
    assert abs(float(torch.corrcoef(y.T)[0, 2])) < 0.05
    assert abs(float(u.mean())) < 0.02 and float(u.std()) == pytest.approx(1.0, abs=0.02)
    again, u_again = random_inputs(model, 4000, seed=3)
    assert torch.equal(y, again) and torch.equal(u, u_again)
    assert not torch.equal(random_inputs(model, 4000, seed=4)[1], u)
