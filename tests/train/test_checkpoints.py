"""Model files and run records (``outpool.train.checkpoints``): a payload reads back as written,
and a missing, corrupt, truncated or foreign file is a ``DataError`` naming its path."""

from __future__ import annotations

import json
import math
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from outpool import __version__
from outpool.errors import ConfigError, DataError
from outpool.train import checkpoints
from outpool.train.checkpoints import (
    check_same_config,
    code_version,
    read_checkpoint,
    run_record,
    write_checkpoint,
    write_run_config,
)


def payload(kind: str = "outpool-ranker") -> dict[str, Any]:
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    return {
        "kind": kind,
        "config": {"width": 4, "sizes": [1, 2]},
        "state": net.state_dict(),
        "attributes": ("heel", "open"),
    }


def test_a_checkpoint_reads_back_as_written(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "ranker.pt"  # missing folders are made
    written = payload()
    write_checkpoint(written, path)
    assert [p.name for p in path.parent.iterdir()] == ["ranker.pt"]  # no temporary file left
    back = read_checkpoint(path, "ranker")
    assert back.keys() == written.keys()
    assert back["kind"] == "outpool-ranker"
    assert back["config"] == {"width": 4, "sizes": [1, 2]}
    assert back["attributes"] == ("heel", "open")
    for name, tensor in written["state"].items():
        assert torch.equal(back["state"][name], tensor)
        assert back["state"][name].device.type == "cpu"


def test_writing_again_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    write_checkpoint(payload("outpool-ranker"), path)
    write_checkpoint(payload("outpool-generator"), path)
    assert read_checkpoint(path, "generator")["kind"] == "outpool-generator"
    with pytest.raises(DataError, match="not an outpool ranker checkpoint"):
        read_checkpoint(path, "ranker")


@pytest.mark.parametrize(
    "content",
    [
        payload("outpool-generator"),  # another outpool kind
        {"config": {}, "state": {}},  # no kind at all
        {"kind": "ranker"},  # the bare kind, without the "outpool-" prefix
        ["outpool-ranker"],  # not a dict
    ],
    ids=["other-kind", "no-kind", "bare-kind", "not-a-dict"],
)
def test_a_file_of_another_kind_names_the_path(tmp_path: Path, content: Any) -> None:
    path = tmp_path / "model.pt"
    torch.save(content, path)
    with pytest.raises(DataError, match="not an outpool ranker checkpoint") as err:
        read_checkpoint(path, "ranker")
    assert err.value.path == path
    assert str(path) in str(err.value)


def test_a_truncated_file_is_unreadable_and_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "ranker.pt"
    write_checkpoint(payload(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"not a readable checkpoint \(\w+\)") as err:
        read_checkpoint(path, "ranker")
    assert err.value.path == path
    assert err.value.__cause__ is None  # one clear error, not torch's traceback


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all"], ids=["empty", "text"])
def test_a_corrupt_file_is_unreadable_and_names_the_path(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "generator.pt"
    path.write_bytes(content)
    with pytest.raises(DataError, match="not a readable checkpoint") as err:
        read_checkpoint(path, "generator")
    assert err.value.path == path


def test_a_missing_file_names_the_kind_and_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "generator.pt"
    with pytest.raises(DataError, match="generator checkpoint not found") as err:
        read_checkpoint(path, "generator")
    assert err.value.path == path
    assert str(err.value).startswith(str(path))


# -- the run record ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Inner:
    width: int = 4
    zooms: tuple[float, ...] = (1.0, 1.5)


@dataclass(frozen=True)
class RunConfig:
    seed: int = 7
    lr: float = 0.01
    model: Inner = field(default_factory=Inner)


def test_code_version_is_the_package_version_and_the_commit() -> None:
    assert re.fullmatch(re.escape(__version__) + r"(\+[0-9a-f]{4,40})?", code_version())


def test_code_version_without_git_is_the_package_version(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_git(*args: object, **kwargs: object) -> None:
        raise OSError("git not installed")

    monkeypatch.setattr(checkpoints.subprocess, "run", no_git)
    assert code_version() == __version__

    def slow_git(*args: object, **kwargs: object) -> None:
        raise subprocess.TimeoutExpired("git", 5)

    monkeypatch.setattr(checkpoints.subprocess, "run", slow_git)
    assert code_version() == __version__


def test_run_record_holds_the_fields_config_seed_version_and_device() -> None:
    record = run_record(RunConfig(), torch.device("cpu"), {"attribute": "heel", "epochs": 2})
    assert record == {
        "attribute": "heel",
        "epochs": 2,
        "config": {"seed": 7, "lr": 0.01, "model": {"width": 4, "zooms": [1.0, 1.5]}},
        "seed": 7,
        "code_version": code_version(),
        "device": "cpu",
    }
    assert list(record)[:2] == ["attribute", "epochs"]  # the caller's fields first
    assert run_record(RunConfig(seed=3), torch.device("cpu"), {})["seed"] == 3


def test_write_run_config_writes_the_record_as_json(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "a"  # made if missing
    record = run_record(RunConfig(), torch.device("cpu"), {"attribute": "heel"})
    write_run_config(run_dir, record, RunConfig())
    text = (run_dir / "config.json").read_text()
    assert text.endswith("}\n")
    assert json.loads(text) == record
    assert [p.name for p in run_dir.iterdir()] == ["config.json"]
    write_run_config(run_dir, {"attribute": "open"}, RunConfig())  # replaces, never appends
    assert json.loads((run_dir / "config.json").read_text()) == {"attribute": "open"}


def test_a_run_is_resumed_only_with_its_own_config(tmp_path: Path) -> None:
    run = tmp_path / "run"
    device = torch.device("cpu")
    write_run_config(run, run_record(RunConfig(), device, {}), RunConfig())
    (run / "stage_crop").mkdir()
    (run / "stage_crop" / "last.pt").write_bytes(b"checkpoint")  # a run has begun
    before = (run / "config.json").read_bytes()
    write_run_config(
        run, run_record(RunConfig(), device, {}), RunConfig()
    )  # the same settings: resumes
    changed = RunConfig(lr=0.1, model=Inner(width=8))
    with pytest.raises(ConfigError, match=r"lr: 0\.01 -> 0\.1, model\.width: 4 -> 8\); train"):
        write_run_config(run, run_record(changed, device, {}), RunConfig())
    assert (run / "config.json").read_bytes() == before  # nothing written
    # without a checkpoint nothing has run yet: the new settings are simply written
    fresh = tmp_path / "fresh"
    write_run_config(fresh, run_record(RunConfig(), device, {}), RunConfig())
    write_run_config(fresh, run_record(changed, device, {}), RunConfig())
    assert json.loads((fresh / "config.json").read_text())["config"]["lr"] == 0.1
    (run / "config.json").write_text("{not json")
    with pytest.raises(DataError, match="unreadable run config"):
        write_run_config(run, run_record(RunConfig(), device, {}), RunConfig())


def test_a_setting_newer_than_the_run_resumes_at_its_default(tmp_path: Path) -> None:
    # a run made before a setting existed was made with what its default does
    path = tmp_path / "config.json"
    path.write_text('{"config": {"lr": 0.01}}')
    defaults = {"lr": 0.01, "model": {"width": 4}, "weights": ""}
    check_same_config(path, {"lr": 0.01, "model": {"width": 4}, "weights": ""}, defaults)
    with pytest.raises(ConfigError, match=r"weights: None -> 'r18\.pth'"):
        check_same_config(path, {"lr": 0.01, "model": {"width": 4}, "weights": "r18.pth"}, defaults)
    with pytest.raises(ConfigError, match="weights"):  # without defaults: any new key differs
        check_same_config(path, {"lr": 0.01, "model": {"width": 4}, "weights": ""})


def test_a_run_written_with_infinity_resumes_with_the_same_config(tmp_path: Path) -> None:
    # JSON written before configs stored inf as "inf" held the non-standard Infinity
    path = tmp_path / "config.json"
    path.write_text('{"config": {"chroma_ratio": Infinity, "epochs": 12}}')
    check_same_config(path, {"chroma_ratio": math.inf, "epochs": 12})
    with pytest.raises(ConfigError, match="epochs: 12 -> 13"):
        check_same_config(path, {"chroma_ratio": math.inf, "epochs": 13})
