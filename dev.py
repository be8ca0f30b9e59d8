#!/usr/bin/env python3
"""Set up outpool in ./.venv and run its main job or its checks. Needs only Python >= 3.10.

    python3 dev.py demo [ARGS...]   set up, then run the main job on the built-in data
    python3 dev.py test [ARGS...]   set up (with dev tools), then lint, type-check and test

PyTorch is pinned and installed first, so a CPU-only machine gets the CPU build and never
pulls a multi-GB CUDA build through an unpinned requirement.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
TORCH = "torch==2.13.0"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    code = subprocess.call([str(c) for c in cmd], cwd=ROOT)
    if code != 0:
        sys.exit(code)


def setup(extras: str) -> None:
    if not (BIN / "python").exists() and not (BIN / "python.exe").exists():
        print(f"creating {VENV} ...", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [BIN / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    run(*pip, TORCH)
    run(*pip, "-e", f".{extras}")


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("demo", "test"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    task, args = sys.argv[1], sys.argv[2:]
    if task == "demo":
        setup("")
        run(BIN / "outpool", "demo", "--out", "runs/demo", *args)  # a rerun reuses what is done
        return
    setup("[dev]")
    run(BIN / "ruff", "check", "src", "tests", "benchmarks", "dev.py", "docs")
    run(BIN / "ruff", "format", "--check", "src", "tests", "benchmarks", "dev.py", "docs")
    run(BIN / "mypy")
    code = subprocess.call([str(BIN / "python"), "-m", "pytest", *args], cwd=ROOT)
    if code == 5:
        print("pytest collected no tests: that is a failure here", file=sys.stderr)
        sys.exit(1)
    sys.exit(code)


if __name__ == "__main__":
    main()
