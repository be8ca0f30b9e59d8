"""A fake ``Judge`` so the annotator tests do not depend on the synthetic world."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from outpool.annotate import PairRequest


class ChannelJudge:
    """ "red" = mean red channel / 255, "green" likewise; blank (all-zero) images are
    illegible (0.0), any other image fully legible (1.0)."""

    attributes = ("red", "green")

    def assess(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values = images[..., :2].reshape(len(images), -1, 2).mean(axis=1) / 255.0
        legible = (images.reshape(len(images), -1).max(axis=1) > 0).astype(np.float64)
        return values, legible


def solid(red: np.ndarray, green: int = 128) -> np.ndarray:
    """(N, 64, 64, 3) uint8 one-colour images; red level per image, a fixed green and blue."""
    red = np.asarray(red)
    out = np.zeros((len(red), 64, 64, 3), dtype=np.uint8)
    out[..., 0] = red[:, None, None]
    out[..., 1] = green
    out[..., 2] = 7
    return out


def _make_request(red_a: np.ndarray, red_b: np.ndarray, prefix: str = "p") -> PairRequest:
    """Pairs on "red" whose true difference is (red_a - red_b) / 255."""
    n = len(red_a)
    return PairRequest(
        ids=np.array([f"{prefix}{i:05d}" for i in range(n)]),
        attribute=np.full(n, "red"),
        images_a=solid(red_a),
        images_b=solid(red_b),
    )


MakeRequest = Callable[..., PairRequest]


@pytest.fixture
def judge() -> ChannelJudge:
    return ChannelJudge()


@pytest.fixture
def make_request() -> MakeRequest:
    return _make_request


@pytest.fixture
def random_pairs() -> tuple[np.ndarray, np.ndarray]:
    """2000 red levels (a, b) with |true difference| spread over [0, 0.24]."""
    rng = np.random.default_rng(1)
    red_a = rng.integers(60, 196, 2000)  # b stays inside 0..255
    red_b = red_a + rng.integers(-60, 61, 2000)
    return red_a, red_b
