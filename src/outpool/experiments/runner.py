"""Running an experiment's grid into one run folder, resumable, in shards:

    RUN/config.json      the experiment's settings: a rerun with others is refused, except for
                         the grid's lists (attributes, methods, protocols, seeds), which may grow
    RUN/dataset/         the built-in world, rendered once (with its true strengths)
    RUN/generator/       the generator, trained once (unless ``experiment.generator`` names one)
    RUN/screen/          the legibility screen, fitted once
    RUN/cells/ATTRIBUTE/METHOD/PROTOCOL/seed_N/   each cell's folder (``run_cell``,
                         ``run_active``); ``ATTRIBUTE/pretrained_seed_N`` the active cells' round 0
    RUN/results.jsonl    one row per cell, or per cell and round (``results``)

The shared steps run under a lock, so shards started together wait for one another's world,
generator and screen; each shard then runs every N-th cell. A cell in the results file is skipped;
a cell cut short resumes from its folder.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from outpool.annotate import SimulatedCrowd
from outpool.annotate.protocol import Annotator
from outpool.bench import eta_text
from outpool.config import to_dict
from outpool.creators import CREATORS
from outpool.creators.screen import LegibilityScreen, fit_screen
from outpool.data import Dataset
from outpool.errors import ConfigError, DataError, UnknownNameError
from outpool.experiments.config import ACTIVE, Cell, ExperimentConfig, cells, creator_of
from outpool.experiments.results import RESULTS, append_cell, cell_key, read_rows
from outpool.fileio import atomic_path, exclusive, json_text, try_exclusive
from outpool.models.generator import ConditionalVAE
from outpool.rounds.active import ActiveSchedule, run_active
from outpool.rounds.protocols import REAL_METHODS, WaitingForLabels, run_cell
from outpool.service.people import ADMIN_TOKEN_ENV, PeopleAnnotator, PeopleConfig
from outpool.synth import PixelOracle, build
from outpool.train.checkpoints import check_same_config
from outpool.train.generator import load_generator, train_generator

Log = Callable[[str], None]
GROWABLE = ("attributes", "methods", "protocols", "seeds")  # may change between runs of a folder


@dataclass(frozen=True, eq=False)
class Shared:
    """What every cell of an experiment uses."""

    dataset: Dataset
    generator: ConditionalVAE | None
    screen: LegibilityScreen | None
    annotator: Annotator


def needs_generator(cfg: ExperimentConfig) -> bool:
    names = [creator_of(m) for m in cfg.experiment.methods]
    return any(CREATORS[m].generates for m in names if m in CREATORS)


def prepare(cfg: ExperimentConfig, run: Path, *, progress: bool, log: Log) -> Shared:
    """The run's config, world, generator and screen: made once, loaded after."""
    if run.exists() and not run.is_dir():
        raise DataError("the run folder is a file", path=run)
    stored, lock = run / "config.json", run / ".prepare.lock"

    def refuse_foreign(ours: Callable[[Path], bool]) -> None:
        if not stored.exists() and not all(ours(p) for p in run.iterdir()):
            raise DataError(
                "not an experiment's run folder (no config.json): choose another", path=run
            )

    # Shards started together: the first takes the lock and writes config.json before
    # anything else, so until then the folder holds only the shards' logs, the lock and
    # config.json's temporary file. Someone's folder is refused before the lock is made in it.
    if run.is_dir():
        refuse_foreign(lambda p: p.suffix == ".log" or p.name.startswith("."))
    run.mkdir(parents=True, exist_ok=True)
    with exclusive(lock):
        refuse_foreign(lambda p: p.suffix == ".log" or p == lock)
        record = {"config": to_dict(cfg)}
        for name in GROWABLE:  # a grid may grow: more cells in the same run
            del record["config"]["experiment"][name]
        if stored.exists():
            check_same_config(stored, record["config"], defaults=to_dict(ExperimentConfig()))
        else:
            with atomic_path(stored) as tmp:
                tmp.write_text(json_text(record, indent=2) + "\n")
        if not (run / "dataset" / "dataset.json").exists():
            log(f"rendering the built-in world (seed {cfg.world.seed}) ...")
            world = build(cfg.world)
            world.dataset.save(run / "dataset", truth=world.truth)
        dataset = Dataset.load(run / "dataset")
        generator = screen = None
        if needs_generator(cfg):
            path = Path(cfg.experiment.generator) if cfg.experiment.generator else None
            if path is None:
                path = run / "generator" / "generator.pt"
                if not path.exists():
                    log("training the generator (once per run) ...")
                    train_generator(dataset, cfg.generator, run / "generator", progress=progress)
            generator = load_generator(path, attributes=dataset.attribute_names)
            if cfg.experiment.screen:
                if cfg.screen.table not in dataset.images:
                    raise UnknownNameError("screen.table", cfg.screen.table, dataset.images)
                log("fitting the legibility screen ...")
                table = dataset.images[cfg.screen.table]
                screen = fit_screen(table, generator, cfg.screen, run / "screen", progress=progress)
    return Shared(dataset, generator, screen, annotator_of(cfg))


