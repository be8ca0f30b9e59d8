"""One protocol cell end to end on a smoke config: equal label budgets, annotated or inferred
created pairs, repeatable from the seed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from outpool.annotate import CrowdConfig, SimulatedCrowd
from outpool.creators import CREATORS, CreatorEntry
from outpool.creators.attic import AtticConfig
from outpool.creators.pairs import CreatedPairs
from outpool.creators.screen import ScreenConfig, fit_screen
from outpool.data import Dataset
from outpool.errors import DataError, UnknownNameError
from outpool.models.attribute_net import AttributeNetConfig
from outpool.models.control import ControlConfig
from outpool.models.ranker import RankerConfig
from outpool.rounds.protocols import LabelBudget, real_pairs, run_cell
from outpool.synth import PixelOracle, World
from outpool.train.attribute_net import AttributeNetTrainConfig
from outpool.train.ranker import RankerTrainConfig
from tiny_models import tiny_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ATTR = "heel"
RANKER = RankerTrainConfig(
    model=RankerConfig(width=4), epochs_crop=1, epochs_full=1, batch_size=10, device="cpu"
)
CONTROL = AtticConfig(control=ControlConfig(hidden=16, side_hidden=8), epochs=1, snapshot_pairs=0)


@pytest.fixture(scope="module")
def dataset(small_world: World) -> Dataset:
    return small_world.dataset


def cell(dataset: Dataset, work: Path, **changes: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "attribute": ATTR,
        "method": "real",
        "protocol": "normal",
        "n": 20,
        "seed": 0,
        "ranker_cfg": RANKER,
        "work_dir": work,
        "equal_band": 0.03,
        **changes,
    }
    return run_cell(dataset, **kwargs)


def test_the_budget_refuses_one_label_too_many() -> None:
    budget = LabelBudget(10)
    budget.spend(6, "real pairs")
    with pytest.raises(DataError, match="5 created pairs needs 5 labels but only 4 of the budget"):
        budget.spend(5, "5 created pairs")
    assert budget.spent == 6


def test_real_pairs_are_a_seeded_draw(dataset: Dataset) -> None:
    first = real_pairs(dataset, ATTR, 10, seed=0)
    assert len(first) == 10 and set(first.attribute) == {ATTR}
    assert np.array_equal(first.ids, real_pairs(dataset, ATTR, 10, seed=0).ids)
    assert not np.array_equal(first.ids, real_pairs(dataset, ATTR, 10, seed=1).ids)
    with pytest.raises(DataError, match="has 40 pairs of 'heel', not 41"):
        real_pairs(dataset, ATTR, 41, seed=0)


@pytest.mark.slow
def test_real_spends_n_labels_and_repeats(dataset: Dataset, tmp_path: Path) -> None:
    result = cell(dataset, tmp_path / "a")
    assert result["labels_spent"] == 20 and result["real_pairs"] == 20
    assert 0.0 <= result["accuracy_pct"]["test"] <= 100.0
    assert json.loads((tmp_path / "a" / "result.json").read_text()) == result
    assert cell(dataset, tmp_path / "b") == result  # the same seed, the same cell
    assert cell(dataset, tmp_path / "c", method="real_2n")["labels_spent"] == 40


@pytest.mark.slow
def test_normal_sends_half_the_labels_to_the_annotator(
    dataset: Dataset, tmp_path: Path, oracle: PixelOracle
) -> None:
    crowd = SimulatedCrowd(oracle, CrowdConfig())
    result = cell(
        dataset,
        tmp_path,
        method="random",
        creator_cfg=CONTROL,
        generator=tiny_generator(dataset),
        annotator=crowd,
    )
    assert result["real_pairs"] == 10 and result["labels_spent"] == 20
    assert sum(result["created_status"].values()) == 10
    assert result["created_pairs_trained"] == result["created_status"]["accepted"]


@pytest.mark.slow
def test_the_screen_replaces_failed_pairs_before_the_annotator(
    dataset: Dataset, tmp_path: Path, oracle: PixelOracle
) -> None:
    net = AttributeNetTrainConfig(
        model=AttributeNetConfig(width=4, crop=1.0), epochs=1, flip=False, device="cpu"
    )
    screen = fit_screen(
        dataset.images["generator"],
        tiny_generator(dataset),
        ScreenConfig(net=net),
        tmp_path / "screen",
        progress=False,
    )
    result = cell(
        dataset,
        tmp_path / "cell",
        method="random",
        creator_cfg=CONTROL,
        generator=tiny_generator(dataset),
        annotator=SimulatedCrowd(oracle, CrowdConfig()),
        screen=screen,
    )
    report = result["screen"]
    assert report["candidates"] == 20 and report["kept"] == sum(result["created_status"].values())
    assert result["labels_spent"] == 10 + report["kept"] <= 20  # a screened-out pair is free
    created = np.load(tmp_path / "cell" / "created.npz")
    assert len(created["status"]) == len(created["label"]) == report["kept"]
    assert created["images_a"].shape == (report["kept"], 64, 64, 3)


@pytest.mark.slow
def test_auto_trains_on_n_real_and_n_inferred_pairs(dataset: Dataset, tmp_path: Path) -> None:
    result = cell(dataset, tmp_path, method="jitter", protocol="auto")
    assert result["real_pairs"] == 20 and result["labels_spent"] == 20
    assert result["created_pairs_trained"] == 20 and "created_status" not in result


def test_a_method_that_asks_for_more_labels_than_n_fails(
    dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def greedy(context: Any, budget: int, work_dir: Path, cfg: Any, *, progress: bool) -> Any:
        made = CREATORS["real_plus"].create(context, budget + 1, work_dir, cfg, progress=progress)
        assert isinstance(made, CreatedPairs)
        return made

    real_plus = CREATORS["real_plus"]
    monkeypatch.setitem(CREATORS, "greedy", CreatorEntry(greedy, real_plus.config, generates=False))
    with pytest.raises(DataError, match="11 created pairs needs 11 labels but only 10"):
        cell(dataset, tmp_path, method="greedy", annotator=object())
    assert not (tmp_path / "result.json").exists()


def test_bad_cells_are_named(dataset: Dataset, tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="protocol 'manual'"):
        cell(dataset, tmp_path, protocol="manual")
    with pytest.raises(UnknownNameError, match="creator 'magic'"):
        cell(dataset, tmp_path, method="magic")
    with pytest.raises(DataError, match="needs an annotator"):
        cell(
            dataset,
            tmp_path,
            method="random",
            creator_cfg=CONTROL,
            generator=tiny_generator(dataset),
        )
    assert not any(tmp_path.iterdir())  # refused before any work
