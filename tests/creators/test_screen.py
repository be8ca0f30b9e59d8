"""The legibility screen: pictures that do not show their commanded strengths fail, failures are
replaced from spare candidates, and a fitted screen reloads with the same verdicts."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from outpool.creators import CreatorEntry
from outpool.creators.pairs import CreatedPairs, top_up_seed
from outpool.creators.screen import (
    LegibilityScreen,
    ScreenConfig,
    fit_screen,
    load_screen,
    screened,
)
from outpool.data import ImageTable
from outpool.errors import ConfigError, DataError
from outpool.models.attribute_net import AttributeNetConfig
from outpool.rounds import protocols
from outpool.synth import World
from outpool.train.attribute_net import AttributeNetTrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SMOKE = ScreenConfig(
    net=AttributeNetTrainConfig(
        model=AttributeNetConfig(width=8, crop=1.0), epochs=6, flip=False, device="cpu"
    ),
)


@pytest.fixture(scope="module")
def table(small_world: World) -> ImageTable:
    return small_world.dataset.images["generator"]


class Copier:
    """A stand-in generator whose reconstructions are the real pictures (``blur`` > 0: box-blurred
    over that many pixels), so the threshold is set by pictures of known quality."""

    def __init__(self, attributes: tuple[str, ...], blur: int = 0) -> None:
        self.attributes, self.blur = attributes, blur
        self.y_mean = torch.zeros(len(attributes))

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self.blur:
            return x
        k = 2 * self.blur + 1
        return F.avg_pool2d(F.pad(x, [self.blur] * 4, mode="replicate"), k, stride=1)


@pytest.fixture(scope="module")
def screen(table: ImageTable, tmp_path_factory: pytest.TempPathFactory) -> LegibilityScreen:
    folder = tmp_path_factory.mktemp("screen")
    return fit_screen(table, Copier(table.attributes), SMOKE, folder, progress=False)


def pairs_of(table: ImageTable, rows: np.ndarray, shift: np.ndarray) -> CreatedPairs:
    """Real pictures as created pairs (a with rows, b with the next rows), commanded strengths
    their true ones plus ``shift`` standard deviations (per pair)."""
    pixels, y = np.asarray(table.pixels), np.asarray(table.strengths, np.float32)
    commanded = y + shift[:, None] * y.std(0)
    b = (rows + 1) % len(table)
    return CreatedPairs(
        attribute="heel",
        creator="random",
        images_a=pixels[rows],
        images_b=pixels[b],
        label=np.zeros(len(rows), np.int8),
        y_a=commanded[rows],
        y_b=commanded[b],
    )


@pytest.mark.slow
def test_pictures_that_miss_their_commanded_strengths_fail(
    screen: LegibilityScreen, table: ImageTable
) -> None:
    rows = np.arange(40)
    honest = screen.pair_scores(pairs_of(table, rows, np.zeros(len(table))))
    lying = screen.pair_scores(pairs_of(table, rows, np.full(len(table), 3.0)))
    assert np.median(lying) > 4 * np.median(honest)
    assert screen.passes(pairs_of(table, rows, np.zeros(len(table)))).mean() >= 0.6
    assert screen.passes(pairs_of(table, rows, np.full(len(table), 3.0))).mean() <= 0.2


@pytest.mark.slow
def test_failed_pairs_are_replaced_from_spare_candidates(
    screen: LegibilityScreen, table: ImageTable
) -> None:
    shift = np.where(np.arange(len(table)) % 3 == 0, 3.0, 0.0)  # every third pair lies
    assert SMOKE.candidates(20) == 40  # budget * (1 + spare)
    made, report = screened(pairs_of(table, np.arange(40), shift), 20, screen)
    assert report["candidates"] == 40 and report["kept"] == len(made) <= 20
    assert report["short"] == 20 - len(made) and report["passed"] >= len(made)
    assert screen.passes(made).all()
    kept_rows = [
        int(np.flatnonzero((table.pixels == a).all(axis=(1, 2, 3)))[0]) for a in made.images_a
    ]
    assert not any(r % 3 == 0 for r in kept_rows)  # no lying pair was kept


@dataclass(frozen=True)
class LiarConfig:
    seed: int = 0


@pytest.mark.slow
def test_a_batch_the_screen_left_short_is_topped_up_from_new_seeds(
    screen: LegibilityScreen, table: ImageTable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[int, int, str]] = []

    def liar(
        context: Any, budget: int, work_dir: Path, cfg: LiarConfig, *, progress: bool
    ) -> CreatedPairs:
        # 70% of its pairs miss their commanded strengths: the spares cannot cover them
        asked.append((budget, cfg.seed, work_dir.name))
        rng = np.random.default_rng(cfg.seed)
        rows = rng.integers(0, len(table), budget)
        shift = np.where(rng.random(len(table)) < 0.7, 3.0, 0.0)
        return pairs_of(table, rows, shift)

    entry = CreatorEntry(liar, LiarConfig, generates=True)
    monkeypatch.setattr(protocols, "creator", lambda name: entry)
    monkeypatch.setattr(screen, "cfg", dataclasses.replace(screen.cfg, top_ups=0))
    short, report = protocols.make_batch("liar", None, 10, tmp_path / "once", screen=screen)  # type: ignore[arg-type]
    assert report is not None and report["top_ups"] == 0  # no top-ups: a short batch stays short
    assert len(short) == report["kept"] < 10 and report["short"] == 10 - len(short)
    asked.clear()
    monkeypatch.setattr(screen, "cfg", dataclasses.replace(screen.cfg, top_ups=3))
    made, report = protocols.make_batch("liar", None, 10, tmp_path / "creator", screen=screen)  # type: ignore[arg-type]
    assert len(made) == 10 and screen.passes(made).all()
    assert report is not None and report["short"] == 0 and report["kept"] == 10
    assert report["top_ups"] >= 1 and len(asked) == 1 + report["top_ups"]
    assert asked[0] == (SMOKE.candidates(10), 0, "creator")
    assert [(s, d) for _, s, d in asked[1:]] == [
        (top_up_seed(0, i), f"top_up_{i}") for i in range(1, len(asked))
    ]
    assert report["candidates"] == sum(b for b, _, _ in asked)


@pytest.mark.slow
def test_the_threshold_is_set_by_the_generator_s_reconstructions(
    table: ImageTable, tmp_path: Path
) -> None:
    folder = tmp_path / "s"
    sharp = fit_screen(table, Copier(table.attributes), SMOKE, folder, progress=False)
    epochs = (folder / "metrics.jsonl").read_text()
    # the same folder, a generator that blurs what it rebuilds: the net is reused, not trained
    # again, and the threshold follows the generator (blurred reconstructions read worse, so
    # the screen forgives as much in its created pictures)
    blurred = fit_screen(table, Copier(table.attributes, blur=3), SMOKE, folder, progress=False)
    assert (folder / "metrics.jsonl").read_text() == epochs
    assert np.array_equal(blurred.error_scale, sharp.error_scale)
    assert blurred.threshold > sharp.threshold
    assert json.loads((folder / "screen.json").read_text())["threshold"] == blurred.threshold


@pytest.mark.slow
def test_a_fitted_screen_reloads_with_the_same_verdicts(
    screen: LegibilityScreen, table: ImageTable, tmp_path: Path
) -> None:
    folder = tmp_path / "s"
    first = fit_screen(table, Copier(table.attributes), SMOKE, folder, progress=False)
    again = load_screen(folder)
    pairs = pairs_of(table, np.arange(12), np.linspace(0, 3, len(table)))
    assert np.allclose(first.pair_scores(pairs), again.pair_scores(pairs))
    assert again.threshold == first.threshold
    record = json.loads((folder / "screen.json").read_text())
    assert record["held_out_pictures"] > 0 and len(record["error_scale"]) == 6
    (folder / "screen.json").write_text("{not json")
    with pytest.raises(DataError, match=r"screen\.json"):
        load_screen(folder)


def test_bad_screens_and_inputs_are_named(table: ImageTable, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="keep"):
        ScreenConfig(keep=0.2)
    with pytest.raises(ConfigError, match="top_ups"):
        ScreenConfig(top_ups=-1)
    with pytest.raises(ConfigError, match="held-out"):
        ScreenConfig(net=AttributeNetTrainConfig(val_share=0.0))
    no_strengths = ImageTable(ids=table.ids[:4], pixels=np.asarray(table.pixels)[:4])
    with pytest.raises(DataError, match="no strengths"):
        fit_screen(no_strengths, Copier(table.attributes), SMOKE, tmp_path, progress=False)
    with pytest.raises(DataError, match="generator's attributes"):
        fit_screen(table, Copier(("heel",)), SMOKE, tmp_path, progress=False)
    assert not any(tmp_path.iterdir())  # refused before any work


@pytest.mark.slow
def test_copies_of_real_pictures_cannot_be_screened(
    screen: LegibilityScreen, table: ImageTable
) -> None:
    copies = pairs_of(table, np.arange(3), np.zeros(len(table)))
    copies = CreatedPairs("heel", "jitter", copies.images_a, copies.images_b, copies.label)
    with pytest.raises(DataError, match="'jitter' pairs command no strengths"):
        screen.pair_scores(copies)
