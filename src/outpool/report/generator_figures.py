"""Pictures of a generator: random samples, reconstructions, and one sweep per attribute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from outpool.judges.generator_check import sweep_images, to_uint8
from outpool.models.generator import ConditionalVAE
from outpool.models.tensors import to_tensor
from outpool.report.gallery import attribute_strip, image_grid, save_gallery


def samples_page(model: ConditionalVAE, *, n: int = 32, seed: int = 0) -> Image.Image:
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, len(model.attributes), generator=gen)
    y = model.y_mean.cpu() + model.y_std.cpu() * noise * 0.7
    z = torch.randn(n, model.config.z_dim, generator=gen)
    device = model.y_mean.device
    images = to_uint8(model.sample(y.to(device), z.to(device)))
    return image_grid(
        images, None, title="random samples (y around the training mean, z from the fitted prior)"
    )


def reconstructions_page(
    model: ConditionalVAE, pixels: np.ndarray, strengths: np.ndarray
) -> Image.Image:
    """Each real image followed by its reconstruction."""
    device = model.y_mean.device
    recon = to_uint8(
        model.reconstruct(to_tensor(pixels, device), torch.from_numpy(strengths).to(device))
    )
    both = np.stack([np.asarray(pixels), recon], axis=1).reshape(-1, *recon.shape[1:])
    captions = ["real", "reconstructed"] * len(recon)
    return image_grid(both, captions, title="held-out images and their reconstructions")


def sweeps_page(
    model: ConditionalVAE, *, steps: int = 8, n_z: int = 2, seed: int = 0
) -> Image.Image:
    """One row per (attribute, z): only that attribute's commanded strength changes."""
    strips = []
    for k, name in enumerate(model.attributes):
        images, y = sweep_images(model, k, steps=steps, n_z=n_z, seed=seed)
        for i in range(n_z):
            strips.append(attribute_strip(images[i], y[:, k], f"{name} (z #{i + 1})"))
    page = Image.new("RGB", (max(s.width for s in strips), sum(s.height for s in strips)), "white")
    top = 0
    for s in strips:
        page.paste(s, (0, top))
        top += s.height
    return page


def save_generator_figures(
    model: ConditionalVAE, run_dir: Path, pixels: np.ndarray, strengths: np.ndarray
) -> None:
    """``samples.png``, ``reconstructions.png`` and ``sweeps.png`` in the run folder."""
    save_gallery(samples_page(model), run_dir / "samples.png")
    save_gallery(reconstructions_page(model, pixels, strengths), run_dir / "reconstructions.png")
    save_gallery(sweeps_page(model), run_dir / "sweeps.png")
