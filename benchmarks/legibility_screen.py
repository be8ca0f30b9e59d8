"""How well does the legibility screen predict the pixel oracle's "illegible", before any label?

    python benchmarks/legibility_screen.py --generator RUN/generator.pt --seed S [--run DIR]
        [--n 2048] [--set key=value] [--gallery PNG]

Fits the screen (``outpool.creators.screen``) on world S's generator-training pictures (the
world the generator was trained on: ``benchmarks/generator.py --seed S``), draws ``--n`` random
samples as the generator's controllability check does, and compares the screen's verdicts with
the oracle's legibility, which the screen never sees. Reported: ROC AUC of the screen's score
for "illegible", the share of samples it passes, the legible share before and after, the share
of illegible samples it removes and of legible ones it loses, and the fit and
scoring times. Prints one JSON object as the last line.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from outpool import config
from outpool.bench import emit, log, machine, parser
from outpool.creators.screen import ScreenConfig, fit_screen
from outpool.data.metrics import roc_auc
from outpool.judges.generator_check import random_inputs, to_uint8
from outpool.models.generator import ConditionalVAE
from outpool.report.gallery import image_grid, save_gallery
from outpool.synth import PixelOracle, SynthConfig, build
from outpool.train.generator import load_generator


@torch.no_grad()
def samples(model: ConditionalVAE, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 64, 64, 3) uint8, commanded strengths (n, K)) of random samples."""
    y, u = random_inputs(model, n, seed)
    images = [to_uint8(model.sample(y[i : i + 256], u[i : i + 256])) for i in range(0, n, 256)]
    return np.concatenate(images), y.cpu().numpy()


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--generator", type=Path, required=True, help="a built-in-world generator.pt")
    p.add_argument("--n", type=int, default=2048, help="random samples judged")
    p.add_argument("--run", type=Path, help="keep (and reuse) the screen's run folder here")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="screen key=value")
    p.add_argument("--gallery", type=Path, help="write failed and passed samples to this PNG")
    args = p.parse_args()
    if not args.generator.is_file():
        p.error(f"--generator {args.generator} does not exist")
    cfg = config.load(ScreenConfig, None, args.overrides)
    started = time.perf_counter()
    model = load_generator(args.generator).eval()
    log(f"rendering world {args.seed} ...")
    table = build(SynthConfig(seed=args.seed)).dataset.images[cfg.table]
    if tuple(table.attributes) != model.attributes:
        p.error("the generator was not trained on the built-in world")
    with tempfile.TemporaryDirectory() as tmp:
        log("fitting the screen ...")
        t0 = time.perf_counter()
        screen = fit_screen(table, model, cfg, args.run or Path(tmp), progress=False)
        fit_s = time.perf_counter() - t0
    log(f"judging {args.n} random samples ...")
    images, y = samples(model, args.n, args.seed + 1)
    legible = PixelOracle(progress=False).assess(images)[1] >= 0.5
    t0 = time.perf_counter()
    score = screen.picture_scores(images, y)
    score_s = time.perf_counter() - t0
    passed = score <= screen.threshold
    illegible = ~legible

    def pct(part: np.ndarray, whole: np.ndarray) -> float | None:
        return round(100.0 * float(part.sum()) / float(whole.sum()), 1) if whole.any() else None

    result = {
        "benchmark": "legibility_screen",
        "machine": machine(),
        "generator": str(args.generator),
        "world_seed": args.seed,
        "samples": args.n,
        "screen_config": config.to_dict(cfg),
        "auc_illegible": round(roc_auc(score, illegible), 3),
        "passed_pct": pct(passed, np.ones_like(passed)),
        "legible_pct_before": pct(legible, np.ones_like(legible)),
        "legible_pct_after": pct(legible & passed, passed),
        "illegible_removed_pct": pct(illegible & ~passed, illegible),
        "legible_lost_pct": pct(legible & ~passed, legible),
        "fit_s": round(fit_s, 1),
        "score_pictures_per_s": round(args.n / score_s, 1),
        "threads": torch.get_num_threads(),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if args.gallery is not None:
        failed, kept = np.flatnonzero(~passed)[:24], np.flatnonzero(passed)[:24]
        page = image_grid(
            np.concatenate([images[failed], images[kept]]),
            columns=12,
            title=f"random samples: {len(failed)} the screen fails (first rows), then passes",
        )
        save_gallery(page, args.gallery)
    emit(result, args.out)


if __name__ == "__main__":
    main()
