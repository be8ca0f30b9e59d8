"""The generator benchmarks refuse bad options before any work, naming the option."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "generator.py"


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
