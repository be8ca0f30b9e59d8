"""Model files that reload without the original command line: one payload dict per file, with
a ``kind`` ("outpool-ranker", "outpool-generator", ...), the model's config and its weights.

They are Python pickles (torch.save): load only files you trust.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from outpool.errors import DataError
from outpool.fileio import atomic_path


def write_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Save ``payload`` (which names its ``kind``) atomically."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: Path, kind: str, *, device: str = "cpu") -> dict[str, Any]:
    """The payload of an outpool ``kind`` file ("ranker", "generator"); else a ``DataError``."""
    try:
        payload = torch.load(path, map_location=device, weights_only=False)
    except FileNotFoundError:
        raise DataError(f"{kind} checkpoint not found", path=path) from None
    except Exception as exc:  # torch raises many kinds on a corrupt file
        raise DataError(f"not a readable checkpoint ({type(exc).__name__})", path=path) from None
    if not isinstance(payload, dict) or payload.get("kind") != f"outpool-{kind}":
        raise DataError(f"not an outpool {kind} checkpoint", path=path)
    return payload
