"""The generator: does y control what it draws (judged by the pixel oracle), and how fast?

    python benchmarks/generator.py [--set key=value] [--generator generator.pt]

Trains the default generator on the built-in world's 4,000 generator-training images (or loads
``--generator``), then sweeps each attribute at fixed z and measures the images with the pixel
oracle. Prints one JSON object as the last line.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from outpool import config
from outpool.bench import emit, log, machine, parser, peak_rss_mb
from outpool.generator_check import controllability
from outpool.synth import PixelOracle, SynthConfig, build
from outpool.train.generator import GeneratorTrainConfig, load_generator, train_generator


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], help="training key=value"
    )
    p.add_argument("--generator", type=Path, help="evaluate this generator.pt instead of training")
    p.add_argument("--n-z", type=int, default=32, help="latents per attribute sweep")
    args = p.parse_args()
    started = time.perf_counter()
    cfg = config.load(GeneratorTrainConfig, None, [f"seed={args.seed}", *args.overrides])
    result: dict[str, object] = {"benchmark": "generator", "machine": machine()}
    if args.generator is None:
        log("rendering the built-in world ...")
        dataset = build(SynthConfig(seed=args.seed)).dataset
        n_images = len(dataset.images["generator"])
        log(f"training the generator on {n_images} images ...")
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            model, summary = train_generator(dataset, cfg, Path(tmp) / "gen", progress=True)
            train_s = time.perf_counter() - t0
        result.update(
            train_images=n_images,
            train_epochs=summary["epochs"],
            train_wall_s=round(train_s, 1),
            train_images_per_s=round(n_images * summary["epochs"] / train_s, 1),
            config=config.to_dict(cfg),
        )
    else:
        model = load_generator(args.generator)
    result["parameters"] = sum(p.numel() for p in model.parameters())
    y = model.y_mean.repeat(512, 1)
    model.sample(y[:64])
    t0 = time.perf_counter()
    model.sample(y)
    result["sample_images_per_s"] = round(512 / (time.perf_counter() - t0), 1)
    log("controllability: attribute sweeps judged by the pixel oracle ...")
    with torch.no_grad():
        check = controllability(model, PixelOracle(), n_z=args.n_z, seed=args.seed)
    result.update(check)
    result["peak_rss_mb"] = peak_rss_mb()
    result["wall_s"] = round(time.perf_counter() - started, 1)
    emit(result, args.out)


if __name__ == "__main__":
    main()
