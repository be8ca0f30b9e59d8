"""The generator: does y control what it draws (judged independently), and how fast?

    python benchmarks/generator.py [--config TOML] [--set key=value] [--generator generator.pt]
    python benchmarks/generator.py --seeds 0-9 [--run RUN] [--config TOML] [--set key=value]
    python benchmarks/generator.py --data lfw:ROOT [--crop F] [--config TOML] [--set key=value]

Built-in world (default): trains the default generator on the world's 4,000 generator-training
images (or loads ``--generator``; ``--seeds``: one generator per seed, reported per seed and as
worst / mean), then sweeps each attribute at fixed z and measures the images
with the pixel oracle; ``colour_recovery`` says whether reconstructions of unseen images keep
their colour (z must carry the hue of a shoe's upper, which no attribute names);
``colour_errors`` how large their colour errors are beside their grey ones (what the
luma/chroma likelihood's ``chroma_ratio`` bounds; LFW: on the test split's faces).

LFW (``--data lfw:ROOT``): the generator workflow of ``outpool train-generator`` on real faces.
A teacher (CNN on the ranker train+val splits' scores, eigenface legibility) is trained first as
the judge; a regressor trained on the generator split's scores labels the faces without scores;
the generator trains on both; the sweeps are measured by the teacher. The JSON adds the
regressor's quality on held-out generator-split people, the teacher's on the test split, and the
legibility check's acceptance of real test faces and rejection of noise / blank / smear.

Prints one JSON object as the last line.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from outpool import config
from outpool.bench import emit, eta_text, log, machine, parser, peak_rss_mb
from outpool.data.sources.lfw import load_lfw
from outpool.errors import OutpoolError
from outpool.fileio import atomic_path, json_text
from outpool.judges.generator_check import colour_error_share, colour_recovery, controllability
from outpool.judges.teacher import TeacherConfig, fit_teacher
from outpool.models.generator import ConditionalVAE
from outpool.synth import PixelOracle, SynthConfig, build
from outpool.train.generator import GeneratorTrainConfig, load_generator, train_generator
from outpool.workflows.generator_runs import train_generator_run


def speed(model: ConditionalVAE) -> dict[str, Any]:
    y = model.y_mean.repeat(512, 1)
    model.sample(y[:64])
    t0 = time.perf_counter()
    model.sample(y)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "sample_images_per_s": round(512 / (time.perf_counter() - t0), 1),
    }


def builtin(
    seed: int, cfg: GeneratorTrainConfig, run: Path | None, n_z: int, generator: Path | None
) -> dict[str, Any]:
    """Train on world ``seed`` (in ``run``, or a temporary folder) or load ``generator``, then
    judge it with the pixel oracle."""
    result: dict[str, Any] = {"seed": seed}
    log(f"rendering the built-in world (seed {seed}) ...")
    world = build(SynthConfig(seed=seed))
    dataset = world.dataset
    if generator is None:
        n_images = len(dataset.images["generator"])
        log(f"training the generator on {n_images} images ...")
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            model, summary = train_generator(dataset, cfg, run or Path(tmp) / "gen", progress=True)
            train_s = time.perf_counter() - t0
        result.update(
            train_images=n_images,
            train_epochs=summary["epochs"],
            train_wall_s=round(train_s, 1),
            train_images_per_s=round(n_images * summary["epochs"] / train_s, 1),
            config=config.to_dict(cfg),
        )
    else:
        model = load_generator(generator)
    result.update(speed(model))
    log("controllability: attribute sweeps judged by the pixel oracle ...")
    with torch.no_grad():
        check = controllability(model, PixelOracle(), n_z=n_z, seed=seed)
    result.update(check)
    # the ranker-test images (their true strengths): the generator never saw them
    ids, strengths = world.truth["test"]
    pixels = np.asarray(dataset.lookup(ids))
    result["colour_recovery"] = colour_recovery(model, pixels, strengths)
    result["colour_errors"] = colour_error_share(model, pixels, strengths)
    return result


def seeds_table(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Per seed and as min / mean over seeds: Spearman (the lowest attribute's), the share of
    sweep latents that miss (the highest attribute's), sample and sweep legibility."""
    rows = [
        {
            "seed": r["seed"],
            "spearman_min": r["spearman_min"],
            "latents_missed_max_pct": max(r["latents_missed_pct"].values()),
            "samples_legible_pct": r["samples_legible_pct"],
            "sweep_legible_min_pct": min(r["sweep_legible_pct"].values()),
            "train_wall_s": r.get("train_wall_s"),
        }
        for r in per_seed
    ]
    summary: dict[str, Any] = {"per_seed": rows}
    for key in (
        "spearman_min",
        "latents_missed_max_pct",
        "samples_legible_pct",
        "sweep_legible_min_pct",
    ):
        values = [r[key] for r in rows]
        if any(v is None for v in values):  # an attribute the judge could not measure
            summary[key] = {"worst": None, "mean": None}
            continue
        worst = max(values) if key == "latents_missed_max_pct" else min(values)
        summary[key] = {"worst": worst, "mean": round(float(np.mean(values)), 3)}
    return summary


def builtin_seeds(
    seeds: list[int], overrides: Any, cfg_file: Path | None, run: Path | None, n_z: int
) -> dict[str, Any]:
    """One generator per seed; a seed whose ``result.json`` is in ``run/seed_N`` is not run
    again, so an interrupted run resumes where it stopped."""
    per_seed = []
    started, trained = time.perf_counter(), 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            folder = (run or Path(tmp)) / f"seed_{seed}"
            done = folder / "result.json"
            if done.exists():
                log(f"seed {seed}: done before ({done})")
                per_seed.append(json.loads(done.read_text()))
                continue
            total = trained + len(seeds) - len(per_seed)  # this one and those still to come
            log(f"{eta_text(trained, total, started, time.perf_counter())} seed {seed}")
            trained += 1
            cfg = config.load(GeneratorTrainConfig, cfg_file, [f"seed={seed}", *overrides])
            result = builtin(seed, cfg, folder, n_z, None)
            with atomic_path(done) as out:
                out.write_text(json_text(result) + "\n")
            per_seed.append(result)
    return {"seeds": seeds, **seeds_table(per_seed), "runs": per_seed}


