"""Training an ``AttributeNet`` (pseudo-label regressor or teacher) on images with scores.

The net trains through the one ``Trainer``: mean squared error on standardised scores, random
flips and shifts (the face attributes are left-right symmetric), early stopping on the held-out
images' R². The held-out images are whole PEOPLE (groups), so the reported quality is measured on
identities the net never saw, as it will be used. The run folder holds ``config.json``,
``metrics.jsonl``, checkpoints (resumable) and ``attribute_net.pt`` (weights + config + attribute
names + score mean/std + quantiles of the training scores + the run record).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from outpool.config import from_dict, to_dict
from outpool.data.images import check_finite
from outpool.errors import ConfigError, DataError
from outpool.models.attribute_net import AttributeNet, AttributeNetConfig
from outpool.models.tensors import pick_device, to_tensor
from outpool.train.augment import augment
from outpool.train.checkpoints import (
    read_checkpoint,
    run_record,
    write_checkpoint,
    write_run_config,
)
from outpool.train.loop import CosineSchedule, Objective, run_training

QUANTILES = 201  # knots of the training scores' empirical CDF kept with the net


@dataclass(frozen=True)
class AttributeNetTrainConfig:
    """How an attribute net is trained."""

    model: AttributeNetConfig = field(default_factory=AttributeNetConfig)
    lr: float = 1e-3  # AdamW, decayed to zero over the run (cosine)
    weight_decay: float = 1e-4
    batch_size: int = 64
    epochs: int = 20  # at most: early stopping ends it sooner
    patience: int = 5  # early stopping on the held-out people's R²
    val_share: float = 0.15  # share of the images, as whole people, held out
    flip: bool = True  # random horizontal flips (face attributes are left-right symmetric)
    shift: float = 0.05  # random translation, as a fraction of the image side
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1 or self.lr <= 0:
            raise ConfigError("epochs, batch_size, patience and lr must be positive")
        if self.weight_decay < 0 or self.shift < 0:
            raise ConfigError("weight_decay and shift must be >= 0")
        if not 0.0 <= self.val_share < 0.5:
            raise ConfigError(f"val_share must be in [0, 0.5), got {self.val_share}")


@dataclass(frozen=True, eq=False)
class ScoredImages:
    """Images with K scores each: what an attribute net learns from.

    ids (N,) str; pixels (N, 64, 64, 3) uint8; scores (N, K) float, one column per name in
    ``attributes``; groups (N,) str identities (held-out images are whole groups); ``source``
    says in words which images these are (it goes into the run record).
    """

    ids: np.ndarray
    pixels: np.ndarray
    scores: np.ndarray
    groups: np.ndarray
    attributes: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids, dtype=np.str_).reshape(-1)
        n, k = len(ids), len(self.attributes)
        scores = np.asarray(self.scores, dtype=np.float64)
        groups = np.asarray(self.groups, dtype=np.str_).reshape(-1)
        if k == 0 or len(set(self.attributes)) != k:
            raise DataError(f"attribute names must be non-empty and unique: {self.attributes}")
        if scores.shape != (n, k):
            raise DataError(f"scores must be ({n}, {k}) for {n} images, got {scores.shape}")
        if self.pixels.shape != (n, 64, 64, 3) or self.pixels.dtype != np.uint8:
            raise DataError(f"pixels must be ({n}, 64, 64, 3) uint8, got {self.pixels.shape}")
        if len(groups) != n:
            raise DataError(f"{len(groups)} groups for {n} images")
        if n < 2:
            raise DataError(f"{self.source}: {n} scored image(s); at least 2 are needed")
        check_finite(scores, ids, self.attributes, what="score")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "groups", groups)

    def __len__(self) -> int:
        return len(self.ids)


def group_split(groups: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out, training) indices: whole groups, shuffled with ``seed``, held out until they
    hold about ``share`` of the images; never every group."""
    names = np.unique(groups)
    if share <= 0 or len(names) < 2:
        return np.zeros(0, np.intp), np.arange(len(groups))
    order = np.random.default_rng(seed).permutation(names)
    counts = np.asarray([np.count_nonzero(groups == g) for g in order])
    take = max(1, int(np.searchsorted(np.cumsum(counts), share * len(groups)) + 1))
    held = np.isin(groups, order[: min(take, len(names) - 1)])
    return np.flatnonzero(held), np.flatnonzero(~held)


