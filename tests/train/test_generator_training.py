"""The generator's loss, training, saving and loading of the conditional VAE."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from interruption import interrupted_after
from outpool.data import Dataset, ImageTable
from outpool.errors import ConfigError, DataError, UnknownNameError
from outpool.models.generator import ConditionalVAE, GeneratorConfig, chi2_median
from outpool.models.ranker import DeepSTN, RankerConfig
from outpool.models.tensors import to_tensor
from outpool.synth import World
from outpool.train.generator import (
    GeneratorBatch,
    GeneratorTrainConfig,
    elbo_terms,
    generator_loss,
    load_generator,
    save_generator,
    split_indices,
    train_generator,
)
from outpool.train.loop import JsonlLogger, Trainer
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
    with pytest.raises(UnknownNameError, match=r"luma_chroma, per_pixel"):
        GeneratorTrainConfig(likelihood="laplace")


def test_an_unknown_lr_schedule_names_the_choices() -> None:
    with pytest.raises(UnknownNameError, match=r"constant.*cosine"):
        GeneratorTrainConfig(lr_schedule="step")


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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
    # the training codes' prior coordinates: centred, and as far out as standard normal
    # samples are (the median radius); their covariance the identity up to the robust scale
    u = model.latent(x, y)
    assert torch.allclose(u.mean(0), torch.zeros(TINY.z_dim), atol=1e-4)
    assert u.norm(dim=1).median().item() == pytest.approx(chi2_median(TINY.z_dim) ** 0.5, rel=1e-3)
    inv = torch.linalg.inv(model.prior_scale)
    cov_u = torch.cov(u.T) + 1e-4 * inv @ inv.T  # the ridge, whitened too, added back
    factor = torch.diagonal(cov_u).mean()
    assert torch.allclose(cov_u / factor, torch.eye(TINY.z_dim), atol=1e-3)


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


@pytest.mark.slow
def test_resume_equals_an_uninterrupted_run(
    trained: tuple[ConditionalVAE, dict[str, Any], Path],
    dataset: Dataset,
    tmp_path: Path,
) -> None:
    _, summary, full = trained
    run = tmp_path / "resumed"
    with interrupted_after(epoch=2):
        train_generator(dataset, tiny_cfg(), run, progress=False)
    assert len(metrics(run)) == 2
    _, resumed_summary = train_generator(dataset, tiny_cfg(), run, progress=False)
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


@pytest.mark.slow
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

    with interrupted_after(epoch=1):
        train_generator(dataset, cfg, tmp_path / "cut", progress=False)
    train_generator(dataset, cfg, tmp_path / "cut", progress=False)
    a = torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["modules"]["generator"]
    b = torch.load(tmp_path / "full" / "last.pt", weights_only=False)["modules"]["generator"]
    assert all(torch.equal(a[k], v) for k, v in b.items())


@pytest.mark.slow
def test_without_validation_the_generator_is_the_last_epoch(
    dataset: Dataset, tmp_path: Path
) -> None:
    model, _ = train_generator(dataset, tiny_cfg(epochs=2, val_share=0.0), tmp_path, progress=False)
    last = torch.load(tmp_path / "last.pt", weights_only=False)["modules"]["generator"]
    for k, v in model.state_dict().items():
        if not k.startswith("prior_"):  # the prior is fitted after training
            assert torch.equal(v, last[k]), k


@pytest.mark.slow
def test_reconstructions_page_shows_held_out_images(
    dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import outpool.workflows.generator_runs as generators

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


@pytest.mark.slow
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


def test_a_generator_file_from_another_version_is_a_data_error_naming_it(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ConditionalVAE(
        TINY, attributes=("a",), y_mean=torch.tensor([0.0]), y_std=torch.tensor([1.0])
    )
    save_generator(model, tmp_path / "g.pt", record={})
    payload = torch.load(tmp_path / "g.pt", weights_only=False)
    payload["model_config"]["colours"] = "hue_from_z"  # an option this version does not have
    torch.save(payload, tmp_path / "g.pt")
    with pytest.raises(
        DataError, match=r"unknown config key.*colours.*train the generator again"
    ) as info:
        load_generator(tmp_path / "g.pt")
    assert info.value.path == tmp_path / "g.pt"


# -- the loss, as a piece ------------------------------------------------------------------
def tiny_model(seed: int = 0) -> ConditionalVAE:
    torch.manual_seed(seed)
    return ConditionalVAE(
        TINY, attributes=("a", "b"), y_mean=torch.tensor([0.5, 0.5]), y_std=torch.tensor([0.2, 0.2])
    )


@pytest.mark.parametrize("likelihood", ["luma_chroma", "per_pixel"])
def test_generator_loss_is_the_negative_elbo_with_the_batch_s_kl_weight(likelihood: str) -> None:
    model = tiny_model()
    x, y = torch.rand(4, 3, 64, 64), torch.rand(4, 2)
    torch.manual_seed(1)
    nll, kl, excess = elbo_terms(model, x, y, likelihood)
    torch.manual_seed(1)  # the same reparameterisation noise
    loss, metrics = generator_loss(model, GeneratorBatch(x, y, 0.5), likelihood=likelihood)
    assert loss.item() == pytest.approx((nll + 0.5 * kl + excess).mean().item(), rel=1e-5)
    assert metrics["nll"] == pytest.approx(nll.mean().item(), rel=1e-5)
    assert metrics["kl"] == pytest.approx(kl.mean().item(), rel=1e-5)
    torch.manual_seed(1)
    heavier, _ = generator_loss(model, GeneratorBatch(x, y, 2.0), likelihood=likelihood)
    assert heavier.item() == pytest.approx(loss.item() + 1.5 * kl.mean().item(), rel=1e-4)
    loss.backward()
    assert model.dec_mean.weight.grad is not None and model.enc_mu.weight.grad is not None


def test_the_per_pixel_likelihood_uses_the_decoder_s_own_variance() -> None:
    # Attribute2Image's choice: the decoder's log-variance enters the loss
    model = tiny_model()
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 2)
    loss, _ = generator_loss(model, GeneratorBatch(x, y, 1.0), likelihood="per_pixel")
    loss.backward()
    assert model.dec_logvar.weight.grad is not None
    assert model.dec_logvar.weight.grad.abs().sum() > 0
    model.zero_grad()
    loss, _ = generator_loss(model, GeneratorBatch(x, y, 1.0), likelihood="luma_chroma")
    loss.backward()
    assert model.dec_logvar.weight.grad is None or model.dec_logvar.weight.grad.abs().sum() == 0
