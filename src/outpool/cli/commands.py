"""The ``outpool`` command. Thin: parse, load configs, call the API, print one clear sentence on
error (never a traceback), exit non-zero.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from outpool import __version__, config
from outpool.annotate import CrowdConfig
from outpool.cli import annotate as cli_annotate
from outpool.cli import experiment as cli_experiment
from outpool.data import Dataset
from outpool.data.duplicates import CONFLICT_POLICIES, DUPLICATE_POLICIES
from outpool.data.open import open_dataset, open_dataset_with_truth, spec_source
from outpool.data.sources import LOADERS
from outpool.data.sources.images import FITS
from outpool.data.splits import leaks
from outpool.errors import ConfigError, DataError, OutpoolError, UnknownNameError
from outpool.fileio import check_output_dir, json_text
from outpool.judges import judge_settings
from outpool.rounds.protocols import WaitingForLabels
from outpool.synth import SynthConfig
from outpool.workflows.ranker_runs import MODELS

FIT_HELP = (
    "how a frame that is not square becomes square: center (the central square), top (the top "
    "square of a tall picture: portraits keep their heads), letterbox (the whole picture, padded)"
)
CONFIG_EXAMPLES = {  # a valid override per kind of config, for --help
    "creator": "epochs=10",
    "world": "train_pairs=100",
    "training": "epochs_full=10",
    "crowd": "noise=0.08",
    "generator": "epochs=5",
    "judge": "net.epochs=10",
    "experiment": "experiment.seeds=[0,1]",
}


def _add_config_args(p: argparse.ArgumentParser, what: str, prefix: str = "") -> None:
    """--config/--set (or --PREFIXconfig/--PREFIXset) for the ``what`` config."""
    dest = prefix.replace("-", "_")
    p.add_argument(
        f"--{prefix}config",
        dest=f"{dest}config",
        type=Path,
        metavar="TOML",
        help=f"{what} config file (TOML)",
    )
    p.add_argument(
        f"--{prefix}set",
        dest=f"{dest}overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override one {what} config value, e.g. {CONFIG_EXAMPLES[what]} (repeatable)",
    )


def cmd_synth(args: argparse.Namespace) -> int:
    from outpool.synth import build

    cfg = config.load(SynthConfig, args.config, args.overrides)
    check_output_dir(args.out, overwrite=args.force)  # before minutes of rendering
    print(f"rendering the built-in world into {args.out} ...", file=sys.stderr)
    world = build(cfg)
    world.dataset.save(args.out, truth=world.truth, overwrite=args.force)
    counts = {k: len(v) for k, v in world.dataset.pairs.items()}
    print(json_text({"dataset": str(args.out), "pairs": counts}))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from outpool.report.gallery import dataset_gallery, save_gallery

    dataset = Dataset.load(args.dataset)
    table = args.images or next(iter(dataset.images), None)
    values = None
    if table is not None and (Path(args.dataset) / "truth" / f"{table}.csv").exists():
        _, truth, names = Dataset.load_truth(args.dataset, table)
        values = {n: truth[:, k] for k, n in enumerate(names)}
    page = dataset_gallery(dataset, table=table, pairs=args.pairs, values=values, seed=args.seed)
    out = args.out or Path(args.dataset) / "gallery.png"
    save_gallery(page, out)
    print(out)
    return 0


DATASET_HELP = (
    "a dataset folder, or a real dataset in its official layout: pubfig:ROOT, lfw:ROOT, "
    "zappos:IMAGES_ROOT,LABELS_ROOT, or folder:IMAGES_ROOT,PAIRS_CSV (your images + pairs)"
)


def cmd_label(args: argparse.Namespace) -> int:
    from outpool.workflows.labelling import crowd_label

    crowd_cfg = config.load(CrowdConfig, args.config, args.overrides)
    name = args.name or f"{args.pairs}_crowd"
    counts = crowd_label(args.dataset, args.pairs, name, crowd_cfg, force=args.force)
    print(json_text(counts))
    if counts["accepted"]:  # a ranker trains on 'train' unless told: say how to use these
        print(
            f"next: outpool train-ranker {args.dataset} --train {name} --out runs/{name}",
            file=sys.stderr,
        )
    else:
        print(
            f"outpool: warning: the crowd accepted none of the {args.pairs} pairs, so "
            f"'{name}' is empty: nothing to train on",
            file=sys.stderr,
        )
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    from outpool.data.splits import SPLITS, leaks, read_groups_csv, split_pairs

    groups = read_groups_csv(args.groups) if args.groups else None
    by = args.by or ("group" if groups else "image")
    dataset = Dataset.load(args.dataset)
    # the tables as they were before the first split are the source of every later split
    first = {t: f"{t}_unsplit" for t in SPLITS if t in dataset.pairs}
    source = {t: dataset.pairs[u if u in dataset.pairs else t] for t, u in first.items()}
    pooled = dataclasses.replace(dataset, pairs={**dataset.pairs, **source})
    tables, report = split_pairs(
        pooled, by=by, test=args.test, val=args.val, seed=args.seed, groups=groups
    )
    kept = {u: dataset.pairs[t] for t, u in first.items() if u not in dataset.pairs}
    Dataset.add_tables(args.dataset, images={}, pairs={**kept, **tables}, overwrite=True)
    after = Dataset.load(args.dataset)
    others = [n for n in after.pairs if n not in SPLITS and not n.endswith("_unsplit")]
    report["other_tables_crossing"] = {
        n: len(leaks(after, by=by, tables=("train", n), groups=groups)) for n in others
    }
    report["originals"] = sorted(first.values())
    print(json_text(report))
    dropped = report["dropped_straddling"]
    print(
        f"{' / '.join(str(report['pairs'][s]) for s in SPLITS)} train / val / test pairs; "
        f"{dropped} pairs straddled two splits and were dropped",
        file=sys.stderr,
    )
    kept = sum(report["pairs"].values())
    if dropped > 0.3 * (kept + dropped):
        warn(
            f"{dropped} of {kept + dropped} pairs were dropped: the pairs join images across "
            "the whole set, so splitting the images cuts many; label pairs within each split, "
            "or split by group (people, products: --by folder, --groups CSV)"
        )
    for split in ("val", "test"):
        if 0 < report["pairs"][split] < 50:
            warn(
                f"the {split} table has {report['pairs'][split]} pairs: its accuracy moves "
                f"by several points with one pair (--{split} sets its share)"
            )
    for name, n in report["other_tables_crossing"].items():
        if n:
            warn(
                f"pair table '{name}' was not split and shares {n} images with the new train table"
            )
    return 0


def warn(message: str) -> None:
    print(f"outpool: warning: {message}", file=sys.stderr)


def warn_leaks(dataset: Dataset, fix: str) -> None:
    """Say when an image is in pairs of two splits: the test accuracy would partly measure
    memory."""
    crossing = leaks(dataset)
    if crossing:
        warn(
            f"{len(crossing)} images appear in pairs of two splits (e.g. "
            f"{', '.join(crossing[:3])}): a ranker would be tested on images it trained on; "
            f"{fix}"
        )


def cmd_import(args: argparse.Namespace) -> int:
    name = str(args.source).partition(":")[0]
    if name not in LOADERS:
        raise UnknownNameError("data source", name, LOADERS)  # a folder is already a dataset
    check_output_dir(args.out, overwrite=args.force)
    dataset, truth = open_dataset_with_truth(
        args.source,
        crop=args.crop,
        fit=args.fit,
        duplicates=args.duplicates,
        conflicts=args.conflicts,
    )
    dataset.save(args.out, truth=truth, overwrite=args.force)  # truth/: LFW's ranker scores
    counts = {k: len(v) for k, v in dataset.pairs.items()}
    warn_leaks(dataset, f"'outpool data split {args.out}' makes image-disjoint splits")
    print(
        json_text({"dataset": str(args.out), "images": len(dataset.image_ids()), "pairs": counts})
    )
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from outpool.workflows.ranker_runs import score_folder

    rows = score_folder(
        args.ranker, args.images, args.out, crop=args.crop, fit=args.fit, force=args.force
    )
    print(json_text({"scored": rows, "out": str(args.out)}))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from outpool.workflows.demo import demo_config, run_demo

    cfg = demo_config(args.config, args.overrides)
    if args.force and args.out.exists():  # only a run folder, never an unrelated path
        if not args.out.is_dir() or not (args.out / "config.json").exists():
            raise DataError("--force deletes only a run folder (with config.json)", path=args.out)
        shutil.rmtree(args.out)
    summary = run_demo(args.out, cfg)
    table = cfg.experiment.tables[0]
    real = summary["accuracy_real_pct"][table]
    print(f"Real ({cfg.experiment.n} real pairs): {real:.1f}% of '{table}' pairs ordered right")
    for protocol, methods in summary["gain_over_real_pct"][table].items():
        shown = ", ".join(f"{m} {g:+.1f}" for m, g in methods.items())
        print(f"gain over Real, {protocol}: {shown} (points)")
    print(f"report: {summary['report']}  ({summary['wall_s']:.0f} s)")
    return 0


def cmd_train_ranker(args: argparse.Namespace) -> int:
    from outpool.train.distributed import from_env
    from outpool.train.ranker import RankerTrainConfig
    from outpool.workflows.ranker_runs import train_run

    cfg = config.load(RankerTrainConfig, args.config, args.overrides)
    dataset = open_dataset(args.dataset)
    val = args.val or ("val" if "val" in dataset.pairs else "none")
    if args.val is None and val == "none":
        print("no 'val' pair table: training without early stopping", file=sys.stderr)
    val = None if val == "none" else val
    if val is not None and val.startswith("test"):
        raise ConfigError(
            f"--val {val}: early stopping on test pairs chooses the model on them, and the test "
            "accuracy stops meaning anything; validate on a val table ('outpool data split' "
            "makes one) or pass --val none"
        )
    if val is not None and val == args.train:
        raise ConfigError(f"--val {val} is the training table: validate on pairs not trained on")
    if from_env().main:
        fix = (
            f"'outpool data split {args.dataset}' makes image-disjoint splits"
            if str(args.dataset).partition(":")[0] not in LOADERS  # a dataset folder
            else "import it and run 'outpool data split' for image-disjoint splits"
        )
        warn_leaks(dataset, fix)
    results = train_run(
        dataset, args.attribute, cfg, args.run, train=args.train, val=val, model=args.model
    )
    if from_env().main:  # under torchrun, one report
        print(json_text(results, indent=2))
        for name, r in results.items():
            if val is None or args.model == "linear":
                continue
            deep, lin = r["deepstn_val_acc"], r["linear_val_acc"]
            kept = r["model"] + (f" ({r['blend_weight']:g} DeepSTN)" if "blend_weight" in r else "")
            blends = "".join(
                f", blend {w} DeepSTN {acc:.1f}%" for w, acc in r.get("blend_val_acc", {}).items()
            )
            print(
                f"{name}: ranker.pt is {kept}; val accuracy DeepSTN {deep:.1f}%, "
                f"linear reference {lin:.1f}%{blends} ({r['val_pairs']} val pairs)",
                file=sys.stderr,
            )
            if args.model == "deepstn" and lin >= deep:
                warn(f"{name}: the linear ranker did as well on val; --model auto would keep it")
    return 0


def cmd_train_generator(args: argparse.Namespace) -> int:
    from outpool.train.generator import GeneratorTrainConfig
    from outpool.workflows.generator_runs import train_judged_generator_run

    cfg = config.load(GeneratorTrainConfig, args.config, args.overrides)
    dataset, truth = open_dataset_with_truth(args.dataset)
    settings = judge_settings(dataset)
    if settings is None and (args.judge_config or args.judge_overrides):
        raise OutpoolError(f"dataset '{dataset.name}' has no judge with settings to change")
    judge_cfg = config.load(settings, args.judge_config, args.judge_overrides) if settings else None
    summary = train_judged_generator_run(
        dataset, truth, cfg, args.run, table=args.table, judge_cfg=judge_cfg
    )
    print(json_text(summary, indent=2))
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    from outpool.creators import creator
    from outpool.workflows.creating import create_into

    cfg: object = config.load(creator(args.creator).config, args.config, args.overrides)
    if args.budget < 1:
        raise OutpoolError(f"--budget must be at least 1, got {args.budget}")
    summary = create_into(
        args.dataset,
        method=args.creator,
        attribute=args.attribute,
        budget=args.budget,
        name=args.name or args.creator,
        cfg=cfg,
        ranker=args.ranker,
        generator=args.generator,
        equal_band=args.equal_band,
        screen=not args.no_screen,
        force=args.force,
    )
    print(json_text(summary, indent=2))
    name = args.name or args.creator
    print(
        f"next: outpool data label {args.dataset} --pairs {name} (the simulated crowd), or "
        f"outpool annotate request {args.dataset} --pairs {name} --server URL (people)",
        file=sys.stderr,
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from outpool.workflows.ranker_runs import evaluate_run, record_evaluation

    dataset = open_dataset(args.dataset)
    result = evaluate_run(args.run, dataset, args.pairs or ["test"])
    if args.run.is_dir():
        record_evaluation(args.run, dataset, spec_source(args.dataset), result)
    print(json_text(result, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="outpool",
        description="Learn fine-grained visual comparisons from few labels by creating the "
        "training image pairs a ranker needs (ATTIC).",
    )
    parser.add_argument("--version", action="version", version=f"outpool {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="the main job on the built-in data: ATTIC against Real and Semantic Jitter, a report",
        description="On the built-in shoe world with a simulated crowd: train the generator, "
        "the legibility screen and the ranker, run Real, Semantic Jitter and ATTIC (Normal, "
        "then active rounds), and write OUT/report/index.html and OUT/summary.json. The same "
        "command resumes a run cut short.",
    )
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder")
    demo.add_argument("--force", action="store_true", help="start again: delete OUT first")
    _add_config_args(demo, "experiment")
    demo.set_defaults(func=cmd_demo)

    tr = sub.add_parser(
        "train-ranker",
        help="train rankers (one per attribute) into a run folder",
        description="Train a relative-attribute ranker per attribute on a dataset's pair "
        "tables: DeepSTN (default), a linear ranker on simple image features (RankSVM-style, "
        "seconds; often better on a few hundred pairs) or --model auto (whichever of the two, or "
        "of their blends, orders the val pairs best). The linear ranker is fitted in every run "
        "and its val accuracy reported beside DeepSTN's. Writes OUT/<attribute>/ (config.json, "
        "metrics.jsonl per stage, checkpoints, ranker.pt: the model chosen, linear.pt, "
        "crops.png, curves.png) and OUT/summary.json. Running the same command again resumes "
        "where it stopped. For several GPUs: torchrun --nproc_per_node=N -m outpool.cli "
        "train-ranker ...",
    )
    tr.add_argument("dataset", help=DATASET_HELP)
    tr.add_argument(
        "--attribute",
        default="all",
        help="attribute name, or 'all' (default: every attribute with pairs in --train)",
    )
    tr.add_argument("--out", dest="run", type=Path, required=True, help="run folder")
    tr.add_argument("--train", default="train", help="training pair table (default: train)")
    tr.add_argument(
        "--val",
        help="validation pair table for early stopping, or 'none' (default: 'val' when the "
        "dataset has it, else none)",
    )
    tr.add_argument(
        "--model",
        choices=MODELS,
        default="deepstn",
        help="deepstn (default), linear, or auto: both, ranker.pt the linear ranker unless "
        "DeepSTN or a blend of the two leads it on val beyond the noise",
    )
    _add_config_args(tr, "training")
    tr.set_defaults(func=cmd_train_ranker)

    tg = sub.add_parser(
        "train-generator",
        help="train the attribute-conditioned generator (conditional VAE)",
        description="Train the conditional VAE on a dataset's generator-training images (image "
        "table TABLE, with attribute strengths). When the dataset also has TABLE_unscored "
        "(LFW: faces without a score row, of people in no ranker split), a regressor trained on "
        "TABLE's scores gives them strengths first (OUT/regressor/). Writes OUT/ (config.json, "
        "metrics.jsonl, checkpoints, generator.pt, samples.png, reconstructions.png, sweeps.png, "
        "summary.json and, where the dataset has an independent judge, controllability.json: "
        "the built-in world's pixel oracle, or for LFW a teacher trained on the ranker "
        "train+val scores into OUT/teacher/). Running it again resumes.",
    )
    tg.add_argument("dataset", help=DATASET_HELP)
    tg.add_argument("--out", dest="run", type=Path, required=True, help="run folder")
    tg.add_argument("--table", default="generator", help="image table to train on")
    _add_config_args(tg, "generator")
    _add_config_args(tg, "judge", prefix="judge-")
    tg.set_defaults(func=cmd_train_generator)

    from outpool.creators import CREATORS

    cr = sub.add_parser(
        "create",
        help="create pairs for an attribute with a creator (ATTIC or a baseline)",
        description="Create BUDGET pairs of ATTRIBUTE with a creator and add them to the dataset "
        "folder as image table and pair table NAME (inferred labels; each image keeps what drew "
        "it), with DATASET/created/NAME/ (the creator's work, pairs.png, summary.json). Label "
        "them with 'outpool data label DATASET --pairs NAME' or 'outpool annotate request'. "
        f"Creators: {', '.join(CREATORS)}; attic and uncertainty read --ranker, the generating "
        "ones --generator.",
    )
    cr.add_argument("dataset", type=Path, help="dataset folder")
    cr.add_argument("--creator", required=True, choices=list(CREATORS), help="which creator")
    cr.add_argument("--attribute", required=True, help="the attribute the pairs compare")
    cr.add_argument("--budget", type=int, required=True, help="how many pairs")
    cr.add_argument("--name", help="the new tables' name (default: the creator's)")
    cr.add_argument("--ranker", type=Path, help="the current ranker (RUN/<attribute>/ranker.pt)")
    cr.add_argument("--generator", type=Path, help="the generator (RUN/generator.pt)")
    cr.add_argument(
        "--equal-band",
        type=float,
        help="strength differences below this are 'equal' (default: the dataset's own)",
    )
    cr.add_argument(
        "--no-screen",
        action="store_true",
        help="send generated pairs unscreened (default: pairs whose pictures do not show their "
        "commanded strengths are replaced; the screen's net is trained once into DATASET/screen/)",
    )
    cr.add_argument("--force", action="store_true", help="replace tables of the same name")
    _add_config_args(cr, "creator")
    cr.set_defaults(func=cmd_create)

    ev = sub.add_parser(
        "eval",
        help="accuracy of trained rankers on pair tables",
        description="Accuracy (percent of non-equal pairs ordered correctly; a tie is wrong) of "
        "each ranker of RUN on the pairs of its attribute, per pair table. A name that is an "
        "IMAGE table with strengths (PubFig's 'test') is scored on all its pairs of different "
        "groups and strengths (the PubFig protocol). Writes RUN/eval.json when RUN is a folder.",
    )
    ev.add_argument("run", type=Path, help="run folder (or one ranker.pt)")
    ev.add_argument("dataset", help=DATASET_HELP)
    ev.add_argument(
        "--pairs", action="append", help="pair table or image table (repeatable; default: test)"
    )
    ev.set_defaults(func=cmd_eval)

    sc = sub.add_parser(
        "score",
        help="score a folder of images with a trained ranker",
        description="Score every image (jpg/png, any size; made square by --fit, resized to "
        "64 px) in IMAGES with a ranker; writes OUT/scores.csv (rank, image, score; highest "
        "first) and contact sheets of every image in that order, 64 a page "
        "(OUT/contact_sheet.png, contact_sheet_002.png, ...).",
    )
    sc.add_argument("ranker", type=Path, help="a ranker.pt (RUN/<attribute>/ranker.pt)")
    sc.add_argument("images", type=Path, help="folder of images")
    sc.add_argument("--out", type=Path, required=True, help="output folder")
    sc.add_argument("--crop", type=float, default=1.0, help="keep this central fraction first")
    sc.add_argument("--fit", choices=FITS, default="center", help=FIT_HELP)
    sc.add_argument("--force", action="store_true", help="replace an existing output folder")
    sc.set_defaults(func=cmd_score)

    data = sub.add_parser(
        "data",
        help="make, import, label and look at datasets",
        description="Datasets: render the built-in one, import a real one, label pairs with "
        "the simulated crowd, draw a gallery.",
    )
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    synth = dsub.add_parser(
        "synth",
        help="render the built-in synthetic dataset",
        description="Render the built-in shoe world as a dataset folder: generator-training "
        "images with strengths, a real pool with train/val pairs, test pairs (with a "
        "fine-grained subset) and, apart, the true attribute values in truth/.",
    )
    synth.add_argument("--out", type=Path, required=True, help="dataset folder to create")
    synth.add_argument("--force", action="store_true", help="replace an existing dataset")
    _add_config_args(synth, "world")
    synth.set_defaults(func=cmd_synth)

    imp = dsub.add_parser(
        "import",
        help="read a real dataset from its official layout into a dataset folder",
        description="Read a real dataset from its official layout and save it as an outpool "
        "dataset folder. SOURCE is pubfig:ROOT, lfw:ROOT, zappos:IMAGES_ROOT,LABELS_ROOT or "
        "folder:IMAGES_ROOT,PAIRS_CSV (your images and a CSV of pairs).",
    )
    imp.add_argument(
        "source", help="pubfig:ROOT, lfw:ROOT, zappos:IMAGES,LABELS, folder:IMAGES,CSV"
    )
    imp.add_argument("--out", type=Path, required=True, help="dataset folder to create")
    imp.add_argument(
        "--crop",
        type=float,
        help="lfw: and folder: only: keep the central fraction F of each square frame "
        "(e.g. 0.6: LFW faces fill the image; default: the whole frame)",
        metavar="F",
    )
    imp.add_argument("--fit", choices=FITS, help=f"folder: only: {FIT_HELP}")
    imp.add_argument(
        "--duplicates",
        choices=DUPLICATE_POLICIES,
        help="folder: only: rows that repeat a pair (either order, same answer) are merged into "
        "one pair with their mean confidence (merge, default) or kept as they are",
    )
    imp.add_argument(
        "--conflicts",
        choices=CONFLICT_POLICIES,
        help="folder: only: a pair whose rows contradict each other is kept out of training in "
        "a table SPLIT_conflicts (exclude, default) or kept as it is",
    )
    imp.add_argument("--force", action="store_true", help="replace an existing dataset")
    imp.set_defaults(func=cmd_import)

    show = dsub.add_parser(
        "show",
        help="write a PNG gallery of a dataset",
        description="Draw a page of a dataset: random images, each attribute from lowest to "
        "highest, and labelled pairs.",
    )
    show.add_argument("dataset", type=Path, help="dataset folder")
    show.add_argument("--out", type=Path, help="PNG to write (default DATASET/gallery.png)")
    show.add_argument("--images", help="image table to show (default: the first)")
    show.add_argument("--pairs", help="pair table to show (default: the first)")
    show.add_argument("--seed", type=int, default=0, help="which images and pairs are drawn")
    show.set_defaults(func=cmd_show)

    label = dsub.add_parser(
        "label",
        help="label a pair table with the simulated crowd",
        description="Ask a simulated crowd about every pair of a pair table; writes the "
        "accepted pairs as a new pair table and every vote to DATASET/votes/NAME.csv.",
    )
    label.add_argument("dataset", type=Path, help="dataset folder")
    label.add_argument("--pairs", default="train", help="pair table to label (default: train)")
    label.add_argument("--name", help="name of the new pair table (default: PAIRS_crowd)")
    label.add_argument("--force", action="store_true", help="replace an existing table")
    _add_config_args(label, "crowd")
    label.set_defaults(func=cmd_label)

    split = dsub.add_parser(
        "split",
        help="image- or group-disjoint train / val / test pair tables",
        description="Pool the pairs of the dataset's train, val and test tables and split them "
        "again so that no image (--by image), no group, such as a person or a product "
        "(--by group), or no folder (--by folder) appears in two splits; pairs that would "
        "straddle two splits are dropped and counted. The tables before the first split are "
        "kept as TABLE_unsplit, and every later split starts from them.",
    )
    split.add_argument("dataset", type=Path, help="dataset folder")
    split.add_argument(
        "--by",
        choices=("image", "group", "folder"),
        help="what stays whole: each image (the default), each group (a person, a product: "
        "--groups, else the image table's group column, which LFW, PubFig and the built-in "
        "world have), or each folder of a folder: import (alice/01.jpg is in group alice)",
    )
    split.add_argument(
        "--groups",
        type=Path,
        metavar="CSV",
        help="the group of each paired image: a CSV with the header image,group (implies "
        "--by group)",
    )
    split.add_argument(
        "--test", type=float, default=0.3, help="share of images or groups in test (default 0.3)"
    )
    split.add_argument(
        "--val", type=float, default=0.1, help="share of images or groups in val (default 0.1)"
    )
    split.add_argument("--seed", type=int, default=0, help="seed of the draw")
    split.set_defaults(func=cmd_split)

    cli_annotate.add_parser(sub)
    cli_experiment.add_parser(sub)
    return parser


def _show_warning(message: Warning | str, *_: object, **__: object) -> None:
    warn(str(message))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning  # one plain line, not the library's source line
    try:
        return int(args.func(args))
    except WaitingForLabels as exc:  # not a failure: scripts test for exit status 3
        print(f"outpool: {exc}", file=sys.stderr)
        return 3
    except OutpoolError as exc:
        print(f"outpool: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "outpool: interrupted; finished outputs are kept, partial ones removed", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
