"""The config files in configs/ load and hold what they say: the default files match the code;
the faces files set their own keys only."""

from dataclasses import replace
from pathlib import Path

from outpool import config
from outpool.annotate import CrowdConfig
from outpool.experiments.config import ExperimentConfig
from outpool.experiments.runner import GROWABLE
from outpool.models.ranker import RankerConfig
from outpool.synth import SynthConfig
from outpool.synth.shoe import ATTRIBUTE_NAMES
from outpool.train.generator import GeneratorTrainConfig
from outpool.train.ranker import RankerTrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DEMO = Path(__file__).resolve().parents[1] / "src" / "outpool" / "experiments" / "demo.toml"


def test_synth_default_file_matches_the_code_defaults() -> None:
    assert config.load(SynthConfig, CONFIGS / "synth_default.toml") == SynthConfig()


def test_crowd_default_file_matches_the_code_defaults() -> None:
    assert config.load(CrowdConfig, CONFIGS / "crowd_default.toml") == CrowdConfig()


def test_the_faces_generator_file_sets_only_the_colour_bound_and_the_kl_weight() -> None:
    faces = config.load(GeneratorTrainConfig, CONFIGS / "generator_faces.toml")
    assert faces == replace(GeneratorTrainConfig(), chroma_ratio=1.0, kl_weight=2.0)
    # and an override on top of the file still wins
    tuned = config.load(GeneratorTrainConfig, CONFIGS / "generator_faces.toml", ["kl_weight=1"])
    assert (tuned.chroma_ratio, tuned.kl_weight) == (1.0, 1.0)


def test_the_faces_ranker_file_is_the_pubfig_recipe() -> None:
    faces = config.load(RankerTrainConfig, CONFIGS / "ranker_faces.toml")
    recipe = RankerTrainConfig(
        model=RankerConfig(mirror_average=True, test_zooms=(1.125,)),
        all_pairs_in_batch=True,
        batch_size=32,
        pairs_per_epoch=2048,
        epochs_crop=4,
        epochs_full=28,
        optimizer="sgd",
        lr=0.05,
        lr_schedule="cosine",
        loc_lr_factor=0.01,
        flip=True,
        shift=0.08,
        zoom=0.25,
        rotate=10.0,
        color=0.3,
    )
    assert faces == recipe


def test_the_experiment_files_load_and_their_grids_fit_their_worlds() -> None:
    files = [*sorted(CONFIGS.glob("attic_*.toml")), DEMO]
    assert len(files) >= 2
    for path in files:
        cfg = config.load(ExperimentConfig, path)
        grid = cfg.experiment
        needed = 2 * grid.n if "real_2n" in grid.methods else grid.n
        assert cfg.world.train_pairs >= needed, path.name
        assert set(grid.attributes) <= set(ATTRIBUTE_NAMES), path.name


def test_the_two_attic_grids_may_share_one_run_folder() -> None:
    tables, active = (
        config.to_dict(config.load(ExperimentConfig, CONFIGS / f"attic_{name}.toml"))
        for name in ("tables", "active")
    )
    for cfg in (tables, active):
        for key in GROWABLE:
            del cfg["experiment"][key]
    assert tables == active
