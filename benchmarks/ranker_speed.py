"""Speed and memory of the DeepSTN ranker at 64 px: training pairs/s and inference images/s.

    python benchmarks/ranker_speed.py [--batch 25] [--steps 30] [--device auto|cpu|cuda|all]

Runs on the CPU, and on the GPU too when one is present (``--device all``, the default).
Prints progress to stderr and one JSON object as the last line of stdout.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from outpool.bench import emit, log, machine, parser, peak_rss_mb
from outpool.models.ranker import DeepSTN, RankerConfig
from outpool.train.evaluate import score_images
from outpool.train.loop import optimise
from outpool.train.ranker import (
    PairData,
    RankerTrainConfig,
    make_optimizer,
    rank_batch,
    ranker_objective,
)


def measure(device: torch.device, batch: int, steps: int, seed: int) -> dict[str, float]:
    cfg = RankerTrainConfig(batch_size=batch, seed=seed, device=str(device))
    torch.manual_seed(seed)
    model = DeepSTN(RankerConfig()).to(device)
    model.set_stage("full")  # the heavier stage: crop and global streams
    rng = np.random.default_rng(seed)
    n = 512
    pixels = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    data = PairData.from_arrays(
        pixels,
        rng.integers(0, n, batch * (steps + 5)),
        rng.integers(0, n, batch * (steps + 5)),
        rng.integers(0, 2, batch * (steps + 5)).astype(np.float32),
        np.ones(batch * (steps + 5), np.float32),
    )
    optimizer = make_optimizer(model, cfg)
    objective = ranker_objective(model, cfg, device)

    def step(raw: tuple[np.ndarray, ...]) -> None:
        optimise(optimizer, objective.loss, rank_batch(raw, device, cfg))

    batches = list(data.batches(0, size=batch, seed=seed))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for b in batches[:5]:  # warm-up (kernel selection, allocator)
        step(b)
    sync(device)
    t0 = time.perf_counter()
    for b in batches[5 : 5 + steps]:
        step(b)
    sync(device)
    train_s = time.perf_counter() - t0
    images = np.repeat(pixels, 4, axis=0)
    score_images(model, images[:256], device=device)
    sync(device)
    t0 = time.perf_counter()
    score_images(model, images, device=device)
    sync(device)
    infer_s = time.perf_counter() - t0
    out = {
        "train_pairs_per_s": round(batch * steps / train_s, 1),
        "inference_images_per_s": round(len(images) / infer_s, 1),
        "peak_rss_mb": peak_rss_mb(),
    }
    if device.type == "cuda":
        out["peak_gpu_mem_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--batch", type=int, default=25, help="pairs per training step")
    p.add_argument("--steps", type=int, default=30, help="timed training steps")
    p.add_argument("--device", default="all", help="auto, cpu, cuda or all")
    args = p.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if args.device == "auto":
        devices = devices[-1:]
    elif args.device != "all":
        devices = [args.device]
    result: dict[str, object] = {"benchmark": "ranker_speed", "machine": machine()}
    result["batch_pairs"] = args.batch
    result["image_px"] = 64
    result["inference_batch"] = 256
    started = time.perf_counter()
    for d in devices:
        log(f"measuring on {d} ...")
        result[d] = measure(torch.device(d), args.batch, args.steps, args.seed)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    emit(result, args.out)


if __name__ == "__main__":
    main()
