"""Benchmark of the built-in world: oracle accuracy, legibility screening, render speed and
memory, and how the simulated crowd's agreement depends on the true difference.

    python benchmarks/synth_world.py [--images 2000] [--render 10000] [--pairs 300] [--out F]

Prints progress to stderr and one JSON object as the last line of stdout.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
from scipy.stats import spearmanr

from outpool.annotate import CrowdConfig, PairRequest, SimulatedCrowd
from outpool.bench import emit, log, machine, parser, peak_rss_mb
from outpool.synth import ATTRIBUTE_NAMES, Nuisance, PixelOracle, render
from outpool.synth.corrupt import CORRUPTIONS
from outpool.synth.world import random_pairs

DIFF_BINS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 1.0)


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--images", type=int, default=2000, help="renders for oracle accuracy")
    p.add_argument("--render", type=int, default=10000, help="renders for speed and memory")
    p.add_argument("--pairs", type=int, default=300, help="crowd pairs per attribute")
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()

    log(f"rendering {args.render} images for speed and memory ...")
    attrs = rng.uniform(0, 1, (args.render, len(ATTRIBUTE_NAMES))).astype(np.float32)
    nuisance = Nuisance.sample(rng, args.render)
    render(attrs[:500], nuisance.subset(slice(0, 500)))  # warm-up
    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    render(attrs, nuisance, seed=args.seed)
    render_s = time.perf_counter() - t0
    rss_render = peak_rss_mb()

    log(f"measuring {args.images} renders with the pixel oracle (nuisances on) ...")
    truth = rng.uniform(0, 1, (args.images, len(ATTRIBUTE_NAMES))).astype(np.float32)
    images = render(truth, Nuisance.sample(rng, args.images), seed=args.seed + 1)
    oracle = PixelOracle(progress=True)
    oracle.assess(images[:8])  # calibration happens once, outside the timing
    t0 = time.perf_counter()
    values, legibility = oracle.assess(images)
    oracle_s = time.perf_counter() - t0
    spearman = {
        n: round(float(spearmanr(values[:, k], truth[:, k])[0]), 4)
        for k, n in enumerate(ATTRIBUTE_NAMES)
    }
    mae = {n: round(float(np.abs(values[:, k] - truth[:, k]).mean()), 4)
           for k, n in enumerate(ATTRIBUTE_NAMES)}  # fmt: skip

    log("legibility on renders and on corrupted images ...")
    n_bad = min(500, args.images)
    reject = {"real_renders": round(100 * float((legibility < 0.5).mean()), 2)}
    for name, corrupt in CORRUPTIONS.items():
        bad = corrupt(images[:n_bad], rng)
        reject[name] = round(100 * float((oracle.legibility(bad) < 0.5).mean()), 2)
    corrupted = [reject[name] for name in CORRUPTIONS]

    log("simulated crowd agreement by true difference ...")
    crowd_stats = crowd_by_difference(rng, images, truth, args.pairs)

    result = {
        "benchmark": "synth_world",
        "machine": machine(),
        "oracle_images": args.images,
        "oracle_spearman": spearman,
        "oracle_spearman_min": min(spearman.values()),
        "oracle_mean_abs_error": mae,
        "oracle_images_per_s": round(args.images / oracle_s, 1),
        "legibility_reject_pct": reject,
        "legibility_reject_corrupted_pct": round(float(np.mean(corrupted)), 2),
        "render_images": args.render,
        "render_images_per_s": round(args.render / render_s, 1),
        "render_peak_rss_mb": rss_render,
        "render_peak_rss_increase_mb": round(rss_render - rss_before, 1),
        "crowd_by_true_difference": crowd_stats,
        "seed": args.seed,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    emit(result, args.out)


def crowd_by_difference(
    rng: np.random.Generator, images: np.ndarray, truth: np.ndarray, per_attribute: int
) -> dict[str, dict[str, float]]:
    """The default crowd binned by |true difference|: agreement, accepted share, share labelled
    "equal", and how often an accepted more/less label points the right way."""
    a_idx, b_idx, attr = [], [], []
    for k, name in enumerate(ATTRIBUTE_NAMES):
        # half of the pairs fine-grained, so the small-difference bins are populated
        fa, fb = random_pairs(rng, truth[:, k], per_attribute // 2, fine_max=0.1)
        ca, cb = random_pairs(rng, truth[:, k], per_attribute - per_attribute // 2)
        a_idx += [*fa, *ca]
        b_idx += [*fb, *cb]
        attr += [name] * per_attribute
    a, b = np.array(a_idx), np.array(b_idx)
    cols = np.array([ATTRIBUTE_NAMES.index(n) for n in attr])
    diff = truth[a, cols] - truth[b, cols]
    request = PairRequest(
        ids=np.array([f"bench-{i:06d}" for i in range(len(a))]),
        attribute=np.array(attr),
        images_a=images[a],
        images_b=images[b],
    )
    result = SimulatedCrowd(PixelOracle(), CrowdConfig()).label(request)
    out: dict[str, dict[str, float]] = {}
    for lo, hi in itertools.pairwise(DIFF_BINS):
        m = (np.abs(diff) >= lo) & (np.abs(diff) < hi)
        accepted = m & (result.status == "accepted")
        ordered = accepted & (result.label != 0)
        correct = np.sign(diff[ordered]) == result.label[ordered]
        n = max(int(m.sum()), 1)
        out[f"{lo:.2f}-{hi:.2f}"] = {
            "pairs": int(m.sum()),
            "mean_agreement": round(float(result.agreement[m].mean()), 3) if m.any() else 0.0,
            "accepted_pct": round(100 * float(accepted.sum()) / n, 1),
            "labelled_equal_pct": round(100 * float((accepted & (result.label == 0)).sum()) / n, 1),
            "direction_correct_pct": round(100 * float(correct.mean()), 1) if correct.size else 0.0,
        }
    return out


if __name__ == "__main__":
    main()
