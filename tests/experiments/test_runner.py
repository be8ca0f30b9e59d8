"""The experiment runner on a toy grid: cells run once, shards share one folder, a grid may grow
but its settings may not change, and a run killed at random points (SIGKILL) ends with exactly
the votes, pairs and results of an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from outpool import config
from outpool.annotate.protocol import LabelResult, PairRequest
from outpool.annotate.votes import VoteTable
from outpool.cli.commands import main
from outpool.errors import ConfigError, DataError, UnknownNameError
from outpool.experiments.config import ExperimentConfig, GridConfig, cells
from outpool.experiments.results import RESULTS, append_cell, read_rows
from outpool.experiments.runner import prepare, run_experiment

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = Path(__file__).with_name("tiny.toml")
QUIET = {"progress": False, "log": lambda _: None}
VOLATILE = ("wall_s", "cell_wall_s")  # timings differ between runs; nothing else may


def tiny(*overrides: str) -> ExperimentConfig:
    return config.load(ExperimentConfig, TINY, overrides)


def stable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        ({k: v for k, v in r.items() if k not in VOLATILE} for r in rows),
        key=lambda r: (r["attribute"], r["method"], r["protocol"], r["seed"], r.get("round", 0)),
    )


def test_the_grid_runs_real_methods_once_and_active_rounds_for_the_rest() -> None:
    grid = GridConfig(
        methods=("real", "real_2n", "attic"), protocols=("normal", "auto", "active"), seeds=(0,)
    )
    keys = [c.key for c in cells(grid, ("heel",))]
    assert keys == [
        "heel/real/normal/seed_0",
        "heel/real_2n/normal/seed_0",
        "heel/attic/normal/seed_0",
        "heel/attic/auto/seed_0",
        "heel/attic/active/seed_0",
    ]
    active_only = GridConfig(methods=("real_2n", "attic"), protocols=("active",), seeds=(0,))
    assert [c.key for c in cells(active_only, ("heel",))] == [
        "heel/real_2n/normal/seed_0",  # what a label is worth, beside the curves
        "heel/attic/active/seed_0",
    ]


def test_bad_grids_are_named() -> None:
    with pytest.raises(UnknownNameError, match="method 'magic'"):
        GridConfig(methods=("magic",))
    with pytest.raises(UnknownNameError, match="protocol 'manual'"):
        GridConfig(protocols=("manual",))
    with pytest.raises(ConfigError, match="only the built-in world"):
        GridConfig(dataset="lfw:/data")


def test_results_keep_each_cell_once_and_name_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / RESULTS
    row = {"attribute": "heel", "method": "real", "protocol": "normal", "seed": 0}
    row |= {"accuracy_pct": {"test": 70.0}, "labels_spent": 20}
    assert append_cell(path, [row]) and not append_cell(path, [row | {"x": 1}])
    assert read_rows(path) == [row]
    good = path.read_text()
    path.write_text(good + "{not json\n")
    with pytest.raises(DataError, match=f"{path}, line 2: not a JSON line"):
        read_rows(path)
    path.write_text(good + '{"attribute": "heel", "method": "attic"}\n')
    with pytest.raises(DataError, match="line 2: not a result row"):
        read_rows(path)
    path.write_text(good + good.replace('{"test": 70.0}', "70.0"))
    with pytest.raises(DataError, match="line 2: accuracy_pct must map"):
        read_rows(path)


@pytest.mark.slow
def test_a_second_run_skips_done_cells_and_a_grid_may_grow(tmp_path: Path) -> None:
    first = run_experiment(tiny("experiment.methods=['real']"), tmp_path, **QUIET)
    assert [r["method"] for r in first] == ["real"]
    grown = run_experiment(tiny(), tmp_path, **QUIET)
    assert len(grown) == 1 + 1 + 3 + 1 + 3  # real; SJ normal + 3 rounds; ATTIC normal + 3
    assert grown[0] == first[0]
    started = time.perf_counter()
    assert run_experiment(tiny(), tmp_path, **QUIET) == grown
    assert time.perf_counter() - started < 20  # nothing trained again
    attic = [r for r in grown if r["method"] == "attic" and r["protocol"] == "active"]
    assert [r["labels_spent"] for r in attic] == [20, 26, 32]
    assert (tmp_path / "cells/heel/attic/active/seed_0/round_002/votes.csv").exists()


@pytest.mark.slow
def test_other_settings_in_the_same_folder_are_refused(tmp_path: Path) -> None:
    run_experiment(tiny("experiment.methods=['real']"), tmp_path, **QUIET)
    before = (tmp_path / RESULTS).read_text()
    with pytest.raises(ConfigError, match=r"experiment\.n: 20 -> 30"):
        run_experiment(tiny("experiment.methods=['real']", "experiment.n=30"), tmp_path, **QUIET)
    assert (tmp_path / RESULTS).read_text() == before


def test_a_shard_finding_only_another_shard_s_lock_and_logs_goes_on(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / ".prepare.lock").touch()  # a shard started a moment earlier has taken the lock
    (run / "shard_0.log").write_text("rendering ...\n")
    prepare(tiny("experiment.methods=['real']"), run, **QUIET)
    assert (run / "config.json").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(DataError, match="not an experiment's run folder"):
        prepare(tiny("experiment.methods=['real']"), mine, **QUIET)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]  # not even a lock left in it
    assert (mine / "notes.txt").read_text() == "keep"


def outpool(run: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "outpool.cli", "experiment", "run", str(TINY), "--run", str(run)]
    pipes = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    return subprocess.Popen([*cmd, *args], env=env, **pipes)  # type: ignore[call-overload]


def finish(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-2000:]


@pytest.mark.slow
def test_two_shards_at_once_make_the_unsharded_result(tmp_path: Path) -> None:
    shards = [outpool(tmp_path / "sharded", "--shard", f"{i}/2") for i in (0, 1)]
    for proc in shards:
        finish(proc)
    finish(outpool(tmp_path / "whole"))
    sharded = read_rows(tmp_path / "sharded" / RESULTS)
    assert stable(sharded) == stable(read_rows(tmp_path / "whole" / RESULTS))


def votes_and_pairs(run: Path) -> dict[str, bytes]:
    """Every vote file and every created batch's arrays, by path."""
    out: dict[str, bytes] = {}
    for path in sorted((run / "cells").rglob("votes.csv")):
        out[str(path.relative_to(run))] = path.read_bytes()
    for path in sorted((run / "cells").rglob("created.npz")):
        with np.load(path) as data:
            out[str(path.relative_to(run))] = b"".join(data[k].tobytes() for k in data.files)
    return out


