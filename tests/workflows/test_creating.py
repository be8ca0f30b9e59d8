"""`outpool create`: a creator's pairs added to a dataset folder, ready for the crowd or people."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from outpool.cli import main
from outpool.data import Dataset
from outpool.synth import World
from outpool.train.generator import save_generator
from tiny_models import tiny_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SMALL_CONTROL = ["--set", "control.hidden=16", "--set", "control.side_hidden=8"]


@pytest.fixture
def dataset_dir(small_world: World, tmp_path: Path) -> Path:
    folder = tmp_path / "shoes"
    small_world.dataset.save(folder, truth=small_world.truth)
    return folder


@pytest.fixture(scope="module")
def generator_file(small_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = tiny_generator(small_world.dataset)
    path = tmp_path_factory.mktemp("gen") / "generator.pt"
    save_generator(model, path, record={})
    return path


def create(dataset_dir: Path, *args: str) -> int:
    return main(["create", str(dataset_dir), "--attribute", "heel", *args])


@pytest.mark.slow
def test_created_pairs_join_the_dataset_with_their_provenance(
    dataset_dir: Path, generator_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = create(
        dataset_dir,
        "--creator",
        "random",
        "--budget",
        "6",
        "--generator",
        str(generator_file),
        "--name",
        "r1",
        *SMALL_CONTROL,
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["created"] == 6 and sum(summary["inferred"].values()) == 6
    # generated pairs pass the legibility screen, fitted once into the dataset folder
    assert summary["screen"]["candidates"] == 12 and summary["screen"]["kept"] == 6
    assert (dataset_dir / "screen" / "screen.json").exists()
    dataset = Dataset.load(dataset_dir)
    pairs, images = dataset.pairs["r1"], dataset.images["r1"]
    assert len(pairs) == 6 and len(images) == 12 and set(pairs.source) == {"synthetic"}
    assert images.provenance is not None and images.provenance[0]["creator"] == "random"
    assert len(images.provenance[0]["y"]) == len(dataset.attribute_names)
    assert (dataset_dir / "created" / "r1" / "pairs.png").exists()
    # the same name again: refused before any work, the tables as they were
    assert create(dataset_dir, "--creator", "jitter", "--budget", "3", "--name", "r1") == 2
    assert "table 'r1' exists" in capsys.readouterr().err
    assert len(Dataset.load(dataset_dir).pairs["r1"]) == 6
    assert (
        create(dataset_dir, "--creator", "jitter", "--budget", "3", "--name", "r1", "--force") == 0
    )
    assert len(Dataset.load(dataset_dir).pairs["r1"]) == 3


def test_no_screen_sends_every_generated_pair(
    dataset_dir: Path, generator_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--creator", "random", "--budget", "4", "--generator", str(generator_file)]
    assert create(dataset_dir, *args, *SMALL_CONTROL, "--no-screen") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["created"] == 4 and "screen" not in summary
    assert not (dataset_dir / "screen").exists()


def test_real_plus_pairs_are_pseudo(dataset_dir: Path) -> None:
    assert create(dataset_dir, "--creator", "real_plus", "--budget", "5") == 0
    assert set(Dataset.load(dataset_dir).pairs["real_plus"].source) == {"pseudo"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--creator", "attic", "--budget", "4"], "needs a generator"),
        (["--creator", "uncertainty", "--budget", "4"], "reads the current ranker: it needs one"),
        (["--creator", "jitter", "--budget", "0"], "--budget must be at least 1"),
        (["--creator", "jitter", "--budget", "2", "--set", "spin=1"], "unknown key 'spin'"),
    ],
)
def test_a_creator_missing_what_it_needs_is_one_clear_error(
    dataset_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert create(dataset_dir, *args) == 2
    assert message in capsys.readouterr().err
    assert "jitter" not in Dataset.load(dataset_dir).pairs


def test_an_unknown_attribute_is_named(
    dataset_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "create",
                str(dataset_dir),
                "--attribute",
                "sparkly",
                "--creator",
                "jitter",
                "--budget",
                "2",
            ]
        )
        == 2
    )
    assert "sparkly" in capsys.readouterr().err


@pytest.mark.slow
def test_the_crowd_labels_created_pairs(
    dataset_dir: Path, generator_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        create(
            dataset_dir,
            "--creator",
            "semantic_jitter",
            "--budget",
            "8",
            "--generator",
            str(generator_file),
            "--name",
            "sj",
        )
        == 0
    )
    capsys.readouterr()
    assert main(["data", "label", str(dataset_dir), "--pairs", "sj"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["accepted"] + counts["rejected"] + counts["pruned"] == 8
