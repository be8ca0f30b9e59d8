"""The ``outpool`` command, run in-process (plus one real subprocess for the console entry)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from outpool import __version__
from outpool.cli import main
from outpool.data import Dataset

Snapshot = Callable[[Path], dict[str, str]]

# Even smaller than the shared toy world: for runs that must do all the work before they fail.
TINY_SETS = (
    "--set",
    "generator.images=30",
    "--set",
    "train.images=40",
    "--set",
    "val.images=20",
    "--set",
    "test.images=40",
    "--set",
    "train_pairs=5",
    "--set",
    "val_pairs=5",
    "--set",
    "test_pairs=10",
)


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """``outpool ARGV`` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()  # drop what earlier steps printed
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_clean_error(rc: int, err: str, *needles: str) -> str:
    """Exit 2, exactly one ``outpool: error:`` line (the last one), no traceback."""
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("outpool: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    return errors[0]


def help_text(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory, small_synth_sets: tuple[str, ...]) -> Path:
    """A toy dataset made by ``outpool data synth`` (read-only: tests that change it copy it)."""
    out = tmp_path_factory.mktemp("cli") / "ds"
    assert main(["data", "synth", "--out", str(out), *small_synth_sets]) == 0
    return out


@pytest.fixture
def ds(synth_dir: Path, tmp_path: Path) -> Path:
    """A private copy of ``synth_dir``."""
    copy = tmp_path / "ds"
    shutil.copytree(synth_dir, copy)
    return copy


# ---- help ------------------------------------------------------------------------------------


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys)
    assert "demo" in text and "data" in text
    text = help_text(capsys, "data")
    for action in ("synth", "show", "label"):
        assert action in text


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (("demo",), "--force"),
        (("experiment", "run"), "--shard"),
        (("data", "synth"), "--out"),
        (("data", "show"), "--pairs"),
        (("data", "label"), "--force"),
    ],
)
def test_each_command_has_help(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], expect: str
) -> None:
    text = help_text(capsys, *argv)
    assert text.startswith("usage: outpool " + " ".join(argv))
    assert expect in text
    assert ("--set" in text) == (argv[-1] != "show")  # every config-driven command has --set


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"outpool {__version__}"


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "usage: outpool" in capsys.readouterr().err


@pytest.mark.slow
def test_console_entry_point_runs() -> None:
    script = Path(sys.executable).with_name("outpool")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "outpool.cli"]
    proc = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage: outpool" in proc.stdout
    assert "demo" in proc.stdout and "data" in proc.stdout


# ---- data synth ----------------------------------------------------------------------------


def test_synth_makes_a_loadable_dataset(synth_dir: Path) -> None:
    dataset = Dataset.load(synth_dir)
    assert dataset.name == "synthetic-shoes"
    assert {k: len(v) for k, v in dataset.images.items()} == {
        "generator": 100,
        "train": 120,
        "val": 40,
        "test": 120,
    }
    assert {k: len(v) for k, v in dataset.pairs.items()} == {
        "train": 240,
        "val": 120,
        "test": 600,
        "test_fine": 300,
    }
    ids, values, _ = Dataset.load_truth(synth_dir, "train")
    assert len(ids) == 120 and values.shape == (120, 6)


def test_synth_refuses_an_existing_dataset(
    capsys: pytest.CaptureFixture[str],
    ds: Path,
    small_synth_sets: tuple[str, ...],
    folder_snapshot: Snapshot,
) -> None:
    before = folder_snapshot(ds)
    rc, out, err = run(capsys, "data", "synth", "--out", ds, *small_synth_sets, "--set", "seed=5")
    assert_clean_error(rc, err, str(ds), "--force")
    assert out == ""
    assert folder_snapshot(ds) == before


def test_synth_force_replaces(
    capsys: pytest.CaptureFixture[str], ds: Path, small_synth_sets: tuple[str, ...]
) -> None:
    old = np.load(ds / "images" / "train.npy")
    rc, out, err = run(
        capsys, "data", "synth", "--out", ds, *small_synth_sets, "--set", "seed=5", "--force"
    )
    assert rc == 0, err
    assert json.loads(out)["pairs"]["train"] == 240
    assert Dataset.load(ds).meta["seed"] == 5
    assert not np.array_equal(old, np.load(ds / "images" / "train.npy"))
    assert sorted(p.name for p in ds.parent.iterdir()) == ["ds"]  # no staging folders left


# ---- data label ----------------------------------------------------------------------------


