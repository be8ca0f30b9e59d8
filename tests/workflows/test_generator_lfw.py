"""`outpool train-generator lfw:ROOT`: pseudo-labels for unscored faces, the teacher as judge,
the run record, resuming, and clear errors; on a tiny LFW folder of fake faces."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from face_images import LFW_COLUMNS, write_lfw
from outpool.cli import main
from outpool.data import Dataset
from outpool.data.open import open_dataset_with_truth
from outpool.data.sources.lfw import PAPER_ATTRIBUTES, UNSCORED, load_lfw
from outpool.errors import DataError
from outpool.train.generator import load_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAMES = tuple(PAPER_ATTRIBUTES)
TINY = [
    *("--set", "epochs=1", "--set", "model.width=4", "--set", "model.feature=32"),
    *("--set", "model.z_dim=8", "--set", "model.hidden=32", "--set", "model.y_embed=8"),
    *("--set", "regressor.epochs=2", "--set", "regressor.model.width=4"),
    *("--set", "regressor.val_share=0.2"),
    *("--judge-set", "net.epochs=2", "--judge-set", "net.model.width=4"),
    *("--judge-set", "face_space.components=4", "--judge-set", "face_space.folds=2"),
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OUTPOOL_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_lfw(tmp_path_factory.mktemp("lfw"))


def run_cli(argv: list[str]) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return code, json.loads(out.getvalue()) if code == 0 else {}


@pytest.fixture(scope="module")
def lfw_run(
    root: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    run = tmp_path_factory.mktemp("gen") / "run"
    code, summary = run_cli(["train-generator", f"lfw:{root}", "--out", str(run), *TINY])
    assert code == 0
    return run, summary


@pytest.mark.slow
def test_the_run_folder_and_record(lfw_run: tuple[Path, dict[str, Any]], root: Path) -> None:
    run, summary = lfw_run
    for name in (
        "config.json",
        "metrics.jsonl",
        "generator.pt",
        "samples.png",
        "reconstructions.png",
        "sweeps.png",
        "controllability.json",
        "summary.json",
        "regressor/attribute_net.pt",
        "regressor/pseudo_labels.csv",
        "teacher/teacher.pt",
        "teacher/teacher.json",
    ):
        assert (run / name).is_file(), name
    ds, _ = load_lfw(root)
    n_scored, n_unscored = len(ds.images["generator"]), len(ds.images[UNSCORED])
    assert n_unscored == 24 and n_scored > 0
    pseudo = summary["pseudo_labels"]
    assert (pseudo["images_scored"], pseudo["images_regressed"]) == (n_scored, n_unscored)
    assert summary["train_images"] == n_scored + n_unscored
    reg = pseudo["regressor"]
    assert "'generator'" in reg["trained_on"] and "no test image" in reg["trained_on"]
    assert reg["images"] + reg["held_out"]["images"] == n_scored
    assert set(reg["held_out"]["r2"]) == set(reg["held_out"]["spearman"]) == set(NAMES)
    # the same record in config.json and generator.pt: it reloads without the command line
    record = json.loads((run / "config.json").read_text())
    assert record["pseudo_labels"] == pseudo and record["table"] == "generator_with_regressed"
    assert json.loads((run / "summary.json").read_text()) == summary
    model = load_generator(run / "generator.pt", attributes=NAMES)
    assert model.config.width == 4


@pytest.mark.slow
def test_pseudo_labels_are_disjoint_from_every_ranker_pair(
    lfw_run: tuple[Path, dict[str, Any]], root: Path
) -> None:
    run, _ = lfw_run
    ds, _ = load_lfw(root)
    with open(run / "regressor" / "pseudo_labels.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["id", "group", *NAMES]
    ids = [r[0] for r in rows[1:]]
    assert sorted(ids) == sorted(ds.images[UNSCORED].ids.tolist())
    assert np.isfinite(np.asarray([r[2:] for r in rows[1:]], float)).all()
    in_pairs = {i for p in ds.pairs.values() for i in (*p.a.tolist(), *p.b.tolist())}
    ranker_people = {g for s in ("train", "val", "test") for g in ds.images[s].groups.tolist()}
    assert not in_pairs & set(ids) and not in_pairs & set(ds.images["generator"].ids.tolist())
    assert not ranker_people & {r[1] for r in rows[1:]}


@pytest.mark.slow
def test_the_teacher_judges_controllability(lfw_run: tuple[Path, dict[str, Any]]) -> None:
    run, summary = lfw_run
    check = json.loads((run / "controllability.json").read_text())
    assert summary["controllability"] == check
    assert set(check["spearman"]) == set(NAMES) and 0 <= check["samples_legible_pct"] <= 100
    judge = summary["judge"]
    assert judge["judge"].startswith("teacher")
    assert "['train', 'val']" in judge["trained_on"]  # never the test split
    assert judge["test"]["table"] == "test" and set(judge["test"]["r2"]) == set(NAMES)
    assert {"real_accepted_pct", "noise_rejected_pct", "smear_rejected_pct"} <= set(
        judge["legibility"]
    )


@pytest.mark.slow
def test_running_again_resumes(lfw_run: tuple[Path, dict[str, Any]], root: Path) -> None:
    run, summary = lfw_run
    logs = {p: (run / p).read_text() for p in ("metrics.jsonl", "regressor/metrics.jsonl")}
    teacher = (run / "teacher" / "teacher.pt").read_bytes()
    code, again = run_cli(["train-generator", f"lfw:{root}", "--out", str(run), *TINY])
    assert code == 0
    for p, text in logs.items():
        assert (run / p).read_text() == text, p  # nothing trained again
    assert (run / "teacher" / "teacher.pt").read_bytes() == teacher
    assert again["pseudo_labels"] == summary["pseudo_labels"]
    assert again["controllability"] == summary["controllability"]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("outpool: error:") and "Traceback" not in captured.err
    return lines[0]


def test_missing_score_file(
    root: Path, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "lfw"
    (bare / "lfw-100").mkdir(parents=True)
    run = tmp_path / "run"
    assert main(["train-generator", f"lfw:{bare}", "--out", str(run), *TINY]) == 2
    line = one_error_line(capsys)
    assert "lfw_attributes.txt" in line and "does not exist" in line
    assert not run.exists()


def test_nan_score_names_the_line_and_column(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = "\t".join(["0.5"] * len(LFW_COLUMNS))
    bad = "\t".join(["0.5", "nan", *["0.1"] * (len(LFW_COLUMNS) - 2)])
    root = write_lfw(
        tmp_path / "lfw",
        scored_people=2,
        unscored_people=0,
        rows=[f"Person A00\t1\t{good}", f"Person A00\t2\t{bad}"],
    )
    assert main(["train-generator", f"lfw:{root}", "--out", str(tmp_path / "run"), *TINY]) == 2
    line = one_error_line(capsys)
    assert "line 4" in line and "'Black Hair'" in line and "not a finite number" in line


def test_unknown_judge_setting(
    root: Path, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train-generator", f"lfw:{root}", "--out", str(tmp_path / "run")]
    assert main([*argv, "--judge-set", "net.epochz=2"]) == 2
    assert "net.epochz" in one_error_line(capsys)


def test_import_keeps_the_true_scores_for_the_teacher(
    root: Path, cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ds"
    assert run_cli(["data", "import", f"lfw:{root}", "--out", str(out)])[0] == 0
    ds, truth = open_dataset_with_truth(out)
    _, want = load_lfw(root)
    assert set(truth) == {"train", "val", "test"} and UNSCORED in ds.images
    for table, (ids, values) in want.items():
        np.testing.assert_array_equal(truth[table][0], ids)
        np.testing.assert_allclose(truth[table][1], values)
    # a truth file whose columns are not the dataset's attributes is refused, naming it
    path = out / "truth" / "val.csv"
    path.write_text(path.read_text().replace("bald", "balding", 1))
    with pytest.raises(DataError, match="not the dataset's attributes") as err:
        open_dataset_with_truth(out)
    assert err.value.path == path
    assert Dataset.load(out).name == "lfw"


def test_import_with_a_crop_keeps_the_face_filling_the_frame(
    root: Path, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ds"
    assert run_cli(["data", "import", f"lfw:{root}", "--out", str(out), "--crop", "0.6"])[0] == 0
    saved = Dataset.load(out)
    cropped, whole = load_lfw(root, crop=0.6)[0], load_lfw(root)[0]
    ids = saved.image_ids()
    np.testing.assert_array_equal(saved.lookup(ids), cropped.lookup(ids))
    assert not np.array_equal(saved.lookup(ids), whole.lookup(ids))
    capsys.readouterr()
    # a crop outside (0, 1], or for a source that does not read image files, is refused
    for spec, crop, words in [
        (f"lfw:{root}", "0", "crop must be a fraction in (0, 1]"),
        (f"lfw:{root}", "1.5", "crop must be a fraction in (0, 1]"),
        (f"pubfig:{root}", "0.6", "a crop applies only to the lfw and folder sources"),
    ]:
        bad = tmp_path / f"bad_{crop}"
        assert main(["data", "import", spec, "--out", str(bad), "--crop", crop]) == 2
        assert words in one_error_line(capsys)
        assert not bad.exists()


@pytest.mark.slow
def test_the_crowd_labels_lfw_pairs_through_the_teacher(
    root: Path, cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ds"
    assert run_cli(["data", "import", f"lfw:{root}", "--out", str(out)])[0] == 0
    code, result = run_cli(["data", "label", str(out), "--pairs", "val"])
    assert code == 0
    n_pairs = len(Dataset.load(out).pairs["val"])
    assert result["pairs"] == "val_crowd" and result["votes"] == 5 * n_pairs
    assert result["accepted"] + result["rejected"] + result["pruned"] == n_pairs
    teacher = out / "judges" / "teacher" / "teacher.pt"
    assert teacher.is_file()  # trained once, on the folder's truth/, and kept for next time
    assert "val_crowd" in Dataset.load(out).pairs
