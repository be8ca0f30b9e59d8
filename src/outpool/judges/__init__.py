"""Which ``Judge`` measures a dataset's images (for the simulated crowd and the generator check).

``JUDGES`` is a plain dict keyed by dataset name. The built-in world's judge is its pixel oracle
(nothing to train); LFW's is the teacher (``outpool.judges.teacher``), which must be trained on the
dataset's true scores first, so each entry is a small factory plus the config class its
settings are read into (``None`` when it has none).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from outpool.annotate.protocol import Judge
from outpool.data import Dataset
from outpool.data.dataset import Truth
from outpool.errors import ConfigError, OutpoolError
from outpool.judges.teacher import TeacherConfig, fit_teacher
from outpool.synth import PixelOracle

# (dataset, config or None, *, truth, work_dir, progress) -> (judge, record for the run summary)
JudgeFactory = Callable[..., tuple[Judge, dict[str, Any]]]


@dataclass(frozen=True)
class JudgeEntry:
    build: JudgeFactory
    config: type | None = None  # the judge's settings, or None when it has none


def _pixel_oracle(
    dataset: Dataset,
    cfg: None,
    *,
    truth: Mapping[str, Truth],
    work_dir: Path,
    progress: bool,
) -> tuple[Judge, dict[str, Any]]:
    del dataset, cfg, truth, work_dir  # the oracle reads pixels, it learns nothing
    return PixelOracle(progress=progress), {"judge": "pixel oracle of the built-in world"}


def _teacher(
    dataset: Dataset,
    cfg: TeacherConfig | None,
    *,
    truth: Mapping[str, Truth],
    work_dir: Path,
    progress: bool,
) -> tuple[Judge, dict[str, Any]]:
    teacher = fit_teacher(dataset, truth, work_dir / "teacher", cfg, progress=progress)
    return teacher, {"judge": "teacher (outpool.judges.teacher)", **teacher.record}


JUDGES: dict[str, JudgeEntry] = {
    "synthetic-shoes": JudgeEntry(_pixel_oracle),
    "lfw": JudgeEntry(_teacher, TeacherConfig),
}


def make_judge(
    dataset: Dataset,
    cfg: Any,
    *,
    truth: Mapping[str, Truth],
    work_dir: Path,
    progress: bool = True,
) -> tuple[Judge, dict[str, Any]] | None:
    """The dataset's judge and its record, or None when the dataset has no judge."""
    entry = JUDGES.get(dataset.name)
    if entry is None:
        return None
    if cfg is not None and entry.config is None:
        raise ConfigError(f"the judge of dataset '{dataset.name}' has no settings")
    return entry.build(dataset, cfg, truth=truth, work_dir=work_dir, progress=progress)


def judge_settings(dataset: Dataset) -> type | None:
    """The config class of the dataset's judge settings; None when it has no judge or its
    judge has no settings."""
    entry = JUDGES.get(dataset.name)
    return entry.config if entry is not None else None


def require_judge(dataset: Dataset) -> JudgeEntry:
    """The dataset's judge entry; a clear error naming the datasets that have one."""
    if dataset.name not in JUDGES:
        raise OutpoolError(
            f"the simulated crowd has no judge for dataset '{dataset.name}' "
            f"(it has: {', '.join(JUDGES)})"
        )
    return JUDGES[dataset.name]
