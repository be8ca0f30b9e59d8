"""Training the conditional VAE on a dataset's generator-training images (with strengths).

The generator is pre-trained once on images disjoint from every ranker image, then frozen. It
trains through the one ``Trainer``: the run folder holds ``config.json``, ``metrics.jsonl``,
checkpoints (resumable) and ``generator.pt`` (weights + config + attribute names + the
strengths' mean and std).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from outpool.config import from_dict, to_dict
from outpool.data import Dataset
from outpool.errors import ConfigError, DataError, UnknownNameError
from outpool.evaluate import to_tensor
from outpool.models.generator import ConditionalVAE, GeneratorConfig
from outpool.train.attribute_net import AttributeNetTrainConfig
from outpool.train.checkpoints import (
    read_checkpoint,
    run_record,
    write_checkpoint,
    write_run_config,
)
from outpool.train.loop import (
    LR_SCHEDULES,
    Checkpointer,
    CosineSchedule,
    EvalHook,
    JsonlLogger,
    Trainer,
)
from outpool.train.losses import (
    calibrated_gaussian_nll,
    gaussian_nll,
    kl_to_standard_normal,
    luma_chroma_nll,
)
from outpool.train.ranker import pick_device

LIKELIHOODS = ("per_pixel", "calibrated", "luma_chroma")
# Weights that files saved by earlier versions lack; their initial values give the earlier
# behaviour (the N(0, I) prior; colour gains of 1).
ADDED_LATER = ("prior_mean", "prior_scale", "colour_gains.weight", "colour_gains.bias")
# Options that files saved by earlier versions lack, with the values those files were trained with.
EARLIER_OPTIONS = {"colour_layers": 0, "colours": "mixed"}


@dataclass(frozen=True)
class GeneratorTrainConfig:
    """How the generator is trained."""

    model: GeneratorConfig = field(default_factory=GeneratorConfig)
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant | cosine (a short warm-up, then decay to zero)
    # Built-in world, 2-core CPU, about 9 minutes: batch 16 gives 4x the steps of batch 64 in
    # less time (small batches run faster per image there), and the colour of a shoe's upper
    # needs those steps (benchmarks/RESULTS.md).
    batch_size: int = 16
    epochs: int = 12
    # The KL weight ramps from 0 to kl_weight over the first kl_warmup epochs (per step), so the
    # decoder learns first. (0.67 with chroma_ratio 10 drew sharper faces but cost the shoes'
    # legibility: 88.7% on one seed; faces have configs/generator_faces.toml: RESULTS.md.)
    kl_weight: float = 2.0
    kl_warmup: float = 3.0
    # luma_chroma: two variances per image at their optimum, for the grey axis of RGB and for
    # colour (losses.luma_chroma_nll), so a wrong hue costs as much as a wrong shape;
    # calibrated: one variance per image, where edge errors set the scale and z learns the hue
    # of a shoe's upper only partly; per_pixel: the decoder's own per-pixel variance
    # (Attribute2Image), which lets it call a colour it cannot predict noise (RESULTS.md)
    likelihood: str = "luma_chroma"
    # luma_chroma: the chroma variance is at least the luma variance / chroma_ratio (inf: no
    # bound; 1: one shared variance unless colour errors are the larger). A shoe's colour errors
    # are ~1/16 of its luma errors and need that weight (at 1 its upper turns grey); a face's are
    # ~1/50, and weighted up they take the decoder's capacity from eyes and mouths
    # (configs/generator_faces.toml: 1; RESULTS.md)
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
    if likelihood == "calibrated":
        nll = calibrated_gaussian_nll(x, out.mean, model.config.logvar_range[0])
    elif likelihood == "luma_chroma":
        nll = luma_chroma_nll(x, out.mean, model.config.logvar_range[0], chroma_ratio)
    else:
        nll = gaussian_nll(x, out.mean, out.pix_logvar)
    return nll, kl_to_standard_normal(out.z_mean, out.z_logvar), out.excess


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
    write_run_config(run_dir, record)

    pixels = np.asarray(images.pixels)
    strengths = np.asarray(images.strengths, np.float32)
    val_idx, train_idx = split_indices(len(pixels), cfg.val_share, cfg.seed)
    torch.manual_seed(cfg.seed)
    model = make_generator(cfg.model, images.attributes, strengths[train_idx]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def batches(epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        perm = np.random.default_rng([cfg.seed, epoch]).permutation(train_idx)
        for i in range(0, len(perm), cfg.batch_size):
            j = perm[i : i + cfg.batch_size]
            yield pixels[j], strengths[j]

    steps_per_epoch = -(-len(train_idx) // cfg.batch_size)
    warmup_steps = cfg.kl_warmup * steps_per_epoch

    def kl_weight(step: int) -> float:
        """A function of the trainer's step alone, so a resumed run follows the same ramp."""
        ramp = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
        return cfg.kl_weight * ramp

    def step(batch: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
        x = to_tensor(batch[0], device)
        y = torch.from_numpy(batch[1]).to(device)
        nll, kl, excess = elbo_terms(model, x, y, cfg.likelihood, cfg.chroma_ratio)
        loss = (nll + kl_weight(trainer.state.step) * kl + excess).mean()  # trainer: below
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {
            "loss": loss.item(),
            "nll": nll.mean().item(),
            "kl": kl.mean().item(),
            "excess": excess.mean().item(),
        }

    def evaluate() -> dict[str, float]:
        x = to_tensor(pixels[val_idx], device)
        y = torch.from_numpy(strengths[val_idx]).to(device)
        nll, kl, _ = elbo_terms(model, x, y, cfg.likelihood, cfg.chroma_ratio)
        mse = ((model.reconstruct(x, y) - x) ** 2).mean()
        return {"val_elbo": -(nll + kl).mean().item(), "val_recon_mse": mse.item()}

    cosine = cfg.lr_schedule == "cosine"
    trainer = Trainer(
        modules={"generator": model},
        optimizers={"generator": optimizer},
        step=step,
        batches=batches,
        epochs=cfg.epochs,
        hooks=[  # without held-out images the last epoch is the one kept
            *([CosineSchedule(cfg.epochs * steps_per_epoch)] if cosine else []),
            *([EvalHook(evaluate, metric="val_elbo")] if len(val_idx) else []),
            Checkpointer(run_dir),
            JsonlLogger(run_dir / "metrics.jsonl"),
        ],
        seed=cfg.seed,
        config=record,
        progress=progress,
        desc="generator",
    )
    trainer.resume(run_dir / "last.pt")
    state = trainer.train()
    best = torch.load(run_dir / "best.pt", map_location=device, weights_only=False)
    model.load_state_dict(best["modules"]["generator"])
    model.eval()
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
    model = ConditionalVAE(
        # a file saved before an option existed gets the behaviour it was trained with
        from_dict(GeneratorConfig, {**EARLIER_OPTIONS, **payload["model_config"]}),
        attributes=names,
        y_mean=torch.tensor(payload["y_mean"]),
        y_std=torch.tensor(payload["y_std"]),
    )
    state = dict(payload["state"])
    fresh = model.state_dict()
    for key in ADDED_LATER:
        if key in fresh:
            state.setdefault(key, fresh[key])
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise DataError(f"weights do not match the saved config: {exc}", path=path) from None
    return model.eval().to(device)
