"""The one training loop of outpool, extended by hooks (the detectron2 trainer/hooks pattern).

A ``Trainer`` owns no model logic: a *step function* does one optimisation step on one batch and
returns scalar metrics; ``batches(epoch)`` yields the epoch's batches in an order fixed by the
seed and the epoch. Hooks add evaluation, JSONL metrics, checkpoints and early stopping. The
ranker, the generator and the control network all train through this loop.

Repeatable and resumable: the torch RNG is re-seeded from (seed, epoch) at every epoch start and
the data order depends only on (seed, epoch), so resuming from the checkpoint written after
epoch e gives the same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from outpool.errors import DataError
from outpool.fileio import atomic_path

StepFn = Callable[[Any], Mapping[str, float]]


@dataclass
class TrainState:
    """What the loop knows about its own progress (saved in every checkpoint)."""

    epoch: int = 0  # epochs completed
    step: int = 0
    best: float | None = None
    best_epoch: int = -1
    stop: bool = False
    last_metrics: dict[str, float] = field(default_factory=dict)


class Hook:
    """Called by the ``Trainer`` around training; override what you need."""

    def before_train(self, trainer: Trainer) -> None:
        pass

    def after_step(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        pass

    def after_epoch(self, trainer: Trainer) -> None:
        pass

    def after_train(self, trainer: Trainer) -> None:
        pass


def json_number(value: float) -> float | None:
    """A metric for JSON: rounded, and None (null) where it is NaN or infinite."""
    return round(value, 6) if math.isfinite(value) else None


def epoch_seed(seed: int, epoch: int) -> int:
    """A distinct, repeatable seed per (run seed, epoch)."""
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**31 - 1)


class Trainer:
    """Runs ``step`` over ``batches(epoch)`` for ``epochs`` epochs, calling ``hooks``."""

    def __init__(
        self,
        *,
        modules: Mapping[str, nn.Module],
        optimizers: Mapping[str, torch.optim.Optimizer],
        step: StepFn,
        batches: Callable[[int], Iterable[Any]],
        epochs: int,
        hooks: Sequence[Hook] = (),
        seed: int = 0,
        run_dir: Path | None = None,
        config: Mapping[str, Any] | None = None,
        progress: bool = True,
        desc: str = "train",
    ) -> None:
        self.modules = dict(modules)
        self.optimizers = dict(optimizers)
        self.step = step
        self.batches = batches
        self.epochs = epochs
        self.hooks = list(hooks)
        self.seed = seed
        self.run_dir = run_dir
        self.config = dict(config or {})
        self.progress = progress
        self.desc = desc
        self.state = TrainState()
        self.epoch_metrics: dict[str, float] = {}  # means of the step metrics of the last epoch

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "trainer": asdict(self.state),
            "config": self.config,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.state = TrainState(**state["trainer"])

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)

    def resume(self, path: Path) -> bool:
        """Load ``path`` if it exists; True when training continues from it."""
        if not path.exists():
            return False
        state = torch.load(path, map_location="cpu", weights_only=False)
        for part in ("modules", "optimizers"):
            missing = sorted(set(getattr(self, part)) - set(state[part]))
            if missing:  # e.g. a run started before an option that adds a network
                raise DataError(
                    f"this checkpoint has no {part} {missing}: it was written by a run with "
                    "another config; finish it with that config, or start a new run folder",
                    path=path,
                )
        self.load_state_dict(state)
        return True

    # -- the loop ------------------------------------------------------------------------
    def train(self) -> TrainState:
        for h in self.hooks:
            h.before_train(self)
        while self.state.epoch < self.epochs and not self.state.stop:
            epoch = self.state.epoch
            torch.manual_seed(epoch_seed(self.seed, epoch))
            for m in self.modules.values():
                m.train()
            sums: dict[str, float] = {}
            count = 0
            bar = tqdm(
                self.batches(epoch),
                desc=f"{self.desc} epoch {epoch + 1}/{self.epochs}",
                disable=not self.progress,
                leave=False,
                unit="batch",
            )
            for batch in bar:
                metrics = self.step(batch)
                self.state.step += 1
                count += 1
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                if "loss" in metrics:
                    bar.set_postfix(loss=f"{metrics['loss']:.4f}")
                for h in self.hooks:
                    h.after_step(self, metrics)
            self.epoch_metrics = {k: v / max(count, 1) for k, v in sums.items()}
            if any(not math.isfinite(v) for v in self.epoch_metrics.values()):
                raise FloatingPointError(f"non-finite training metric at epoch {epoch + 1}")
            self.state.epoch += 1
            for h in self.hooks:
                h.after_epoch(self)
        for h in self.hooks:
            h.after_train(self)
        return self.state


# -- hooks -------------------------------------------------------------------------------
class EvalHook(Hook):
    """After every ``every`` epochs, compute metrics (e.g. validation accuracy) and track the
    best value of ``metric`` (higher is better). Put it first: later hooks read its results."""

    def __init__(
        self, evaluate: Callable[[], Mapping[str, float]], *, metric: str, every: int = 1
    ) -> None:
        self.evaluate = evaluate
        self.metric = metric
        self.every = every

    def after_epoch(self, trainer: Trainer) -> None:
        s = trainer.state
        if s.epoch % self.every and s.epoch != trainer.epochs:
            return
        for m in trainer.modules.values():
            m.eval()
        with torch.no_grad():
            s.last_metrics = {k: float(v) for k, v in self.evaluate().items()}
        value = s.last_metrics[self.metric]
        if s.best is None or value > s.best:
            s.best, s.best_epoch = value, s.epoch


class EarlyStopping(Hook):
    """Stop when the best metric (tracked by ``EvalHook``) is ``patience`` epochs old."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def after_epoch(self, trainer: Trainer) -> None:
        s = trainer.state
        if s.best_epoch >= 0 and s.epoch - s.best_epoch >= self.patience:
            s.stop = True