def annotator_of(cfg: ExperimentConfig) -> Annotator:
    """The simulated crowd, or people through the annotation service (never waiting: a batch
    they are still labelling stops its cell until the next run)."""
    if cfg.experiment.annotator == "crowd":
        return SimulatedCrowd(PixelOracle(progress=False), cfg.crowd)
    token = os.environ.get(ADMIN_TOKEN_ENV, "")
    if not token:
        raise ConfigError(f"people label through the annotation service: set {ADMIN_TOKEN_ENV}")
    s = cfg.people
    people = PeopleConfig(
        server=s.server,
        admin_token=token,
        k=s.k,
        new_annotators=s.new_annotators,
        batch_prefix=s.batch_prefix,
    )
    return PeopleAnnotator(people)


def run_one(
    cfg: ExperimentConfig, shared: Shared, cell: Cell, run: Path, *, progress: bool
) -> list[dict[str, Any]]:
    """One cell's rows (one per round in active rounds), its folder under ``run/cells``."""
    grid = cfg.experiment
    folder = run / "cells" / cell.key
    creator_cfg = None
    if cell.method not in REAL_METHODS:
        creator_cfg = dataclasses.replace(cfg.creator_config(cell.method), seed=cell.seed)
    unscreened = creator_of(cell.method) != cell.method
    common: dict[str, Any] = {
        "attribute": cell.attribute,
        "method": creator_of(cell.method),
        "seed": cell.seed,
        "ranker_cfg": cfg.ranker,
        "work_dir": folder,
        "creator_cfg": creator_cfg,
        "generator": shared.generator,
        "annotator": shared.annotator,
        "equal_band": cfg.world.equal_band,
        "screen": None if unscreened else shared.screen,
        "tables": grid.tables,
        "progress": progress,
    }
    started = time.perf_counter()
    if cell.protocol == ACTIVE:
        rows = run_active(
            shared.dataset,
            schedule=ActiveSchedule(grid.n, grid.batch, grid.rounds),
            pretrained=run / "cells" / cell.attribute / f"pretrained_seed_{cell.seed}",
            **common,
        )
    else:
        rows = [run_cell(shared.dataset, protocol=cell.protocol, n=grid.n, **common)]
    wall = round(time.perf_counter() - started, 1)
    where = str(folder.relative_to(run))
    return [{**row, "method": cell.method, "cell_wall_s": wall, "folder": where} for row in rows]


def run_experiment(
    cfg: ExperimentConfig,
    run: Path,
    *,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
    log: Log = print,
) -> list[dict[str, Any]]:
    """Run this shard's cells of the grid that the results file lacks; returns every row the
    results file holds when this shard is done."""
    shared = prepare(cfg, run, progress=progress, log=log)
    attributes = cfg.experiment.attributes or shared.dataset.attribute_names
    for name in attributes:
        shared.dataset.attribute(name)  # unknown -> UnknownNameError naming the valid
    for table in cfg.experiment.tables:
        if table not in shared.dataset.pairs:
            raise UnknownNameError("experiment.tables entry", table, shared.dataset.pairs)
    grid = cells(cfg.experiment, tuple(attributes))
    results = run / RESULTS
    done = {cell_key(r) for r in read_rows(results)}
    index, count = shard
    mine = [c for i, c in enumerate(grid) if i % count == index]
    todo = [c for c in mine if c.key not in done]
    log(f"{len(grid)} cells; this shard {len(mine)}, {len(mine) - len(todo)} already done")
    waiting: list[WaitingForLabels] = []
    started = time.perf_counter()
    for i, cell in enumerate(todo, 1):
        log(f"{eta_text(i - 1, len(todo), started, time.perf_counter())} next: {cell.key} ...")
        with try_exclusive(run / "cells" / f"{cell.key}.lock") as ours:
            if not ours or cell.key in {cell_key(r) for r in read_rows(results)}:
                log("  done or running in another process: skipped")
                continue
            try:
                append_cell(results, run_one(cfg, shared, cell, run, progress=progress))
            except WaitingForLabels as wait:  # the other cells' batches go out meanwhile
                log(f"  {wait}")
                waiting.append(wait)
    if waiting:
        missing = sum(w.missing for w in waiting)
        batches = ", ".join(w.batch for w in waiting)
        raise WaitingForLabels(batches, missing, run)
    return read_rows(results)
