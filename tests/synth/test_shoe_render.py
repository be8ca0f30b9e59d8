"""The shoe model (profiles) and the renderer of the built-in world."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from outpool.synth import ATTRIBUTE_NAMES, Nuisance, render, shoe
from outpool.synth.oracle import _background

K = len(ATTRIBUTE_NAMES)


def _with(nu: Nuisance, **changes: object) -> Nuisance:
    """A copy of ``nu`` with some fields replaced (scalars broadcast to the batch)."""
    fields = {k: getattr(nu, k) for k in Nuisance.names()}
    for k, v in changes.items():
        fields[k] = np.broadcast_to(np.asarray(v, np.float32), (len(nu),)).copy()
    return Nuisance(**fields)


def _ring(width: int = 2) -> np.ndarray:
    m = np.zeros((64, 64), bool)
    m[:width], m[-width:], m[:, :width], m[:, -width:] = True, True, True, True
    return m


def _object_mask(attrs: np.ndarray, nu: Nuisance) -> np.ndarray:
    """(N, 64, 64) pixels the shoe covers: a noiseless render differs from its empty backdrop.

    The backdrop is the same photo with the shoe moved far off the canvas: background and
    lighting do not depend on the pose, so every pixel that differs belongs to the shoe.
    """
    quiet = _with(nu, noise_std=0.0)
    shot = render(attrs, quiet).astype(np.int16)
    empty = render(attrs, _with(quiet, shift_x=200.0)).astype(np.int16)
    return np.abs(shot - empty).max(axis=-1) > 0


@pytest.fixture(scope="module")
def random_batch() -> tuple[np.ndarray, Nuisance]:
    rng = np.random.default_rng(7)
    n = 500
    return rng.uniform(0, 1, (n, K)).astype(np.float32), Nuisance.sample(rng, n)


# ---- shapes, dtypes, determinism ------------------------------------------------------------


def test_render_shape_and_dtype(random_batch: tuple[np.ndarray, Nuisance]) -> None:
    attrs, nu = random_batch
    img = render(attrs[:9], nu.subset(slice(0, 9)), seed=1)
    assert img.shape == (9, 64, 64, 3)
    assert img.dtype == np.uint8
    # not degenerate: a light background and a darker object in every picture
    assert (img.reshape(9, -1).max(axis=1) > 180).all()
    assert (img.reshape(9, -1).min(axis=1) < 80).all()


def test_render_empty_batch() -> None:
    out = render(np.zeros((0, K), np.float32), Nuisance.neutral(0))
    assert out.shape == (0, 64, 64, 3)
    assert out.dtype == np.uint8


def test_same_seed_gives_identical_bytes(random_batch: tuple[np.ndarray, Nuisance]) -> None:
    attrs, nu = random_batch
    a = render(attrs[:50], nu.subset(slice(0, 50)), seed=3)
    b = render(attrs[:50], nu.subset(slice(0, 50)), seed=3)
    assert a.tobytes() == b.tobytes()


def test_noise_seed_changes_only_the_noise(random_batch: tuple[np.ndarray, Nuisance]) -> None:
    attrs, nu = random_batch
    sub = nu.subset(slice(0, 50))
    a = render(attrs[:50], sub, seed=3)
    b = render(attrs[:50], sub, seed=4)
    assert a.tobytes() != b.tobytes()
    # sensor noise is small (std <= 0.016): the two photos differ by a few levels only
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    assert diff.mean() < 4.0
    # the seed drives nothing else: without sensor noise it has no effect
    quiet = _with(sub, noise_std=0.0)
    assert np.array_equal(render(attrs[:50], quiet, seed=3), render(attrs[:50], quiet, seed=4))


def test_batch_size_does_not_change_the_result(random_batch: tuple[np.ndarray, Nuisance]) -> None:
    attrs, nu = random_batch
    sub = nu.subset(slice(0, 40))
    whole = render(attrs[:40], sub, seed=5)
    assert np.array_equal(whole, render(attrs[:40], sub, seed=5, batch_size=7))


def test_out_of_range_attributes_are_clipped() -> None:
    rng = np.random.default_rng(1)
    raw = rng.uniform(-0.8, 1.8, (20, K)).astype(np.float32)
    assert (raw < 0).any() and (raw > 1).any()
    nu = Nuisance.sample(rng, 20)
    assert np.array_equal(render(raw, nu, seed=2), render(np.clip(raw, 0, 1), nu, seed=2))


@pytest.mark.parametrize(
    "attrs",
    [
        np.zeros((4, K - 1), np.float32),  # a column missing
        np.zeros((4, K + 1), np.float32),  # a column too many
        np.zeros(K, np.float32),  # one shoe without the batch axis
        np.zeros((4, K, 1), np.float32),
    ],
    ids=["too-few-columns", "too-many-columns", "1d", "3d"],
)
def test_wrong_attribute_shape_raises(attrs: np.ndarray) -> None:
    with pytest.raises(ValueError, match="attrs must be"):
        render(attrs, Nuisance.neutral(4))


def test_nuisance_count_must_match() -> None:
    with pytest.raises(ValueError, match="3 nuisances for 4 images"):
        render(np.full((4, K), 0.5, np.float32), Nuisance.neutral(3))


# ---- attributes change the picture, nuisances do not change the shape -----------------------


@pytest.mark.parametrize("name", ATTRIBUTE_NAMES)
def test_each_attribute_visibly_changes_the_picture(name: str) -> None:
    k = ATTRIBUTE_NAMES.index(name)
    steps = np.linspace(0.0, 1.0, 6, dtype=np.float32)
    attrs = np.full((len(steps), K), 0.5, np.float32)
    attrs[:, k] = steps
    img = render(attrs, Nuisance.neutral(len(steps))).astype(np.int16)
    # every step of the sweep changes the picture...
    step_diff = np.abs(np.diff(img, axis=0)).reshape(len(steps) - 1, -1)
    assert (step_diff.max(axis=1) > 0).all()
    # ...and the full sweep changes it clearly: many pixels, by a visible amount
    changed = np.abs(img[-1] - img[0]).max(axis=-1) > 20
    assert changed.sum() >= 25, f"{name}: only {changed.sum()} pixels change visibly"


@pytest.mark.parametrize("name", ATTRIBUTE_NAMES)
def test_other_attributes_fixed_means_same_picture(name: str) -> None:
    """Changing one attribute and changing it back gives the same picture (no hidden state)."""
    k = ATTRIBUTE_NAMES.index(name)
    base = np.full((1, K), 0.5, np.float32)
    moved = base.copy()
    moved[0, k] = 0.9
    nu = Nuisance.neutral(1)
    a, b, c = render(base, nu), render(moved, nu), render(base, nu)
    assert not np.array_equal(a, b)
    assert np.array_equal(a, c)


def test_colorful_changes_colour_not_shape() -> None:
    k = ATTRIBUTE_NAMES.index("colorful")
    attrs = np.full((2, K), 0.5, np.float32)
    attrs[:, k] = (0.0, 1.0)
    nu = Nuisance.neutral(2)
    masks = _object_mask(attrs, nu)
    assert np.array_equal(masks[0], masks[1])
    img = render(attrs, nu).astype(np.float32) / 255
    chroma = img.max(-1) - img.min(-1)  # saturation grows on the upper
    assert chroma[1][masks[1]].mean() > chroma[0][masks[0]].mean() + 0.1


@pytest.mark.parametrize("name", ["tall", "heel"])
def test_total_height_increases_with_tall_and_heel(name: str) -> None:
    k = ATTRIBUTE_NAMES.index(name)
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, (20, K)).astype(np.float32)  # 20 random shoes...
    steps = np.linspace(0, 1, 11, dtype=np.float32)
    sweep = np.repeat(base, len(steps), 0)
    sweep[:, k] = np.tile(steps, len(base))  # ...each swept in one attribute
    h = shoe.total_height(sweep).reshape(len(base), len(steps))
    # monotone (a low shaft can hide behind a high vamp, so not strictly at every step)
    assert (np.diff(h, axis=1) >= -1e-4).all()
    assert (h[:, -1] - h[:, 0] > 5.0).all()  # canonical pixels: clearly taller
    # where the attribute shows (the back of the shoe) it rises strictly at every step
    window = shoe.COLLAR_WINDOW if name == "tall" else shoe.HEEL_WINDOW
    t = shoe.column_positions()
    cols = (t >= window[0]) & (t <= window[1])
    p = shoe.profiles(sweep, t)
    part = p.upper_top if name == "tall" else p.sole_bottom
    local = part[:, cols].mean(axis=1).reshape(len(base), len(steps))
    assert (np.diff(local, axis=1) > 0).all()


def test_profiles_depend_on_attributes_only() -> None:
    """``profiles`` is a function of (attrs, t): same inputs, same arrays; shapes (B, W)."""
    rng = np.random.default_rng(4)
    attrs = rng.uniform(0, 1, (5, K)).astype(np.float32)
    t = shoe.column_positions()
    p1, p2 = shoe.profiles(attrs, t), shoe.profiles(attrs.copy(), t.copy())
    for field in ("sole_bottom", "sole_top", "upper_top", "heel_block", "inside"):
        a, b = getattr(p1, field), getattr(p2, field)
        assert a.shape == (5, 64)
        assert a.dtype == np.float32
        assert np.array_equal(a, b)
    # the bands are ordered bottom to top where the shoe is
    inside = p1.inside > 0
    assert (p1.sole_bottom[inside] >= 0).all()
    assert (p1.sole_top[inside] > p1.sole_bottom[inside]).all()
    assert (p1.upper_top[inside] >= p1.sole_top[inside]).all()


def test_non_pose_nuisances_leave_the_silhouette_unchanged(
    random_batch: tuple[np.ndarray, Nuisance],
) -> None:
    """Background, lighting and materials change colours, never the shape that is drawn."""
    attrs, nu = random_batch
    n = 40
    posed = nu.subset(slice(0, n))
    other = Nuisance.sample(np.random.default_rng(99), n)
    # keep the pose, take everything else from ``other``
    pose = {k: getattr(posed, k) for k in ("rotation_deg", "scale", "shift_x", "shift_y")}
    restyled = _with(other, **pose)
    m1, m2 = _object_mask(attrs[:n], posed), _object_mask(attrs[:n], restyled)
    iou = (m1 & m2).sum(axis=(1, 2)) / (m1 | m2).sum(axis=(1, 2))
    assert iou.min() > 0.97
    # while a real change of shape moves it much more
    taller = attrs[:n].copy()
    taller[:, ATTRIBUTE_NAMES.index("tall")] = 1.0 - taller[:, ATTRIBUTE_NAMES.index("tall")]
    m3 = _object_mask(taller, posed)
    iou_shape = (m1 & m3).sum(axis=(1, 2)) / (m1 | m3).sum(axis=(1, 2))
    big = np.abs(taller[:, 3] - attrs[:n, 3]) > 0.5
    assert big.sum() >= 10
    assert iou_shape[big].max() < 0.97


# ---- framing: the background fit from the border must be valid ------------------------------


@pytest.mark.slow
def test_object_never_touches_the_border_random(random_batch: tuple[np.ndarray, Nuisance]) -> None:
    attrs, nu = random_batch
    masks = _object_mask(attrs, nu)
    assert masks.any(axis=(1, 2)).all()  # the check sees the shoe at all
    assert not masks[:, _ring(2)].any(), "a shoe reaches the 2-pixel border ring"
    # and so the border is plain background: a bilinear fit explains it to ~noise level
    resid = _background(render(attrs, nu, seed=1).astype(np.float32) / 255).resid
    assert resid.max() < 0.03


@pytest.mark.slow
def test_object_never_touches_the_border_extremes() -> None:
    """The largest shoes at the extremes of the sampled pose ranges still stay inside."""
    corners = np.array(list(itertools.product([0.0, 1.0], repeat=K)), np.float32)  # 64 shoes
    poses = np.array(list(itertools.product((-8.0, 8.0), (-3.0, 3.0), (-2.5, 2.5))), np.float32)
    attrs = np.repeat(corners, len(poses), 0)
    p = np.tile(poses, (len(corners), 1))
    nu = _with(
        Nuisance.neutral(len(attrs)),
        rotation_deg=p[:, 0],
        shift_x=p[:, 1],
        shift_y=p[:, 2],
        scale=1.0,  # the largest zoom Nuisance.sample draws
    )
    masks = _object_mask(attrs, nu)
    assert masks.any(axis=(1, 2)).all()
    assert not masks[:, _ring(2)].any()


def test_sampled_nuisances_stay_in_their_ranges() -> None:
    nu = Nuisance.sample(np.random.default_rng(0), 2000)
    assert len(nu) == 2000
    assert nu.as_array().shape == (2000, len(Nuisance.names()))
    assert np.abs(nu.rotation_deg).max() <= 8
    assert nu.scale.min() >= 0.84 and nu.scale.max() <= 1.0
    assert np.abs(nu.shift_x).max() <= 3 and np.abs(nu.shift_y).max() <= 2.5
    assert nu.noise_std.min() > 0
