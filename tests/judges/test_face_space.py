"""The face-space legibility check: accepts faces, rejects noise / blank / smear (and shoes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from face_images import fake_faces
from outpool.data.sources.lfw import load_lfw
from outpool.errors import ConfigError, DataError
from outpool.judges.face_space import FaceSpace, FaceSpaceConfig, screening_rates
from outpool.synth.corrupt import blank, noise, smear

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def fitted() -> tuple[FaceSpace, np.ndarray]:
    pixels, _ = fake_faces(260, seed=0)
    groups = np.array([f"p{i // 3}" for i in range(200)])
    return FaceSpace.fit(pixels[:200], groups), pixels[200:]


@pytest.mark.slow
def test_accepts_held_out_faces_and_rejects_corruptions(
    fitted: tuple[FaceSpace, np.ndarray],
) -> None:
    space, held_out = fitted
    rates = screening_rates(space, held_out, seed=3)
    assert rates["real_faces"] == 60
    assert rates["real_accepted_pct"] >= 95.0
    assert rates["noise_rejected_pct"] == 100.0
    assert rates["blank_rejected_pct"] == 100.0
    # drawn faces have less detail than photos (the real-data test below asks for 95%)
    assert rates["smear_rejected_pct"] >= 80.0
    assert rates["blur_1px_accepted_pct"] >= 80.0  # a slightly soft face is still a face


@pytest.mark.slow
def test_legibility_is_in_unit_range_and_half_at_the_bounds(
    fitted: tuple[FaceSpace, np.ndarray],
) -> None:
    space, held_out = fitted
    rng = np.random.default_rng(0)
    mixed = np.concatenate([held_out, noise(held_out, rng), smear(held_out, rng)])
    score = space.legibility(mixed)
    assert score.shape == (180,) and score.dtype == np.float32
    assert score.min() >= 0.0 and score.max() <= 1.0
    assert (score[:60] >= 0.5).mean() > (score[60:] >= 0.5).mean() + 0.9
    dist, det = space.features(mixed)
    # each criterion crosses 0.5 exactly at its bound
    at_bound = 0.5 + (space.distance_max - dist) / space.distance_spread
    np.testing.assert_allclose(at_bound[dist == space.distance_max], 0.5)
    assert ((score >= 0.5) == ((dist <= space.distance_max) & (det >= space.detail_min))).all()
    assert space.legibility(held_out[:0]).shape == (0,)


@pytest.mark.slow
def test_blank_frames_sit_inside_face_space_but_lack_detail(
    fitted: tuple[FaceSpace, np.ndarray],
) -> None:
    """Why there are two criteria: a flat frame looks like a very smooth average face."""
    space, held_out = fitted
    _, det = space.features(blank(held_out, np.random.default_rng(1)))
    assert (det < space.detail_min).all()
    dist_noise, _ = space.features(noise(held_out, np.random.default_rng(1)))
    assert (dist_noise > space.distance_max).all()


@pytest.mark.slow
def test_rejects_shoes(fitted: tuple[FaceSpace, np.ndarray]) -> None:
    from outpool.synth import Nuisance, render

    rng = np.random.default_rng(0)
    shoes = render(rng.uniform(0, 1, (40, 6)).astype(np.float32), Nuisance.sample(rng, 40), seed=0)
    assert (fitted[0].legibility(shoes) >= 0.5).mean() < 0.2


@pytest.mark.slow
def test_state_round_trip(fitted: tuple[FaceSpace, np.ndarray]) -> None:
    space, held_out = fitted
    again = FaceSpace.from_state(space.state())
    np.testing.assert_array_equal(again.legibility(held_out), space.legibility(held_out))
    assert again.config == space.config and again.faces == 200


def test_bad_inputs() -> None:
    pixels, _ = fake_faces(6, seed=0)
    with pytest.raises(DataError, match="at least 2 people"):
        FaceSpace.fit(pixels, np.array(["a"] * 6))
    with pytest.raises(DataError, match="groups for"):
        FaceSpace.fit(pixels, np.array(["a", "b"]))
    with pytest.raises(DataError, match="uint8"):
        FaceSpace.fit(pixels.astype(np.float32), np.array(["a", "b"] * 3))
    with pytest.raises(ConfigError, match="box"):
        FaceSpaceConfig(box=(0.8, 0.2))
    with pytest.raises(ConfigError, match="quantile"):
        FaceSpaceConfig(quantile=0.0)


@pytest.mark.slow
def test_real_lfw_faces() -> None:
    """Fitted on the ranker train+val faces (non-test), judged on the held-out test faces."""
    if not (SHARED / "lfw").exists():
        pytest.skip(f"real data not found at {SHARED / 'lfw'}")
    ds, _ = load_lfw(SHARED / "lfw", unscored=False)  # the user's image cache: decoded once
    fit = [ds.images[s] for s in ("train", "val")]
    space = FaceSpace.fit(
        np.concatenate([np.asarray(t.pixels) for t in fit]),
        np.concatenate([t.groups for t in fit]),
    )
    rates = screening_rates(space, np.asarray(ds.images["test"].pixels))
    assert rates["real_faces"] > 800
    assert rates["real_accepted_pct"] >= 97.0
    for kind in ("noise", "blank", "smear"):
        assert rates[f"{kind}_rejected_pct"] >= 95.0, kind
