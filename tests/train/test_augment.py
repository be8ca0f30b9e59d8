"""Augmentation: each transform does what it says, off means untouched, the RNG decides."""

from __future__ import annotations

import pytest
import torch

from outpool.train.augment import augment

NONE = {"flip": False, "shift": 0.0}


def batch(n: int = 16) -> torch.Tensor:
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(3))


def test_off_returns_the_input() -> None:
    x = batch(4)
    assert torch.equal(augment(x, **NONE), x)


def test_flip_mirrors_some_images_exactly() -> None:
    x = batch()
    torch.manual_seed(0)
    out = augment(x, flip=True, shift=0.0)
    mirrored = [bool((o - xi.flip(-1)).abs().max() < 1e-5) for o, xi in zip(out, x, strict=True)]
    kept = [bool((o - xi).abs().max() < 1e-5) for o, xi in zip(out, x, strict=True)]
    assert all(m != k for m, k in zip(mirrored, kept, strict=True))  # each one or the other
    assert 0 < sum(mirrored) < 16
    torch.manual_seed(0)
    assert torch.equal(out, augment(x, flip=True, shift=0.0))  # the global torch RNG decides


def test_shift_translates() -> None:
    torch.manual_seed(0)
    x = batch(4)
    out = augment(x, flip=False, shift=0.1)
    assert out.shape == x.shape
    assert all((o - xi).abs().max() > 0.05 for o, xi in zip(out, x, strict=True))


def test_zoom_magnifies_the_centre() -> None:
    # a centred square of side 16 px grows: more of the image is bright after zooming in
    x = torch.zeros(8, 3, 64, 64)
    x[:, :, 24:40, 24:40] = 1.0
    torch.manual_seed(0)
    out = augment(x, flip=False, shift=0.0, zoom=0.5)
    bright = (out > 0.5).float().mean(dim=(1, 2, 3))
    assert (bright >= 0.0625 - 1e-3).all()  # never smaller than the original (16/64)^2
    assert bright.max() > 0.0625 * 1.5**2 * 0.7  # up to 1.5x the side
    assert bright.max() < 0.0625 * 1.5**2 * 1.1


def test_rotate_turns_a_bar() -> None:
    x = torch.zeros(8, 3, 64, 64)
    x[:, :, 30:34, 8:56] = 1.0  # a horizontal bar
    torch.manual_seed(0)
    out = augment(x, flip=False, shift=0.0, rotate=30.0)
    rows_touched = ((out > 0.5).any(dim=3).any(dim=1)).sum(dim=1)  # rows with bar pixels
    assert rows_touched.max() > 12  # tilted bars span many more rows than its 4
    torch.manual_seed(0)
    none = augment(x, flip=False, shift=0.0, rotate=0.0)
    assert ((none > 0.5).any(dim=3).any(dim=1)).sum(dim=1).max() == 4


@pytest.mark.parametrize("strength", [0.1, 0.4])
def test_color_changes_tones_within_bounds(strength: float) -> None:
    x = batch()
    torch.manual_seed(0)
    out = augment(x, flip=False, shift=0.0, color=strength)
    assert out.shape == x.shape and out.min() >= 0.0 and out.max() <= 1.0
    ratio = out.mean(dim=(1, 2, 3)) / x.mean(dim=(1, 2, 3))
    assert (ratio - 1).abs().max() > strength / 4  # brightness moved ...
    assert (ratio - 1).abs().max() < strength * 1.05 + 0.02  # ... by at most the strength
    # geometry untouched: where the input is brighter, so is the output
    flat_in, flat_out = x[0].mean(0).flatten(), out[0].mean(0).flatten()
    order = torch.argsort(flat_in)
    assert torch.corrcoef(torch.stack([flat_in[order], flat_out[order]]))[0, 1] > 0.9
