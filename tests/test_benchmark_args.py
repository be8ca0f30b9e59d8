"""The benchmarks: bad options refused before any work, naming the option; their summaries,
figures and the GPU script, checked at toy sizes."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from outpool.models.ranker import RankerConfig
from outpool.train.ranker import RankerTrainConfig
from outpool.workflows.ranker_runs import train_run

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "generator.py"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--crop", "0"], "--crop must be a fraction in (0, 1]"),
        (["--crop", "nan"], "--crop must be a fraction in (0, 1]"),
        (["--crop", "1.5", "--data", "lfw:nowhere"], "--crop must be a fraction in (0, 1]"),
        (["--crop", "0.6"], "--crop is for LFW only"),
        (["--config", "nowhere.toml"], "config file nowhere.toml does not exist"),
        (["--set", "chroma_ratio=0.5"], "chroma_ratio must be >= 1"),
        (["--set", "likelihood=laplace"], "likelihood"),
        (["--set", "no_such_key=1"], "unknown key 'no_such_key'"),
        (["--seeds", "1", "x"], "--seeds takes whole numbers or ranges like 0-9, got 'x'"),
        (["--seeds", "3-1"], "--seeds names no seed"),
        (["--seeds", "1", "--generator", "g.pt"], "--seeds is for training on the built-in"),
    ],
)
def test_a_bad_option_exits_2_naming_it(args: list[str], message: str) -> None:
    assert message in refusal(SCRIPT, args)


def refusal(script: Path, args: list[str]) -> str:
    """stderr of a run that must exit 2 and print nothing on stdout."""
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stdout == ""
    return done.stderr


FACES = Path(__file__).resolve().parents[1] / "benchmarks" / "face_legibility.py"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run", "nowhere", "--data", "pubfig:x"], "--data must be lfw:ROOT"),
        (["--run", "nowhere", "--data", "lfw:x"], "nowhere/generator.pt does not exist"),
        (["--run", "r", "--data", "lfw:x", "--crop", "nan"], "--crop must be a fraction in (0, 1]"),
        (["--run", "r", "--data", "lfw:x", "--samples", "0"], "--samples must be at least 1"),
    ],
)
def test_the_face_legibility_benchmark_refuses_a_bad_run_or_data(
    args: list[str], message: str
) -> None:
    assert message in refusal(FACES, args)


LEGIBILITY = Path(__file__).resolve().parents[1] / "benchmarks" / "sample_legibility.py"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--generator", "nowhere.pt"], "--generator nowhere.pt does not exist"),
        (["--generator", str(LEGIBILITY), "--n", "2"], "--n must be at least 5"),
    ],
)
def test_the_sample_legibility_benchmark_refuses_a_bad_generator(
    args: list[str], message: str
) -> None:
    assert message in refusal(LEGIBILITY, args)


def benchmark_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_seeds_table_reports_each_seed_and_the_worst_beside_the_mean() -> None:
    generator = benchmark_module(SCRIPT)

    def run(seed: int, rho: float, missed: float, legible: float) -> dict[str, Any]:
        return {
            "seed": seed,
            "spearman_min": rho,
            "latents_missed_pct": {"heel": missed, "open": 0.0},
            "samples_legible_pct": legible,
            "sweep_legible_pct": {"heel": legible - 1, "open": legible + 1},
            "train_wall_s": 500.0,
        }

    table = generator.seeds_table([run(0, 0.9, 1.5, 95.0), run(5, 0.8, 6.0, 72.8)])
    assert [r["seed"] for r in table["per_seed"]] == [0, 5]
    assert table["per_seed"][1]["latents_missed_max_pct"] == 6.0
    assert table["per_seed"][1]["sweep_legible_min_pct"] == 71.8
    assert table["samples_legible_pct"] == {"worst": 72.8, "mean": 83.9}
    assert table["spearman_min"] == {"worst": 0.8, "mean": 0.85}
    assert table["latents_missed_max_pct"] == {"worst": 6.0, "mean": 3.75}


def test_seeds_parse_as_lists_and_ranges() -> None:
    generator = benchmark_module(SCRIPT)
    assert generator.parse_seeds(["0-3", "2", "7"], None) == [0, 1, 2, 3, 7]


ATTIC = Path(__file__).resolve().parents[1] / "benchmarks" / "attic_synth.py"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "experiment.methods=['magic']"], "unknown method 'magic'; valid: attic"),
        (["--set", "experiment.protocols=['manual']"], "unknown protocol 'manual'"),
        (["--set", "experiment.protocols=['active']"], "active rounds are benchmarks/attic_active"),
        (["--set", "experiment.n=1"], "experiment.n must be >= 2"),
        (["--shard", "2/2", "--run", "r"], "needs 0 <= I < N, got '2/2'"),
        (["--shard", "half"], "a shard is I/N, e.g. 0/4, got 'half'"),
        (["--shard", "0/2"], "--shard needs --run"),
    ],
)
def test_the_attic_benchmark_refuses_bad_options(args: list[str], message: str) -> None:
    assert message in refusal(ATTIC, args)


def test_shards_split_a_grid_into_disjoint_parts_that_cover_it() -> None:
    from outpool.bench import parse_shard

    assert parse_shard("1/4") == (1, 4)
    parts = [
        [i for i in range(10) if i % n == k] for k, n in (parse_shard(f"{k}/3") for k in range(3))
    ]
    assert sorted(i for part in parts for i in part) == list(range(10)) and all(parts)


ACTIVE = Path(__file__).resolve().parents[1] / "benchmarks" / "attic_active.py"


def test_the_active_benchmark_reads_gains_over_round_0_and_checks_the_targets() -> None:
    bench = benchmark_module(ACTIVE)
    rows = []
    gains = {"attic": (0.0, 3.0, 5.0), "semantic_jitter": (0.0, 1.0, 2.0), "uncertainty": (0, 2, 6)}
    for method, steps in gains.items():
        for seed, base in ((0, 70.0), (1, 74.0)):
            for r, g in enumerate(steps):
                status = {"accepted": 8, "rejected": 2, "pruned": 0} if r else None
                rows.append(
                    {
                        "attribute": "heel",
                        "method": method,
                        "protocol": "active",
                        "seed": seed,
                        "round": r,
                        "labels_spent": 100 + 10 * r,
                        "accuracy_pct": {"test": base + g + seed},
                        "created_status": status,
                    }
                )
    curves = bench.summarise(rows, ("test",))
    last = curves["attic"][-1]
    assert last["test_gain"] == {"mean": 5.0, "std": 0.0}
    assert last["test_pct"] == {"mean": 77.5, "std": 2.5}
    assert last["labels_spent"] == 120 and last["illegible_pct"] == 20.0
    found = bench.targets(curves)
    assert found["attic_gain_positive"] and found["attic_at_least_2x_sj"]
    assert found["attic_above_uncertainty_at_equal_labels"] == [True, False]


@pytest.mark.slow
def test_the_active_benchmark_refuses_a_shard_without_a_run() -> None:
    assert "--shard needs --run" in refusal(ACTIVE, ["--shard", "0/2"])


SMALL_DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "small_data.py"
PUBFIG = Path(__file__).resolve().parents[2] / "shared" / "data" / "pubfig"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "name --pubfig ROOT, --lfw ROOT or both"),
        (["--pubfig", "x", "--fractions", "0"], "--fractions must be in (0, 1]"),
        (["--pubfig", "x", "--fractions", "1.5"], "--fractions must be in (0, 1]"),
    ],
)
def test_the_small_data_benchmark_refuses_bad_options(args: list[str], message: str) -> None:
    assert message in refusal(SMALL_DATA, args)


@pytest.mark.skipif(not PUBFIG.is_dir(), reason="PubFig is not in ../shared/data")
def test_small_data_pubfig_subsets_keep_train_and_val_images_apart() -> None:
    sys.path.insert(0, str(SMALL_DATA.parent))
    try:
        small = benchmark_module(SMALL_DATA)
    finally:
        sys.path.remove(str(SMALL_DATA.parent))
    full = small.load_pubfig(PUBFIG)
    sub = small.pubfig_subset(full, 0.1, seed=3)
    train = set(sub.pairs["train"].a) | set(sub.pairs["train"].b)
    val = set(sub.pairs["val"].a) | set(sub.pairs["val"].b)
    assert not train & val
    assert len(train | val) <= 24 and len(val) >= 3  # 10% of 241, a fifth of them for val
    people = dict(zip(full.images["train"].ids, full.images["train"].groups, strict=True))
    assert len({people[i] for i in val}) >= 3  # people in turn: several in a small val set
    for attribute in full.attribute_names:  # every attribute can be validated on
        assert (sub.pairs["val"].for_attribute(attribute).label != 0).any(), attribute
    assert (
        small.pubfig_subset(full, 0.1, seed=3).pairs["train"].a.tolist()
        == sub.pairs["train"].a.tolist()
    )  # repeatable from the seed


REPLAY = Path(__file__).resolve().parents[1] / "benchmarks" / "auto_replay.py"


@pytest.mark.slow
@pytest.mark.skipif(not PUBFIG.is_dir(), reason="PubFig is not in ../shared/data")
def test_auto_replay_takes_the_choice_today_s_rule_makes_on_kept_runs(tmp_path: Path) -> None:
    sys.path.insert(0, str(SMALL_DATA.parent))
    try:
        small = benchmark_module(SMALL_DATA)
    finally:
        sys.path.remove(str(SMALL_DATA.parent))
    tiny = RankerTrainConfig(model=RankerConfig(width=4), epochs_crop=1, epochs_full=1, seed=3)
    dataset = small.pubfig_subset(small.load_pubfig(PUBFIG), 0.25, seed=3)
    run = tmp_path / "keep" / "pubfig_25pct-3"
    trained = train_run(dataset, "Smiling", tiny, run, model="auto", progress=False)["Smiling"]
    (tmp_path / "keep" / "notes").mkdir()  # not a run folder: passed over
    (tmp_path / "keep" / "pubfig_25pct-4").mkdir()  # no attribute trained yet: nothing to score
    out = tmp_path / "replay.json"
    done = subprocess.run(
        [sys.executable, str(REPLAY), "--keep", str(tmp_path / "keep"), "--pubfig", str(PUBFIG),
         "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = json.loads(out.read_text())["settings"]["pubfig_25pct"]
    (record,) = got["runs"]
    assert record["seed"] == 3 and record["attribute"] == "Smiling"
    assert set(record["candidates"]) == {"0", "1", "0.25", "0.5", "0.75"}
    shares = {"linear": "0", "deepstn": "1"}
    kept = shares.get(trained["model"]) or f"{trained['blend_weight']:g}"
    assert record["auto_kept"] == kept  # the rule the run was trained under, replayed
    assert record["candidates"]["0"][0] == trained["linear_val_acc"]
    assert got["mean_acc_pct"]["auto"] == record["candidates"][kept][1]
    assert got["mean_acc_pct"]["linear"] == record["candidates"]["0"][1]
    assert "no <setting>-<seed> run folders" in refusal(REPLAY, ["--keep", str(tmp_path)])
    assert "--keep: no folder" in refusal(REPLAY, ["--keep", str(tmp_path / "nowhere")])
    assert "pubfig_25pct-3 is a PubFig run: name --pubfig" in refusal(
        REPLAY, ["--keep", str(tmp_path / "keep")]
    )


ANNOTATION_CPU = Path(__file__).resolve().parents[1] / "benchmarks" / "annotation_cpu.py"


@pytest.mark.slow
def test_the_annotation_cpu_benchmark_prints_its_split(tmp_path: Path) -> None:
    assert "--votes and --annotators" in refusal(ANNOTATION_CPU, ["--votes", "0"])
    assert "--in-batch at least 0" in refusal(ANNOTATION_CPU, ["--in-batch", "-1"])
    done = subprocess.run(
        [sys.executable, str(ANNOTATION_CPU), "--votes", "30", "--annotators", "3",
         "--in-batch", "4"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["votes"] == 30 and result["db"] == "sqlite"
    assert result["in_batch_per_annotator"] == 4
    assert 0 < result["store_cpu_ms_per_vote"] < result["app_cpu_ms_per_vote"]


PAIRS_MAP = Path(__file__).resolve().parents[1] / "benchmarks" / "attic_pairs_map.py"


def test_the_pairs_map_checks_inferred_labels_only_where_the_oracle_sees_a_difference() -> None:
    bench = benchmark_module(PAIRS_MAP)
    diff = np.array([0.5, -0.5, 0.01, 0.3])  # the third is within the equal band
    got = bench.label_figures(diff, np.array([1, 1, 1, 0]), 0.03)
    assert got == {"inferred_equal_pct": 25.0, "inferred_agrees_pct": 50.0}


@pytest.mark.slow
def test_the_pairs_map_refuses_a_folder_that_is_no_run(tmp_path: Path) -> None:
    message = "config.json does not exist: --run names an attic_synth run folder"
    assert message in refusal(PAIRS_MAP, ["--run", str(tmp_path)])
    (tmp_path / "dataset").mkdir()  # the files are there, but they are not a run's
    (tmp_path / "results.jsonl").write_text("{}\n")
    (tmp_path / "config.json").write_text('{"config": {}}')
    assert "not a readable attic_synth run" in refusal(PAIRS_MAP, ["--run", str(tmp_path)])


@pytest.mark.slow
def test_the_pairs_map_measures_created_pairs_with_the_oracle(tmp_path: Path) -> None:
    """A run whose "created" pairs are test pairs of rendered shoes, one label in four
    flipped: the oracle's figures must see through to the truth."""
    from outpool import config
    from outpool.creators.pairs import CreatedPairs, save_created
    from outpool.experiments.config import ExperimentConfig
    from outpool.synth.world import build

    cfg = config.load(ExperimentConfig, Path(__file__).parent / "experiments" / "tiny.toml")
    world = build(cfg.world)
    run = tmp_path / "run"
    world.dataset.save(run / "dataset", truth=world.truth)
    record = {"config": {"world": config.to_dict(cfg.world), "experiment": {"n": 20}}}
    (run / "config.json").write_text(json.dumps(record))
    pairs = world.dataset.pairs["test"].for_attribute("heel").subset(np.arange(40))
    label = pairs.label.copy()
    label[::4] *= -1
    made = CreatedPairs(
        "heel", "attic", world.dataset.lookup(pairs.a), world.dataset.lookup(pairs.b), label
    )
    folder = "cells/heel/attic/normal/seed_0"
    save_created(run / folder / "created.npz", made)
    row = {"attribute": "heel", "method": "attic", "protocol": "normal", "seed": 0}
    row |= {"accuracy_pct": {"test": 70.0}, "labels_spent": 20, "folder": folder}
    (run / "results.jsonl").write_text(json.dumps(row) + "\n")
    done = subprocess.run(
        [sys.executable, str(PAIRS_MAP), "--run", str(run), "--figure", str(tmp_path / "m.png")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    kinds = json.loads(done.stdout.splitlines()[-1])["kinds"]
    attic = kinds["attic/normal"]
    assert attic["illegible_pct"] < 10.0
    assert 65.0 <= attic["inferred_agrees_pct"] <= 85.0  # 75% of labels are true
    assert "real_ranker_pct" not in attic  # this run has no Real cell
    assert 35.0 <= kinds["test"]["off_catalogue_pct"] <= 65.0  # about half, by construction
    assert kinds["real_pairs"]["off_catalogue_pct"] < kinds["test"]["off_catalogue_pct"]
    assert kinds["test_fine"]["fine_pct"] > kinds["test"]["fine_pct"]
    assert (tmp_path / "m.png").stat().st_size > 10_000


NEARNESS = Path(__file__).resolve().parents[1] / "benchmarks" / "val_nearness.py"


def test_val_nearness_compares_val_images_with_the_typical_test_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(NEARNESS.parent))  # it reads small_data.py's split
    bench = benchmark_module(NEARNESS)
    got = bench.nearness(np.array([0.1, 1.0, 3.0, 5.0]), np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert got["test_median"] == 3.0 and got["val_median"] == 2.0
    assert got["val_nearer_pct"] == 50.0  # 0.1 and 1.0 are nearer than 3.0
    assert got["val_near_copies_pct"] == 25.0 and got["test_near_copies_pct"] == 0.0
    ref, ref_groups = np.array([[0.0], [10.0]]), np.array(["ann", "bob"])
    queries, groups = np.array([[1.0], [9.0], [4.0]]), np.array(["bob", "bob", "cy"])
    same = bench.nearest_same_group(queries, groups, ref, ref_groups)
    assert same[:2].tolist() == [9.0, 1.0] and np.isnan(same[2])  # cy has no training image
    scores, people = np.array([1.0, 3.0, 10.0, 10.0]), np.array(["ann", "ann", "bob", "bob"])
    assert bench.within_spread(scores, people) == pytest.approx(np.sqrt(0.5))  # (1 + 0) / 2

    scores = {"train": np.array([0.0, 100, 100, 200]), "test": np.array([0.0, 50, 100, 150])}
    got = bench.spread(scores, {"train": people, "test": people})
    # in units of the training scores' spread: train scatters 50/70.7 within a person, test 25
    assert got["train"] == pytest.approx(50 / np.std([0, 100, 100, 200]), abs=1e-3)
    assert got["test"] == pytest.approx(25 / np.std([0, 100, 100, 200]), abs=1e-3)


@pytest.mark.slow
def test_val_nearness_refuses_a_bad_fraction() -> None:
    assert "--fractions must be in (0, 1]" in refusal(
        NEARNESS, ["--pubfig", "x", "--fractions", "0"]
    )
    assert "data.mat" in refusal(NEARNESS, ["--pubfig", "nowhere"])


GPU_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "attic_gpu.sh"
TOY = {  # the grids at toy sizes (tests/experiments/tiny.toml's settings)
    "experiment.attributes": '["heel"]',
    "experiment.seeds": "[0]",
    "experiment.n": "20",
    "experiment.batch": "6",
    "experiment.rounds": "2",
    "world.train_pairs": "40",
    "world.val_pairs": "20",
    "world.test_pairs": "100",
    "world.generator.images": "100",
    "world.train.images": "120",
    "world.val.images": "40",
    "world.test.images": "120",
    "generator.epochs": "1",
    "generator.model.z_dim": "8",
    "generator.model.width": "4",
    "generator.model.feature": "16",
    "generator.model.y_embed": "8",
    "generator.model.hidden": "16",
    "generator.model.colour_layers": "2",
    "ranker.epochs_crop": "1",
    "ranker.epochs_full": "1",
    "ranker.batch_size": "10",
    "ranker.model.width": "4",
    "screen.net.epochs": "1",
    "screen.net.model.width": "4",
    "screen.net.model.crop": "1.0",
    "attic.epochs": "1",
    "attic.snapshot_pairs": "4",
    "attic.control.hidden": "16",
    "attic.control.side_hidden": "8",
}


@pytest.mark.slow
def test_the_gpu_script_runs_both_grids_in_shards_started_together(tmp_path: Path) -> None:
    """benchmarks/attic_gpu.sh end to end at toy sizes on the CPU: two shards per grid start
    at once on one new run folder, then the summaries and the pairs map."""
    sets = [arg for key, value in TOY.items() for arg in ("--set", f"{key}={value}")]
    env = {
        **os.environ,
        "SHARDS": "2",
        "OMP_NUM_THREADS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    run = tmp_path / "run"
    done = subprocess.run(
        ["bash", str(GPU_SCRIPT), str(run), *sets],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    tables = json.loads((run / "tables.json").read_text())
    methods = {key.split("/")[0] for key in tables["methods"]}
    assert {"real", "attic", "semantic_jitter", "jitter", "real_plus", "random"} <= methods
    active = json.loads((run / "active.json").read_text())
    assert active["benchmark"] == "attic_active"
    kinds = json.loads((run / "pairs_map.json").read_text())["kinds"]
    assert {"test", "real_pairs", "attic/normal", "attic/auto"} <= set(kinds)
    assert (run / "pairs_map.png").stat().st_size > 10_000


ANNOTATION_LOAD = Path(__file__).resolve().parents[1] / "benchmarks" / "annotation_load.py"


@pytest.mark.slow
@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_the_annotation_load_benchmark_loses_nothing_at_toy_size(db: str, tmp_path: Path) -> None:
    url = "sqlite" if db == "sqlite" else os.environ.get("OUTPOOL_TEST_POSTGRES_URL")
    if url is None:
        pytest.skip("no PostgreSQL: set OUTPOOL_TEST_POSTGRES_URL to a server to run this")
    args = ["--annotators", "4", "--rate", "0", "--seconds", "2", "--warmup", "1"]
    args += ["--pairs", "300", "--images", "20", "--db", url, "--out", str(tmp_path / "r.json")]
    done = subprocess.run(
        [sys.executable, str(ANNOTATION_LOAD), *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == json.loads((tmp_path / "r.json").read_text())
    assert result["db"] == db and result["votes_per_s"] > 0
    assert result["votes_lost"] == result["duplicates"] == 0
    assert result["votes_found_after_restart"] == result["votes_acknowledged"] > 0
    if db == "postgresql":  # where the database's busy backends were: running or waiting
        backends = result["postgresql_backends"]
        assert backends and all(n > 0 for n in backends.values())
        assert all(k == "running" or ":" in k for k in backends)
    else:
        assert "postgresql_backends" not in result