def files_in(run: Path) -> int:
    return sum(1 for p in (run / "cells").rglob("*") if p.is_file()) if run.exists() else 0


@pytest.mark.slow
def test_killed_at_random_points_it_ends_as_an_uninterrupted_run(tmp_path: Path) -> None:
    finish(outpool(tmp_path / "whole"))
    total = files_in(tmp_path / "whole")
    cut = tmp_path / "cut"
    rng = np.random.default_rng(7)
    kills = 0
    # kill once the run has written a random share of its files, a random moment later
    for share in sorted(rng.uniform(0.05, 0.9, 4)):
        proc = outpool(cut)
        while files_in(cut) < share * total and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(float(rng.uniform(0.0, 0.5)))
        if proc.poll() is not None:
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills >= 3  # killed mid-grid
    finish(outpool(cut))
    assert stable(read_rows(cut / RESULTS)) == stable(read_rows(tmp_path / "whole" / RESULTS))
    assert votes_and_pairs(cut) == votes_and_pairs(tmp_path / "whole")


class Waiting:
    """People who have labelled nothing yet."""

    def batch_name(self, request: PairRequest) -> str:
        return f"people-{len(request)}"

    def label(self, request: PairRequest) -> LabelResult:
        p = len(request)
        return LabelResult(
            pair_ids=request.ids,
            label=np.zeros(p, np.int8),
            confidence=np.zeros(p, np.float32),
            agreement=np.zeros(p, np.float32),
            status=np.full(p, "pending"),
            votes=VoteTable.empty(),
            pending=True,
        )


@pytest.mark.slow
def test_cells_waiting_for_people_stop_the_run_with_exit_3_and_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import outpool.experiments.runner as runner

    crowd = runner.annotator_of
    monkeypatch.setattr(runner, "annotator_of", lambda cfg: Waiting())
    grid = ("--set", "experiment.methods=['real','random']", "--set", "experiment.n=20")
    argv = ["experiment", "run", str(TINY), "--run", str(tmp_path), *grid]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "waiting for 16 labels on batch people-10, people-6" in err  # normal, active round 1
    assert [r["method"] for r in read_rows(tmp_path / RESULTS)] == ["real"]  # the rest waits
    monkeypatch.setattr(runner, "annotator_of", crowd)
    assert main(argv) == 0
    rows = read_rows(tmp_path / RESULTS)
    assert {(r["method"], r["protocol"]) for r in rows} == {
        ("real", "normal"),
        ("random", "normal"),
        ("random", "active"),
    }


def test_people_need_the_admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from outpool.experiments.runner import annotator_of

    monkeypatch.delenv("OUTPOOL_ADMIN_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="set OUTPOOL_ADMIN_TOKEN"):
        annotator_of(tiny("experiment.annotator=people"))
    with pytest.raises(UnknownNameError, match="annotator 'robots'"):
        tiny("experiment.annotator=robots")
