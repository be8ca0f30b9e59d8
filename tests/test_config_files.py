"""The config files in configs/ load and hold what they say: the default files match the code;
the faces file sets its own keys only."""

from dataclasses import replace
from pathlib import Path

from outpool import config
from outpool.annotate import CrowdConfig
from outpool.synth import SynthConfig
from outpool.train.generator import GeneratorTrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


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
