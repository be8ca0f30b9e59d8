"""Generator losses (Gaussian NLL, KL) and training / saving / loading the conditional VAE."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from outpool.data import Dataset, ImageTable
from outpool.errors import ConfigError, DataError, UnknownNameError
from outpool.evaluate import to_tensor
from outpool.models.generator import ConditionalVAE, GeneratorConfig
from outpool.models.ranker import DeepSTN, RankerConfig
from outpool.synth import World
from outpool.train.generator import (
    GeneratorTrainConfig,
    load_generator,
    save_generator,
    split_indices,
    train_generator,
)
from outpool.train.loop import JsonlLogger, Trainer
from outpool.train.losses import (
    calibrated_gaussian_nll,
    gaussian_nll,
    kl_to_standard_normal,
    luma_chroma_nll,
)
from outpool.train.ranker import save_ranker

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = GeneratorConfig(z_dim=8, width=4, feature=32, y_embed=8, hidden=32)


def tiny_cfg(**changes: Any) -> GeneratorTrainConfig:
    # lr 3e-3, batch 16, 20 held-out images: val_recon_mse falls ~0.10 -> ~0.04 in 3 epochs
    base: dict[str, Any] = {
        "model": TINY,
        "epochs": 3,
        "batch_size": 16,
        "lr": 3e-3,
        "val_share": 0.2,
        "device": "cpu",
        "seed": 0,
    }
    return GeneratorTrainConfig(**{**base, **changes})


# -- losses --------------------------------------------------------------------------------
finite = st.floats(-5.0, 5.0, allow_nan=False, width=32)
SETTINGS = settings(max_examples=60, deadline=None)


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


def test_calibrated_nll_uses_each_image_s_own_best_variance() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 8, 8, generator=g)
    mean = x + torch.tensor([0.03, 0.08, 0.2]).view(3, 1, 1, 1) * torch.randn(3, 3, 8, 8)
    nll = calibrated_gaussian_nll(x, mean)
    mse = (((x - mean) * 2) ** 2).flatten(1).mean(1)
    assert nll.shape == (3,)
    # the same as gaussian_nll with that image's mean squared error as its variance ...
    best = torch.log(mse).view(3, 1, 1, 1).expand_as(x)
    assert torch.allclose(nll, gaussian_nll(x, mean, best), rtol=1e-5)
    # ... which no other single variance beats
    for shift in (-1.0, -0.1, 0.1, 1.0):
        assert (gaussian_nll(x, mean, best + shift) > nll).all()
    assert nll[0] < nll[1] < nll[2]  # a larger error costs more


def test_calibrated_nll_floors_the_variance_at_a_perfect_fit() -> None:
    x = torch.rand(2, 3, 4, 4)
    nll = calibrated_gaussian_nll(x, x.clone(), min_logvar=-7.0)
    assert torch.allclose(nll, torch.full((2,), 0.5 * 48 * -7.0))


def test_calibrated_nll_gradient_pulls_the_mean_to_x() -> None:
    x = torch.zeros(1, 3, 4, 4)
    mean = torch.full_like(x, 0.3).requires_grad_()
    calibrated_gaussian_nll(x, mean).sum().backward()
    assert mean.grad is not None and (mean.grad > 0).all()


# RGB -> (luma, two chroma axes), written out here rather than taken from the code under test
LUMA_CHROMA_AXES = torch.tensor(
    [[3**-0.5] * 3, [2**-0.5, -(2**-0.5), 0.0], [6**-0.5, 6**-0.5, -2 * 6**-0.5]]
)


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
    one = (calibrated_gaussian_nll(x, grey) - calibrated_gaussian_nll(x, right)).item()
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
    assert torch.allclose(
        luma_chroma_nll(x, mean, chroma_ratio=1.0), calibrated_gaussian_nll(x, mean)
    )
    colourful_x, colourful = face_like_errors(3.0)  # colour errors larger than grey ones
    assert torch.allclose(
        luma_chroma_nll(colourful_x, colourful, chroma_ratio=1.0),
        luma_chroma_nll(colourful_x, colourful),
    )
    assert (
        luma_chroma_nll(colourful_x, colourful, chroma_ratio=1.0)
        < calibrated_gaussian_nll(colourful_x, colourful)
    ).all()


# -- config --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes",
    [
        {"epochs": 0},
        {"val_share": 0.7},
        {"val_share": 0.5},
        {"val_share": -0.1},
        {"lr": 0.0},
        {"batch_size": 0},
        {"kl_weight": -1.0},
        {"kl_warmup": -1.0},
        {"chroma_ratio": 0.5},
        {"chroma_ratio": float("nan")},
    ],
)
def test_bad_train_config_is_a_config_error(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        GeneratorTrainConfig(**changes)


def test_an_unknown_likelihood_names_the_choices() -> None:
    with pytest.raises(UnknownNameError, match=r"calibrated, luma_chroma, per_pixel"):
        GeneratorTrainConfig(likelihood="laplace")


def test_an_unknown_lr_schedule_names_the_choices() -> None:
    with pytest.raises(UnknownNameError, match=r"constant.*cosine"):
        GeneratorTrainConfig(lr_schedule="step")


def test_the_cosine_schedule_decays_the_rate_to_zero_and_resumes_on_the_same_curve(
    dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_cfg(lr_schedule="cosine")
    train_generator(dataset, cfg, tmp_path / "full", progress=False)
    full = torch.load(tmp_path / "full" / "last.pt", weights_only=False)
    (group,) = full["optimizers"]["generator"]["param_groups"]
    assert group["initial_lr"] == cfg.lr and group["lr"] < 1e-3 * cfg.lr  # the end of the curve

    log_epoch = JsonlLogger.after_epoch

    def interrupted(self: JsonlLogger, trainer: Trainer) -> None:
        log_epoch(self, trainer)  # the last hook: epoch 1's checkpoint is written
        if trainer.state.epoch == 1:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(JsonlLogger, "after_epoch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train_generator(dataset, cfg, tmp_path / "cut", progress=False)
    cut = torch.load(tmp_path / "cut" / "last.pt", weights_only=False)
    assert cut["optimizers"]["generator"]["param_groups"][0]["lr"] > 0.5 * cfg.lr  # mid-curve
    train_generator(dataset, cfg, tmp_path / "cut", progress=False)
    resumed = torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["modules"]["generator"]
    assert all(torch.equal(resumed[k], v) for k, v in full["modules"]["generator"].items())


def test_calibrated_likelihood_trains_and_reconstruction_improves(
    dataset: Dataset, tmp_path: Path
) -> None:
    train_generator(dataset, tiny_cfg(likelihood="calibrated"), tmp_path / "r", progress=False)
    rows = metrics(tmp_path / "r")
    assert all(math.isfinite(r["train_loss"]) for r in rows)
    assert rows[2]["val_recon_mse"] < 0.8 * rows[0]["val_recon_mse"]
    record = json.loads((tmp_path / "r" / "config.json").read_text())
    assert record["config"]["likelihood"] == "calibrated"


def test_colour_layers_train_and_reconstruction_improves(dataset: Dataset, tmp_path: Path) -> None:
    cfg = tiny_cfg(model=dataclasses.replace(TINY, colour_layers=3))
    model, _ = train_generator(dataset, cfg, tmp_path / "r", progress=False)
    rows = metrics(tmp_path / "r")
    assert rows[2]["val_recon_mse"] < 0.8 * rows[0]["val_recon_mse"]
    assert model.colour_values is not None
    assert model.colour_values.weight.abs().sum() > 0  # trained away from its zero start


# -- training --------------------------------------------------------------------------------
def metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def without_time(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]


@pytest.fixture(scope="module")
def dataset(small_world: World) -> Dataset:
    return small_world.dataset


@pytest.fixture(scope="module")
def trained(
    dataset: Dataset, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ConditionalVAE, dict[str, Any], Path]:
    run = tmp_path_factory.mktemp("gen") / "run"
    model, summary = train_generator(dataset, tiny_cfg(), run, progress=False)
    return model, summary, run


def test_training_writes_the_run_folder(
    trained: tuple[ConditionalVAE, dict[str, Any], Path], dataset: Dataset
) -> None:
    model, summary, run = trained
    for name in ("config.json", "metrics.jsonl", "last.pt", "best.pt", "generator.pt"):
        assert (run / name).is_file(), name
    assert not any(p.name.endswith(".tmp") for p in run.iterdir())
    record = json.loads((run / "config.json").read_text())
    table = dataset.images["generator"]
    assert record["table"] == "generator" and record["dataset"] == dataset.name
    assert record["attributes"] == list(table.attributes)
    assert record["config"]["model"]["width"] == 4 and record["config"]["epochs"] == 3
    assert summary["epochs"] == 3 and 1 <= summary["best_epoch"] <= 3
    assert model.attributes == table.attributes and not model.training
    # y statistics of the training images travel with the model
    assert model.y_mean.shape == model.y_std.shape == (len(table.attributes),)
    strengths = np.asarray(table.strengths)
    assert np.all(model.y_mean.numpy() >= strengths.min(0) - 1e-6)
    assert np.all(model.y_mean.numpy() <= strengths.max(0) + 1e-6)
    assert np.all(model.y_std.numpy() > 0)


def test_metrics_have_one_line_per_epoch_and_reconstruction_improves(
    trained: tuple[ConditionalVAE, dict[str, Any], Path],
) -> None:
    _, summary, run = trained
    rows = metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert {"val_elbo", "val_recon_mse", "train_loss", "train_nll", "train_kl"} <= set(r)
        assert math.isfinite(r["val_elbo"]) and 0.0 < r["val_recon_mse"] < 1.0
        assert r["train_kl"] >= 0.0
        assert 0.0 <= r["train_excess"] < 1.0  # pre-tanh means stay inside +-3
    assert rows[2]["val_recon_mse"] < rows[0]["val_recon_mse"]
    assert rows[2]["val_recon_mse"] < 0.8 * rows[0]["val_recon_mse"]  # a clear margin
    best = max(rows, key=lambda r: r["val_elbo"])
    assert summary["best_epoch"] == best["epoch"]
    assert summary["best_val_elbo"] == pytest.approx(best["val_elbo"], abs=1e-3)
    assert [r["step"] for r in rows] == [5, 10, 15]  # 80 training images / batch 16


def test_generator_pt_reloads_to_identical_samples(
    trained: tuple[ConditionalVAE, dict[str, Any], Path],
) -> None:
    model, _, run = trained
    again = load_generator(run / "generator.pt", attributes=model.attributes)
    assert again.attributes == model.attributes and again.config == model.config
    assert torch.equal(again.y_mean, model.y_mean) and torch.equal(again.y_std, model.y_std)
    gen = torch.Generator().manual_seed(3)
    y = model.y_mean + model.y_std * torch.randn(5, len(model.attributes), generator=gen)
    z = torch.randn(5, TINY.z_dim, generator=gen)
    assert torch.equal(model.sample(y, z), again.sample(y, z))
    # the generator is the best epoch's weights, with the prior fitted after training
    best = torch.load(run / "best.pt", weights_only=False)["modules"]["generator"]
    for k, v in again.state_dict().items():
        if not k.startswith("prior_"):
            assert torch.equal(v, best[k]), k
    assert torch.equal(best["prior_mean"], torch.zeros(TINY.z_dim))  # N(0, I) while training
    assert not torch.equal(again.prior_mean, best["prior_mean"])


def test_the_prior_is_fitted_to_the_training_images_codes(
    trained: tuple[ConditionalVAE, dict[str, Any], Path], dataset: Dataset
) -> None:
    model, summary, _ = trained
    assert "fitted to the codes of 80 training images" in summary["latent_prior"]
    table = dataset.images["generator"]
    _, train_idx = split_indices(len(table), 0.2, 0)
    x = to_tensor(np.asarray(table.pixels)[train_idx], "cpu")
    y = torch.from_numpy(np.asarray(table.strengths, np.float32)[train_idx])
    with torch.no_grad():
        codes = model.encode(x, y)[0]
    assert torch.allclose(model.prior_mean, codes.mean(0), atol=1e-5)
    cov = model.prior_scale @ model.prior_scale.T
    assert torch.allclose(cov, torch.cov(codes.T) + 1e-4 * torch.eye(TINY.z_dim), atol=1e-4)
    # the training codes' prior coordinates are whitened: mean 0, covariance I (once the ridge,
    # whitened too, is added back: it matters in this tiny model's barely used directions)
    u = model.latent(x, y)
    assert torch.allclose(u.mean(0), torch.zeros(TINY.z_dim), atol=1e-4)
    inv = torch.linalg.inv(model.prior_scale)
    whitened_ridge = 1e-4 * inv @ inv.T
    assert torch.allclose(torch.cov(u.T) + whitened_ridge, torch.eye(TINY.z_dim), atol=1e-3)


@pytest.mark.parametrize("colour_layers", [0, 3])
def test_save_generator_round_trip(tmp_path: Path, colour_layers: int) -> None:
    torch.manual_seed(0)
    model = ConditionalVAE(
        dataclasses.replace(TINY, colour_layers=colour_layers),
        attributes=("a", "b"),
        y_mean=torch.tensor([1.0, 2.0]),
        y_std=torch.tensor([3, 4.0]),
    ).eval()
    save_generator(model, tmp_path / "g.pt", record={"note": 1})
    again = load_generator(tmp_path / "g.pt")
    assert again.attributes == ("a", "b") and again.config.colour_layers == colour_layers
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


def test_resume_equals_an_uninterrupted_run(
    trained: tuple[ConditionalVAE, dict[str, Any], Path], dataset: Dataset, tmp_path: Path
) -> None:
    _, summary, full = trained
    run = tmp_path / "resumed"
    train_generator(dataset, tiny_cfg(epochs=2), run, progress=False)
    assert len(metrics(run)) == 2
    _, resumed_summary = train_generator(dataset, tiny_cfg(epochs=3), run, progress=False)
    assert resumed_summary == summary
    assert without_time(metrics(run)) == without_time(metrics(full))
    for name in ("last.pt", "best.pt"):
        a = torch.load(run / name, weights_only=False)
        b = torch.load(full / name, weights_only=False)
        assert a["trainer"] == b["trainer"]
        for k, v in b["modules"]["generator"].items():
            assert torch.equal(a["modules"]["generator"][k], v), (name, k)
        opt_a, opt_b = a["optimizers"]["generator"]["state"], b["optimizers"]["generator"]["state"]
        assert opt_a.keys() == opt_b.keys()
        for i in opt_b:
            for k, v in opt_b[i].items():
                assert torch.equal(opt_a[i][k], v), (name, i, k)
    a_state = load_generator(run / "generator.pt").state_dict()
    for k, v in load_generator(full / "generator.pt").state_dict().items():
        assert torch.equal(a_state[k], v), k
    # running the finished run again trains nothing more
    train_generator(dataset, tiny_cfg(epochs=3), run, progress=False)
    assert len(metrics(run)) == 3


def test_kl_warmup_ramps_the_kl_weight_and_resumes_on_the_same_ramp(
    dataset: Dataset, tmp_path: Path
) -> None:
    cfg = tiny_cfg(kl_weight=2.0, kl_warmup=2.0)
    train_generator(dataset, cfg, tmp_path / "full", progress=False)
    rows = metrics(tmp_path / "full")

    def full_weight_loss(r: dict[str, Any]) -> float:
        return float(r["train_nll"] + 2.0 * r["train_kl"])

    # epoch 1 runs at weights 2 * (1..5) / 10, epoch 2 at (6..10) / 10, epoch 3 at the full 2
    assert rows[0]["train_loss"] < full_weight_loss(rows[0]) - 0.2 * rows[0]["train_kl"]
    assert rows[2]["train_loss"] == pytest.approx(full_weight_loss(rows[2]), rel=1e-4, abs=1e-2)

    one = tiny_cfg(kl_weight=2.0, kl_warmup=2.0, epochs=1)
    train_generator(dataset, one, tmp_path / "cut", progress=False)
    train_generator(dataset, cfg, tmp_path / "cut", progress=False)
    a = torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["modules"]["generator"]
    b = torch.load(tmp_path / "full" / "last.pt", weights_only=False)["modules"]["generator"]
    assert all(torch.equal(a[k], v) for k, v in b.items())


def test_without_validation_the_generator_is_the_last_epoch(
    dataset: Dataset, tmp_path: Path
) -> None:
    model, _ = train_generator(dataset, tiny_cfg(epochs=2, val_share=0.0), tmp_path, progress=False)
    last = torch.load(tmp_path / "last.pt", weights_only=False)["modules"]["generator"]
    for k, v in model.state_dict().items():
        if not k.startswith("prior_"):  # the prior is fitted after training
            assert torch.equal(v, last[k]), k


def test_reconstructions_page_shows_held_out_images(
    dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import outpool.generators as generators

    shown: list[np.ndarray] = []
    monkeypatch.setattr(
        generators, "save_generator_figures", lambda model, run, pixels, s: shown.append(pixels)
    )
    cfg = tiny_cfg(epochs=1, val_share=0.2)
    generators.train_generator_run(dataset, cfg, tmp_path, judge=None, progress=False)
    pixels = np.asarray(dataset.images["generator"].pixels)
    # the held-out split of train_generator (seeded permutation, first val_share of it)
    order = np.random.default_rng(cfg.seed).permutation(len(pixels))
    held_out = {pixels[i].tobytes() for i in order[: round(cfg.val_share * len(pixels))]}
    assert len(shown) == 1
    assert all(img.tobytes() in held_out for img in shown[0])


# -- bad input -----------------------------------------------------------------------------
def test_a_table_without_strengths_is_a_data_error(dataset: Dataset, tmp_path: Path) -> None:
    assert dataset.images["train"].strengths is None
    with pytest.raises(DataError, match="strengths"):
        train_generator(dataset, tiny_cfg(), tmp_path / "r", table="train", progress=False)
    table = dataset.images["generator"]
    bare = Dataset(
        name="bare",
        attributes=dataset.attributes,
        images={"generator": ImageTable(ids=table.ids, pixels=np.asarray(table.pixels))},
    )
    with pytest.raises(DataError, match=r"'generator'.*strengths"):
        train_generator(bare, tiny_cfg(), tmp_path / "r2", progress=False)


def test_an_unknown_table_is_an_unknown_name_error(dataset: Dataset, tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match=r"'nope'.*generator") as info:
        train_generator(dataset, tiny_cfg(), tmp_path / "r", table="nope", progress=False)
    assert set(dataset.images) <= set(info.value.valid)
    assert not (tmp_path / "r").exists()  # refused before anything is written


def test_load_generator_with_other_attributes_names_both_lists(
    trained: tuple[ConditionalVAE, dict[str, Any], Path],
) -> None:
    model, _, run = trained
    other = tuple(reversed(model.attributes))
    with pytest.raises(DataError) as info:
        load_generator(run / "generator.pt", attributes=other)
    message = str(info.value)
    assert str(list(model.attributes)) in message and str(list(other)) in message
    assert str(run / "generator.pt") in message
    with pytest.raises(DataError):
        load_generator(run / "generator.pt", attributes=model.attributes[:2])


def test_load_generator_bad_files_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pt"
    with pytest.raises(DataError, match="not found") as info:
        load_generator(missing)
    assert str(missing) in str(info.value)

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint\x00\x01\x02")
    with pytest.raises(DataError) as info:
        load_generator(garbage)
    assert str(garbage) in str(info.value)

    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(DataError) as info:
        load_generator(empty)
    assert str(empty) in str(info.value)

    ranker = tmp_path / "ranker.pt"
    save_ranker(DeepSTN(RankerConfig(width=4)), ranker, attribute="heel", record={})
    with pytest.raises(DataError, match="not an outpool generator") as info:
        load_generator(ranker)
    assert str(ranker) in str(info.value)

    other = tmp_path / "list.pt"
    torch.save([1, 2, 3], other)
    with pytest.raises(DataError, match="not an outpool generator"):
        load_generator(other)


def test_a_generator_saved_before_colour_layers_loads_without_them(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ConditionalVAE(
        dataclasses.replace(TINY, colour_layers=0),
        attributes=("a",),
        y_mean=torch.tensor([0.0]),
        y_std=torch.tensor([1.0]),
    ).eval()
    save_generator(model, tmp_path / "g.pt", record={})
    payload = torch.load(tmp_path / "g.pt", weights_only=False)
    del payload["model_config"]["colour_layers"]  # the file layout before the option
    torch.save(payload, tmp_path / "g.pt")
    again = load_generator(tmp_path / "g.pt")
    assert again.config.colour_layers == 0
    y, z = torch.zeros(2, 1), torch.randn(2, 8)
    assert torch.equal(again.sample(y, z), model.sample(y, z))


def test_a_generator_saved_before_the_fitted_prior_loads_with_the_standard_normal(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    model = ConditionalVAE(
        TINY, attributes=("a",), y_mean=torch.tensor([0.0]), y_std=torch.tensor([1.0])
    ).eval()
    save_generator(model, tmp_path / "g.pt", record={})
    payload = torch.load(tmp_path / "g.pt", weights_only=False)
    del payload["state"]["prior_mean"], payload["state"]["prior_scale"]  # the older layout
    torch.save(payload, tmp_path / "g.pt")
    again = load_generator(tmp_path / "g.pt")
    assert torch.equal(again.prior_mean, torch.zeros(TINY.z_dim))
    assert torch.equal(again.prior_scale, torch.eye(TINY.z_dim))
    y, u = torch.zeros(2, 1), torch.randn(2, TINY.z_dim)
    assert torch.equal(again.sample(y, u), model.sample(y, u))


def mixed_colour_generator_file(path: Path, *, drop_gains: bool) -> ConditionalVAE:
    """A trained-looking generator with the earlier ("mixed") colour layers, saved to ``path``
    in the layout of a file written before ``colours`` existed (and, with ``drop_gains``,
    before colour gains existed)."""
    torch.manual_seed(0)
    config = dataclasses.replace(TINY, colour_layers=2, colours="mixed")
    model = ConditionalVAE(
        config, attributes=("a",), y_mean=torch.tensor([0.0]), y_std=torch.tensor([1.0])
    ).eval()
    assert model.colour_values is not None
    with torch.no_grad():
        model.colour_values.weight.normal_(0, 1.0)  # trained colours, with the gains at 1
    save_generator(model, path, record={})
    payload = torch.load(path, weights_only=False)
    if drop_gains:
        del payload["state"]["colour_gains.weight"], payload["state"]["colour_gains.bias"]
    del payload["model_config"]["colours"]
    torch.save(payload, path)
    return model


def test_a_generator_saved_before_hue_layers_loads_as_it_was_trained(tmp_path: Path) -> None:
    model = mixed_colour_generator_file(tmp_path / "g.pt", drop_gains=False)
    again = load_generator(tmp_path / "g.pt")
    assert again.config.colours == "mixed"
    y, u = torch.zeros(2, 1), torch.randn(2, TINY.z_dim)
    assert torch.equal(again.sample(y, u), model.sample(y, u))


def test_a_generator_saved_before_colour_gains_loads_with_gain_one(tmp_path: Path) -> None:
    model = mixed_colour_generator_file(tmp_path / "g.pt", drop_gains=True)
    again = load_generator(tmp_path / "g.pt")
    y, u = torch.zeros(2, 1), torch.randn(2, TINY.z_dim)
    assert torch.equal(again.sample(y, u), model.sample(y, u))
