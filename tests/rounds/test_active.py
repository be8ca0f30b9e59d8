"""Active rounds on a smoke config: labels spent per round, the control network carried over,
new pool pairs each round, resume without losing or repeating a label, people still labelling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from outpool.annotate import CrowdConfig, SimulatedCrowd
from outpool.annotate.protocol import LabelResult, PairRequest
from outpool.annotate.votes import VoteTable
from outpool.creators import CREATORS, CreatorEntry
from outpool.creators.attic import AtticConfig
from outpool.data import Dataset
from outpool.errors import ConfigError, DataError
from outpool.models.control import ControlConfig
from outpool.models.ranker import RankerConfig
from outpool.rounds.active import ActiveSchedule, run_active
from outpool.rounds.protocols import WaitingForLabels, real_pairs, run_cell
from outpool.synth import PixelOracle, World
from outpool.train.ranker import RankerTrainConfig
from tiny_models import tiny_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ATTR = "heel"
RANKER = RankerTrainConfig(
    model=RankerConfig(width=4), epochs_crop=1, epochs_full=1, batch_size=10, device="cpu"
)
CONTROL = AtticConfig(control=ControlConfig(hidden=16, side_hidden=8), epochs=1, snapshot_pairs=0)
SCHEDULE = ActiveSchedule(n=20, batch=6, rounds=2)


@pytest.fixture(scope="module")
def dataset(small_world: World) -> Dataset:
    return small_world.dataset


class CountingCrowd:
    """The simulated crowd, counting the pairs it is asked about."""

    def __init__(self, oracle: PixelOracle) -> None:
        self.crowd = SimulatedCrowd(oracle, CrowdConfig())
        self.asked: list[str] = []

    def label(self, request: PairRequest) -> LabelResult:
        self.asked += request.ids.tolist()
        return self.crowd.label(request)


def active(dataset: Dataset, work: Path, **changes: Any) -> list[dict[str, Any]]:
    kwargs: dict[str, Any] = {
        "attribute": ATTR,
        "method": "attic",
        "schedule": SCHEDULE,
        "seed": 0,
        "ranker_cfg": RANKER,
        "work_dir": work,
        "creator_cfg": CONTROL,
        "generator": tiny_generator(dataset),
        "equal_band": 0.03,
        **changes,
    }
    return run_active(dataset, **kwargs)


@pytest.mark.slow
def test_attic_rounds_spend_a_batch_each_and_carry_the_control_network(
    dataset: Dataset, tmp_path: Path, oracle: PixelOracle, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Path | None] = []
    attic = CREATORS["attic"]

    def spy(context: Any, budget: int, work_dir: Path, cfg: Any, *, progress: bool) -> Any:
        seen.append(context.previous)
        return attic.create(context, budget, work_dir, cfg, progress=progress)

    monkeypatch.setitem(CREATORS, "attic", CreatorEntry(spy, AtticConfig, generates=True))
    crowd = CountingCrowd(oracle)
    rows = active(dataset, tmp_path, annotator=crowd)
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert [r["labels_spent"] for r in rows] == [20, 26, 32]
    assert len(crowd.asked) == 12 and len(set(crowd.asked)) == 12
    for row in rows[1:]:
        assert sum(row["created_status"].values()) == 6
    accepted = rows[1]["created_status"]["accepted"] + rows[2]["created_status"]["accepted"]
    assert rows[2]["pairs_trained"] == 20 + accepted
    assert seen == [None, tmp_path / "round_001" / "creator"]
    assert (tmp_path / "round_001" / "creator" / "control.pt").exists()
    saved = np.load(tmp_path / "round_002" / "created.npz")
    assert saved["u_a"].shape[0] == 6 and saved["y_a"].shape[0] == 6
    assert json.loads((tmp_path / "round_002" / "result.json").read_text()) == rows[2]

    # a second call finds every round done: no label is asked for again, the rows are the same
    again = active(dataset, tmp_path, annotator=crowd)
    assert again == rows and len(crowd.asked) == 12


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_same_rows(
    dataset: Dataset, tmp_path: Path, oracle: PixelOracle, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = active(dataset, tmp_path / "whole", annotator=CountingCrowd(oracle))

    import outpool.rounds.active as loop

    real_train = loop.train_ranker
    calls = {"n": 0}

    def dies_in_round_2(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if "round_002" in str(args[3]):
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    crowd = CountingCrowd(oracle)
    monkeypatch.setattr(loop, "train_ranker", dies_in_round_2)
    with pytest.raises(KeyboardInterrupt):
        active(dataset, tmp_path / "cut", annotator=crowd)
    monkeypatch.setattr(loop, "train_ranker", real_train)
    asked_before = list(crowd.asked)
    resumed = active(dataset, tmp_path / "cut", annotator=crowd)
    assert crowd.asked == asked_before  # round 2's labels were kept, not asked for again
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in resumed]
    assert strip == [{k: v for k, v in r.items() if k != "wall_s"} for r in whole]


@pytest.mark.slow
def test_uncertainty_picks_new_pool_pairs_each_round(
    dataset: Dataset, tmp_path: Path, oracle: PixelOracle
) -> None:
    crowd = CountingCrowd(oracle)
    rows = active(dataset, tmp_path, method="uncertainty", annotator=crowd, creator_cfg=None)
    assert [r["labels_spent"] for r in rows] == [20, 26, 32]
    pairs = set()
    for r in (1, 2):
        made = np.load(tmp_path / f"round_{r:03d}" / "created.npz")
        pairs |= {frozenset(p) for p in zip(made["source_a"], made["source_b"], strict=True)}
    assert len(pairs) == 12  # no pool pair asked about twice
    # nor one of the real pairs the ranker was given (the training table's other pairs are
    # unlabelled for this method: asking about one costs a label like any pool pair)
    real = real_pairs(dataset, ATTR, SCHEDULE.n, 0)
    assert not pairs & {frozenset(p) for p in zip(real.a, real.b, strict=True)}


@pytest.mark.slow
def test_real_is_round_zero_and_free_methods_spend_no_labels(
    dataset: Dataset, tmp_path: Path
) -> None:
    shared = tmp_path / "pretrained"
    real = active(dataset, tmp_path / "real", method="real", creator_cfg=None, pretrained=shared)
    assert [r["round"] for r in real] == [0]
    jitter = active(
        dataset, tmp_path / "jitter", method="jitter", creator_cfg=None, pretrained=shared
    )
    assert [r["labels_spent"] for r in jitter] == [20, 20, 20]
    assert [r["pairs_trained"] for r in jitter] == [20, 26, 32]
    assert jitter[0]["accuracy_pct"] == real[0]["accuracy_pct"]  # one pre-trained ranker
    assert not (tmp_path / "real" / "pretrained").exists()
    # round 0 is Real as a Normal cell trains it: the same real pairs, ranker and seed
    cell = run_cell(
        dataset,
        attribute=ATTR,
        method="real",
        protocol="normal",
        n=20,
        seed=0,
        ranker_cfg=RANKER,
        work_dir=tmp_path / "cell",
    )
    assert cell["accuracy_pct"]["test"] == real[0]["accuracy_pct"]["test"]


class Waiting:
    """People who have labelled nothing yet."""

    def batch_name(self, request: PairRequest) -> str:
        return "rounds-abc"

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
def test_a_batch_people_are_labelling_stops_the_run_until_they_finish(
    dataset: Dataset, tmp_path: Path, oracle: PixelOracle
) -> None:
    with pytest.raises(WaitingForLabels, match="waiting for 6 labels on batch rounds-abc"):
        active(dataset, tmp_path, method="random", annotator=Waiting())
    assert (tmp_path / "round_001" / "created.npz").exists()
    assert not (tmp_path / "round_001" / "labels.npz").exists()
    crowd = CountingCrowd(oracle)
    rows = active(dataset, tmp_path, method="random", annotator=crowd)
    assert len(crowd.asked) == 12 and rows[-1]["labels_spent"] == 32


def test_bad_schedules_and_missing_annotators_are_refused(dataset: Dataset, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rounds >= 1"):
        ActiveSchedule(n=20, batch=5, rounds=0)
    with pytest.raises(DataError, match="needs an annotator"):
        active(dataset, tmp_path)
    assert not any(tmp_path.iterdir())
