"""Training the conditional VAE on a dataset's generator-training images (with strengths).

The generator is pre-trained once on images disjoint from every ranker image, then frozen. It
trains through the one ``Trainer`` (``generator_loss``: the negative ELBO); the run folder holds
``config.json``, ``metrics.jsonl``, checkpoints (resumable) and ``generator.pt`` (weights +
config + attribute names + the strengths' mean and std).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from outpool.config import from_dict, to_dict
from outpool.data import Dataset
from outpool.errors import ConfigError, DataError, UnknownNameError
from outpool.models.generator import ConditionalVAE, GeneratorConfig
from outpool.models.tensors import pick_device, to_tensor
from outpool.train.attribute_net import AttributeNetTrainConfig
from outpool.train.checkpoints import (
    read_checkpoint,
    run_record,
    write_checkpoint,
    write_run_config,
)
from outpool.train.loop import LR_SCHEDULES, CosineSchedule, Objective, run_training
from outpool.train.losses import (
    gaussian_nll,
    kl_to_standard_normal,
    luma_chroma_nll,
)

LIKELIHOODS = ("per_pixel", "luma_chroma")


@dataclass(frozen=True)
class GeneratorTrainConfig:
    """How the generator is trained."""

    model: GeneratorConfig = field(default_factory=GeneratorConfig)
    lr: float = 1e-3
    lr_schedule: str = "cosine"  # cosine (a short warm-up, then decay to zero) | constant
    batch_size: int = 16  # small batches: more steps per minute on a CPU
    epochs: int = 12
    kl_weight: float = 2.0  # weight of the KL term of the ELBO (a beta-VAE's beta)
    kl_warmup: float = 3.0  # epochs over which the KL weight ramps up from 0 (per step)
    # per_pixel: the decoder's own per-pixel variance (Attribute2Image); luma_chroma: two
    # variances per image at their optimum, for the grey axis of RGB and for colour
    # (losses.luma_chroma_nll), so a wrong hue costs as much as a wrong shape
    likelihood: str = "luma_chroma"
    # luma_chroma: the chroma variance is at least the luma variance / chroma_ratio (inf: no
    # bound; 1: one shared variance unless the colour errors are the larger, for faces)
    chroma_ratio: float = math.inf
    val_share: float = 0.05  # held-out generator images for the reconstruction metric
    device: str = "auto"
    seed: int = 0
    # strengths for a TABLE_unscored companion table (LFW's faces without a score row): a
    # regressor trained on TABLE's scored images; unused when there is no such table
    regressor: AttributeNetTrainConfig = field(default_factory=AttributeNetTrainConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.kl_weight < 0:
            raise ConfigError("epochs, batch_size and lr must be positive, kl_weight >= 0")
        if self.kl_warmup < 0:
            raise ConfigError(f"kl_warmup must be >= 0, got {self.kl_warmup}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UnknownNameError("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        if self.likelihood not in LIKELIHOODS:
            raise UnknownNameError("likelihood", self.likelihood, LIKELIHOODS)
        if not self.chroma_ratio >= 1.0:  # NaN fails too
            raise ConfigError(f"chroma_ratio must be >= 1 (inf: no bound), got {self.chroma_ratio}")
        if not 0.0 <= self.val_share < 0.5:
            raise ConfigError(f"val_share must be in [0, 0.5), got {self.val_share}")


def make_generator(
    cfg: GeneratorConfig, attributes: tuple[str, ...], strengths: np.ndarray
) -> ConditionalVAE:
    """A fresh generator whose y statistics come from ``strengths`` (N, K)."""
    return ConditionalVAE(
        cfg,
        attributes=attributes,
        y_mean=torch.from_numpy(strengths.mean(0)),
        y_std=torch.from_numpy(strengths.std(0)),
    )


def split_indices(n: int, val_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out, training) indices of a table of ``n`` images: a seeded split."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = round(val_share * n)
    return order[:n_val], order[n_val:]


def elbo_terms(
    model: ConditionalVAE,
    x: torch.Tensor,
    y: torch.Tensor,
    likelihood: str = "per_pixel",
    chroma_ratio: float = math.inf,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image reconstruction NLL, KL and pre-tanh excess (``Pass.excess``), each (B,), of one
    reparameterised pass. The ELBO is -(NLL + KL); training also adds the excess."""
    out = model(x, y)
    if likelihood == "luma_chroma":
        nll = luma_chroma_nll(x, out.mean, model.config.logvar_range[0], chroma_ratio)
    else:
        nll = gaussian_nll(x, out.mean, out.pix_logvar)
    return nll, kl_to_standard_normal(out.z_mean, out.z_logvar), out.excess


