"""The one training loop: hooks, early stopping, checkpoints, NaN guard, exact resume."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
import torch
from torch import nn

from outpool.errors import DataError
from outpool.train.loop import (
    Checkpointer,
    CosineSchedule,
    EarlyStopping,
    EvalHook,
    Hook,
    JsonlLogger,
    Objective,
    Trainer,
    epoch_seed,
    optimise,
    run_training,
)

N_BATCHES = 3


def toy_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(24, 5, generator=g)
    y = x @ torch.randn(5, 1, generator=g)
    return x, y


class Toy:
    """nn.Linear + SGD with momentum; the step adds torch-RNG noise and dropout so the run
    depends on the loop re-seeding the RNG every epoch."""

    def __init__(self, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.model = nn.Sequential(nn.Dropout(0.2), nn.Linear(5, 1))
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9)
        self.x, self.y = toy_data()

    def batches(self, epoch: int) -> Iterator[torch.Tensor]:
        order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(epoch))
        yield from order.chunk(N_BATCHES)

    def loss(self, idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        x = self.x[idx] + 0.01 * torch.randn(len(idx), 5)
        loss = ((self.model(x) - self.y[idx]) ** 2).mean()
        return loss, {"loss": loss.item(), "aux": 1.0}

    def trainer(self, epochs: int, hooks: Sequence[Hook] = (), seed: int = 0) -> Trainer:
        return Trainer(
            modules={"toy": self.model},
            optimizers={"toy": self.opt},
            objectives=[Objective("toy", self.loss)],
            batches=self.batches,
            epochs=epochs,
            hooks=hooks,
            seed=seed,
            progress=False,
        )


def scripted(values: Sequence[float]) -> tuple[Iterator[float], object]:
    it = iter(values)

    def evaluate() -> Mapping[str, float]:
        return {"val_acc": next(it)}

    return it, evaluate


class Snapshots(Hook):
    """Copies of the weights after every epoch (epoch number -> state dict)."""

    def __init__(self) -> None:
        self.by_epoch: dict[int, dict[str, torch.Tensor]] = {}

    def after_epoch(self, trainer: Trainer) -> None:
        m = trainer.modules["toy"]
        self.by_epoch[trainer.state.epoch] = {k: v.clone() for k, v in m.state_dict().items()}


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_trains_and_logs_one_line_per_epoch(tmp_path: Path) -> None:
    toy = Toy()
    _, evaluate = scripted([10.0, 20.0, 30.0])
    log = tmp_path / "m" / "metrics.jsonl"
    first = optimise(toy.opt, toy.loss, torch.arange(24))["loss"]
    state = toy.trainer(
        3, [EvalHook(evaluate, metric="val_acc"), Checkpointer(tmp_path), JsonlLogger(log)]
    ).train()
    assert state.epoch == 3 and state.step == 3 * N_BATCHES
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [r["step"] for r in rows] == [3, 6, 9]
    assert [r["val_acc"] for r in rows] == [10.0, 20.0, 30.0]
    for r in rows:
        assert {"epoch", "step", "train_loss", "train_aux", "val_acc", "wall_s"} <= r.keys()
        assert r["train_aux"] == 1.0
    assert rows[-1]["train_loss"] < first  # it learns
    assert (tmp_path / "last.pt").exists() and (tmp_path / "best.pt").exists()


def test_early_stopping_after_patience_epochs_without_improvement() -> None:
    toy = Toy()
    # best at epoch 2; epochs 3, 4, 5 do not improve (equal is no improvement)
    it, evaluate = scripted([1.0, 5.0, 5.0, 4.0, 2.0, 9.0, 9.0, 9.0])
    state = toy.trainer(8, [EvalHook(evaluate, metric="val_acc"), EarlyStopping(3)]).train()
    assert state.best == 5.0 and state.best_epoch == 2
    assert state.epoch == 5 and state.stop
    assert next(it) == 9.0  # epoch 6 was never evaluated


def test_no_early_stop_while_improving() -> None:
    toy = Toy()
    _, evaluate = scripted([1.0, 2.0, 3.0, 4.0])
    state = toy.trainer(4, [EvalHook(evaluate, metric="val_acc"), EarlyStopping(1)]).train()
    assert state.epoch == 4 and not state.stop and state.best_epoch == 4


def test_best_checkpoint_holds_the_best_epoch(tmp_path: Path) -> None:
    toy = Toy()
    _, evaluate = scripted([1.0, 3.0, 2.0, 0.0])
    snaps = Snapshots()
    hooks = [EvalHook(evaluate, metric="val_acc"), snaps, Checkpointer(tmp_path)]
    toy.trainer(4, hooks).train()
    best = torch.load(tmp_path / "best.pt", weights_only=False)
    last = torch.load(tmp_path / "last.pt", weights_only=False)
    assert best["trainer"]["epoch"] == 2 and best["trainer"]["best"] == 3.0
    assert last["trainer"]["epoch"] == 4 and last["trainer"]["best_epoch"] == 2
    assert same(best["modules"]["toy"], snaps.by_epoch[2])
    assert same(last["modules"]["toy"], snaps.by_epoch[4])
    assert not same(snaps.by_epoch[2], snaps.by_epoch[4])


def test_eval_every_n_epochs_and_always_at_the_end() -> None:
    toy = Toy()
    calls: list[int] = []
    trainer = toy.trainer(5)

    def evaluate() -> Mapping[str, float]:
        calls.append(trainer.state.epoch)
        return {"val_acc": float(trainer.state.epoch)}

    trainer.hooks = [EvalHook(evaluate, metric="val_acc", every=2)]
    trainer.train()
    assert calls == [2, 4, 5]


def test_a_non_finite_loss_raises(tmp_path: Path) -> None:
    toy = Toy()
    n = 0

    def loss(batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        nonlocal n
        n += 1
        return toy.model(toy.x[batch]).mean(), {"loss": float("nan") if n == 5 else 1.0}

    trainer = toy.trainer(3, [Checkpointer(tmp_path)])
    trainer.objectives = [Objective("toy", loss)]
    with pytest.raises(FloatingPointError, match="epoch 2"):
        trainer.train()
    assert trainer.state.epoch == 1
    saved = torch.load(tmp_path / "last.pt", weights_only=False)
    assert saved["trainer"]["epoch"] == 1  # the bad epoch was not checkpointed


def test_an_infinite_metric_raises() -> None:
    toy = Toy()
    trainer = toy.trainer(1)
    trainer.objectives = [
        Objective("toy", lambda b: (toy.model(toy.x[b]).mean(), {"grad_norm": float("inf")}))
    ]
    with pytest.raises(FloatingPointError):
        trainer.train()


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path: Path) -> None:
    def hooks(folder: Path, values: Sequence[float]) -> list[Hook]:
        _, evaluate = scripted(values)
        return [EvalHook(evaluate, metric="val_acc"), Checkpointer(folder)]

    accs = [1.0, 2.0, 1.5, 3.0]
    full = Toy()
    full.trainer(4, hooks(tmp_path / "full", accs)).train()

    part = Toy()
    part.trainer(2, hooks(tmp_path / "part", accs[:2])).train()
    assert not same(weights(part.model), weights(full.model))

    # a fresh process: new model (other init), new optimiser, new trainer object
    again = Toy(seed=123)
    trainer = again.trainer(4, hooks(tmp_path / "part", accs[2:]))
    assert trainer.resume(tmp_path / "part" / "last.pt")
    assert trainer.state.epoch == 2
    state = trainer.train()
    assert state.epoch == 4 and state.best_epoch == 4
    assert same(weights(again.model), weights(full.model))
    assert same(again.opt.state_dict()["state"][0], full.opt.state_dict()["state"][0])


def test_resume_from_a_missing_file_starts_fresh(tmp_path: Path) -> None:
    trainer = Toy().trainer(1)
    assert trainer.resume(tmp_path / "nothing.pt") is False
    assert trainer.state.epoch == 0


def test_resume_with_a_network_the_checkpoint_lacks_names_it_and_the_file(
    tmp_path: Path,
) -> None:
    Toy().trainer(1, [Checkpointer(tmp_path)]).train()
    toy = Toy()
    extra = nn.Linear(2, 1)
    trainer = Trainer(
        modules={"toy": toy.model, "extra": extra},
        optimizers={"toy": toy.opt},
        objectives=[Objective("toy", toy.loss)],
        batches=toy.batches,
        epochs=2,
    )
    before = weights(toy.model)
    with pytest.raises(DataError, match=r"no modules \['extra'\].*another config") as err:
        trainer.resume(tmp_path / "last.pt")
    assert err.value.path == tmp_path / "last.pt"
    assert trainer.state.epoch == 0 and same(weights(toy.model), before)


def test_a_finished_run_does_not_train_again(tmp_path: Path) -> None:
    toy = Toy()
    toy.trainer(2, [Checkpointer(tmp_path)]).train()
    done = weights(toy.model)
    again = Toy(seed=5)
    trainer = again.trainer(2)
    trainer.resume(tmp_path / "last.pt")
    calls: list[object] = []
    trainer.step = lambda b: calls.append(b) or {"loss": 0.0}  # type: ignore[func-returns-value]
    trainer.train()
    assert calls == [] and same(weights(again.model), done)


def test_same_seed_repeats_and_another_seed_differs() -> None:
    runs = []
    for seed in (0, 0, 1):
        toy = Toy()
        toy.trainer(2, seed=seed).train()
        runs.append(weights(toy.model))
    assert same(runs[0], runs[1])
    assert not same(runs[0], runs[2])


def test_epoch_seed_is_distinct_per_seed_and_epoch() -> None:
    seeds = {epoch_seed(s, e) for s in range(5) for e in range(50)}
    assert len(seeds) == 250
    assert all(0 <= v < 2**31 - 1 for v in seeds)
    assert epoch_seed(3, 7) == epoch_seed(3, 7)


def test_cosine_schedule_warms_up_then_decays_to_zero() -> None:
    sched = CosineSchedule(100, warmup=0.1)
    f = [sched.factor(i) for i in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a < b for a, b in itertools.pairwise(f[:10]))  # rising warm-up
    assert all(a >= b for a, b in itertools.pairwise(f[9:]))  # then falling
    assert f[55] == pytest.approx(0.5, abs=0.02)  # half way down at the middle of the decay
    assert sched.factor(100) == pytest.approx(0.0) and sched.factor(500) == pytest.approx(0.0)


def test_cosine_schedule_sets_each_step_and_keeps_group_ratios() -> None:
    toy = Toy()
    toy.opt.add_param_group({"params": [nn.Parameter(torch.zeros(1))], "lr": 0.005})
    seen: list[tuple[float, float]] = []

    class Record(Hook):
        def after_step(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
            seen.append(tuple(g["lr"] for g in toy.opt.param_groups))

    sched = CosineSchedule(2 * N_BATCHES, warmup=0.0)
    toy.trainer(2, [sched, Record()]).train()
    assert [a for a, _ in seen] == pytest.approx([0.05 * sched.factor(i) for i in range(1, 7)])
    assert all(b == pytest.approx(a / 10) for a, b in seen)
    assert seen[-1][0] == pytest.approx(0.0)


def test_resume_with_a_schedule_gives_the_same_weights(tmp_path: Path) -> None:
    def hooks(folder: Path) -> list[Hook]:
        return [CosineSchedule(4 * N_BATCHES), Checkpointer(folder)]

    full = Toy()
    full.trainer(4, hooks(tmp_path / "full")).train()
    Toy().trainer(2, hooks(tmp_path / "part")).train()
    again = Toy(seed=7)
    trainer = again.trainer(4, hooks(tmp_path / "part"))
    assert trainer.resume(tmp_path / "part" / "last.pt")
    trainer.train()
    assert same(weights(again.model), weights(full.model))


def test_objectives_compose_an_alternation() -> None:
    # a is trained on its own loss; b is trained AGAINST a through a (its gradient also reaches
    # a's weights, as ATTIC's control step reaches the ranker's): a's steps must not see it
    torch.manual_seed(0)
    a, b = nn.Linear(3, 1), nn.Linear(3, 3)
    x = torch.randn(8, 3)
    a_ref, b_ref = copy.deepcopy(a), copy.deepcopy(b)

    def loss_a(batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        value = ((a(batch) - 1.0) ** 2).mean()
        return value, {"a_loss": value.item()}

    def loss_b(batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        value = -((a(b(batch)) - 1.0) ** 2).mean()
        return value, {"b_loss": value.item()}

    trainer = Trainer(
        modules={"a": a, "b": b},
        optimizers={
            "a": torch.optim.SGD(a.parameters(), lr=0.1),
            "b": torch.optim.SGD(b.parameters(), lr=0.1),
        },
        objectives=[Objective("a", loss_a), Objective("b", loss_b)],
        batches=lambda epoch: [x, x, x],
        epochs=1,
        progress=False,
    )
    metrics = trainer.run_step(x)
    assert set(metrics) == {"a_loss", "b_loss"}

    def sgd(model: nn.Module, value: torch.Tensor) -> None:
        grads = torch.autograd.grad(value, list(model.parameters()))
        with torch.no_grad():
            for param, grad in zip(model.parameters(), grads, strict=True):
                param -= 0.1 * grad

    sgd(a_ref, ((a_ref(x) - 1.0) ** 2).mean())  # a's step first...
    sgd(b_ref, -((a_ref(b_ref(x)) - 1.0) ** 2).mean())  # ...then b's, through the new a
    for got, want in ((a, a_ref), (b, b_ref)):
        for u, v in zip(weights(got).values(), weights(want).values(), strict=True):
            assert torch.allclose(u, v, atol=1e-6)
    sgd(a_ref, ((a_ref(x) - 1.0) ** 2).mean())
    trainer.run_step(x)  # a's second step ignores the gradient b's step left on a's weights
    for u, v in zip(weights(a).values(), weights(a_ref).values(), strict=True):
        assert torch.allclose(u, v, atol=1e-6)


def test_objectives_that_report_the_same_metric_are_refused() -> None:
    toy = Toy()
    trainer = toy.trainer(1)
    trainer.objectives = [Objective("toy", toy.loss), Objective("toy", toy.loss)]
    with pytest.raises(ValueError, match=r"metrics \['aux', 'loss'\]"):
        trainer.run_step(torch.arange(4))


def test_named_objectives_may_share_a_loss() -> None:
    toy = Toy()
    trainer = toy.trainer(1)
    trainer.objectives = [Objective("toy", toy.loss, "real"), Objective("toy", toy.loss, "made")]
    metrics = trainer.run_step(torch.arange(4))
    assert set(metrics) == {"real_loss", "real_aux", "made_loss", "made_aux"}


def test_an_objective_naming_a_missing_optimiser_is_refused() -> None:
    toy = Toy()
    with pytest.raises(ValueError, match=r"\['control'\]"):
        Trainer(
            modules={"toy": toy.model},
            optimizers={"toy": toy.opt},
            objectives=[Objective("control", toy.loss)],
            batches=toy.batches,
            epochs=1,
        )


def test_run_training_keeps_the_best_epoch_and_resumes(tmp_path: Path) -> None:
    snaps = Snapshots()
    toy = Toy()

    def train(values: Sequence[float], epochs: int) -> None:
        _, evaluate = scripted(values)
        run_training(
            folder=tmp_path,
            modules={"toy": toy.model},
            optimizers={"toy": toy.opt},
            objectives=[Objective("toy", toy.loss)],
            batches=toy.batches,
            epochs=epochs,
            seed=0,
            record={"what": "toy"},
            evaluate=evaluate,
            metric="val_acc",
            schedule=snaps,  # any hook: here one that keeps every epoch's weights
            progress=False,
        )

    train([1.0, 3.0], epochs=2)
    train([2.0], epochs=3)  # resumes after epoch 2 and runs only epoch 3
    assert sorted(snaps.by_epoch) == [1, 2, 3]
    assert same(weights(toy.model), snaps.by_epoch[2])  # the best epoch, not the last
    assert not toy.model.training
    rows = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3]
    assert torch.load(tmp_path / "last.pt", weights_only=False)["config"] == {"what": "toy"}


def test_run_training_without_an_evaluation_keeps_the_last_epoch(tmp_path: Path) -> None:
    snaps = Snapshots()
    toy = Toy()
    state = run_training(
        folder=tmp_path,
        modules={"toy": toy.model},
        optimizers={"toy": toy.opt},
        objectives=[Objective("toy", toy.loss)],
        batches=toy.batches,
        epochs=2,
        seed=0,
        record={},
        schedule=snaps,
        progress=False,
    )
    assert state.epoch == 2 and same(weights(toy.model), snaps.by_epoch[2])
    with pytest.raises(ValueError, match="early stopping needs an evaluation"):
        run_training(
            folder=tmp_path / "other",
            modules={"toy": toy.model},
            optimizers={"toy": toy.opt},
            objectives=[Objective("toy", toy.loss)],
            batches=toy.batches,
            epochs=2,
            seed=0,
            record={},
            patience=2,
            progress=False,
        )


def test_cosine_schedule_without_warm_up_starts_at_the_full_rate() -> None:
    sched = CosineSchedule(10, warmup=0.0)
    assert sched.factor(0) == 1.0
    assert sched.factor(5) == pytest.approx(0.5)
    assert sched.factor(10) == pytest.approx(0.0)


def test_a_cosine_schedule_can_leave_an_optimiser_alone() -> None:
    toy = Toy()
    other = nn.Linear(2, 1)
    fixed = torch.optim.SGD(other.parameters(), lr=0.3)
    trainer = Trainer(
        modules={"toy": toy.model, "other": other},
        optimizers={"toy": toy.opt, "other": fixed},
        objectives=[Objective("toy", toy.loss)],
        batches=toy.batches,
        epochs=1,
        hooks=[CosineSchedule(N_BATCHES, warmup=0.0, optimizers=("toy",))],
        progress=False,
    )
    trainer.train()
    assert toy.opt.param_groups[0]["lr"] == pytest.approx(0.0)
    assert fixed.param_groups[0]["lr"] == 0.3


def test_progress_shows_a_total_and_an_eta_from_the_second_epoch(
    capsys: pytest.CaptureFixture[str],
) -> None:
    toy = Toy()
    trainer = toy.trainer(epochs=2)
    trainer.progress = True
    trainer.train()
    err = capsys.readouterr().err
    first, second = err[: err.index("epoch 2/2")], err[err.index("epoch 2/2") :]
    assert f"/{N_BATCHES} [" not in first  # the first epoch's size is not known yet
    assert f"0/{N_BATCHES} [00:00<" in second  # done/total [elapsed<remaining]
    # a caller that knows the epoch's size gives the first epoch a total too
    toy = Toy()
    told = Trainer(
        modules={"toy": toy.model},
        optimizers={"toy": toy.opt},
        objectives=[Objective("toy", toy.loss)],
        batches=toy.batches,
        epochs=1,
        steps_per_epoch=N_BATCHES,
    )
    told.train()
    assert f"0/{N_BATCHES} [00:00<" in capsys.readouterr().err


def test_best_is_written_before_last_so_a_kill_between_them_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[str] = []
    save = Trainer.save

    def recording(self: Trainer, path: Path) -> None:
        written.append(path.name)
        save(self, path)

    monkeypatch.setattr(Trainer, "save", recording)
    trainer = Trainer(modules={}, optimizers={}, objectives=[], batches=lambda e: [], epochs=1)
    trainer.state.epoch = trainer.state.best_epoch = 1
    Checkpointer(tmp_path).after_epoch(trainer)
    assert written == ["best.pt", "last.pt"]  # a last.pt never lacks its best.pt
