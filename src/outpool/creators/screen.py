"""The legibility screen: created pictures that do not show what they were drawn to show are
dropped, and replaced from spare candidates, before anyone is paid to look at them (a batch
whose failures outnumber its spares is drawn again ``top_ups`` times, or goes out short and
spends fewer labels).

An attribute net trained on the generator's training pictures (the real ones it learned from,
with their strengths) reads the strengths of every generated picture. A picture fails when its
reading misses its commanded strengths by more than the generator's own reconstructions of
held-out real pictures miss theirs (above their ``keep`` quantile: the same rendering, of shoes
or faces that exist); a pair fails when either picture does. The screen never consults the
annotators' judge: it knows only the generator and its training data. Creators that copy real
pictures (Jitter, Real+, uncertainty's pool pairs) command no strengths and are not screened.

``screen.json`` in the net's run folder holds what scoring needs besides the weights: the
per-attribute error scale (the net's errors on held-out real pictures) and the threshold.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from outpool.config import from_dict, to_dict
from outpool.creators.pairs import CreatedPairs
from outpool.data import ImageTable
from outpool.errors import ConfigError, DataError
from outpool.fileio import atomic_path, json_text
from outpool.judges.generator_check import to_uint8
from outpool.models.attribute_net import AttributeNet, AttributeNetConfig
from outpool.models.generator import ConditionalVAE
from outpool.models.tensors import to_tensor
from outpool.train.attribute_net import (
    AttributeNetTrainConfig,
    ScoredImages,
    group_split,
    load_attribute_net,
    predict_scores,
    train_attribute_net,
)


def _whole_picture() -> AttributeNetTrainConfig:
    # the whole frame (a failure can be anywhere in it); no flips: a shoe's toe points one way
    return AttributeNetTrainConfig(model=AttributeNetConfig(crop=1.0), flip=False)


@dataclass(frozen=True)
class ScreenConfig:
    """How the screen is fitted and how strict it is."""

    net: AttributeNetTrainConfig = field(default_factory=_whole_picture)
    table: str = "generator"  # the image table with strengths the generator trained on
    # a picture passes when its reading errs no more than this share of the generator's
    # reconstructions of held-out real pictures do
    keep: float = 0.95
    spare: float = 1.0  # a creator draws budget * (1 + spare) candidates to replace the failures
    # draws after the first (each from new seeds; ATTIC's from the control network it trained)
    # to fill a batch whose failures outnumber its spares
    top_ups: int = 3

    def __post_init__(self) -> None:
        if not 0.5 <= self.keep <= 1.0:
            raise ConfigError(f"keep must be in [0.5, 1], got {self.keep}")
        if not 0.0 <= self.spare <= 10.0:
            raise ConfigError(f"spare must be in [0, 10], got {self.spare}")
        if not 0 <= self.top_ups <= 10:
            raise ConfigError(f"top_ups must be in [0, 10], got {self.top_ups}")
        if self.net.val_share <= 0:
            raise ConfigError("the screen's net needs held-out pictures (net.val_share > 0)")

    def candidates(self, budget: int) -> int:
        """How many pairs a creator draws for ``budget`` screened ones."""
        return math.ceil(budget * (1.0 + self.spare))


class LegibilityScreen:
    """``pair_scores(pairs)`` -> (P,) how badly the worse picture of each pair misses its
    commanded strengths (mean squared error in units of real pictures' errors);
    ``passes(pairs)`` -> (P,) bool, at or below the threshold."""

    def __init__(
        self, net: AttributeNet, error_scale: np.ndarray, threshold: float, cfg: ScreenConfig
    ) -> None:
        self.net, self.cfg = net.eval(), cfg
        self.error_scale = np.asarray(error_scale, np.float64)
        self.threshold = float(threshold)

    def picture_scores(self, pixels: np.ndarray, strengths: np.ndarray) -> np.ndarray:
        """(N,) mean over attributes of ((read - commanded) / real pictures' error scale)^2."""
        read = predict_scores(self.net, pixels)
        return (((read - strengths) / self.error_scale) ** 2).mean(axis=1)

    def pair_scores(self, pairs: CreatedPairs) -> np.ndarray:
        if pairs.y_a is None or pairs.y_b is None:
            raise DataError(f"'{pairs.creator}' pairs command no strengths: nothing to screen")
        a = self.picture_scores(pairs.images_a, pairs.y_a)
        b = self.picture_scores(pairs.images_b, pairs.y_b)
        return np.maximum(a, b)

    def passes(self, pairs: CreatedPairs) -> np.ndarray:
        return self.pair_scores(pairs) <= self.threshold


def scored_pictures(table: ImageTable, name: str) -> ScoredImages:
    if table.strengths is None or not table.attributes:
        raise DataError(f"image table '{name}' has no strengths for the screen to learn from")
    return ScoredImages(
        ids=table.ids,
        pixels=np.asarray(table.pixels),
        scores=table.strengths,
        # held out at random, not as whole groups: the generator draws from every group
        groups=table.ids,
        attributes=table.attributes,
        source=f"image table '{name}' (the generator's training pictures)",
    )


def fit_screen(
    table: ImageTable,
    generator: ConditionalVAE,
    cfg: ScreenConfig,
    work_dir: Path,
    *,
    progress: bool = True,
) -> LegibilityScreen:
    """Train the screen's net on ``table`` (a finished net in ``work_dir`` is reused) and set
    the threshold from ``generator``'s reconstructions of the held-out pictures: on every
    call, since the threshold belongs to the generator and the net does not."""
    data = scored_pictures(table, cfg.table)
    if tuple(generator.attributes) != tuple(data.attributes):
        raise DataError(
            f"the generator's attributes {list(generator.attributes)} are not those of image "
            f"table '{cfg.table}' {list(data.attributes)}"
        )
    net, summary = train_attribute_net(data, cfg.net, work_dir, progress=progress, desc="screen")
    held_out, _ = group_split(data.groups, cfg.net.val_share, cfg.net.seed)
    pixels, truth = data.pixels[held_out], data.scores[held_out]
    residual = predict_scores(net, pixels) - truth
    scale = np.sqrt((residual**2).mean(axis=0)).clip(1e-6)
    screen = LegibilityScreen(net, scale, float("inf"), cfg)
    rebuilt = screen.picture_scores(reconstructions(generator, pixels, truth), truth)
    screen.threshold = float(np.quantile(rebuilt, cfg.keep))
    record = {
        "config": to_dict(cfg),
        "attributes": list(data.attributes),
        "error_scale": scale.tolist(),
        "threshold": screen.threshold,
        "held_out_pictures": len(held_out),
        "held_out": summary["held_out"],
        "real_pictures_passing_pct": round(
            100.0 * float((((residual / scale) ** 2).mean(axis=1) <= screen.threshold).mean()), 1
        ),
    }
    with atomic_path(work_dir / "screen.json") as tmp:
        tmp.write_text(json_text(record, indent=2) + "\n")
    return screen


@torch.no_grad()
def reconstructions(
    generator: ConditionalVAE, pixels: np.ndarray, strengths: np.ndarray, chunk: int = 256
) -> np.ndarray:
    """The generator's reconstructions (N, 64, 64, 3) uint8 of real pictures at their strengths."""
    device = generator.y_mean.device
    out = []
    for i in range(0, len(pixels), chunk):
        x = to_tensor(pixels[i : i + chunk], device)
        y = torch.from_numpy(np.asarray(strengths[i : i + chunk], np.float32)).to(device)
        out.append(to_uint8(generator.reconstruct(x, y)))
    return np.concatenate(out)


def load_screen(work_dir: Path) -> LegibilityScreen:
    """The screen ``fit_screen`` left in ``work_dir``; a bad file names itself."""
    path = work_dir / "screen.json"
    try:
        record = json.loads(path.read_text())
        cfg = from_dict(ScreenConfig, record["config"])
        scale, threshold = np.asarray(record["error_scale"], float), float(record["threshold"])
        names = tuple(record["attributes"])
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"unreadable screen ({type(exc).__name__}: {exc})", path=path) from None
    net, _ = load_attribute_net(work_dir / "attribute_net.pt", attributes=names)
    if len(scale) != len(names) or not np.isfinite(scale).all() or not math.isfinite(threshold):
        raise DataError("error_scale / threshold are malformed", path=path)
    return LegibilityScreen(net, scale, threshold, cfg)


def screened(
    candidates: CreatedPairs, budget: int, screen: LegibilityScreen
) -> tuple[CreatedPairs, dict[str, Any]]:
    """The first ``budget`` of ``candidates`` (drawn ``screen.cfg.candidates(budget)``) that
    pass (fewer when too many fail: a failed pair is never sent), and what the screen did."""
    passing = np.flatnonzero(screen.passes(candidates))
    keep = passing[:budget]
    report = {
        "candidates": len(candidates),
        "passed": len(passing),
        "kept": len(keep),
        "short": budget - len(keep),
        "threshold": round(screen.threshold, 4),
    }
    return candidates.subset(keep), report
