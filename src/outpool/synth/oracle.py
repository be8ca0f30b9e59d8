"""The pixel oracle of the built-in world: measures every attribute from ANY image.

It never sees the renderer's parameters, only pixels, so it can judge generated images as well as
rendered ones (that is what lets the simulated crowd label created pairs honestly). The steps:

1. background: a plane per colour channel fitted to the image border (background colour,
   gradient and lighting fall-off are all close to planar);
2. pose: the ground line is the longest edge of the lower convex hull of the object (a shoe
   stands on its heel and its forefoot), which gives the rotation; the back and the toe tip give
   the position and scale;
3. the image is resampled into the shoe's canonical frame at 2x, where each attribute is a
   height (or a colour) measured at the columns that show it, with sub-pixel edge crossings
   between the three colours present: background, upper and sole;
4. each raw measurement is mapped to attribute units by quantile matching against renders with
   known values (calibrated once per process, from a fixed seed);
5. legibility: the shoe model is re-drawn from the measured attributes and compared with what
   is there (soft IoU), with gates for a clean background and a single object. Noise, blanks,
   smeared blobs and two shoes are not explained by one shoe and score low.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

from outpool.bench import progress_bar
from outpool.fileio import atomic_path, default_cache_dir
from outpool.synth import renderer, shoe
from outpool.synth.renderer import Nuisance, render

SUPERSAMPLE = 2  # canonical frame sampled at 2 samples per canonical pixel
GROUND_ROW = 52.0  # ground line of the oracle's canonical frame
OBJECT_CONTRAST = 0.09  # RGB distance from the background that counts as object
LEGIBLE = 0.5  # legibility at or above this: a recognisable shoe
CALIBRATION_SEED, CALIBRATION_RENDERS = 12345, 3000


@dataclass(frozen=True)
class Analysis:
    """What the oracle sees in a batch: raw measurements and the canonical maps behind them."""

    raw: np.ndarray  # (B, 6) canonical pixels (heights), area fraction (toe), saturation
    obj: np.ndarray  # (B, H, W) canonical object fraction
    ok: np.ndarray  # (B,) a pose and the material colours could be found
    gate: np.ndarray  # (B,) 1.0 when background, object size and object count are plausible


def _border_mask(size: int = shoe.CANVAS, width: int = 2) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[:width], m[-width:], m[:, :width], m[:, -width:] = True, True, True, True
    return m


@functools.cache
def _plane_basis() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares projector from border pixels to plane coefficients, and the full basis."""
    c = (np.arange(shoe.CANVAS) + 0.5) / shoe.CANVAS * 2 - 1
    yy, xx = np.meshgrid(c, c, indexing="ij")
    basis = np.stack([np.ones_like(xx), xx, yy, xx * yy], -1).reshape(-1, 4)  # (HW, 4)
    border = _border_mask().reshape(-1)
    return np.linalg.pinv(basis[border]).astype(np.float32), basis.astype(np.float32), border


@dataclass(frozen=True)
class Background:
    """Per image, a bilinear surface per colour channel fitted to the border pixels."""

    coef: np.ndarray  # (B, 4, 3) weights of 1, x, y, xy (x, y in [-1, 1])
    resid: np.ndarray  # (B,) mean absolute residual on the border

    def at(self, points: np.ndarray) -> torch.Tensor:
        """Background colours at pixel coordinates ``points`` (B, H, W, 2) -> (B, 3, H, W)."""
        pts = torch.from_numpy(np.ascontiguousarray(points, np.float32)) / (shoe.CANVAS / 2) - 1
        x, y = pts[..., 0][:, None], pts[..., 1][:, None]  # (B, 1, H, W)
        c = torch.from_numpy(self.coef)[..., None, None]  # (B, 4, 3, 1, 1)
        return c[:, 0] + c[:, 1] * x + c[:, 2] * y + c[:, 3] * (x * y)


