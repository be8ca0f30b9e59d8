"""Tiny untrained models for tests that need one to exist, not to be good (seconds on a CPU)."""

from __future__ import annotations

import numpy as np
import torch

from outpool.data import Dataset
from outpool.models.generator import ConditionalVAE, GeneratorConfig

TINY_GENERATOR = GeneratorConfig(
    z_dim=8, width=4, feature=16, y_embed=8, hidden=16, colour_layers=2
)


def tiny_generator(dataset: Dataset, seed: int = 0) -> ConditionalVAE:
    """A fresh generator for the dataset's "generator" table (its strengths' mean and std)."""
    table = dataset.images["generator"]
    strengths = torch.from_numpy(np.asarray(table.strengths, np.float32))
    torch.manual_seed(seed)
    return ConditionalVAE(
        TINY_GENERATOR,
        attributes=table.attributes,
        y_mean=strengths.mean(0),
        y_std=strengths.std(0),
    )
