"""Training a DeepSTN ranker for one attribute: data, the loss, the two stages.

Stage 1 trains the crop (STN) stream alone, stage 2 starts from stage 1's best weights and trains
the combined crop + global model, as in the DeepSTN authors' code. Both stages run through the
one ``Trainer``; the run folder holds ``config.json``, per-stage ``metrics.jsonl`` and
checkpoints, and ``ranker.pt`` (the best model, with its config) at the end.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from outpool.config import to_dict
from outpool.data import Dataset, PairTable
from outpool.errors import ConfigError, DataError, UnknownNameError
from outpool.fileio import file_sha256
from outpool.models import Ranker
from outpool.models.blend import BlendConfig, BlendRanker
from outpool.models.linear import LinearRanker, LinearRankerConfig
from outpool.models.ranker import DeepSTN, RankerConfig, crop_penalty
from outpool.models.resnet import load_backbone_weights
from outpool.models.tensors import pick_device, to_tensor
from outpool.train.augment import augment
from outpool.train.checkpoints import (
    read_checkpoint,
    run_record,
    write_checkpoint,
    write_run_config,
)
from outpool.train.distributed import from_env
from outpool.train.evaluate import accuracy_on
from outpool.train.loop import LR_SCHEDULES, CosineSchedule, Objective, run_training
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
    # the rest of the localisation net (the crop's shifts) learns this much slower or faster
    loc_lr_factor: float = 1.0
    batch_size: int = 25
    epochs_crop: int = 15  # stage 1: crop stream alone
    epochs_full: int = 30  # stage 2: crop + global streams
    patience: int = 10  # early stopping on validation accuracy
    crop_penalty: float = 1.0  # weight of the keep-the-crop-inside-the-image penalty
    lr_schedule: str = "constant"  # constant | cosine (a short warm-up, then cosine decay)
    # Augmentation (train/augment.py): all off by default, since what preserves a label depends
    # on the attribute (a colour jitter changes "colorful").
    flip: bool = False  # random horizontal flips (label-preserving for most attributes)
    shift: float = 0.0  # random translation, as a fraction of the image side (0 = off)
    zoom: float = 0.0  # random magnification by up to this fraction
    rotate: float = 0.0  # random rotation by up to this many degrees
    color: float = 0.0  # brightness, contrast and saturation scaled by up to 1 +- this
    # 0: every pair once per epoch; else a fresh sample of this many, repeating pairs where there
    # are fewer, so that an epoch is as many steps on a small table as on a large one
    pairs_per_epoch: int = 0
    # also train on every other labelled pair whose two images are both in the batch (free:
    # each image is scored once; worth most where pairs are dense, as in PubFig)
    all_pairs_in_batch: bool = False
    use_confidence: bool = True  # weight pairs by their label confidence
    # a local state dict file to start the backbone from (e.g. pretrained ResNet-18 weights with
    # model.backbone = "resnet18"); "" = from scratch. Its SHA-256 goes into the run record.
    backbone_weights: str = ""
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
        non_negative = (
            "weight_decay",
            "scale_lr_factor",
            "loc_lr_factor",
            "crop_penalty",
            "shift",
            "zoom",
            "rotate",
            "color",
            "pairs_per_epoch",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.color > 1:
            raise ConfigError(f"color must be <= 1, got {self.color}")
        if self.optimizer not in OPTIMIZERS:
            raise UnknownNameError("optimizer", self.optimizer, OPTIMIZERS)
        if self.lr_schedule not in LR_SCHEDULES:
            raise UnknownNameError("lr_schedule", self.lr_schedule, LR_SCHEDULES)


@dataclass(frozen=True)
class PairData:
    """One attribute's pairs with their images gathered once: indices into ``pixels``.

    A batch is ``(pixels, a, b, target, weight)``: the distinct images of its pairs, each scored
    once, and the pairs as indices into them.
    """

    pixels: np.ndarray  # (N, 64, 64, 3) uint8
    a: np.ndarray  # (P,) int
    b: np.ndarray  # (P,) int
    target: np.ndarray  # (P,) float32 RankNet targets
    weight: np.ndarray  # (P,) float32
    keys: np.ndarray  # (P,) sorted a * N + b, to find the pairs among a set of images
    key_rows: np.ndarray  # (P,) the pair row of each sorted key

    @staticmethod
    def build(dataset: Dataset, pairs: PairTable, *, use_confidence: bool) -> PairData:
        ids, inverse = np.unique(np.concatenate([pairs.a, pairs.b]), return_inverse=True)
        n = len(pairs)
        weight = pairs.confidence if use_confidence else np.ones(n, np.float32)
        return PairData.from_arrays(
            np.asarray(dataset.lookup(ids)),
            inverse[:n],
            inverse[n:],
            label_to_target(torch.from_numpy(pairs.label)).numpy(),
            np.maximum(weight.astype(np.float32), 1e-3),
        )

    @staticmethod
    def from_arrays(
        pixels: np.ndarray, a: np.ndarray, b: np.ndarray, target: np.ndarray, weight: np.ndarray
    ) -> PairData:
        """Pairs given as indices into ``pixels``, with RankNet targets and weights."""
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        keys = a * len(pixels) + b
        rows = np.argsort(keys, kind="stable")
        return PairData(pixels, a, b, target, weight, keys=keys[rows], key_rows=rows)

    def pairs_among(self, images: np.ndarray) -> np.ndarray:
        """Rows of the pairs whose two images are both in ``images`` (indices into ``pixels``);
        where one (a, b) is listed more than once, one of its rows."""
        if len(self.keys) == 0:
            return np.zeros(0, np.int64)
        wanted = (images[:, None] * len(self.pixels) + images[None, :]).ravel()
        pos = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        return np.sort(self.key_rows[pos[self.keys[pos] == wanted]])

    def batches(
        self, epoch: int, *, size: int, seed: int, limit: int = 0, all_pairs: bool = False
    ) -> Iterator[tuple[np.ndarray, ...]]:
        """The epoch's batches of ``size`` pairs, shuffled by (seed, epoch); ``limit`` > 0 takes
        that many pairs, passing over the table more than once (each pass shuffled afresh) when
        it has fewer; ``all_pairs`` adds every other pair among the batch's images."""
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(self.a))
        if limit > 0 and len(order):
            passes = [order, *(rng.permutation(len(self.a)) for _ in range(limit // len(order)))]
            order = np.concatenate(passes)[:limit]
        for i in range(0, len(order), size):
            rows = order[i : i + size]
            if all_pairs:
                rows = self.pairs_among(np.unique(np.concatenate([self.a[rows], self.b[rows]])))
            images, inverse = np.unique(
                np.concatenate([self.a[rows], self.b[rows]]), return_inverse=True
            )
            n = len(rows)
            yield (
                self.pixels[images],
                inverse[:n],
                inverse[n:],
                self.target[rows],
                self.weight[rows],
            )


def make_optimizer(model: DeepSTN, cfg: RankerTrainConfig) -> torch.optim.Optimizer:
    """SGD (or Adam) with three parameter groups: the ranker; the localisation net, at
    ``loc_lr_factor`` times the rate; the crop scale, at ``scale_lr_factor`` times the rate."""
    scale = list(model.loc_scale.parameters())
    loc_modules = (model.loc_features, model.loc_fc, model.loc_shift)
    loc = [p for m in loc_modules for p in m.parameters()]
    taken = {id(p) for p in scale + loc}
    rest = [p for p in model.parameters() if id(p) not in taken]
    groups = [
        {"params": rest, "lr": cfg.lr},
        {"params": loc, "lr": cfg.lr * cfg.loc_lr_factor},
        {"params": scale, "lr": cfg.lr * cfg.scale_lr_factor, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    raise UnknownNameError("optimizer", cfg.optimizer, OPTIMIZERS)


@dataclass(frozen=True)
class RankBatch:
    """Images and the pairs among them: what the ranker's loss takes.

    ``x`` (B, 3, 64, 64) in [0, 1] (real photos or generated images, which may carry
    gradient); ``a``, ``b`` (P,) long indices into ``x``; ``target`` (P,) RankNet targets
    (1 a more, 0 b more, 0.5 equal); ``weight`` (P,) per-pair weights.
    """

    x: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor


def rank_batch(
    batch: tuple[np.ndarray, ...], device: torch.device, cfg: RankerTrainConfig
) -> RankBatch:
    """``PairData``'s batch on ``device``, its images jittered as ``cfg`` says."""
    pixels, a, b, target, weight = batch
    x = augment(
        to_tensor(pixels, device),
        flip=cfg.flip,
        shift=cfg.shift,
        zoom=cfg.zoom,
        rotate=cfg.rotate,
        color=cfg.color,
    )
    return RankBatch(
        x,
        torch.from_numpy(a).to(device),
        torch.from_numpy(b).to(device),
        torch.from_numpy(target).to(device),
        torch.from_numpy(weight).to(device),
    )


def ranker_loss(
    model: nn.Module, batch: RankBatch, *, crop_weight: float = 1.0, amp: bool = False
) -> tuple[torch.Tensor, dict[str, float]]:
    """RankNet on the batch's pairs plus ``crop_weight`` times the keep-the-crop-inside
    penalty; ``amp``: bfloat16 autocast on the batch's device. Returns (loss, metrics)."""
    with torch.autocast(batch.x.device.type, dtype=torch.bfloat16, enabled=amp):
        scores, params = model(batch.x, with_transform=True)  # both sides share the weights
    s = scores.float()
    rank = ranknet_loss(s[batch.a], s[batch.b], batch.target, batch.weight)
    loss = rank + crop_weight * crop_penalty(params.float())
    metrics = {"loss": loss.item(), "rank_loss": rank.item(), "scale": params[:, 0].mean().item()}
    return loss, metrics


def ranker_objective(net: nn.Module, cfg: RankerTrainConfig, device: torch.device) -> Objective:
    """The ranker's one objective (optimiser "ranker") on ``rank_batch``'s batches."""
    amp = cfg.amp and device.type == "cuda"
    return Objective(
        "ranker", functools.partial(ranker_loss, net, crop_weight=cfg.crop_penalty, amp=amp)
    )


def checked_pairs(
    dataset: Dataset, attribute: str, train: str, val: str | None
) -> tuple[PairTable, PairTable | None]:
    """``attribute``'s training and validation pairs; an unknown attribute or table, no
    training pairs or no non-equal validation pair is an error that says so."""
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
    return train_pairs, val_pairs


def train_ranker(
    dataset: Dataset,
    attribute: str,
    cfg: RankerTrainConfig,
    run_dir: Path,
    *,
    train: str = "train",
    val: str | None = "val",
    start: Path | None = None,
    progress: bool = True,
) -> tuple[DeepSTN, dict[str, Any]]:
    """Train (or resume training) the ranker for ``attribute``; returns (model, summary).

    ``start``: a ranker.pt of the same model config to start from (active rounds restart from
    the pre-trained ranker); the stages before its own are skipped."""
    train_pairs, val_pairs = checked_pairs(dataset, attribute, train, val)
    job = from_env()
    device = pick_device(cfg.device)
    if job.world > 1 and device.type == "cuda":
        device = torch.device("cuda", job.local_rank)
    run_dir.mkdir(parents=True, exist_ok=True)
    fields = {"attribute": attribute, "dataset": dataset.name, "train_pairs": train}
    if cfg.backbone_weights:
        fields["backbone_weights_sha256"] = file_sha256(Path(cfg.backbone_weights))
    record = run_record(cfg, device, fields | {"val_pairs": val, "processes": job.world})
    if job.main:
        write_run_config(run_dir, record, cfg)

    torch.manual_seed(cfg.seed)
    model = DeepSTN(cfg.model)
    if cfg.backbone_weights and start is None:  # a resumed run reloads its own weights
        load_backbone_weights(model.cnn, Path(cfg.backbone_weights))
    model = model.to(device)
    first_stage = "crop"
    if start is not None:
        begun, _ = load_deepstn(start, device=str(device))
        if begun.config != cfg.model:
            raise DataError("the ranker to start from has another model config", path=start)
        model.load_state_dict(begun.state_dict())
        first_stage = begun.stage
    net: nn.Module = model
    if job.world > 1:  # replicas start equal (same seed) and DDP keeps them equal
        net = DistributedDataParallel(
            model,
            device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=True,  # stage 1 leaves the stage-2 head unused
        )
    data = PairData.build(dataset, train_pairs, use_confidence=cfg.use_confidence)

    def batches(epoch: int) -> Iterator[RankBatch]:
        """This process's share: every ``world``-th batch, the same count on every rank."""
        all_batches = list(
            data.batches(
                epoch,
                size=cfg.batch_size,
                seed=cfg.seed,
                limit=cfg.pairs_per_epoch,
                all_pairs=cfg.all_pairs_in_batch,
            )
        )
        usable = len(all_batches) - len(all_batches) % job.world
        if usable == 0:
            raise DataError(f"{len(all_batches)} batch(es) cannot feed {job.world} processes")
        # jittered one at a time, as they are used: the torch RNG runs in step order
        return (rank_batch(b, device, cfg) for b in all_batches[job.rank : usable : job.world])

    pairs_used = cfg.pairs_per_epoch or len(data.a)
    steps_per_epoch = -(-pairs_used // cfg.batch_size) // job.world

    def evaluate() -> dict[str, float]:
        assert val_pairs is not None
        return {"val_acc": accuracy_on(model, dataset, val_pairs, device=device)}

    stages = [(s, e) for s, e in (("crop", cfg.epochs_crop), ("full", cfg.epochs_full)) if e > 0]
    if first_stage == "full":
        stages = [(s, e) for s, e in stages if s == "full"]
        if not stages:
            raise DataError("the ranker to start from is past every stage (epochs_full = 0)")
    for i, (stage, epochs) in enumerate(stages, 1):  # a stage with 0 epochs is skipped
        folder = run_dir / f"stage_{stage}"
        model.set_stage(stage)
        if stage == "full" and (run_dir / "stage_crop" / "best.pt").exists():
            best = torch.load(run_dir / "stage_crop" / "best.pt", weights_only=False)
            if not (folder / "last.pt").exists():
                model.load_state_dict(best["modules"]["ranker"])
        optimizer = make_optimizer(model, cfg)
        validated = val_pairs is not None
        cosine = cfg.lr_schedule == "cosine"
        state = run_training(
            folder=folder,
            modules={"ranker": model},
            optimizers={"ranker": optimizer},
            objectives=[ranker_objective(net, cfg, device)],
            batches=batches,
            epochs=epochs,
            seed=cfg.seed + (0 if stage == "crop" else 1),
            record=record,
            evaluate=evaluate if validated else None,
            metric="val_acc",
            patience=cfg.patience if validated else None,
            schedule=CosineSchedule(epochs * steps_per_epoch) if cosine else None,
            writer=job.main,
            barrier=job.barrier,
            progress=progress and job.main,
            desc=f"{attribute} {stage}" + (f" (stage {i} of 2)" if len(stages) > 1 else ""),
            steps_per_epoch=steps_per_epoch,
        )

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


def save_ranker(model: Ranker, path: Path, *, attribute: str, record: dict[str, Any]) -> None:
    """A checkpoint that reloads without the original command line: weights + config."""
    stage: str | None
    if isinstance(model, BlendRanker):
        kind = "blend"
        model_config = {
            **to_dict(model.config),
            "deepstn": to_dict(model.deepstn.config),
            "linear": to_dict(model.linear.config),
        }
        stage = model.deepstn.stage
    else:
        kind = "linear" if isinstance(model, LinearRanker) else "deepstn"
        model_config, stage = to_dict(model.config), getattr(model, "stage", None)
    payload = {
        "kind": "outpool-ranker",
        "model": kind,
        "attribute": attribute,
        "model_config": model_config,
        "stage": stage,
        "state": model.state_dict(),
        "record": record,
    }
    write_checkpoint(payload, path)


def load_ranker(path: Path, *, device: str = "cpu") -> tuple[Ranker, dict[str, Any]]:
    """Rebuild a ranker (DeepSTN, linear or a blend of both) from ``save_ranker``'s file; bad
    files raise ``DataError``."""
    from outpool.config import from_dict

    payload = read_checkpoint(path, "ranker", device=device)
    kind, config = payload.get("model", "deepstn"), payload["model_config"]
    model: Ranker
    if kind == "linear":
        model = LinearRanker(from_dict(LinearRankerConfig, config))
    elif kind == "blend":
        if not isinstance(config, dict) or not {"deepstn", "linear"} <= config.keys():
            raise DataError("a blend ranker's file lacks its parts' configs", path=path)
        deepstn = DeepSTN(from_dict(RankerConfig, config["deepstn"]))
        deepstn.set_stage(payload["stage"])
        linear = LinearRanker(from_dict(LinearRankerConfig, config["linear"]))
        weight = {k: v for k, v in config.items() if k not in ("deepstn", "linear")}
        model = BlendRanker(deepstn, linear, from_dict(BlendConfig, weight))
    else:
        model = DeepSTN(from_dict(RankerConfig, config))
        model.set_stage(payload["stage"])
    try:
        model.load_state_dict(payload["state"])
    except RuntimeError as exc:
        raise DataError(f"weights do not match the saved config: {exc}", path=path) from None
    model.eval()
    return model.to(device), payload


def load_deepstn(path: Path, *, device: str = "cpu") -> tuple[DeepSTN, dict[str, Any]]:
    """``load_ranker`` for the places that need DeepSTN itself (ATTIC trains against its
    stages and crops); a linear ranker's file is a ``DataError`` that says so."""
    model, payload = load_ranker(path, device=device)
    if not isinstance(model, DeepSTN):
        beside = path.parent / "deepstn.pt"
        raise DataError(
            f"holds a {payload['model']} ranker; creating pairs and active rounds need a "
            "DeepSTN ranker"
            + (f" ({beside} beside it)" if beside.exists() else " (train-ranker --model deepstn)"),
            path=path,
        )
    return model, payload