def _background(img: np.ndarray) -> Background:
    """Fit the background of images (B, 64, 64, 3) in [0, 1] from their border."""
    pinv, basis, border = _plane_basis()
    flat = img.reshape(len(img), -1, 3)
    coef = np.einsum("kp,bpc->bkc", pinv, flat[:, border])  # (B, 4, 3)
    fit = np.einsum("pk,bkc->bpc", basis[border], coef)
    resid = np.abs(flat[:, border] - fit).mean(axis=(1, 2))
    return Background(coef=coef.astype(np.float32), resid=resid)


def _lower_hull_angle(xs: np.ndarray, ys: np.ndarray) -> float:
    """Angle (radians) of the longest edge of the lower convex hull of points (y down)."""
    pts = sorted(zip(xs.tolist(), ys.tolist(), strict=True))
    hull: list[tuple[float, float]] = []
    for p in pts:  # monotone chain, keeping the hull that is lowest on screen (max y)
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    if len(hull) < 2:
        return 0.0
    h = np.asarray(hull)
    d = np.diff(h, axis=0)
    k = int(np.argmax(d[:, 0]))
    return float(np.arctan2(d[k, 1], d[k, 0]))


def _edge_bottoms(obj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel bottom edge of the object in each column: (x, y) of columns that have one."""
    h = obj.shape[0]
    solid = obj >= 0.5
    has = solid.any(axis=0)
    cols = np.nonzero(has)[0]
    last = h - 1 - np.argmax(solid[::-1, cols], axis=0)  # last solid row per column
    below = np.where(last + 1 < h, obj[np.minimum(last + 1, h - 1), cols], 0.0)
    y = last + np.clip(obj[last, cols], 0, 1) + np.clip(below, 0, 1)
    return cols + 0.5, y


def _pose(obj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image: (angle, back_x, tip_x, ground_y) in the de-rotated frame, and a valid flag."""
    out = np.zeros((len(obj), 4), np.float32)
    ok = np.zeros(len(obj), bool)
    centre = shoe.CANVAS / 2
    for i, o in enumerate(obj):
        xs, ys = _edge_bottoms(o)
        if len(xs) < 8:
            continue
        angle = _lower_hull_angle(xs, ys)
        rows, cols = np.nonzero(o >= 0.5)
        px, py = cols + 0.5 - centre, rows + 0.5 - centre
        c, s = np.cos(angle), np.sin(angle)
        xr = c * px + s * py  # de-rotated x about the centre
        bx, by = xs - centre, ys - centre
        ground = float(np.max(-s * bx + c * by))
        out[i] = (angle, xr.min() - 0.5, xr.max() + 0.5, ground)
        ok[i] = True
    return out, ok


def _canonical_points(pose: np.ndarray) -> np.ndarray:
    """Image coordinates (B, H, W, 2) of the oracle's canonical samples, in pixel units."""
    n = shoe.CANVAS * SUPERSAMPLE
    c = (np.arange(n, dtype=np.float32) + 0.5) / SUPERSAMPLE
    v, u = np.meshgrid(c, c, indexing="ij")  # canonical (row, column) in canonical pixels
    angle, back, tip, ground = (pose[:, k, None, None] for k in range(4))
    k = (tip - back) / shoe.LENGTH  # image pixels per canonical pixel
    xr = back + (u - shoe.BACK) * k  # de-rotated image frame, relative to the centre
    yr = ground - (GROUND_ROW - v) * k
    cos, sin = np.cos(angle), np.sin(angle)
    centre = shoe.CANVAS / 2
    return np.stack([cos * xr - sin * yr + centre, sin * xr + cos * yr + centre], -1)


def _sample(img: torch.Tensor, points: np.ndarray) -> torch.Tensor:
    """Bilinear samples of img (B, C, 64, 64) at pixel coordinates points (B, H, W, 2)."""
    grid = torch.from_numpy(points.astype(np.float32) / (shoe.CANVAS / 2) - 1)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _fraction(p: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> np.ndarray:
    """Where each pixel of p (B, 3, H, W) lies from colour lo (0) to colour hi (1): (B, H, W)."""
    d = hi - lo
    f = ((p - lo) * d).sum(1) / (d * d).sum(1).clamp_min(1e-6)
    return f.clamp_(-0.5, 1.5).numpy()


def _crossing(f: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Sub-pixel index of the first sample where f (..., S) reaches ``threshold``.

    Returns NaN where it never does.
    """
    above = f >= threshold
    k = np.argmax(above, axis=-1)
    found = above.any(axis=-1)
    prev = np.take_along_axis(f, np.maximum(k - 1, 0)[..., None], -1)[..., 0]
    cur = np.take_along_axis(f, k[..., None], -1)[..., 0]
    frac = np.clip((threshold - prev) / np.where(cur - prev > 1e-6, cur - prev, 1.0), 0, 1)
    pos = np.where(k > 0, k - 1 + frac, 0.0)
    return np.where(found, pos, np.nan)


def _columns(window: tuple[float, float]) -> np.ndarray:
    t = shoe.column_positions(scale=SUPERSAMPLE)
    return np.nonzero((t >= window[0]) & (t <= window[1]))[0]


def _heights_from_top(f: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Height above ground of the first crossing scanning DOWN columns ``cols``: (B, C)."""
    pos = _crossing(f[:, :, cols].transpose(0, 2, 1))  # samples from the top
    return GROUND_ROW - pos / SUPERSAMPLE


def _heights_from_ground(f: np.ndarray, cols: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Height of the first crossing scanning UP from height ``start`` (B, C) in columns ``cols``."""
    n = f.shape[1]
    row0 = np.clip(np.round((GROUND_ROW - start) * SUPERSAMPLE).astype(int), 0, n - 1)  # (B, C)
    steps = np.arange(n)
    rows = np.clip(row0[..., None] - steps, 0, n - 1)  # (B, C, S) scanning upwards
    b = np.arange(len(f))[:, None, None]
    prof = f[b, rows, cols[None, :, None]]
    pos = _crossing(prof)
    return GROUND_ROW - (row0 + 0.5) / SUPERSAMPLE + pos / SUPERSAMPLE


def _nanmedian(x: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        bad = np.isnan(x).all(axis=1)
        out = np.nanmedian(np.where(np.isnan(x).all(axis=1, keepdims=True), 0.0, x), axis=1)
    return np.where(bad, np.nan, out)


def _materials(p: torch.Tensor, q: torch.Tensor, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colours (B, 3) of the sole (the darkest part of the object) and of the upper."""
    value = p.amax(1).numpy()  # the sole is dark in every channel; a saturated upper is not
    is_obj = ((p - q) ** 2).sum(1).sqrt().numpy() > 2 * OBJECT_CONTRAST
    colours = p.permute(0, 2, 3, 1).numpy()
    c_sole = np.zeros((len(value), 3), np.float32)
    c_upper = np.zeros((len(value), 3), np.float32)
    for i in range(len(value)):
        if is_obj[i].sum() < 20:
            ok[i] = False
            continue
        v, cols = value[i][is_obj[i]], colours[i][is_obj[i]]
        lo, hi = np.quantile(v, [0.02, 0.9])
        c_sole[i] = np.median(cols[v <= lo], axis=0)
        c_upper[i] = np.median(cols[v >= 0.5 * (lo + hi)], axis=0)
    return c_sole, c_upper


def _canonical_maps(
    img: torch.Tensor, bg: Background, pose: np.ndarray, c_sole: np.ndarray, c_upper: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical fractions (B, H, W): object vs background, sole vs background, sole vs upper."""
    pts = _canonical_points(pose)
    p, q = _sample(img, pts), bg.at(pts)
    cs = torch.from_numpy(c_sole)[:, :, None, None]
    cu = torch.from_numpy(c_upper)[:, :, None, None]
    f_sole = _fraction(p, q, cs)  # background 0 -> sole 1
    f_obj = np.maximum(_fraction(p, q, cu), f_sole)  # background 0 -> any material 1
    f_su = _fraction(p, cu, cs)  # upper 0 -> sole 1
    return f_obj, f_sole, f_su


def _refine(pose: np.ndarray, f_obj: np.ndarray, f_sole: np.ndarray) -> np.ndarray:
    """Move the back, tip and ground of ``pose`` onto the edges seen in the canonical frame."""
    cover = f_obj.max(axis=1)  # (B, W) how much of each column is object
    w = cover.shape[1]
    back = (_crossing(cover) + 0.5) / SUPERSAMPLE
    tip = (w - 1 - _crossing(cover[:, ::-1]) + 0.5) / SUPERSAMPLE
    cols = _columns((0.66, 0.9))
    start = np.full((len(pose), len(cols)), -3.0)
    ground = _nanmedian(_heights_from_ground(f_sole, cols, start))  # should be 0
    k = (pose[:, 2] - pose[:, 1]) / shoe.LENGTH
    out = pose.copy()
    out[:, 1] = pose[:, 1] + (back - shoe.BACK) * k
    out[:, 2] = pose[:, 1] + (tip - shoe.BACK) * k
    out[:, 3] = pose[:, 3] - ground * k
    bad = ~np.isfinite(out).all(axis=1)
    out[bad] = pose[bad]
    return out


def analyse(images: np.ndarray) -> Analysis:
    """Raw measurements of uint8 images (B, 64, 64, 3); see the module docstring."""
    img_hwc = np.asarray(images, np.float32) / 255.0
    b = len(img_hwc)
    bg = _background(img_hwc)
    img = torch.from_numpy(np.ascontiguousarray(img_hwc.transpose(0, 3, 1, 2)))
    centres = np.arange(shoe.CANVAS, dtype=np.float32) + 0.5
    grid = np.stack(np.meshgrid(centres, centres, indexing="xy"), -1)  # (64, 64, 2) as (x, y)
    bg_img = bg.at(np.broadcast_to(grid, (b, *grid.shape)))
    dist = ((img - bg_img) ** 2).sum(1).sqrt().numpy()
    smooth = ndi.uniform_filter(dist, size=(1, 3, 3))
    obj = np.clip(smooth / OBJECT_CONTRAST - 0.5, 0, 1)  # soft object mask for the pose
    pose, ok = _pose(np.where(smooth > OBJECT_CONTRAST, obj, 0.0))

    pts = _canonical_points(pose)
    c_sole, c_upper = _materials(_sample(img, pts), bg.at(pts), ok)
    f_obj, f_sole, f_su = _canonical_maps(img, bg, pose, c_sole, c_upper)
    pose = _refine(pose, f_obj, f_sole)  # the first pose is only good to about a pixel
    f_obj, f_sole, f_su = _canonical_maps(img, bg, pose, c_sole, c_upper)

    heel_cols, sole_cols = _columns(shoe.HEEL_WINDOW), _columns(shoe.SOLE_WINDOW)
    collar_cols, throat_cols = _columns(shoe.COLLAR_WINDOW), _columns(shoe.THROAT_WINDOW)
    below = np.full((b, 1), -3.0)
    lift = _heights_from_ground(f_sole, heel_cols, np.broadcast_to(below, (b, len(heel_cols))))
    bottom = _heights_from_ground(f_sole, sole_cols, np.broadcast_to(below, (b, len(sole_cols))))
    sole_top = _heights_from_top(f_su, sole_cols)
    sole_top = np.where(np.isnan(sole_top), bottom, sole_top)  # no sole seen: thickness 0

    def upper_height(cols: np.ndarray) -> np.ndarray:
        top, sole = _heights_from_top(f_obj, cols), _heights_from_top(f_su, cols)
        return top - np.where(np.isnan(sole), 0.0, sole)

    collar, throat = upper_height(collar_cols), upper_height(throat_cols)
    toe = np.nan_to_num(upper_height(_columns(shoe.TOE_WINDOW)), nan=0.0)
    toe_area = np.clip(toe, 0, None).mean(axis=1) / (shoe.TOE_BOX * shoe.LENGTH)
    mx, mn = c_upper.max(-1), c_upper.min(-1)
    saturation = (mx - mn) / np.maximum(mx, 1e-3)

    raw = np.stack(
        [
            _nanmedian(throat),  # open (larger throat = less open; calibration flips it)
            toe_area,  # pointy (smaller area = more pointed)
            _nanmedian(lift),  # heel
            _nanmedian(collar),  # tall
            saturation,  # colorful
            _nanmedian(sole_top - bottom),  # chunky
        ],
        axis=1,
    ).astype(np.float32)
    gate = _gates(smooth > OBJECT_CONTRAST, bg.resid, ok)
    return Analysis(raw=raw, obj=f_obj, ok=ok, gate=gate)


def _gates(mask: np.ndarray, resid: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """1.0 where the picture could hold exactly one shoe on a clean background, else 0.0."""
    area = mask.mean(axis=(1, 2))
    single = np.ones(len(mask), bool)
    for i, m in enumerate(mask):
        labels, n = ndi.label(m)
        if n > 1:
            sizes = np.sort(np.bincount(labels.ravel())[1:])[::-1]
            single[i] = sizes[1] < 0.03 * sizes[0]
    good = ok & single & (resid < 0.05) & (area > 0.05) & (area < 0.6)
    return good.astype(np.float32)


def redraw_iou(a: Analysis, attrs: np.ndarray) -> np.ndarray:
    """IoU of the observed canonical object with a shoe re-drawn from its measurements."""
    raw, obj, ok = a.raw, a.obj, a.ok
    attrs = np.nan_to_num(attrs, nan=0.5)
    p = shoe.profiles(attrs, shoe.column_positions(scale=SUPERSAMPLE))
    rows = (np.arange(obj.shape[1], dtype=np.float32) + 0.5) / SUPERSAMPLE
    height = GROUND_ROW - rows[None, :, None]  # (1, H, 1)

    def band(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return np.clip(
            (np.minimum(hi[:, None], height + 0.25) - np.maximum(lo[:, None], height - 0.25)) * 2,
            0,
            1,
        )

    shape = np.clip(
        (
            band(p.sole_bottom, p.upper_top)
            + band(np.zeros_like(p.sole_bottom), p.sole_bottom) * p.heel_block[:, None]
        )
        * p.inside[:, None],
        0,
        1,
    )
    # Hard masks at the half-way level: edges blurred by the camera (or a decoder) stay put.
    seen, drawn = obj >= 0.5, shape >= 0.5
    inter = (seen & drawn).sum(axis=(1, 2))
    union = (seen | drawn).sum(axis=(1, 2))
    iou = inter / np.maximum(union, 1e-6)
    return np.where(ok & np.isfinite(raw).all(axis=1), iou, 0.0).astype(np.float32)


def _calibration_file(seed: int, n: int) -> Path:
    """Cache file of a calibration: keyed by the code that draws and measures shoes."""
    h = hashlib.sha256(f"{seed}-{n}-{np.__version__}".encode())
    for module in (shoe, renderer, sys.modules[__name__]):
        h.update(Path(str(module.__file__)).read_bytes())
    return default_cache_dir() / f"oracle-calibration-{h.hexdigest()[:16]}.npz"


@functools.cache
def _calibration(
    seed: int = CALIBRATION_SEED, n: int = CALIBRATION_RENDERS
) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles (Q, 6) of raw measurements and of true values on renders with known values.

    Quantile matching keeps the oracle monotone in each raw measurement and puts its output in
    attribute units, so the simulated crowd's noise and "equal" band mean the same everywhere.
    Computing it takes tens of seconds on a small CPU, so it is cached on disk, keyed by the
    code of the shoe model, the renderer and this module.
    """
    path = _calibration_file(seed, n)
    shape = (201, len(shoe.ATTRIBUTE_NAMES))
    try:
        with np.load(path) as saved:
            raw_q, true_q = saved["raw_q"], saved["true_q"]
        if raw_q.shape == true_q.shape == shape and np.isfinite(true_q).all():
            return raw_q.astype(np.float32), true_q.astype(np.float32)
    except Exception:  # absent, truncated or not an npz (zipfile, EOF, pickle errors...)
        pass  # compute it again; a damaged cache must never break the oracle
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0, 1, (n, len(shoe.ATTRIBUTE_NAMES))).astype(np.float32)
    # once per machine (then cached): the bars say how long it takes
    images = render(truth, Nuisance.sample(rng, n), seed=seed, progress="oracle calibration 1/2")
    starts = progress_bar(range(0, n, 500), "oracle calibration 2/2", unit="batch")
    raw = np.concatenate([analyse(images[i : i + 500]).raw for i in starts])
    qs = np.linspace(0, 1, 201)
    raw_q = np.stack([np.nanquantile(raw[:, k], qs) for k in range(raw.shape[1])], 1)
    true_q = np.stack([np.quantile(truth[:, k], qs) for k in range(raw.shape[1])], 1)
    for k in range(raw.shape[1]):
        ok = np.isfinite(raw[:, k])
        if np.corrcoef(raw[ok, k], truth[ok, k])[0, 1] < 0:  # measures that fall as it rises
            true_q[:, k] = true_q[::-1, k]
    raw_q, true_q = raw_q.astype(np.float32), true_q.astype(np.float32)
    # a read-only cache only costs time
    with contextlib.suppress(OSError), atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, raw_q=raw_q, true_q=true_q)
    return raw_q, true_q


def calibrated(raw: np.ndarray) -> np.ndarray:
    """Map raw measurements (B, 6) to attribute units in [0, 1] by quantile matching."""
    raw_q, true_q = _calibration()
    out = np.empty_like(raw)
    for k in range(raw.shape[1]):
        order = np.arange(len(raw_q)) * 1e-6  # strictly increasing knots for np.interp
        out[:, k] = np.interp(raw[:, k], raw_q[:, k] + order, true_q[:, k])
    return out


class PixelOracle:
    """The world's judge: attribute values and legibility measured from pixels alone.

    Implements the annotators' ``Judge`` protocol. ``measure`` returns (N, 6) values in attribute
    units (columns in ``attributes`` order); ``legibility`` returns (N,) in [0, 1], >= 0.5 means
    a recognisable shoe.
    """

    attributes: tuple[str, ...] = shoe.ATTRIBUTE_NAMES

    def __init__(self, *, chunk: int = 256, progress: bool = False) -> None:
        self.chunk = chunk
        self.progress = progress

    def assess(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values (N, 6), legibility (N,)) of uint8 images (N, 64, 64, 3)."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != (shoe.CANVAS, shoe.CANVAS, 3):
            raise ValueError(f"images must be (N, 64, 64, 3) uint8, got {images.shape}")
        if (
            self.progress
            and not _calibration.cache_info().currsize
            and not _calibration_file(CALIBRATION_SEED, CALIBRATION_RENDERS).exists()
        ):
            print(
                "preparing the pixel oracle (the first time on a machine: ~30 s) ...",
                file=sys.stderr,
                flush=True,
            )
        values, legibility = [], []
        starts = range(0, len(images), self.chunk)
        bar = progress_bar(starts, "oracle" if self.progress else "", unit="chunk", leave=False)
        for start in bar:
            a = analyse(images[start : start + self.chunk])
            v = calibrated(a.raw)
            values.append(v)
            legibility.append(legibility_score(redraw_iou(a, v), a.gate))
        if not values:
            return np.zeros((0, len(self.attributes)), np.float32), np.zeros(0, np.float32)
        return np.concatenate(values), np.concatenate(legibility)

    def measure(self, images: np.ndarray) -> np.ndarray:
        return self.assess(images)[0]

    def legibility(self, images: np.ndarray) -> np.ndarray:
        return self.assess(images)[1]


IOU_LEGIBLE = 0.80  # the re-drawn shoe must explain this much of what is there


def legibility_score(iou: np.ndarray, gate: np.ndarray) -> np.ndarray:
    """Map the re-draw IoU to [0, 1] with ``LEGIBLE`` (0.5) exactly at ``IOU_LEGIBLE``."""
    score = np.clip(0.5 + (iou - IOU_LEGIBLE) / 0.2, 0.0, 1.0)
    return (score * gate).astype(np.float32)
