"""Training a DeepSTN ranker for one attribute: data, the step function, the two stages.

Stage 1 trains the crop (STN) stream alone, stage 2 starts from stage 1's best weights and trains
the combined crop + global model, as in the DeepSTN authors' code. Both stages run through the
one ``Trainer``; the run folder holds ``config.json``, per-stage ``metrics.jsonl`` and
checkpoints, and ``ranker.pt`` (the best model, with its config) at the end.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from outpool.config import to_dict
from outpool.data import Dataset, PairTable
from outpool.errors import ConfigError, DataError, UnknownNameError
from outpool.evaluate import accuracy_on, to_tensor
from outpool.models.ranker import DeepSTN, RankerConfig, crop_penalty
from outpool.train.checkpoints import (
    read_checkpoint,
    run_record,
    write_checkpoint,
    write_run_config,
)
from outpool.train.distributed import from_env
from outpool.train.loop import Checkpointer, EarlyStopping, EvalHook, JsonlLogger, Trainer
from outpool.train.losses import label_to_target, ranknet_loss

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class RankerTrainConfig:
    """How a ranker is trained (defaults: DeepSTN's SGD settings, adapted to a from-scratch net)."""

    model: RankerConfig = field(default_factory=RankerConfig)
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    scale_lr_factor: float = 0.1  # the crop scale learns this much slower (it barely moves)
    batch_size: int = 25
    epochs_crop: int = 15  # stage 1: crop stream alone
    epochs_full: int = 30  # stage 2: crop + global streams
    patience: int = 10  # early stopping on validation accuracy
    crop_penalty: float = 1.0  # weight of the keep-the-crop-inside-the-image penalty
    flip: bool = False  # random horizontal flips (label-preserving for most attributes)
    shift: float = 0.0  # random translation, as a fraction of the image side (0 = off)
    pairs_per_epoch: int = 0  # 0: every pair once per epoch; else a fresh sample of this many
    use_confidence: bool = True  # weight pairs by their label confidence
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # bfloat16 autocast on a GPU
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs_crop < 0 or self.epochs_full < 0 or self.epochs_crop + self.epochs_full == 0:
            raise ConfigError("epochs_crop and epochs_full must be >= 0 and not both 0")
        positive = ("lr", "batch_size", "patience")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("weight_decay", "scale_lr_factor", "crop_penalty", "shift", "pairs_per_epoch"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.optimizer not in OPTIMIZERS:
            raise UnknownNameError("optimizer", self.optimizer, OPTIMIZERS)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UnknownNameError("device", name, ("auto", "cpu", "cuda"))
    return torch.device(name)


@dataclass(frozen=True)
class PairData:
    """One attribute's pairs with their images gathered once: indices into ``pixels``."""

    pixels: np.ndarray  # (N, 64, 64, 3) uint8
    a: np.ndarray  # (P,) int
    b: np.ndarray  # (P,) int
    target: np.ndarray  # (P,) float32 RankNet targets
    weight: np.ndarray  # (P,) float32

    @staticmethod
    def build(dataset: Dataset, pairs: PairTable, *, use_confidence: bool) -> PairData:
        ids, inverse = np.unique(np.concatenate([pairs.a, pairs.b]), return_inverse=True)
        n = len(pairs)
        weight = pairs.confidence if use_confidence else np.ones(n, np.float32)
        return PairData(
            pixels=np.asarray(dataset.lookup(ids)),
            a=inverse[:n],
            b=inverse[n:],
            target=label_to_target(torch.from_numpy(pairs.label)).numpy(),
            weight=np.maximum(weight.astype(np.float32), 1e-3),
        )

    def batches(
        self, epoch: int, *, size: int, seed: int, limit: int = 0
    ) -> Iterator[tuple[np.ndarray, ...]]:
        """The epoch's batches, shuffled by (seed, epoch); ``limit`` > 0 keeps that many pairs."""
        order = np.random.default_rng([seed, epoch]).permutation(len(self.a))
        if limit > 0:
            order = order[:limit]
        for i in range(0, len(order), size):
            j = order[i : i + size]
            yield self.pixels[self.a[j]], self.pixels[self.b[j]], self.target[j], self.weight[j]


def make_optimizer(model: DeepSTN, cfg: RankerTrainConfig) -> torch.optim.Optimizer:
    """SGD (or Adam) with the crop scale in its own parameter group (its own learning rate)."""
    scale = list(model.loc_scale.parameters())
    ids = {id(p) for p in scale}
    rest = [p for p in model.parameters() if id(p) not in ids]
    groups = [
        {"params": rest, "lr": cfg.lr},
        {"params": scale, "lr": cfg.lr * cfg.scale_lr_factor, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    raise UnknownNameError("optimizer", cfg.optimizer, OPTIMIZERS)


def augment(x: torch.Tensor, *, flip: bool, shift: float) -> torch.Tensor:
    """Label-preserving jitter of a batch (B, 3, H, W): random flips and translations.

    Draws from the global torch RNG, which the training loop re-seeds every epoch.
    """
    if not flip and shift <= 0:
        return x
    b = len(x)
    sx = torch.ones(b)
    if flip:
        sx = torch.where(torch.rand(b) < 0.5, -1.0, 1.0)
    t = (torch.rand(b, 2) * 2 - 1) * 2 * shift  # affine_grid units: the side is 2
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, :, 2] = sx, 1.0, t
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def make_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, cfg: RankerTrainConfig, device: torch.device
) -> Any:
    """The ranker's step function: RankNet on a batch of pairs plus the crop penalty."""
    amp = cfg.amp and device.type == "cuda"

    def step(batch: tuple[np.ndarray, ...]) -> dict[str, float]:
        pa, pb, target, weight = batch
        x = augment(to_tensor(np.concatenate([pa, pb]), device), flip=cfg.flip, shift=cfg.shift)
        t = torch.from_numpy(target).to(device)
        w = torch.from_numpy(weight).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            scores, params = model(x, with_transform=True)  # both sides share the weights
        s_a, s_b = scores.float().split(len(pa))
        rank = ranknet_loss(s_a, s_b, t, w)
        loss = rank + cfg.crop_penalty * crop_penalty(params.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.item(), "rank_loss": rank.item(), "scale": params[:, 0].mean().item()}

    return step


def train_ranker(
    dataset: Dataset,
    attribute: str,
    cfg: RankerTrainConfig,
    run_dir: Path,
    *,
    train: str = "train",
    val: str | None = "val",
    progress: bool = True,
) -> tuple[DeepSTN, dict[str, Any]]:
    """Train (or resume training) the ranker for ``attribute``; returns (model, summary)."""
    dataset.attribute(attribute)  # unknown attribute -> UnknownNameError
    for name in (train, val):
        if name is not None and name not in dataset.pairs:
            raise UnknownNameError("pair table", name, dataset.pairs)
    train_pairs = dataset.pairs[train].for_attribute(attribute)
    if len(train_pairs) == 0:
        raise DataError(f"pair table '{train}' has no pairs for attribute '{attribute}'")
    val_pairs = dataset.pairs[val].for_attribute(attribute) if val else None
    if val_pairs is not None and not (val_pairs.label != 0).any():
        raise DataError(
            f"pair table '{val}' has no non-equal pairs for attribute '{attribute}' to validate "
            "on; pass --val none to train without validation"
        )
    job = from_env()
    device = pick_device(cfg.device)
    if job.world > 1 and device.type == "cuda":
        device = torch.device("cuda", job.local_rank)
    run_dir.mkdir(parents=True, exist_ok=True)
    fields = {"attribute": attribute, "dataset": dataset.name, "train_pairs": train}
    record = run_record(cfg, device, fields | {"val_pairs": val, "processes": job.world})
    if job.main:
        write_run_config(run_dir, record)

    torch.manual_seed(cfg.seed)
    model = DeepSTN(cfg.model).to(device)
    net: nn.Module = model
    if job.world > 1:  # replicas start equal (same seed) and DDP keeps them equal
        net = DistributedDataParallel(
            model,
            device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=True,  # stage 1 leaves the stage-2 head unused
        )
    data = PairData.build(dataset, train_pairs, use_confidence=cfg.use_confidence)

    def batches(epoch: int) -> Iterator[tuple[np.ndarray, ...]]:
        """This process's share: every ``world``-th batch, the same count on every rank."""
        all_batches = list(
            data.batches(epoch, size=cfg.batch_size, seed=cfg.seed, limit=cfg.pairs_per_epoch)
        )
        usable = len(all_batches) - len(all_batches) % job.world
        if usable == 0:
            raise DataError(f"{len(all_batches)} batch(es) cannot feed {job.world} processes")
        return iter(all_batches[job.rank : usable : job.world])

    def evaluate() -> dict[str, float]:
        metrics = {}
        if val_pairs is not None and len(val_pairs):
            metrics["val_acc"] = accuracy_on(model, dataset, val_pairs, device=device)
        return metrics

    stages = [(s, e) for s, e in (("crop", cfg.epochs_crop), ("full", cfg.epochs_full)) if e > 0]
    for stage, epochs in stages:  # a stage with 0 epochs is skipped
        folder = run_dir / f"stage_{stage}"
        model.set_stage(stage)
        if stage == "full" and (run_dir / "stage_crop" / "best.pt").exists():
            best = torch.load(run_dir / "stage_crop" / "best.pt", weights_only=False)
            if not (folder / "last.pt").exists():
                model.load_state_dict(best["modules"]["ranker"])
        optimizer = make_optimizer(model, cfg)
        hooks = [
            EvalHook(evaluate, metric="val_acc") if val_pairs is not None else None,
            EarlyStopping(cfg.patience) if val_pairs is not None else None,
            Checkpointer(folder) if job.main else None,
            JsonlLogger(folder / "metrics.jsonl") if job.main else None,
        ]
        trainer = Trainer(
            modules={"ranker": model},
            optimizers={"ranker": optimizer},
            step=make_step(net, optimizer, cfg, device),
            batches=batches,
            epochs=epochs,
            hooks=[h for h in hooks if h is not None],
            seed=cfg.seed + (0 if stage == "crop" else 1),
            config=record,
            progress=progress and job.main,
            desc=f"{attribute} {stage}",
        )
        if trainer.resume(folder / "last.pt") and progress and job.main:
            done = "finished" if trainer.state.epoch >= epochs or trainer.state.stop else "resuming"
            print(
                f"{attribute} {stage}: {done} after epoch {trainer.state.epoch} (checkpoint)",
                file=sys.stderr,
            )
        state = trainer.train()
        job.barrier()  # rank 0 has written best.pt
        best_state = torch.load(folder / "best.pt", map_location=device, weights_only=False)
        model.load_state_dict(best_state["modules"]["ranker"])

    summary = {
        "attribute": attribute,
        "best_val_acc": state.best,
        "best_epoch": state.best_epoch,
        "epochs_run": state.epoch,
    }
    if job.main:
        save_ranker(model, run_dir / "ranker.pt", attribute=attribute, record={**record, **summary})
    job.barrier()
    return model, summary


def save_ranker(model: DeepSTN, path: Path, *, attribute: str, record: dict[str, Any]) -> None:
    """A checkpoint that reloads without the original command line: weights + config."""
    payload = {
        "kind": "outpool-ranker",
        "attribute": attribute,
        "model_config": to_dict(model.config),
        "stage": model.stage,
        "state": model.state_dict(),
        "record": record,
    }
    write_checkpoint(payload, path)


def load_ranker(path: Path, *, device: str = "cpu") -> tuple[DeepSTN, dict[str, Any]]:
    """Rebuild a ranker from ``save_ranker``'s file; bad files raise ``DataError``."""
    from outpool.config import from_dict

    payload = read_checkpoint(path, "ranker", device=device)
    model = DeepSTN(from_dict(RankerConfig, payload["model_config"]))
    model.set_stage(payload["stage"])
    try:
        model.load_state_dict(payload["state"])
    except RuntimeError as exc:
        raise DataError(f"weights do not match the saved config: {exc}", path=path) from None
    model.eval()
    return model.to(device), payload