def lfw(
    args: Any, cfg: GeneratorTrainConfig, root: Path, run: Path, result: dict[str, Any]
) -> None:
    log(f"loading LFW from {root} ...")
    dataset, truth = load_lfw(root, seed=args.seed, crop=args.crop)
    teacher_cfg = config.load(TeacherConfig, None, args.teacher_overrides)
    t0 = time.perf_counter()
    teacher = fit_teacher(dataset, truth, run / "teacher", teacher_cfg, progress=True)
    teacher_s = time.perf_counter() - t0
    log("the generator workflow: pseudo-labels, training, galleries, controllability ...")
    summary = train_generator_run(
        dataset,
        cfg,
        run,
        judge=teacher,
        judge_record=teacher.record,
        check_latents=args.n_z,
    )
    pseudo = summary["pseudo_labels"]
    n_images = summary["train_images"]
    result.update(
        data=f"lfw:{root}",
        run=str(run),
        train_images=n_images,
        train_images_scored=pseudo["images_scored"],
        train_images_regressed=pseudo["images_regressed"],
        train_epochs=summary["epochs"],
        train_wall_s=summary["train_wall_s"],
        train_images_per_s=round(n_images * summary["epochs"] / summary["train_wall_s"], 1),
        config=config.to_dict(cfg),
        crop=args.crop,
        regressor={**pseudo["regressor"], "wall_s": summary["pseudo_labels_wall_s"]},
        teacher={**teacher.record, "wall_s": round(teacher_s, 1)},
    )
    model = load_generator(run / "generator.pt")
    result.update(speed(model))
    result.update(summary["controllability"])
    ids, scores = truth["test"]  # faces of people the generator never saw, with their scores
    result["colour_errors"] = colour_error_share(model, np.asarray(dataset.lookup(ids)), scores)


def parse_seeds(words: list[str], p: Any) -> list[int]:
    """``0 1 2`` or ``0-9`` (or both): the seeds in order, each once."""
    seeds: list[int] = []
    for word in words:
        first, dash, last = word.partition("-")
        try:
            span = range(int(first), int(last) + 1) if dash else [int(word)]
        except ValueError:
            p.error(f"--seeds takes whole numbers or ranges like 0-9, got {word!r}")
        seeds += [s for s in span if s not in seeds]
    if not seeds:
        p.error("--seeds names no seed")
    return seeds


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--config", type=Path, help="training config file (TOML), e.g. configs/...")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], help="training key=value"
    )
    p.add_argument(
        "--data",
        default="builtin",
        help="'builtin' (the built-in world, default) or lfw:ROOT (LFW in its official layout)",
    )
    p.add_argument("--generator", type=Path, help="evaluate this generator.pt instead of training")
    p.add_argument(
        "--n-z", type=int, default=64, help="latents per attribute sweep (x32 random samples)"
    )
    p.add_argument("--run", type=Path, help="keep the run folder here (default: temporary)")
    p.add_argument(
        "--seeds",
        nargs="+",
        help="built-in world: one generator per seed (e.g. 0 1 2, or 0-9), each on its own "
        "world; with --run, finished seeds are kept in RUN/seed_N and not run again",
    )
    p.add_argument(
        "--crop",
        type=float,
        default=1.0,
        help="LFW: keep this central fraction of each frame (0.6: the face fills the image)",
    )
    p.add_argument(
        "--teacher-set",
        dest="teacher_overrides",
        action="append",
        default=[],
        help="LFW teacher key=value",
    )
    args = p.parse_args()
    started = time.perf_counter()
    try:
        cfg = config.load(GeneratorTrainConfig, args.config, [f"seed={args.seed}", *args.overrides])
    except OutpoolError as exc:  # a bad file or --set: say which, before any work
        p.error(str(exc))
    result: dict[str, object] = {"benchmark": "generator", "machine": machine()}
    if not 0.0 < args.crop <= 1.0:
        p.error(f"--crop must be a fraction in (0, 1] of the frame, got {args.crop}")
    if args.seeds is not None and (args.data != "builtin" or args.generator is not None):
        p.error("--seeds is for training on the built-in world")
    if args.data == "builtin":
        if args.crop != 1.0:
            p.error("--crop is for LFW only (the built-in world's shoes fill their frame)")
        if args.seeds is not None:
            seeds = parse_seeds(args.seeds, p)
            result.update(builtin_seeds(seeds, args.overrides, args.config, args.run, args.n_z))
        else:
            result.update(builtin(args.seed, cfg, args.run, args.n_z, args.generator))
    elif args.data.startswith("lfw:"):
        if args.generator is not None:
            p.error("--generator is for the built-in world only")
        root = Path(args.data.partition(":")[2])
        if args.run is not None:
            lfw(args, cfg, root, args.run, result)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                lfw(args, cfg, root, Path(tmp) / "run", result)
    else:
        p.error(f"--data must be 'builtin' or lfw:ROOT, got {args.data!r}")
    result["threads"] = torch.get_num_threads()
    result["peak_rss_mb"] = peak_rss_mb()
    result["wall_s"] = round(time.perf_counter() - started, 1)
    emit(result, args.out)


if __name__ == "__main__":
    main()
