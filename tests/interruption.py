"""An interruption at a chosen point of a training run, for resume tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from outpool.train.loop import JsonlLogger, Trainer


@contextlib.contextmanager
def interrupted_after(epoch: int, folder: str | None = None) -> Iterator[None]:
    """The block's training stops with KeyboardInterrupt right after epoch ``epoch``'s
    checkpoint and log line are written (in a run folder named ``folder``, when given), as a
    person pressing Ctrl+C there would stop it; the block must be interrupted."""
    log_epoch = JsonlLogger.after_epoch

    def interrupted(self: JsonlLogger, trainer: Trainer) -> None:
        log_epoch(self, trainer)  # the last hook of an epoch
        if trainer.state.epoch == epoch and folder in (None, self.path.parent.name):
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(JsonlLogger, "after_epoch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            yield
