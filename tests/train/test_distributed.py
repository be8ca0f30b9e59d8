"""Multi-process training through torchrun (gloo on the CPU; NCCL on GPUs uses the same code)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from outpool.data import Dataset
from outpool.synth import World
from outpool.train.ranker import load_ranker

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))


@pytest.mark.slow
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed beside this Python")
def test_torchrun_two_processes_train_one_ranker(tmp_path: Path, small_world: World) -> None:
    data = tmp_path / "ds"
    small_world.dataset.save(data, truth=small_world.truth)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        str(TORCHRUN),
        "--nproc_per_node=2",
        "-m",
        "outpool.cli",
        "train-ranker",
        str(data),
        "--attribute",
        "heel",
        "--out",
        str(run),
        "--set",
        "epochs_crop=1",
        "--set",
        "epochs_full=1",
        "--set",
        "model.width=4",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    # one report (rank 0), one set of files, and the record says two processes trained it
    assert done.stdout.count('"best_val_acc"') == 1
    record = json.loads((run / "heel" / "config.json").read_text())
    assert record["processes"] == 2
    lines = (run / "heel" / "stage_full" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1
    # each process took half of the batches of the epoch
    train_pairs = len(Dataset.load(data).pairs["train"].for_attribute("heel"))
    batches = -(-train_pairs // 25)
    assert json.loads(lines[0])["step"] == batches // 2
    model, payload = load_ranker(run / "heel" / "ranker.pt")
    assert payload["attribute"] == "heel"
    assert all(torch.isfinite(p).all() for p in model.parameters())
