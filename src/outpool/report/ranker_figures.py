"""Pictures of a ranker run: where the STN looks, and the training curves."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image, ImageDraw

from outpool.fileio import atomic_path
from outpool.models.ranker import DeepSTN
from outpool.models.tensors import to_tensor
from outpool.report.gallery import image_grid, save_gallery
from outpool.train.evaluate import score_images


@torch.no_grad()
def crop_boxes(model: DeepSTN, pixels: np.ndarray) -> np.ndarray:
    """Crop rectangles (N, 4) as (x0, y0, x1, y1) in pixels of the input images."""
    was = model.training
    model.eval()
    params = model.transform(to_tensor(pixels)).numpy()
    model.train(was)
    size = pixels.shape[1]
    s, tx, ty = params[:, 0], params[:, 1], params[:, 2]
    # affine_grid maps the output [-1, 1] square to centre (tx, ty), half-side s.
    x0, x1 = (tx - s + 1) / 2 * size, (tx + s + 1) / 2 * size
    y0, y1 = (ty - s + 1) / 2 * size, (ty + s + 1) / 2 * size
    return np.stack([x0, y0, x1, y1], axis=1)


def crop_sheet(
    model: DeepSTN, pixels: np.ndarray, *, attribute: str, scale: int = 3, columns: int = 8
) -> Image.Image:
    """Images sorted by score (low to high) with the crop box the ranker chose on each."""
    scores = score_images(model, pixels)
    order = np.argsort(scores)
    boxes = crop_boxes(model, pixels[order])
    tiles = []
    for img, (x0, y0, x1, y1) in zip(pixels[order], boxes, strict=True):
        tile = Image.fromarray(img).resize((img.shape[1] * scale,) * 2, Image.Resampling.NEAREST)
        ImageDraw.Draw(tile).rectangle(
            [x0 * scale, y0 * scale, x1 * scale - 1, y1 * scale - 1], outline=(255, 40, 40), width=2
        )
        tiles.append(np.asarray(tile))
    captions = [f"{s:.2f}" for s in scores[order]]
    title = f"{attribute}: where the STN looks (sorted by score, low to high)"
    return image_grid(np.stack(tiles), captions, columns=columns, scale=1, title=title)


def training_curves(run_dir: Path, *, attribute: str) -> plt.Figure:
    """Loss and validation accuracy per epoch for both stages of a ranker run; a run without a
    validation table gets the loss alone, titled so."""
    stages = []
    for stage, colour in (("crop", "tab:blue"), ("full", "tab:orange")):
        path = run_dir / f"stage_{stage}" / "metrics.jsonl"
        if path.exists():
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            stages.append((stage, colour, rows))
    validated = any(r.get("val_acc") is not None for _, _, rows in stages for r in rows)
    fig, axes = plt.subplots(1, 2 if validated else 1, figsize=(9 if validated else 4.5, 3.2))
    axes = list(np.atleast_1d(axes))
    ax_loss, ax_acc = axes[0], axes[-1]
    offset = 0
    for stage, colour, rows in stages:
        epochs = [offset + r["epoch"] for r in rows]
        style = {"marker": "o", "markersize": 3, "color": colour, "label": f"stage {stage}"}
        ax_loss.plot(epochs, [r.get("train_rank_loss", np.nan) for r in rows], **style)
        if validated:
            accuracy = [np.nan if r.get("val_acc") is None else r["val_acc"] for r in rows]
            ax_acc.plot(epochs, accuracy, **style)
        offset = epochs[-1] if epochs else offset
    title = f"{attribute}: training RankNet loss"
    ax_loss.set(title=title if validated else f"{title}\n(no validation table)", xlabel="epoch")
    if validated:
        ax_acc.set(title="validation accuracy (%)", xlabel="epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)


def save_run_figures(model: DeepSTN, run_dir: Path, pixels: np.ndarray, attribute: str) -> None:
    """``crops.png`` and ``curves.png`` in the run folder."""
    save_gallery(crop_sheet(model, pixels, attribute=attribute), run_dir / "crops.png")
    save_figure(training_curves(run_dir, attribute=attribute), run_dir / "curves.png")
