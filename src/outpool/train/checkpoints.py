"""What a run leaves behind: model files that reload without the original command line (one
payload dict per file, with a ``kind`` ("outpool-ranker", "outpool-generator", ...), the
model's config and its weights), and the run's ``config.json`` record.

Model files are Python pickles (torch.save): load only files you trust.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import torch

from outpool import __version__
from outpool.config import to_dict
from outpool.errors import ConfigError, DataError
from outpool.fileio import atomic_path, json_text


def code_version() -> str:
    """outpool's version and, inside a git checkout, the commit (for the run record)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def run_record(cfg: Any, device: torch.device, fields: dict[str, Any]) -> dict[str, Any]:
    """A run's record: ``fields``, then the resolved config, seed, code version and device,
    so every run can be told apart and repeated (``config.json`` and the model file)."""
    return {
        **fields,
        "config": to_dict(cfg),
        "seed": cfg.seed,
        "code_version": code_version(),
        "device": str(device),
    }


def write_run_config(run_dir: Path, record: dict[str, Any], cfg: Any) -> None:
    """Write ``record`` as ``run_dir/config.json``, atomically. A folder that already holds a
    run's checkpoints is resumed only with the same config ``cfg`` (a dataclass): another one is
    refused, naming the keys that differ, before anything is written."""
    stored = run_dir / "config.json"
    if stored.exists() and any(run_dir.glob("**/last.pt")):
        check_same_config(stored, record["config"], defaults=to_dict(type(cfg)()))
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(run_dir / "config.json") as tmp:
        tmp.write_text(json_text(record, indent=2) + "\n")


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {
            k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}{key}.").items()
        }
    return {prefix.rstrip("."): value}


def check_same_config(
    path: Path, config: dict[str, Any], defaults: dict[str, Any] | None = None
) -> None:
    """Refuse to resume the run whose ``config.json`` is ``path`` with another ``config``. A
    setting the stored config lacks (added to the code since) counts as unchanged where
    ``config`` has its default (``defaults``: the default config, as a dict), since the run
    was made with what that default does."""
    try:
        stored = json.loads(path.read_text())["config"]
        before = _flat(json.loads(json_text(stored)))  # older runs wrote inf as Infinity
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError("unreadable run config: cannot tell what this run was", path=path) from None
    now = _flat(json.loads(json_text(config)))  # as it would be stored: inf as "inf"
    default = _flat(json.loads(json_text(defaults))) if defaults is not None else {}
    for key in now.keys() - before.keys():
        if key in default and default[key] == now[key]:
            before[key] = now[key]  # a newer setting, left at what the old code did
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    if changed:
        shown = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed[:6])
        more = f" and {len(changed) - 6} more" if len(changed) > 6 else ""
        raise ConfigError(
            f"{path.parent} holds a run trained with other settings ({shown}{more}); train into "
            "a new folder, or delete this one to start again"
        )


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
