"""`outpool train-ranker` and `outpool eval`, in-process on the small built-in world."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from outpool.cli import main
from outpool.data import Dataset
from outpool.errors import DataError
from outpool.synth import World
from outpool.train.evaluate import accuracy_on, score_images
from outpool.train.ranker import load_ranker
from outpool.workflows.ranker_runs import attributes_to_train, evaluate_run, rankers_in

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RUN = "--out"  # train-ranker names its run folder --out (--run clashes with torchrun's --run-path)
TINY = ("--set", "model.width=4", "--set", "epochs_crop=1", "--set", "epochs_full=1")
ATTR = "heel"
FILES = (
    "config.json",
    "ranker.pt",
    "crops.png",
    "curves.png",
    "stage_crop/metrics.jsonl",
    "stage_full/metrics.jsonl",
)


@pytest.fixture(scope="module")
def dataset_dir(small_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ds") / "shoes"
    small_world.dataset.save(folder, truth=small_world.truth)
    return folder


@pytest.fixture(scope="module")
def trained(dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "r"
    assert main(["train-ranker", str(dataset_dir), "--attribute", ATTR, RUN, str(run), *TINY]) == 0
    return run


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=False)["state"]


def lines(path: Path) -> int:
    return len(path.read_text().splitlines())


@pytest.mark.slow
def test_train_ranker_writes_the_run_folder(
    dataset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "r"
    argv = ["train-ranker", str(dataset_dir), "--attribute", ATTR, RUN, str(run), *TINY]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {ATTR} and out[ATTR]["epochs_run"] == 1
    for name in FILES:
        assert (run / ATTR / name).is_file(), name
    assert (run / ATTR / "crops.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((run / "summary.json").read_text())
    assert summary == out
    record = json.loads((run / ATTR / "config.json").read_text())
    assert record["config"]["model"]["width"] == 4
    assert record["config"]["epochs_crop"] == 1 and record["config"]["epochs_full"] == 1
    model, payload = load_ranker(run / ATTR / "ranker.pt")
    assert payload["attribute"] == ATTR and model.config.width == 4
    assert not any(p.name.endswith(".tmp") for p in run.rglob("*"))
    # another attribute trained into the same run later: the summary keeps both
    other = next(a for a in Dataset.load(dataset_dir).attribute_names if a != ATTR)
    second = ["train-ranker", str(dataset_dir), "--attribute", other, RUN, str(run), *TINY]
    assert main(second) == 0
    capsys.readouterr()
    assert set(json.loads((run / "summary.json").read_text())) == {ATTR, other}

    # running it again resumes: no epoch is trained again and the weights stay the same
    before = weights(run / ATTR / "ranker.pt")
    counts = {s: lines(run / ATTR / f"stage_{s}" / "metrics.jsonl") for s in ("crop", "full")}
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == out
    assert {s: lines(run / ATTR / f"stage_{s}" / "metrics.jsonl") for s in counts} == counts
    after = weights(run / ATTR / "ranker.pt")
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_eval_reports_every_table(
    trained: Path, dataset_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code = main(["eval", str(trained), str(dataset_dir), "--pairs", "test", "--pairs", "test_fine"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"test", "test_fine"}
    dataset = Dataset.load(dataset_dir)
    for name, table in out.items():
        accuracy = table["accuracy_pct"]
        assert set(accuracy) == {ATTR, "mean"}
        assert 0.0 <= accuracy[ATTR] <= 100.0 and accuracy["mean"] == accuracy[ATTR]
        pairs = dataset.pairs[name].for_attribute(ATTR)
        assert table["pairs"][ATTR] == int((pairs.label != 0).sum())  # the non-equal ones
        low, high = table["interval95_pct"][ATTR]
        assert low < accuracy[ATTR] < high or accuracy[ATTR] in (0.0, 100.0)
    stored = json.loads((trained / "eval.json").read_text())["evaluations"]
    source = str(dataset_dir.resolve())
    assert {
        k: {x: v for x, v in r.items() if x not in ("dataset", "source", "table")}
        for k, r in stored.items()
    } == {f"{name} of {source}": table for name, table in out.items()}
    assert {r["source"] for r in stored.values()} == {source}
    # the numbers are the ranker's accuracy on those pairs
    model, _ = load_ranker(trained / ATTR / "ranker.pt")
    for name in ("test", "test_fine"):
        expected = accuracy_on(model, dataset, dataset.pairs[name].for_attribute(ATTR))
        assert out[name]["accuracy_pct"][ATTR] == pytest.approx(round(expected, 2))


@pytest.mark.slow
def test_eval_defaults_to_test_and_accepts_one_checkpoint(
    trained: Path, dataset_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    ckpt = trained / ATTR / "ranker.pt"
    assert main(["eval", str(ckpt), str(dataset_dir)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"test"} and set(out["test"]["accuracy_pct"]) == {ATTR, "mean"}
    assert not (trained / ATTR / "eval.json").exists()


def test_train_ranker_unknown_attribute(
    dataset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "r"
    argv = ["train-ranker", str(dataset_dir), "--attribute", "sparkly", RUN, str(run), *TINY]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("outpool: error:")
    assert "sparkly" in err[0] and ATTR in err[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert not run.exists()  # nothing half-written


def test_eval_on_a_folder_without_rankers(
    dataset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty_run"
    empty.mkdir()
    assert main(["eval", str(empty), str(dataset_dir)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("outpool: error:")
    assert str(empty) in err[0]
    assert "Traceback" not in captured.err
    assert not (empty / "eval.json").exists()


@pytest.mark.slow
def test_eval_of_rankers_for_attributes_the_dataset_lacks(
    trained: Path, dataset_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other_run"
    (other / "Sparkly").mkdir(parents=True)
    (other / "Sparkly" / "ranker.pt").write_bytes((trained / ATTR / "ranker.pt").read_bytes())
    capsys.readouterr()
    assert main(["eval", str(other), str(dataset_dir)]) == 2  # not an empty "accuracy_pct"
    err = capsys.readouterr().err
    assert "Sparkly are for attributes dataset" in err and "case-sensitive" in err
    assert not (other / "eval.json").exists()


@pytest.mark.slow
def test_eval_unknown_pair_table(
    trained: Path, dataset_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["eval", str(trained), str(dataset_dir), "--pairs", "nosuch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("outpool: error:") and "nosuch" in err[0]


@pytest.mark.slow
def test_python_api(trained: Path, dataset_dir: Path, small_world: World) -> None:
    dataset = Dataset.load(dataset_dir)
    assert attributes_to_train(dataset, "all") == list(dataset.attribute_names)
    assert attributes_to_train(dataset, ATTR) == [ATTR]
    # "all" means the attributes the training table has pairs of; an empty table says so
    one = dataset.pairs["train"].for_attribute(ATTR)
    dataset.pairs["only"] = one
    assert attributes_to_train(dataset, "all", "only") == [ATTR]
    dataset.pairs["none"] = one.subset(np.zeros(len(one), bool))
    with pytest.raises(DataError, match="'none' has no pairs to train on"):
        attributes_to_train(dataset, "all", "none")
    found = rankers_in(trained)
    assert found == {ATTR: trained / ATTR / "ranker.pt"}
    assert rankers_in(found[ATTR]) == found
    result = evaluate_run(trained, dataset, ["val"])
    assert set(result["val"]["accuracy_pct"]) == {ATTR, "mean"}
    model, _ = load_ranker(found[ATTR])
    pixels = np.asarray(dataset.lookup(dataset.pairs["test"].a[:4]))
    s = score_images(model, pixels)
    assert s.shape == (4,) and np.isfinite(s).all()
