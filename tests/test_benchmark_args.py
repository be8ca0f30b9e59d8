"""The generator benchmark refuses a bad ``--crop`` before any work, naming the option."""

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
    ],
)
def test_a_bad_crop_exits_2_naming_the_option(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""