def quality(predicted: np.ndarray, truth: np.ndarray, names: tuple[str, ...]) -> dict[str, Any]:
    """Per attribute: R² (1 - SSE / SST around the truth's own mean) and Spearman's rho of
    predicted (N, K) against true (N, K) scores; None where a column is constant."""
    r2: dict[str, float | None] = {}
    rho: dict[str, float | None] = {}
    for k, name in enumerate(names):
        p, t = predicted[:, k], truth[:, k]
        sst = float(((t - t.mean()) ** 2).sum())
        ok = len(t) > 2 and sst > 0 and np.ptp(p) > 0
        r2[name] = round(1.0 - float(((p - t) ** 2).sum()) / sst, 4) if sst > 0 else None
        rho[name] = round(float(spearmanr(p, t)[0]), 4) if ok else None
    return {
        "images": len(truth),
        "r2": r2,
        "spearman": rho,
        "r2_mean": _mean(r2),
        "spearman_mean": _mean(rho),
    }


def _mean(values: dict[str, float | None]) -> float | None:
    got = [v for v in values.values() if v is not None]
    return round(float(np.mean(got)), 4) if got else None


@torch.no_grad()
def predict_scores(model: AttributeNet, pixels: np.ndarray, *, batch: int = 256) -> np.ndarray:
    """Scores (N, K) float64 in file units of uint8 images (N, 64, 64, 3), in eval mode."""
    device = model.score_mean.device
    was_training = model.training
    model.eval()
    out = [
        model.scores(to_tensor(pixels[i : i + batch], device)).double().cpu().numpy()
        for i in range(0, len(pixels), batch)
    ]
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, len(model.attributes)))


def score_quantiles(scores: np.ndarray) -> np.ndarray:
    """(QUANTILES, K) knots of each column's empirical distribution (its CDF, inverted)."""
    return np.quantile(scores, np.linspace(0.0, 1.0, QUANTILES), axis=0)