LR_SCHEDULES = ("constant", "cosine")  # the names a training config may give


class CosineSchedule(Hook):
    """Per-step learning rate: a linear warm-up over the first ``warmup`` share of
    ``total_steps``, then a cosine decay to zero. Every parameter group keeps its own base rate
    (``initial_lr``, saved with the optimiser). The rate is a function of ``state.step`` alone, so
    a resumed run follows the same curve. Put it first: it sets the rate of the coming step."""

    def __init__(self, total_steps: int, *, warmup: float = 0.05) -> None:
        self.total = max(1, total_steps)
        self.warmup = max(1, round(warmup * self.total))

    def factor(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        done = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return 0.5 * (1.0 + math.cos(math.pi * done))

    def _apply(self, trainer: Trainer) -> None:
        f = self.factor(trainer.state.step)
        for optimizer in trainer.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = group.setdefault("initial_lr", group["lr"]) * f

    def before_train(self, trainer: Trainer) -> None:
        self._apply(trainer)

    def after_step(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        self._apply(trainer)


class Checkpointer(Hook):
    """``last.pt`` after every epoch; ``best.pt`` when the epoch is the best so far (or always,
    when nothing is evaluated). Put it after the hooks that change the state."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def after_epoch(self, trainer: Trainer) -> None:
        trainer.save(self.folder / "last.pt")
        if trainer.state.best_epoch in (-1, trainer.state.epoch):
            trainer.save(self.folder / "best.pt")


class JsonlLogger(Hook):
    """One JSON line per epoch: epoch, step, mean training metrics, last evaluation, time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.t0 = time.perf_counter()

    def after_epoch(self, trainer: Trainer) -> None:
        record = {
            "epoch": trainer.state.epoch,
            "step": trainer.state.step,
            **{f"train_{k}": json_number(v) for k, v in trainer.epoch_metrics.items()},
            **{k: json_number(v) for k, v in trainer.state.last_metrics.items()},
            "wall_s": round(time.perf_counter() - self.t0, 2),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:  # append-only: a crash loses at most this line
            fh.write(json.dumps(record) + "\n")
