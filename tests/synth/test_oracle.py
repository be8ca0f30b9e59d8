"""The pixel oracle: attribute values and legibility measured from pixels alone."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from outpool.synth import ATTRIBUTE_NAMES, Nuisance, PixelOracle, corrupt, render
from outpool.synth.oracle import LEGIBLE

K = len(ATTRIBUTE_NAMES)
N = 400


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    return np.random.default_rng(2024).uniform(0, 1, (N, K)).astype(np.float32)


@pytest.fixture(scope="module")
def photos(truth: np.ndarray) -> np.ndarray:
    """Renders of ``truth`` with every nuisance on (pose, background, light, material, noise)."""
    return render(truth, Nuisance.sample(np.random.default_rng(11), N), seed=12)


@pytest.fixture(scope="module")
def assessed(oracle: PixelOracle, photos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return oracle.assess(photos)


# ---- accuracy ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ATTRIBUTE_NAMES)
def test_spearman_with_truth(
    name: str, truth: np.ndarray, assessed: tuple[np.ndarray, np.ndarray]
) -> None:
    k = ATTRIBUTE_NAMES.index(name)
    values = assessed[0][:, k]
    assert np.isfinite(values).all()
    rho = spearmanr(values, truth[:, k])[0]
    assert rho >= 0.95, f"{name}: Spearman {rho:.3f}"


def test_values_are_in_attribute_units(
    truth: np.ndarray, assessed: tuple[np.ndarray, np.ndarray]
) -> None:
    values = assessed[0]
    assert values.shape == (N, K)
    assert values.min() >= 0.0 and values.max() <= 1.0
    # calibrated: not just the right order but the right level
    assert np.abs(values - truth).mean(axis=0).max() < 0.06


@pytest.mark.slow
def test_nuisance_invariance(
    oracle: PixelOracle,
    truth: np.ndarray,
    photos: np.ndarray,
    assessed: tuple[np.ndarray, np.ndarray],
) -> None:
    """The same shoes photographed differently measure (nearly) the same."""
    n = 200
    again = render(truth[:n], Nuisance.sample(np.random.default_rng(77), n), seed=78)
    v1, v2 = assessed[0][:n], oracle.measure(again)
    mad = np.abs(v1 - v2).mean(axis=0)
    assert (mad < 0.06).all(), dict(zip(ATTRIBUTE_NAMES, mad.round(3).tolist(), strict=True))
    # other shoes differ far more than that: the agreement is not a constant output
    assert (np.abs(v1 - assessed[0][n : 2 * n]).mean(axis=0) > 0.15).all()


# ---- legibility ----------------------------------------------------------------------------


def test_renders_are_legible(assessed: tuple[np.ndarray, np.ndarray]) -> None:
    legibility = assessed[1]
    assert legibility.shape == (N,)
    assert legibility.min() >= 0.0 and legibility.max() <= 1.0
    assert (legibility >= LEGIBLE).mean() >= 0.98


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(corrupt.CORRUPTIONS))
def test_corrupted_images_are_illegible(kind: str, oracle: PixelOracle, photos: np.ndarray) -> None:
    bad = corrupt.CORRUPTIONS[kind](photos[:100], np.random.default_rng(5))
    assert bad.shape == (100, 64, 64, 3) and bad.dtype == np.uint8
    share = (oracle.legibility(bad) < LEGIBLE).mean()
    assert share >= 0.90, f"{kind}: only {share:.0%} judged illegible"


@pytest.mark.slow
def test_mild_blur_stays_legible(oracle: PixelOracle, photos: np.ndarray) -> None:
    """Decoder outputs are blurry; a slight blur must not make the shoe illegible."""
    soft = corrupt.smear(photos[:200], np.random.default_rng(0), sigma=1.0)
    assert not np.array_equal(soft, photos[:200])
    assert (oracle.legibility(soft) >= LEGIBLE).mean() >= 0.90


# ---- API -----------------------------------------------------------------------------------


def test_assess_matches_measure_and_legibility(oracle: PixelOracle, photos: np.ndarray) -> None:
    sub = photos[:30]
    values, legibility = oracle.assess(sub)
    assert values.shape == (30, K) and legibility.shape == (30,)
    assert np.array_equal(values, oracle.measure(sub))
    assert np.array_equal(legibility, oracle.legibility(sub))


def test_assess_does_not_depend_on_chunking(
    photos: np.ndarray, assessed: tuple[np.ndarray, np.ndarray]
) -> None:
    values, legibility = PixelOracle(chunk=7).assess(photos[:30])
    np.testing.assert_allclose(values, assessed[0][:30], atol=1e-6)
    np.testing.assert_allclose(legibility, assessed[1][:30], atol=1e-6)


def test_assess_empty_batch(oracle: PixelOracle) -> None:
    values, legibility = oracle.assess(np.zeros((0, 64, 64, 3), np.uint8))
    assert values.shape == (0, K)
    assert legibility.shape == (0,)


@pytest.mark.parametrize(
    "shape",
    [(64, 64, 3), (2, 32, 32, 3), (2, 64, 64, 4), (2, 64, 64), (2, 3, 64, 64)],
    ids=["no-batch-axis", "small", "rgba", "grey", "channels-first"],
)
def test_assess_rejects_bad_shapes(oracle: PixelOracle, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\(N, 64, 64, 3\)"):
        oracle.assess(np.zeros(shape, np.uint8))


def test_oracle_is_deterministic(oracle: PixelOracle, photos: np.ndarray) -> None:
    a = oracle.assess(photos[:20])
    b = PixelOracle().assess(photos[:20].copy())
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_oracle_attributes_follow_the_world() -> None:
    assert PixelOracle.attributes == ATTRIBUTE_NAMES
