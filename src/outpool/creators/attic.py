"""ATTIC (seed paper, section III): a control network trained against the ranker creates the pairs
that confuse it.

Per minibatch, three steps through the one ``Trainer`` (each an ``Objective``):
(a) the ranker on real labelled pairs; (b) the ranker on the pairs the control network draws
through the frozen generator, labelled from sign(y^A[a] - y^B[a]) (equal within the dataset's
equal band); (c) the control network, maximising the ranker's loss on its pairs as RankNet with
those targets FLIPPED (bounded, unlike -loss), its gradient flowing through the frozen generator.
The ranker trains until its validation accuracy stops improving (``patience`` epochs: that is
"converged", and ``metrics.jsonl`` logs it every epoch); the pairs the FIXED seeds q produce then
are the batch for the annotators, and ``control.pt`` the network, which the next active round
starts from (``CreationContext.previous``). ``snapshots/`` keeps, per epoch, the first seeds'
pairs and the ranker's loss on them (the paper's Fig. 6).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from outpool.creators.context import CreationContext
from outpool.creators.pairs import CreatedPairs, freeze, inferred_labels, render, top_up_seed
from outpool.errors import ConfigError, DataError
from outpool.fileio import atomic_path, json_text
from outpool.judges.generator_check import to_uint8
from outpool.models.control import ControlConfig, ControlNet, ControlPair, control_seeds
from outpool.models.generator import ConditionalVAE
from outpool.train.checkpoints import run_record, write_run_config
from outpool.train.evaluate import accuracy_on
from outpool.train.loop import CosineSchedule, Hook, Objective, Trainer, run_training
from outpool.train.ranker import (
    PairData,
    RankBatch,
    make_optimizer,
    rank_batch,
    ranker_loss,
)


@dataclass(frozen=True)
class AtticConfig:
    """How the control network trains against the ranker (the authors' settings)."""

    control: ControlConfig = field(default_factory=ControlConfig)
    lr: float = 1e-3  # the control network's SGD rate, decayed to zero over the run (cosine)
    momentum: float = 0.9
    weight_decay: float = 1e-2
    # at most: the ranker's convergence on val ends it sooner. An epoch is one pass over the
    # real pairs, one control step per real minibatch: few real pairs, few steps per epoch
    epochs: int = 20
    patience: int = 5  # epochs without a better validation accuracy: converged
    snapshot_pairs: int = 8  # pairs kept per epoch in snapshots/ (0: none)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.epochs < 1 or self.patience < 1 or self.snapshot_pairs < 0:
            raise ConfigError("lr, epochs and patience must be positive, snapshot_pairs >= 0")
        if self.momentum < 0 or self.weight_decay < 0:
            raise ConfigError("momentum and weight_decay must be >= 0")


CONTROL_FILE = "control.pt"  # the trained control network's weights, in the creator's folder


class AtticBatch(NamedTuple):
    """One minibatch: real pairs for the ranker, and the rows of the fixed seeds to draw."""

    real: RankBatch
    seeds: torch.Tensor  # (B,) long indices into the fixed seeds


def flipped(batch: RankBatch) -> RankBatch:
    """The same pairs with their RankNet targets flipped (1 <-> 0; equal stays 0.5)."""
    return dataclasses.replace(batch, target=1.0 - batch.target)


class AtticCreator:
    """The pairs of ``budget`` fixed seeds, drawn by a control network trained against a copy
    of the context's ranker (the caller's ranker is never changed)."""

    def __init__(self, context: CreationContext, cfg: AtticConfig) -> None:
        generator = context.require_generator()
        self.cfg = cfg
        self.dataset, self.attribute = context.dataset, context.attribute
        self.device = torch.device(context.device)
        self.ranker = copy.deepcopy(context.require_ranker()).to(self.device)
        self.generator = freeze(generator.to(self.device))
        self.ranker_cfg = context.ranker_cfg
        self.k = generator.attributes.index(context.attribute)
        self.y_range = context.strength_range(generator)
        self.equal_band = context.equal_band
        self.previous = context.previous
        self.train_pairs = context.pairs(context.train)
        self.val_pairs = context.pairs(context.val)
        if len(self.train_pairs) == 0 or not (self.val_pairs.label != 0).any():
            raise DataError(
                f"ATTIC needs real '{context.train}' pairs and non-equal '{context.val}' pairs "
                f"of '{context.attribute}'"
            )

    # -- the pairs of a batch of seeds -------------------------------------------------------
    def created_batch(self, pair: ControlPair) -> RankBatch:
        """Both sides' images stacked (2B, 3, 64, 64) and the pairs (i, B + i) among them, with
        the targets inferred from the commanded strengths."""
        x = torch.cat(
            [render(self.generator, pair.y_a, pair.u_a), render(self.generator, pair.y_b, pair.u_b)]
        )
        n = len(pair.y_a)
        label = inferred_labels(pair.y_a[:, self.k] - pair.y_b[:, self.k], self.equal_band)
        target = (torch.from_numpy(label).float() + 1.0) / 2.0
        idx = torch.arange(n, device=x.device)
        return RankBatch(x, idx, idx + n, target.to(x.device), torch.ones(n, device=x.device))

    def ranker_step_loss(
        self, control: ControlNet, q: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Step (b): the ranker's loss on the seeds' pairs, their images taken as data."""
        with torch.no_grad():
            made = self.created_batch(control(q))
        return ranker_loss(self.ranker, made, crop_weight=self.ranker_cfg.crop_penalty)

    def control_step_loss(
        self, control: ControlNet, q: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Step (c): RankNet with the inferred targets flipped, through the frozen generator;
        minimising it raises the ranker's loss on the pairs."""
        made = self.created_batch(control(q))
        return ranker_loss(self.ranker, flipped(made), crop_weight=0.0)

    def create(self, budget: int, work_dir: Path, *, progress: bool = True) -> CreatedPairs:
        """Train the control network against the ranker into ``work_dir`` (resumable) and draw
        the ``budget`` fixed seeds' pairs."""
        cfg, rcfg = self.cfg, self.ranker_cfg
        gen = self.generator
        torch.manual_seed(cfg.seed)
        control = control_net(cfg, gen, self.y_range).to(self.device)
        carried = self.previous / CONTROL_FILE if self.previous is not None else None
        if carried is not None and carried.exists():  # active rounds: the weights carry over
            control.load_state_dict(torch.load(carried, map_location=self.device))
        q = control_seeds(budget, control.q_dim, cfg.seed).to(self.device)
        record = run_record(cfg, self.device, {"attribute": self.attribute, "budget": budget})
        write_run_config(work_dir, record, cfg)
        data = PairData.build(self.dataset, self.train_pairs, use_confidence=rcfg.use_confidence)
        size = rcfg.batch_size

        def batches(epoch: int) -> Iterator[AtticBatch]:
            order = np.random.default_rng([cfg.seed, epoch, 1]).permutation(budget)
            real = list(data.batches(epoch, size=size, seed=rcfg.seed))
            for i, raw in enumerate(real):
                rows = np.take(order, range(i * size, (i + 1) * size), mode="wrap")
                yield AtticBatch(
                    rank_batch(raw, self.device, rcfg), torch.from_numpy(rows).to(self.device)
                )

        def real_loss(batch: AtticBatch) -> tuple[torch.Tensor, dict[str, float]]:
            return ranker_loss(self.ranker, batch.real, crop_weight=rcfg.crop_penalty)

        def created_loss(batch: AtticBatch) -> tuple[torch.Tensor, dict[str, float]]:
            return self.ranker_step_loss(control, q[batch.seeds])

        def control_loss(batch: AtticBatch) -> tuple[torch.Tensor, dict[str, float]]:
            return self.control_step_loss(control, q[batch.seeds])

        def evaluate() -> dict[str, float]:
            return {
                "val_acc": accuracy_on(
                    self.ranker, self.dataset, self.val_pairs, device=self.device
                )
            }

        steps = cfg.epochs * -(-len(data.a) // size)
        control_opt = torch.optim.SGD(
            control.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        run_training(
            folder=work_dir,
            modules={"ranker": self.ranker, "control": control},
            optimizers={"ranker": make_optimizer(self.ranker, rcfg), "control": control_opt},
            objectives=[
                Objective("ranker", real_loss, "real"),
                Objective("ranker", created_loss, "created"),
                Objective("control", control_loss, "control"),
            ],
            batches=batches,
            epochs=cfg.epochs,
            seed=cfg.seed,
            record=record,
            evaluate=evaluate,
            metric="val_acc",
            patience=cfg.patience,
            schedule=CosineSchedule(steps, warmup=0.0, optimizers=("control",)),
            extra_hooks=[Snapshots(self, control, q[: cfg.snapshot_pairs], work_dir / "snapshots")]
            if cfg.snapshot_pairs
            else (),
            progress=progress,
            desc=f"attic {self.attribute}",
            steps_per_epoch=steps // cfg.epochs,
        )
        with atomic_path(work_dir / CONTROL_FILE) as tmp:
            torch.save(control.state_dict(), tmp)
        return self.draw(control, q)

    def draw(self, control: ControlNet, q: torch.Tensor) -> CreatedPairs:
        """The pairs the seeds q produce (control in its current mode)."""
        return draw_pairs(self.generator, control, q, self.attribute, self.equal_band, "attic")


def control_net(
    cfg: AtticConfig, generator: ConditionalVAE, y_range: tuple[np.ndarray, np.ndarray]
) -> ControlNet:
    """A fresh control network for ``generator``, its strengths clamped to ``y_range``."""
    low, high = (torch.from_numpy(v).float() for v in y_range)
    return ControlNet(
        cfg.control,
        z_dim=generator.config.z_dim,
        y_mean=generator.y_mean,
        y_std=generator.y_std,
        y_range=(low, high),
    )


@torch.no_grad()
def draw_pairs(
    generator: ConditionalVAE,
    control: ControlNet,
    q: torch.Tensor,
    attribute: str,
    equal_band: float,
    creator: str,
    chunk: int = 256,
) -> CreatedPairs:
    """The pairs a control network draws from seeds q (in its current mode: BatchNorm in train
    mode standardises over all of q at once), rendered by the generator in chunks."""
    pair = control(q)
    k = generator.attributes.index(attribute)
    images_a, images_b = [], []
    for i in range(0, len(q), chunk):
        sl = slice(i, i + chunk)
        images_a.append(to_uint8(render(generator, pair.y_a[sl], pair.u_a[sl])))
        images_b.append(to_uint8(render(generator, pair.y_b[sl], pair.u_b[sl])))
    y_a, u_a, y_b, u_b = (t.float().cpu().numpy() for t in pair)
    return CreatedPairs(
        attribute=attribute,
        creator=creator,
        images_a=np.concatenate(images_a),
        images_b=np.concatenate(images_b),
        label=inferred_labels(y_a[:, k] - y_b[:, k], equal_band),
        y_a=y_a,
        u_a=u_a,
        y_b=y_b,
        u_b=u_b,
    )


class Snapshots(Hook):
    """After every epoch: the first seeds' pairs (``epoch_NNN.npz``: images, y, inferred label)
    and the ranker's loss on them (``losses.jsonl``), the progression of the paper's Fig. 6."""

    def __init__(
        self, creator: AtticCreator, control: ControlNet, q: torch.Tensor, folder: Path
    ) -> None:
        self.creator, self.control, self.q, self.folder = creator, control, q, folder

    def after_epoch(self, trainer: Trainer) -> None:
        self.control.eval()
        self.creator.ranker.eval()
        with torch.no_grad():
            made = self.creator.draw(self.control, self.q)
            batch = self.creator.created_batch(self.control(self.q))
            loss, _ = ranker_loss(self.creator.ranker, batch, crop_weight=0.0)
        self.folder.mkdir(parents=True, exist_ok=True)
        epoch = trainer.state.epoch
        assert made.y_a is not None and made.y_b is not None
        np.savez_compressed(
            self.folder / f"epoch_{epoch:03d}.npz",
            images_a=made.images_a,
            images_b=made.images_b,
            y_a=made.y_a,
            y_b=made.y_b,
            label=made.label,
        )
        with open(self.folder / "losses.jsonl", "a") as fh:
            fh.write(json_text({"epoch": epoch, "ranker_loss": round(loss.item(), 6)}) + "\n")


def create_attic(
    context: CreationContext, budget: int, work_dir: Path, cfg: AtticConfig, *, progress: bool
) -> CreatedPairs:
    """``attic``: the pairs of a control network trained against the ranker."""
    return AtticCreator(context, cfg).create(budget, work_dir, progress=progress)


def more_attic(
    context: CreationContext, count: int, work_dir: Path, cfg: AtticConfig, draw: int
) -> CreatedPairs:
    """``count`` more pairs from new seeds (top-up ``draw``) through the control network that
    ``create_attic`` trained into ``work_dir``: replacing screened pairs costs no training."""
    path = work_dir / CONTROL_FILE
    if not path.exists():
        raise DataError("no trained control network to draw more pairs from", path=path)
    generator = freeze(context.require_generator().to(context.device))
    control = control_net(cfg, generator, context.strength_range(generator)).to(context.device)
    control.load_state_dict(torch.load(path, map_location=context.device))
    q = control_seeds(count, control.q_dim, top_up_seed(cfg.seed, draw)).to(context.device)
    return draw_pairs(generator, control.eval(), q, context.attribute, context.equal_band, "attic")


def create_random(
    context: CreationContext, budget: int, work_dir: Path, cfg: AtticConfig, *, progress: bool
) -> CreatedPairs:
    """``random``: passive generation, the same control network untrained (its BatchNorm over
    all the seeds at once: strengths spread as the generator's training strengths do), to
    separate creating from creating adversarially."""
    del work_dir, progress  # nothing to train
    generator = freeze(context.require_generator().to(context.device))
    torch.manual_seed(cfg.seed)
    control = control_net(cfg, generator, context.strength_range(generator)).to(context.device)
    q = control_seeds(budget, control.q_dim, cfg.seed).to(context.device)
    return draw_pairs(
        generator, control.train(), q, context.attribute, context.equal_band, "random"
    )