@pytest.mark.slow
def test_label_writes_crowd_pairs_and_votes(
    capsys: pytest.CaptureFixture[str], ds: Path, folder_snapshot: Snapshot
) -> None:
    rc, out, err = run(capsys, "data", "label", ds, "--set", "votes_per_pair=3")
    assert rc == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["pairs"] == "train_crowd"
    assert report["votes"] == 3 * 240
    assert report["accepted"] + report["rejected"] + report["pruned"] == 240
    assert (ds / "pairs" / "train_crowd.csv").is_file()
    assert (ds / "votes" / "train_crowd.csv").is_file()
    assert f"next: outpool train-ranker {ds} --train train_crowd" in err  # the next step

    dataset = Dataset.load(ds)
    crowd, train = dataset.pairs["train_crowd"], dataset.pairs["train"]
    assert len(crowd) == report["accepted"] >= 0.8 * len(train)
    truth = dict(zip(train.ids.tolist(), train.label.tolist(), strict=True))
    true_label = np.array([truth[i] for i in crowd.ids.tolist()])
    decided = true_label != 0
    agree = (crowd.label[decided] == true_label[decided]).mean()
    assert agree >= 0.85, f"crowd agrees with the truth on only {agree:.0%}"

    # again without --force: refused, nothing touched
    before = folder_snapshot(ds)
    rc, _, err = run(capsys, "data", "label", ds, "--set", "votes_per_pair=3")
    assert_clean_error(rc, err, "train_crowd", "--force")
    assert folder_snapshot(ds) == before

    rc, out, err = run(capsys, "data", "label", ds, "--set", "votes_per_pair=3", "--force")
    assert rc == 0, err
    assert "train_crowd" in Dataset.load(ds).pairs


# ---- data show -----------------------------------------------------------------------------