def regression_loss(
    model: AttributeNet, batch: tuple[torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean squared error of the standardised scores of images x (B, 3, 64, 64) against
    targets (B, K); (loss, metrics)."""
    x, target = batch
    loss = F.mse_loss(model(x), target)
    return loss, {"loss": loss.item()}


def train_attribute_net(
    data: ScoredImages,
    cfg: AttributeNetTrainConfig,
    run_dir: Path,
    *,
    progress: bool = True,
    desc: str = "attribute net",
) -> tuple[AttributeNet, dict[str, Any]]:
    """Train (or resume) an attribute net on ``data`` into ``run_dir``; returns (model, summary)
    where the summary has the held-out people's R² and Spearman per attribute."""
    device = pick_device(cfg.device)
    held_out, train_idx = group_split(data.groups, cfg.val_share, cfg.seed)
    fields = {
        "trained_on": data.source,
        "attributes": list(data.attributes),
        "images": len(train_idx),
        "people": len(np.unique(data.groups[train_idx])),
        "held_out_images": len(held_out),
        "held_out_people": len(np.unique(data.groups[held_out])),
    }
    record = run_record(cfg, device, fields)
    write_run_config(run_dir, record, cfg)

    pixels = data.pixels
    fit_scores = data.scores[train_idx]
    torch.manual_seed(cfg.seed)
    model = AttributeNet(
        cfg.model,
        attributes=data.attributes,
        score_mean=torch.from_numpy(fit_scores.mean(0)),
        score_std=torch.from_numpy(fit_scores.std(0)),
    ).to(device)
    target = model.standardise(torch.from_numpy(data.scores).float().to(device)).cpu().numpy()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def rows(epoch: int) -> Iterator[np.ndarray]:
        perm = np.random.default_rng([cfg.seed, epoch]).permutation(train_idx)
        for i in range(0, len(perm), cfg.batch_size):
            j = perm[i : i + cfg.batch_size]
            if len(j) > 1 or len(perm) == 1:  # BatchNorm needs two images
                yield j

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for j in rows(epoch):  # jittered one at a time, as used: the RNG runs in step order
            x = augment(to_tensor(pixels[j], device), flip=cfg.flip, shift=cfg.shift)
            yield x, torch.from_numpy(target[j]).to(device)

    def evaluate() -> dict[str, float]:
        pred = model.standardise(torch.from_numpy(predict_scores(model, pixels[held_out])).float())
        t = torch.from_numpy(target[held_out])
        sse = ((pred - t) ** 2).sum(0)
        sst = ((t - t.mean(0)) ** 2).sum(0).clamp_min(1e-12)
        return {
            "val_loss": ((pred - t) ** 2).mean().item(),
            "val_r2": (1 - sse / sst).mean().item(),
        }

    evaluated = len(held_out) > 0
    # cosine decay over the whole run: the last epochs settle instead of jumping around
    steps_per_epoch = sum(1 for _ in rows(0))
    total_steps = steps_per_epoch * cfg.epochs
    state = run_training(  # without held-out people the last epoch is the one kept
        folder=run_dir,
        modules={"net": model},
        optimizers={"net": optimizer},
        objectives=[Objective("net", functools.partial(regression_loss, model))],
        batches=batches,
        epochs=cfg.epochs,
        seed=cfg.seed,
        record=record,
        evaluate=evaluate if evaluated else None,
        metric="val_r2",
        patience=cfg.patience if evaluated else None,
        schedule=CosineSchedule(total_steps, warmup=0.0),
        progress=progress,
        desc=desc,
        steps_per_epoch=steps_per_epoch,
    )
    summary: dict[str, Any] = {
        **{k: record[k] for k in ("trained_on", "images", "people", "held_out_people")},
        "best_epoch": state.best_epoch if evaluated else state.epoch,
        "epochs": state.epoch,
        "held_out": (
            quality(predict_scores(model, pixels[held_out]), data.scores[held_out], data.attributes)
            if evaluated
            else None
        ),
    }
    save_attribute_net(
        model,
        run_dir / "attribute_net.pt",
        quantiles=score_quantiles(fit_scores),
        record={**record, **summary},
    )
    return model, summary


def net_payload(model: AttributeNet) -> dict[str, Any]:
    """What rebuilds ``model``: config, attribute names, score statistics, weights."""
    return {
        "model_config": to_dict(model.config),
        "attributes": list(model.attributes),
        "score_mean": model.score_mean.cpu().tolist(),
        "score_std": model.score_std.cpu().tolist(),
        "state": model.state_dict(),
    }


def net_from_payload(
    payload: dict[str, Any], path: Path, *, attributes: tuple[str, ...] | None = None
) -> AttributeNet:
    """Rebuild a net from ``net_payload``'s dict (read from ``path``, named in errors);
    ``attributes``, when given, must be the net's names in the same order."""
    try:
        names = tuple(str(a) for a in payload["attributes"])
        config = from_dict(AttributeNetConfig, payload["model_config"])
        mean, std = torch.tensor(payload["score_mean"]), torch.tensor(payload["score_std"])
        state = payload["state"]
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"incomplete attribute net ({type(exc).__name__}: {exc})", path=path
        ) from None
    if attributes is not None and tuple(attributes) != names:
        raise DataError(
            f"the checkpoint's attributes {list(names)} do not match the expected "
            f"{list(attributes)}",
            path=path,
            field="attributes",
        )
    model = AttributeNet(config, attributes=names, score_mean=mean, score_std=std)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise DataError(f"weights do not match the saved config: {exc}", path=path) from None
    return model.eval()


def save_attribute_net(
    model: AttributeNet, path: Path, *, quantiles: np.ndarray, record: dict[str, Any]
) -> None:
    """The net, the (QUANTILES, K) knots of its training scores, and its run record."""
    payload = {
        "kind": "outpool-attribute-net",
        **net_payload(model),
        "quantiles": np.asarray(quantiles, np.float64).tolist(),
        "record": record,
    }
    write_checkpoint(payload, path)


def load_attribute_net(
    path: Path, *, attributes: tuple[str, ...] | None = None, device: str = "cpu"
) -> tuple[AttributeNet, dict[str, Any]]:
    """(net, payload) of ``save_attribute_net``'s file; bad files raise ``DataError``."""
    payload = read_checkpoint(path, "attribute-net", device=device)
    return net_from_payload(payload, path, attributes=attributes).to(device), payload
