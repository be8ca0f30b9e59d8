"""The ``data label`` workflow: a simulated crowd labels one pair table of a dataset folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from outpool.annotate import CrowdConfig, SimulatedCrowd
from outpool.annotate.apply import label_pairs
from outpool.data import Dataset
from outpool.data.open import open_dataset_with_truth
from outpool.errors import DataError, UnknownNameError
from outpool.judges import require_judge


def crowd_label(
    dataset_dir: Path, pairs: str, name: str, crowd_cfg: CrowdConfig, *, force: bool = False
) -> dict[str, Any]:
    """Ask a simulated crowd about every pair of table ``pairs``; the accepted pairs become
    table ``name`` and every vote goes to ``DATASET/votes/NAME.csv``. A judge that learns
    (LFW's teacher) is trained once into ``DATASET/judges/`` and reused. Returns counts."""
    dataset, truth = open_dataset_with_truth(dataset_dir)
    if pairs not in dataset.pairs:
        raise UnknownNameError("pair table", pairs, dataset.pairs)
    entry = require_judge(dataset)
    if name in dataset.pairs and not force:
        raise DataError(
            f"pair table '{name}' already exists; pass --force to replace it", path=dataset_dir
        )
    judge, _ = entry.build(
        dataset, None, truth=truth, work_dir=Path(dataset_dir) / "judges", progress=True
    )
    accepted, result = label_pairs(dataset, dataset.pairs[pairs], SimulatedCrowd(judge, crowd_cfg))
    result.votes.save(Path(dataset_dir) / "votes" / f"{name}.csv")
    Dataset.save_pairs(dataset_dir, name, accepted)
    status = {s: int((result.status == s).sum()) for s in ("accepted", "rejected", "pruned")}
    return {"pairs": name, "votes": len(result.votes), **status}