@pytest.mark.slow
def test_show_writes_a_png(capsys: pytest.CaptureFixture[str], synth_dir: Path, tmp_path: Path):
    target = tmp_path / "x.png"
    rc, out, err = run(capsys, "data", "show", synth_dir, "--out", target)
    assert rc == 0, err
    assert out.strip() == str(target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert target.stat().st_size > 1000


# ---- bad input -----------------------------------------------------------------------------


def _edit_pair_line(ds: Path, line: int, edit: Callable[[list[str]], list[str]]) -> Path:
    path = ds / "pairs" / "train.csv"
    lines = path.read_text().splitlines()
    lines[line - 1] = ",".join(edit(lines[line - 1].split(",")))
    path.write_text("\n".join(lines) + "\n")
    return path


def _set(col: int, value: str) -> Callable[[list[str]], list[str]]:
    def edit(row: list[str]) -> list[str]:
        row[col] = value
        return row

    return edit


@pytest.mark.parametrize(
    ("edit", "needles"),
    [
        (_set(2, "train-99999"), ("field 'a'", "missing image 'train-99999'")),
        (_set(1, "sparkly"), ("field 'attribute'", "unknown attribute 'sparkly'")),
        (lambda row: row[:3], ("3 fields, expected 8",)),
        (_set(4, "2"), ("field 'label'", "'2'")),
    ],
    ids=["missing-image", "unknown-attribute", "short-row", "bad-label"],
)
@pytest.mark.parametrize("command", ["show", "label"])
def test_bad_pair_file(
    capsys: pytest.CaptureFixture[str],
    ds: Path,
    folder_snapshot: Snapshot,
    command: str,
    edit: Callable[[list[str]], list[str]],
    needles: tuple[str, ...],
) -> None:
    _edit_pair_line(ds, 3, edit)
    before = folder_snapshot(ds)
    rc, out, err = run(capsys, "data", command, ds)
    assert_clean_error(rc, err, str(ds / "pairs" / "train.csv"), "line 3", *needles)
    assert out == ""
    assert folder_snapshot(ds) == before  # no gallery, no votes, nothing lost


@pytest.mark.parametrize("command", ["show", "label"])
def test_truncated_image_file(
    capsys: pytest.CaptureFixture[str], ds: Path, folder_snapshot: Snapshot, command: str
) -> None:
    npy = ds / "images" / "train.npy"
    data = npy.read_bytes()
    npy.write_bytes(data[: len(data) // 2])
    before = folder_snapshot(ds)
    rc, _, err = run(capsys, "data", command, ds)
    assert_clean_error(rc, err, str(npy), "corrupt or truncated")
    assert folder_snapshot(ds) == before


def test_unknown_set_key_in_synth(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, _, err = run(capsys, "data", "synth", "--out", tmp_path / "new", "--set", "bogus_key=1")
    assert_clean_error(rc, err, "bogus_key")
    assert not (tmp_path / "new").exists()
    assert list(tmp_path.iterdir()) == []


def test_unknown_set_key_in_label(
    capsys: pytest.CaptureFixture[str], ds: Path, folder_snapshot: Snapshot
) -> None:
    before = folder_snapshot(ds)
    rc, _, err = run(capsys, "data", "label", ds, "--set", "votes=3")
    assert_clean_error(rc, err, "votes", "votes_per_pair")  # names it and lists the valid keys
    assert folder_snapshot(ds) == before


def test_bad_set_value_in_label(
    capsys: pytest.CaptureFixture[str], ds: Path, folder_snapshot: Snapshot
) -> None:
    before = folder_snapshot(ds)
    rc, _, err = run(capsys, "data", "label", ds, "--set", "votes_per_pair=0")
    assert_clean_error(rc, err, "votes_per_pair")
    assert folder_snapshot(ds) == before


@pytest.mark.parametrize("command", ["show", "label"])
def test_dataset_folder_missing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    missing = tmp_path / "nowhere"
    rc, _, err = run(capsys, "data", command, missing)
    assert_clean_error(rc, err, str(missing), "not an outpool dataset")
    assert not missing.exists()


def test_unknown_pair_table(capsys: pytest.CaptureFixture[str], synth_dir: Path) -> None:
    rc, _, err = run(capsys, "data", "label", synth_dir, "--pairs", "nope")
    assert_clean_error(rc, err, "nope", "train")


def test_missing_config_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, _, err = run(
        capsys, "data", "synth", "--out", tmp_path / "x", "--config", tmp_path / "none.toml"
    )
    assert_clean_error(rc, err, "none.toml")


@pytest.mark.parametrize(
    "bad", ["train.images=0", "test.images=3", "seed=-1", "generator.images=-5"]
)
def test_synth_invalid_sizes_give_a_clean_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, bad: str
) -> None:
    rc, _, err = run(capsys, "data", "synth", "--out", tmp_path / "x", *TINY_SETS, "--set", bad)
    assert_clean_error(rc, err, bad.split("=")[0].split(".")[0])
    assert not (tmp_path / "x").exists()


# ---- demo ----------------------------------------------------------------------------------


TINY_EXPERIMENT = Path(__file__).parent / "experiments" / "tiny.toml"


@pytest.mark.slow
def test_demo(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, folder_snapshot: Snapshot
) -> None:
    out = tmp_path / "run"
    rc, stdout, err = run(capsys, "demo", "--out", out, "--config", TINY_EXPERIMENT)
    assert rc == 0, err
    lines = stdout.splitlines()
    assert len(lines) == 4, stdout
    assert lines[0].startswith("Real (20 real pairs): ")
    assert lines[1].startswith("gain over Real, normal: semantic_jitter ") and "attic" in lines[1]
    assert lines[2].startswith("gain over Real, active: semantic_jitter ") and "attic" in lines[2]
    assert lines[3].startswith(f"report: {out / 'report' / 'index.html'}")
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["gain_over_real_pct"]["test"]) == {"normal", "active"}
    assert (out / "report" / "index.html").is_file() and (out / "results.jsonl").is_file()

    # again: every cell is done, nothing trains, the same figures
    before = folder_snapshot(out / "cells")
    rc, again, err = run(capsys, "demo", "--out", out, "--config", TINY_EXPERIMENT)
    assert rc == 0, err
    assert again.splitlines()[:3] == lines[:3]
    assert folder_snapshot(out / "cells") == before

    # other settings in the same folder: refused, nothing changed; --force starts again
    other = ("--config", TINY_EXPERIMENT, "--set", "experiment.n=30")
    rc, _, err = run(capsys, "demo", "--out", out, *other)
    assert_clean_error(rc, err, str(out), "experiment.n: 20 -> 30")
    assert folder_snapshot(out / "cells") == before
    rc, forced, err = run(capsys, "demo", "--out", out, *other, "--force")
    assert rc == 0, err
    assert forced.startswith("Real (30 real pairs)")


def test_demo_out_is_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "afile"
    target.write_text("keep me")
    rc, _, err = run(capsys, "demo", "--out", target, "--config", TINY_EXPERIMENT)
    assert_clean_error(rc, err, str(target))
    rc, _, err = run(capsys, "demo", "--out", target, "--config", TINY_EXPERIMENT, "--force")
    assert_clean_error(rc, err, str(target), "only a run folder")
    assert target.read_text() == "keep me"
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me too")
    for force in ((), ("--force",)):
        rc, _, err = run(capsys, "demo", "--out", other, "--config", TINY_EXPERIMENT, *force)
        assert_clean_error(rc, err, str(other))
    assert [p.name for p in other.iterdir()] == ["mine.txt"]


def test_serve_refuses_to_listen_on_the_network_without_tls(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "votes.db"
    rc, _, err = run(capsys, "annotate", "serve", "--db", db, "--host", "0.0.0.0")
    assert_clean_error(rc, err, "plain HTTP", "--behind-tls-proxy")
    assert not db.exists()  # refused before the store was opened


def test_revoke_takes_back_a_token(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from outpool.service.store import AnnotationStore

    db = tmp_path / "votes.db"
    rc, out, err = run(capsys, "annotate", "token", "--db", db, "--name", "Ada")
    assert rc == 0, err
    made = json.loads(out)
    rc, out, err = run(capsys, "annotate", "revoke", "--db", db, "--annotator", made["annotator"])
    assert rc == 0 and json.loads(out)["revoked"] is True, err
    store = AnnotationStore.open(str(db))
    try:
        assert store.authenticate(made["token"]) is None
    finally:
        store.close()
    rc, _, err = run(capsys, "annotate", "revoke", "--db", db, "--annotator", "w0042")
    assert_clean_error(rc, err, "no annotator 'w0042'")


def test_a_token_may_expire(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db = tmp_path / "votes.db"
    before = time.time()
    rc, out, err = run(
        capsys, "annotate", "token", "--db", db, "--name", "Ada", "--expires-in", "7d"
    )
    assert rc == 0, err
    assert 7 * 86400 <= json.loads(out)["expires_at"] - before < 7 * 86400 + 60
    rc, out, _ = run(capsys, "annotate", "token", "--db", db, "--name", "Bo")
    assert json.loads(out)["expires_at"] is None
    for bad in ("7w", "-1h", "soon"):
        with pytest.raises(SystemExit) as exc:
            main(["annotate", "token", "--db", str(db), "--name", "C", f"--expires-in={bad}"])
        assert exc.value.code == 2
        assert "a duration" in capsys.readouterr().err


def test_split_writes_disjoint_tables_and_keeps_the_old_ones(
    capsys: pytest.CaptureFixture[str], ds: Path, folder_snapshot: Snapshot
) -> None:
    from outpool.data.splits import leaks

    before = Dataset.load(ds)
    rc, out, err = run(capsys, "data", "split", ds, "--by", "image", "--seed", "3")
    assert rc == 0, err
    report = json.loads(out)
    assert "straddled two splits and were dropped" in err
    after = Dataset.load(ds)
    assert leaks(after) == []
    for name in ("train", "val", "test"):
        assert len(after.pairs[name]) == report["pairs"][name]
        assert after.pairs[f"{name}_unsplit"].ids.tolist() == before.pairs[name].ids.tolist()
    assert report["other_tables_crossing"]["test_fine"] > 0  # said, and warned about
    assert "warning: pair table 'test_fine' was not split" in err
    # a split of random pairs over the whole set cuts most of them: said, with what to do
    total = sum(report["pairs"].values()) + report["dropped_straddling"]
    assert report["dropped_straddling"] > 0.3 * total
    assert f"{report['dropped_straddling']} of {total} pairs were dropped" in err
    if report["pairs"]["val"] < 50:
        assert f"the val table has {report['pairs']['val']} pairs" in err
    # a second split starts from the originals, which stay as they were
    rc, out, err = run(capsys, "data", "split", ds, "--by", "group", "--seed", "5")
    assert rc == 0, err
    again = Dataset.load(ds)
    assert sum(json.loads(out)["pairs"].values()) + json.loads(out)["dropped_straddling"] == sum(
        len(before.pairs[t]) for t in ("train", "val", "test")
    )
    for name in ("train", "val", "test"):
        assert again.pairs[f"{name}_unsplit"].ids.tolist() == before.pairs[name].ids.tolist()


def test_train_ranker_refuses_to_stop_early_on_test_pairs(
    capsys: pytest.CaptureFixture[str], synth_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    rc, _, err = run(capsys, "train-ranker", synth_dir, "--out", out, "--val", "test_fine")
    assert_clean_error(rc, err, "--val test_fine", "early stopping on test pairs")
    rc, _, err = run(capsys, "train-ranker", synth_dir, "--out", out, "--val", "train")
    assert_clean_error(rc, err, "the training table")
    assert not out.exists()
