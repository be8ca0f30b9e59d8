"""Progress helpers: the ETA line and the bar that goes quiet in a log file."""

from __future__ import annotations

import io
import sys

import pytest

from outpool.bench import eta_text, progress_bar


def test_eta_text_from_the_pace_so_far() -> None:
    assert eta_text(0, 10, 0.0, 5.0) == "[0/10]"
    assert eta_text(2, 10, 0.0, 240.0) == "[2/10, about 16 min left]"  # 2 min each, 8 to go
    assert eta_text(10, 10, 0.0, 600.0) == "[10/10, about 0 min left]"


def test_progress_bar_has_a_total_and_is_off_without_a_label(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    assert list(progress_bar(range(3), "work", unit="step")) == [0, 1, 2]
    assert "work" in err.getvalue() and "3/3" in err.getvalue()
    quiet = io.StringIO()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert list(progress_bar(range(3), "")) == [0, 1, 2]
    assert quiet.getvalue() == ""
    bar = progress_bar(range(3), "log")
    assert bar.mininterval == 30.0  # not a terminal: a line every 30 s at most
    bar.close()


def test_training_writes_a_log_file_no_line_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from outpool.train.loop import Objective, Trainer

    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    weight = torch.nn.Parameter(torch.tensor(1.0))

    def loss(_: object) -> tuple[torch.Tensor, dict[str, float]]:
        value = weight**2
        return value, {"loss": value.item()}

    trainer = Trainer(
        modules={"w": torch.nn.Module()},
        optimizers={"w": torch.optim.SGD([weight], lr=0.01)},
        objectives=[Objective("w", loss)],
        batches=lambda epoch: range(200),
        epochs=1,
        desc="toy",
    )
    trainer.train()
    lines = err.getvalue().replace("\r", "\n").splitlines()
    assert 1 <= len([line for line in lines if "toy" in line]) <= 3  # not one per batch
    assert "200/200" in err.getvalue()


def test_each_epoch_after_the_first_says_how_long_the_whole_run_may_take(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    from outpool.train.loop import Objective, Trainer, _duration

    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    weight = torch.nn.Parameter(torch.tensor(1.0))
    trainer = Trainer(
        modules={"w": torch.nn.Module()},
        optimizers={"w": torch.optim.SGD([weight], lr=0.01)},
        objectives=[Objective("w", lambda _: (weight**2, {}))],
        batches=lambda epoch: range(3),
        epochs=3,
        desc="toy",
    )
    trainer.train()
    text = err.getvalue()
    assert "toy epoch 1/3" in text and "toy epoch 1/3 (" not in text  # no pace yet
    assert "toy epoch 2/3 (epochs left: at most" in text and "toy epoch 3/3 (epochs" in text
    assert [_duration(s) for s in (45, 720, 5400)] == ["45 s", "12 min", "1.5 h"]
