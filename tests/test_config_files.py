"""The config files in configs/ are the documented defaults: they must load and match the code."""

from pathlib import Path

from outpool import config
from outpool.annotate import CrowdConfig
from outpool.synth import SynthConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_synth_default_file_matches_the_code_defaults() -> None:
    assert config.load(SynthConfig, CONFIGS / "synth_default.toml") == SynthConfig()


def test_crowd_default_file_matches_the_code_defaults() -> None:
    assert config.load(CrowdConfig, CONFIGS / "crowd_default.toml") == CrowdConfig()
