"""The one training loop of outpool, extended by hooks (the detectron2 trainer/hooks pattern).

A ``Trainer`` owns no model logic. Each batch it takes one optimisation step per ``Objective``,
in order: the objective's loss function maps the batch to (loss, scalar metrics) and the loop
zeroes that optimiser's gradients, back-propagates and steps it. One objective trains one network
(the ranker, the generator, an attribute net); several compose an alternation (ATTIC: a ranker
step on real pairs, a ranker step on created pairs, a control step) without a loop of their own.
``batches(epoch)`` yields the epoch's batches in an order fixed by the seed and the epoch. Hooks
add evaluation, JSONL metrics, checkpoints and early stopping; ``run_training`` is the skeleton
every trainer shares (hooks in order, resume, train, keep the best weights).

Repeatable and resumable: the torch RNG is re-seeded from (seed, epoch) at every epoch start and
the data order depends only on (seed, epoch), so resuming from the checkpoint written after
epoch e gives the same weights as an uninterrupted run.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from outpool.bench import progress_bar
from outpool.errors import DataError
from outpool.fileio import atomic_path, json_text

# batch -> (scalar loss to minimise, its metrics as floats)
LossFn = Callable[[Any], tuple[torch.Tensor, Mapping[str, float]]]


@dataclass(frozen=True)
class Objective:
    """One optimisation step per batch: ``loss(batch)`` minimised by ``optimizers[optimizer]``.
    With a ``name``, its metrics are reported as ``NAME_METRIC`` (several objectives may then
    share a loss function)."""

    optimizer: str
    loss: LossFn
    name: str = ""


def optimise(optimizer: torch.optim.Optimizer, loss: LossFn, batch: Any) -> Mapping[str, float]:
    """One step: the loss of ``batch``, its gradients (the optimiser's zeroed first), the update."""
    value, metrics = loss(batch)
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    optimizer.step()
    return metrics


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
    """Runs ``objectives`` over ``batches(epoch)`` for ``epochs`` epochs, calling ``hooks``."""

    def __init__(
        self,
        *,
        modules: Mapping[str, nn.Module],
        optimizers: Mapping[str, torch.optim.Optimizer],
        objectives: Sequence[Objective],
        batches: Callable[[int], Iterable[Any]],
        epochs: int,
        hooks: Sequence[Hook] = (),
        seed: int = 0,
        config: Mapping[str, Any] | None = None,
        progress: bool = True,
        desc: str = "train",
        steps_per_epoch: int | None = None,
    ) -> None:
        self.modules = dict(modules)
        self.optimizers = dict(optimizers)
        self.objectives = list(objectives)
        unknown = sorted({o.optimizer for o in self.objectives} - set(self.optimizers))
        if unknown:
            raise ValueError(f"objectives name optimisers {unknown} the trainer does not have")
        self.batches = batches
        self.epochs = epochs
        self.hooks = list(hooks)
        self.seed = seed
        self.config = dict(config or {})
        self.progress = progress
        self.desc = desc
        self.state = TrainState()
        self.epoch_metrics: dict[str, float] = {}  # means of the step metrics of the last epoch
        # the progress bar's total: the caller's count, then the last epoch's
        self._epoch_steps: int | None = steps_per_epoch

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
    def run_step(self, batch: Any) -> dict[str, float]:
        """One step of every objective on ``batch``, in order; their metrics merged."""
        merged: dict[str, float] = {}
        for objective in self.objectives:
            metrics = optimise(self.optimizers[objective.optimizer], objective.loss, batch)
            if objective.name:
                metrics = {f"{objective.name}_{k}": v for k, v in metrics.items()}
            clash = merged.keys() & metrics.keys()
            if clash:
                raise ValueError(f"two objectives report the metrics {sorted(clash)}")
            merged.update(metrics)
        return merged

    def train(self) -> TrainState:
        for h in self.hooks:
            h.before_train(self)
        started, first = time.perf_counter(), self.state.epoch
        while self.state.epoch < self.epochs and not self.state.stop:
            epoch = self.state.epoch
            torch.manual_seed(epoch_seed(self.seed, epoch))
            for m in self.modules.values():
                m.train()
            sums: dict[str, float] = {}
            count = 0
            label = f"{self.desc} epoch {epoch + 1}/{self.epochs}"
            if epoch > first:  # this trainer's epochs left, at the pace of its epochs so far
                left = (time.perf_counter() - started) / (epoch - first) * (self.epochs - epoch)
                label += f" (epochs left: at most {_duration(left)})"
            bar = progress_bar(
                self.batches(epoch),
                label if self.progress else "",
                # epochs are (about) the same size: the last one's gives a total and an ETA
                total=self._epoch_steps,
                leave=False,
                unit="batch",
            )
            for batch in bar:
                metrics = self.run_step(batch)
                self.state.step += 1
                count += 1
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                if "loss" in metrics:
                    bar.set_postfix(loss=f"{metrics['loss']:.4f}", refresh=False)
                for h in self.hooks:
                    h.after_step(self, metrics)
            self._epoch_steps = count
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
    ``total_steps`` (none at 0), then a cosine decay to zero, for the trainer's ``optimizers``
    (default: all). Every parameter group keeps its own base rate (``initial_lr``, saved with
    the optimiser). The rate is a function of ``state.step`` alone, so a resumed run follows
    the same curve. Put it first: it sets the rate of the coming step."""

    def __init__(
        self, total_steps: int, *, warmup: float = 0.05, optimizers: Sequence[str] | None = None
    ) -> None:
        self.total = max(1, total_steps)
        self.warmup = max(1, round(warmup * self.total)) if warmup > 0 else 0
        self.optimizers = optimizers  # the ones it schedules; None: all

    def factor(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        done = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return 0.5 * (1.0 + math.cos(math.pi * done))

    def _apply(self, trainer: Trainer) -> None:
        f = self.factor(trainer.state.step)
        for name, optimizer in trainer.optimizers.items():
            if self.optimizers is not None and name not in self.optimizers:
                continue
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
        # best.pt first: a run killed between the two writes resumes from the epoch before,
        # never from a last.pt whose best.pt is missing
        if trainer.state.best_epoch in (-1, trainer.state.epoch):
            trainer.save(self.folder / "best.pt")
        trainer.save(self.folder / "last.pt")


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
            fh.write(json_text(record) + "\n")


def run_training(
    *,
    folder: Path,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    objectives: Sequence[Objective],
    batches: Callable[[int], Iterable[Any]],
    epochs: int,
    seed: int,
    record: Mapping[str, Any],
    evaluate: Callable[[], Mapping[str, float]] | None = None,
    metric: str = "",
    patience: int | None = None,
    schedule: Hook | None = None,
    extra_hooks: Sequence[Hook] = (),
    writer: bool = True,
    barrier: Callable[[], None] = lambda: None,
    progress: bool = True,
    desc: str = "train",
    steps_per_epoch: int | None = None,
) -> TrainState:
    """Train into ``folder``, resuming from its ``last.pt``; the modules end with the best
    weights (``best.pt``: the best ``metric`` of ``evaluate``, or the last epoch without one).

    Hooks, in order: ``schedule`` (sets the coming step's rate), evaluation, early stopping
    after ``patience`` epochs without a better ``metric``, ``extra_hooks``, checkpoints and the
    JSONL log (``writer`` only: under torchrun the other processes write nothing and
    ``barrier`` waits for the writer's ``best.pt``).
    """
    if patience is not None and evaluate is None:
        raise ValueError("early stopping needs an evaluation")
    hooks: list[Hook | None] = [
        schedule,
        EvalHook(evaluate, metric=metric) if evaluate is not None else None,
        EarlyStopping(patience) if patience is not None else None,
        *extra_hooks,
        Checkpointer(folder) if writer else None,
        JsonlLogger(folder / "metrics.jsonl") if writer else None,
    ]
    trainer = Trainer(
        modules=modules,
        optimizers=optimizers,
        objectives=objectives,
        batches=batches,
        epochs=epochs,
        hooks=[h for h in hooks if h is not None],
        seed=seed,
        config=record,
        progress=progress,
        desc=desc,
        steps_per_epoch=steps_per_epoch,
    )
    if trainer.resume(folder / "last.pt") and progress:
        s = trainer.state
        done = "finished" if s.epoch >= epochs or s.stop else "resuming"
        print(f"{desc}: {done} after epoch {s.epoch} (checkpoint)", file=sys.stderr)
    state = trainer.train()
    barrier()
    best = torch.load(folder / "best.pt", map_location="cpu", weights_only=False)
    for name, module in trainer.modules.items():
        module.load_state_dict(best["modules"][name])
        module.eval()
    return state


def _duration(seconds: float) -> str:
    """``45 s``, ``12 min`` or ``1.5 h``: how long, as a person reads it."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
