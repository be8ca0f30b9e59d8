"""Helpers for the source tests: where the shared real data lives, and tiny image files."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

# tests read the real data in place (never copied): ../shared/data from the repository root
SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def require(path: Path) -> Path:
    """``path`` if it exists, else skip the test with a clear message."""
    if not path.exists():
        pytest.skip(f"real data not found at {path}")
    return path


def write_image(
    path: Path, size: tuple[int, int] = (80, 60), color: tuple[int, int, int] = (200, 30, 30)
) -> Path:
    """A solid-colour image file (format from the suffix) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path
