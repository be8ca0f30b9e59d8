"""`outpool train-generator`, in-process on the small built-in world."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from outpool.cli import main
from outpool.data import Dataset, ImageTable
from outpool.synth import PixelOracle, World
from outpool.train.generator import load_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = (
    "--set",
    "epochs=1",
    "--set",
    "model.width=4",
    "--set",
    "model.feature=32",
    "--set",
    "model.z_dim=8",
    "--set",
    "model.hidden=32",
    "--set",
    "model.y_embed=8",
)
FILES = (
    "config.json",
    "metrics.jsonl",
    "last.pt",
    "best.pt",
    "generator.pt",
    "samples.png",
    "reconstructions.png",
    "sweeps.png",
    "controllability.json",
)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def dataset_dir(small_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ds") / "shoes"
    small_world.dataset.save(folder, truth=small_world.truth)
    return folder


@pytest.fixture(scope="module")
def cli_run(
    dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory, oracle: PixelOracle
) -> tuple[Path, dict[str, Any]]:
    """One tiny `train-generator` run (judged by the pixel oracle), shared by the tests below."""
    run = tmp_path_factory.mktemp("gen") / "run"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["train-generator", str(dataset_dir), "--out", str(run), *TINY]) == 0
    return run, json.loads(stdout.getvalue())


@pytest.mark.slow
def test_train_generator_writes_the_run_folder(
    cli_run: tuple[Path, dict[str, Any]], dataset_dir: Path
) -> None:
    run, out = cli_run
    for name in FILES:
        assert (run / name).is_file(), name
    for name in ("samples.png", "reconstructions.png", "sweeps.png"):
        assert (run / name).read_bytes()[:8] == PNG, name
    assert not any(p.name.endswith(".tmp") for p in run.iterdir())

    record = json.loads((run / "config.json").read_text())
    model_cfg = record["config"]["model"]
    assert record["config"]["epochs"] == 1 and record["table"] == "generator"
    assert (model_cfg["width"], model_cfg["feature"], model_cfg["z_dim"]) == (4, 32, 8)
    assert (model_cfg["hidden"], model_cfg["y_embed"]) == (32, 8)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["epoch"] == 1
    assert "val_elbo" in rows[0] and "val_recon_mse" in rows[0]
    assert out["epochs"] == 1 and out["best_epoch"] == 1

    names = Dataset.load(dataset_dir).images["generator"].attributes
    model = load_generator(run / "generator.pt", attributes=names)
    assert model.config.width == 4 and model.config.z_dim == 8 and model.attributes == names


@pytest.mark.slow
def test_the_pixel_oracle_judges_controllability(
    cli_run: tuple[Path, dict[str, Any]], dataset_dir: Path
) -> None:
    run, out = cli_run
    check = json.loads((run / "controllability.json").read_text())
    assert out["controllability"] == check
    names = Dataset.load(dataset_dir).images["generator"].attributes
    for key in ("spearman", "leakage", "sweep_legible_pct"):
        assert set(check[key]) == set(names), key
    for name in names:
        rho = check["spearman"][name]
        assert rho is None or -1.0 <= rho <= 1.0  # None: nothing changed along the sweep
        assert 0.0 <= check["sweep_legible_pct"][name] <= 100.0
    assert 0.0 <= check["samples_legible_pct"] <= 100.0
    rhos = list(check["spearman"].values())
    if None not in rhos:
        assert check["spearman_min"] == min(rhos)
    else:
        assert check["spearman_min"] is None


@pytest.mark.slow
def test_running_again_resumes(
    cli_run: tuple[Path, dict[str, Any]],
    dataset_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import outpool.workflows.generator_runs

    run, out = cli_run
    # the judge was checked above; here only the training resumes (and the oracle's ~10 s is saved)
    monkeypatch.setattr(
        outpool.workflows.generator_runs, "controllability", lambda *a, **k: {"stub": 1}
    )
    before = torch.load(run / "generator.pt", weights_only=False)["state"]
    assert main(["train-generator", str(dataset_dir), "--out", str(run), *TINY]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["epochs"], again["best_epoch"]) == (out["epochs"], out["best_epoch"])
    assert again["best_val_elbo"] == out["best_val_elbo"] and again["controllability"] == {
        "stub": 1
    }
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1  # nothing trained again
    after = torch.load(run / "generator.pt", weights_only=False)["state"]
    assert before.keys() == after.keys()
    assert all(torch.equal(v, after[k]) for k, v in before.items())


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("outpool: error:")
    assert "Traceback" not in captured.err and captured.out == ""
    return lines[0]


def test_unknown_set_key_exits_2_with_one_line(
    dataset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "gen"
    argv = ["train-generator", str(dataset_dir), "--out", str(run), "--set", "model.widht=4"]
    assert main(argv) == 2
    assert "widht" in one_error_line(capsys)
    assert not run.exists()


def test_bad_set_value_exits_2(
    dataset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train-generator", str(dataset_dir), "--out", str(tmp_path / "g"), "--set", "epochs=0"]
    assert main(argv) == 2
    assert "epochs" in one_error_line(capsys)


def test_generator_table_without_strengths_exits_2(
    small_world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = small_world.dataset.images["generator"]
    bare = Dataset(
        name=small_world.dataset.name,
        attributes=small_world.dataset.attributes,
        images={
            "generator": ImageTable(
                ids=table.ids, pixels=np.asarray(table.pixels), groups=table.groups
            )
        },
    )
    folder = tmp_path / "bare"
    bare.save(folder)
    run = tmp_path / "gen"
    assert main(["train-generator", str(folder), "--out", str(run), *TINY]) == 2
    assert "strengths" in one_error_line(capsys)
    assert not (run / "generator.pt").exists()


def test_unknown_table_exits_2(
    dataset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train-generator", str(dataset_dir), "--out", str(tmp_path / "g"), "--table", "nope"]
    assert main([*argv, *TINY]) == 2
    line = one_error_line(capsys)
    assert "'nope'" in line and "generator" in line
