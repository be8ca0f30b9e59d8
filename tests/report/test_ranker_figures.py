"""A ranker run's pictures (``outpool.report.ranker_figures``) from a tiny untrained DeepSTN: the
crop boxes it draws, images in score order, the training curves read from the stage logs, and
the two PNGs of a run folder."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from outpool.models.ranker import DeepSTN, RankerConfig
from outpool.report.gallery import PAD, line_height
from outpool.report.ranker_figures import (
    crop_boxes,
    crop_sheet,
    save_figure,
    save_run_figures,
    training_curves,
)
from outpool.train.evaluate import score_images

pytestmark = pytest.mark.usefixtures("one_torch_thread")

COLOURS = [(200, 30, 30), (30, 160, 30), (30, 30, 220), (220, 220, 40), (90, 90, 90)]
CELL = 64 * 3 + 2 * PAD  # crop_sheet draws each 64 px image three times larger
RED = (255, 40, 40)  # the crop box's outline


@pytest.fixture(scope="module")
def model() -> DeepSTN:
    torch.manual_seed(0)
    return DeepSTN(RankerConfig(width=4))


def solid(colours: list[tuple[int, int, int]]) -> np.ndarray:
    out = np.zeros((len(colours), 64, 64, 3), np.uint8)
    out[:] = np.asarray(colours, np.uint8)[:, None, None, :]
    return out


def test_an_untrained_ranker_looks_at_the_centre(model: DeepSTN) -> None:
    # the localisation net starts at scale_init (0.35) and no shift: a centred square
    boxes = crop_boxes(model, solid(COLOURS[:3]))
    side = 0.35 * 64
    expected = [32 - side / 2, 32 - side / 2, 32 + side / 2, 32 + side / 2]
    np.testing.assert_allclose(boxes, np.tile(expected, (3, 1)), atol=1e-4)
    assert model.training  # put back in the mode it was in


def test_crop_boxes_follow_the_predicted_transform(model: DeepSTN) -> None:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        with torch.no_grad():
            model.loc_shift.bias.copy_(torch.tensor([10.0, -10.0]))  # tanh -> shift (1, -1)
            model.loc_scale.bias.fill_(0.5 / model.config.scale_ratio)  # scale 0.5
        (x0, y0, x1, y1), *_ = crop_boxes(model, solid(COLOURS[:1]))
    finally:
        model.load_state_dict(state)
    # centre (tx, ty) = (1, -1) in [-1, 1] units is pixel (64, 0); half-side 0.5 -> 16 px
    np.testing.assert_allclose([x0, y0, x1, y1], [48, -16, 80, 16], atol=1e-3)


def test_crop_sheet_shows_the_images_in_score_order_with_their_boxes(model: DeepSTN) -> None:
    pixels = solid(COLOURS)
    sheet = np.asarray(crop_sheet(model, pixels, attribute="heel", columns=3).convert("RGB"))
    title = 2 * PAD + line_height(1, title=True)
    cell_h = CELL + line_height(1)  # one caption line: the score
    assert sheet.shape == (title + 2 * cell_h, 3 * CELL, 3)  # five images in rows of three
    shown = []
    for k in range(len(pixels)):
        r, c = divmod(k, 3)
        x, y = c * CELL + PAD, title + r * cell_h + PAD
        tile = sheet[y : y + 192, x : x + 192]
        shown.append(tuple(tile[5, 5].tolist()))  # a corner: outside the centred box
        assert tuple(tile[96, 96].tolist()) == shown[-1]  # the centre: inside it
        # the box's outline crosses the middle column near 3 * (32 - 11.2) = 62.4
        assert RED in {tuple(p) for p in tile[58:68, 96].tolist()}
        assert RED not in {tuple(p) for p in tile[:50, 96].tolist()}
    order = [COLOURS.index(colour) for colour in shown]
    assert sorted(order) == list(range(len(COLOURS)))  # every image once
    scores = score_images(model, pixels)
    assert np.all(np.diff(scores[order]) >= 0)  # lowest score first


def write_metrics(run_dir: Path, stage: str, rows: list[dict[str, object]]) -> None:
    folder = run_dir / f"stage_{stage}"
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")


def test_training_curves_put_the_full_stage_after_the_crop_stage(tmp_path: Path) -> None:
    write_metrics(
        tmp_path,
        "crop",
        [
            {"epoch": 1, "train_rank_loss": 0.7, "val_acc": 55.0},
            {"epoch": 2, "train_rank_loss": 0.6, "val_acc": None},  # no validation that epoch
        ],
    )
    write_metrics(
        tmp_path,
        "full",
        [{"epoch": e, "train_rank_loss": 0.5, "val_acc": 70.0 + e} for e in (1, 2, 3)],
    )
    fig = training_curves(tmp_path, attribute="heel")
    try:
        ax_loss, ax_acc = fig.axes
        assert ax_loss.get_title() == "heel: training RankNet loss"
        crop_loss, full_loss = ax_loss.lines
        assert list(crop_loss.get_xdata()) == [1, 2]
        assert list(full_loss.get_xdata()) == [3, 4, 5]  # continues where stage crop ended
        assert list(crop_loss.get_ydata()) == [0.7, 0.6]
        crop_acc, full_acc = ax_acc.lines
        acc = np.asarray(crop_acc.get_ydata(), float)
        assert acc[0] == 55.0 and np.isnan(acc[1])
        assert list(full_acc.get_ydata()) == [71.0, 72.0, 73.0]
        assert [t.get_text() for t in ax_loss.get_legend().get_texts()] == [
            "stage crop",
            "stage full",
        ]
    finally:
        plt.close(fig)


def test_training_curves_leave_out_a_stage_without_metrics(tmp_path: Path) -> None:
    write_metrics(tmp_path, "full", [{"epoch": 1, "train_rank_loss": 0.4, "val_acc": 60.0}])
    fig = training_curves(tmp_path, attribute="heel")
    try:
        (line,) = fig.axes[0].lines
        assert line.get_label() == "stage full" and list(line.get_xdata()) == [1]
    finally:
        plt.close(fig)


def test_save_figure_writes_a_png_and_closes_the_figure(tmp_path: Path) -> None:
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [1, 0])
    save_figure(fig, tmp_path / "f.png")
    assert not plt.fignum_exists(fig.number)
    with Image.open(tmp_path / "f.png") as img:
        assert img.format == "PNG" and img.size == (220, 110)  # 110 dpi


@pytest.mark.slow
def test_save_run_figures_writes_the_crops_and_the_curves(model: DeepSTN, tmp_path: Path) -> None:
    write_metrics(tmp_path, "crop", [{"epoch": 1, "train_rank_loss": 0.7, "val_acc": 50.0}])
    pixels = np.random.default_rng(0).integers(0, 256, (10, 64, 64, 3), dtype=np.uint8)
    save_run_figures(model, tmp_path, pixels, "heel")
    with Image.open(tmp_path / "crops.png") as crops:
        assert crops.format == "PNG"
        title = 2 * PAD + line_height(1, title=True)
        assert crops.size == (8 * CELL, title + 2 * (CELL + line_height(1)))  # rows of 8
    with Image.open(tmp_path / "curves.png") as curves:
        assert curves.format == "PNG" and curves.size == (990, 352)  # 9 x 3.2 in at 110 dpi


def test_a_run_without_validation_draws_the_loss_alone_and_says_so(tmp_path: Path) -> None:
    write_metrics(tmp_path, "full", [{"epoch": e, "train_rank_loss": 0.5} for e in (1, 2)])
    fig = training_curves(tmp_path, attribute="heel")
    try:
        [ax_loss] = fig.axes  # no empty accuracy panel
        assert "no validation table" in ax_loss.get_title()
        assert list(ax_loss.lines[0].get_xdata()) == [1, 2]
    finally:
        plt.close(fig)