class GeneratorBatch(NamedTuple):
    """Images x (B, 3, 64, 64) in [0, 1], their strengths y (B, N), and the KL weight."""

    x: torch.Tensor
    y: torch.Tensor
    kl_weight: float


def generator_loss(
    model: ConditionalVAE,
    batch: GeneratorBatch,
    *,
    likelihood: str = "luma_chroma",
    chroma_ratio: float = math.inf,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The negative ELBO with the batch's KL weight, plus the pre-tanh excess; (loss, metrics)."""
    nll, kl, excess = elbo_terms(model, batch.x, batch.y, likelihood, chroma_ratio)
    loss = (nll + batch.kl_weight * kl + excess).mean()
    metrics = {
        "loss": loss.item(),
        "nll": nll.mean().item(),
        "kl": kl.mean().item(),
        "excess": excess.mean().item(),
    }
    return loss, metrics


def train_generator(
    dataset: Dataset,
    cfg: GeneratorTrainConfig,
    run_dir: Path,
    *,
    table: str = "generator",
    progress: bool = True,
    extra_record: Mapping[str, Any] | None = None,
) -> tuple[ConditionalVAE, dict[str, Any]]:
    """Train (or resume) the generator on image table ``table``; returns (model, summary).

    ``extra_record`` joins the run record (``config.json`` and ``generator.pt``), e.g. where the
    strengths of the training images came from."""
    if table not in dataset.images:
        raise UnknownNameError("image table", table, dataset.images)
    images = dataset.images[table]
    if images.strengths is None or not images.attributes:
        raise DataError(f"image table '{table}' has no attribute strengths to condition on")
    device = pick_device(cfg.device)
    fields: dict[str, Any] = {
        "dataset": dataset.name,
        "table": table,
        "attributes": list(images.attributes),
    }
    record = run_record(cfg, device, {**fields, **(extra_record or {})})
    write_run_config(run_dir, record, cfg)

    pixels = np.asarray(images.pixels)
    strengths = np.asarray(images.strengths, np.float32)
    val_idx, train_idx = split_indices(len(pixels), cfg.val_share, cfg.seed)
    torch.manual_seed(cfg.seed)
    model = make_generator(cfg.model, images.attributes, strengths[train_idx]).to(device)

    steps_per_epoch = -(-len(train_idx) // cfg.batch_size)
    warmup_steps = cfg.kl_warmup * steps_per_epoch

    def batches(epoch: int) -> Iterator[GeneratorBatch]:
        perm = np.random.default_rng([cfg.seed, epoch]).permutation(train_idx)
        for i, start in enumerate(range(0, len(perm), cfg.batch_size)):
            # the KL weight ramps per step (epoch * steps_per_epoch + i counts the trainer's
            # steps), so a resumed run follows the same ramp
            step = epoch * steps_per_epoch + i
            ramp = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
            j = perm[start : start + cfg.batch_size]
            x, y = to_tensor(pixels[j], device), torch.from_numpy(strengths[j]).to(device)
            yield GeneratorBatch(x, y, cfg.kl_weight * ramp)

    def evaluate() -> dict[str, float]:
        x = to_tensor(pixels[val_idx], device)
        y = torch.from_numpy(strengths[val_idx]).to(device)
        nll, kl, _ = elbo_terms(model, x, y, cfg.likelihood, cfg.chroma_ratio)
        mse = ((model.reconstruct(x, y) - x) ** 2).mean()
        return {"val_elbo": -(nll + kl).mean().item(), "val_recon_mse": mse.item()}

    cosine = cfg.lr_schedule == "cosine"
    loss = functools.partial(
        generator_loss, model, likelihood=cfg.likelihood, chroma_ratio=cfg.chroma_ratio
    )
    state = run_training(  # without held-out images the last epoch is the one kept
        folder=run_dir,
        modules={"generator": model},
        optimizers={"generator": torch.optim.Adam(model.parameters(), lr=cfg.lr)},
        objectives=[Objective("generator", loss)],
        batches=batches,
        epochs=cfg.epochs,
        seed=cfg.seed,
        record=record,
        evaluate=evaluate if len(val_idx) else None,
        metric="val_elbo",
        schedule=CosineSchedule(cfg.epochs * steps_per_epoch) if cosine else None,
        progress=progress,
        desc="generator",
        steps_per_epoch=steps_per_epoch,
    )
    fit_latent_prior(model, pixels, strengths, train_idx)
    summary = {
        "best_val_elbo": state.best,
        "best_epoch": state.best_epoch,
        "epochs": state.epoch,
        "latent_prior": f"Gaussian fitted to the codes of {len(train_idx)} training images",
    }
    save_generator(model, run_dir / "generator.pt", record={**record, **summary})
    return model, summary


@torch.no_grad()
def fit_latent_prior(
    model: ConditionalVAE,
    pixels: np.ndarray,
    strengths: np.ndarray,
    idx: np.ndarray,
    batch: int = 256,
) -> None:
    """Fit the model's latent prior to the mean codes of images ``idx`` (the training ones)."""
    device = model.y_mean.device
    codes = []
    for i in range(0, len(idx), batch):
        j = idx[i : i + batch]
        y = torch.from_numpy(strengths[j]).to(device)
        codes.append(model.encode(to_tensor(pixels[j], device), y)[0])
    model.fit_prior(torch.cat(codes))


def save_generator(model: ConditionalVAE, path: Path, *, record: dict[str, Any]) -> None:
    """Weights + config + attribute names and statistics: reloads without the command line."""
    payload = {
        "kind": "outpool-generator",
        "model_config": to_dict(model.config),
        "attributes": list(model.attributes),
        "y_mean": model.y_mean.cpu().tolist(),
        "y_std": model.y_std.cpu().tolist(),
        "state": model.state_dict(),
        "record": record,
    }
    write_checkpoint(payload, path)


def load_generator(
    path: Path, *, attributes: tuple[str, ...] | None = None, device: str = "cpu"
) -> ConditionalVAE:
    """Rebuild a generator; ``attributes``, when given, must be the generator's names."""
    payload = read_checkpoint(path, "generator", device=device)
    names = tuple(payload["attributes"])
    if attributes is not None and tuple(attributes) != names:
        raise DataError(
            f"generator attributes {list(names)} do not match {list(attributes)}", path=path
        )
    try:
        model_config = from_dict(GeneratorConfig, payload["model_config"])
    except ConfigError as exc:  # e.g. a file written by another version of outpool
        raise DataError(
            f"its generator config does not fit this version of outpool ({exc}); train the "
            "generator again",
            path=path,
        ) from None
    model = ConditionalVAE(
        model_config,
        attributes=names,
        y_mean=torch.tensor(payload["y_mean"]),
        y_std=torch.tensor(payload["y_std"]),
    )
    try:
        model.load_state_dict(payload["state"])
    except RuntimeError as exc:
        raise DataError(f"weights do not match the saved config: {exc}", path=path) from None
    return model.eval().to(device)
