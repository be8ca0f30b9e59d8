"""Fixtures shared across the test tree: a small built-in world and one pixel oracle.

The pixel oracle calibrates once per process (seconds), so every test that needs it shares the
session-scoped ``oracle``; worlds are built at toy sizes so a build takes well under a second.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from outpool import config
from outpool.synth import PixelOracle, SynthConfig, World, build

# Toy sizes: big enough for every split's pair sampling, small enough to render in ~0.1 s.
SMALL_SYNTH: dict[str, object] = {
    "generator": {"images": 100, "broad_share": 0.3},
    "train": {"images": 120, "broad_share": 0.05},
    "val": {"images": 40, "broad_share": 0.05},
    "test": {"images": 120, "broad_share": 0.5},
    "train_pairs": 40,
    "val_pairs": 20,
    "test_pairs": 100,
}

# The same sizes as ``--set`` arguments for the command line.
SMALL_SYNTH_SETS: tuple[str, ...] = (
    "--set",
    "generator.images=100",
    "--set",
    "train.images=120",
    "--set",
    "val.images=40",
    "--set",
    "test.images=120",
    "--set",
    "train_pairs=40",
    "--set",
    "val_pairs=20",
    "--set",
    "test_pairs=100",
)


def small_synth_config(**changes: object) -> SynthConfig:
    """``SynthConfig`` at toy sizes; ``changes`` are top-level keys (e.g. ``seed=3``)."""
    return config.from_dict(SynthConfig, {**SMALL_SYNTH, **changes})


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder`` (to prove nothing changed)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def small_config() -> SynthConfig:
    return small_synth_config()


@pytest.fixture(scope="session")
def make_small_config() -> Callable[..., SynthConfig]:
    """``small_synth_config`` as a fixture (test modules cannot import conftest reliably)."""
    return small_synth_config


@pytest.fixture(scope="session")
def small_synth_sets() -> tuple[str, ...]:
    return SMALL_SYNTH_SETS


@pytest.fixture(scope="session")
def folder_snapshot() -> Callable[[Path], dict[str, str]]:
    return snapshot


@pytest.fixture(scope="session")
def small_world(small_config: SynthConfig) -> World:
    return build(small_config)


@pytest.fixture(scope="session")
def oracle() -> PixelOracle:
    return PixelOracle()


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread for tiny-model tests: on a busy 2-core machine a second intra-op thread
    makes them several times slower (contention) and tiny models gain nothing from it. Use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
