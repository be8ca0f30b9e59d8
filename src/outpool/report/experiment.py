"""The report of an experiment: one HTML page with its PNGs, readable offline, built from run
folders alone (their ``results.jsonl`` and the files their cells left).

Sections, in the paper's terms: Tables I-II (per attribute, mean +- std over seeds, best in
bold, per protocol and test table); Fig. 5 (gain over Real against labels spent, a panel per
attribute and the mean, a band over seeds); the labels each method needs to reach Real with 2n;
the crowd's verdicts per creator; Fig. 6 (ATTIC's pairs over control training); Fig. 7 (hard real
pairs, accepted and illegible created pairs); and where each creator's pairs fall in attribute
space beside the real pool and the test pairs (the built-in world, whose truth is known).
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from outpool.data import Dataset
from outpool.errors import DataError
from outpool.experiments.results import RESULTS, read_rows
from outpool.fileio import atomic_path
from outpool.report.gallery import pair_grid, save_gallery
from outpool.report.ranker_figures import save_figure
from outpool.rounds.protocols import REAL_METHODS
from outpool.train.evaluate import score_images
from outpool.train.ranker import load_deepstn

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;
text-align:right}th{background:#eee}img{max-width:100%}caption{text-align:left;
font-weight:bold}"""


class Row(dict[str, Any]):
    """A results row with the run folder it came from."""

    run: Path


def load_rows(runs: Sequence[Path]) -> list[Row]:
    rows = []
    for run in runs:
        found = read_rows(run / RESULTS)
        if not found:
            raise DataError("no results yet (run the experiment first)", path=run / RESULTS)
        for raw in found:
            row = Row(raw)
            row.run = run
            rows.append(row)
    return rows


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def per_seed_means(rows: Sequence[Row], table: str) -> dict[int, float]:
    """Per seed, the mean over attributes of the accuracy on ``table``."""
    by_seed: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        by_seed[r["seed"]].append(r["accuracy_pct"][table])
    return {s: float(np.mean(v)) for s, v in by_seed.items()}


def accuracy_table(rows: Sequence[Row], protocol: str, table: str) -> str:
    """Table I/II: attributes x methods, mean +- std over seeds; Real methods in every one."""
    mine = [r for r in rows if r["protocol"] == protocol or r["method"] in REAL_METHODS]
    mine = [r for r in mine if r["protocol"] != "active"]
    methods = list(dict.fromkeys(r["method"] for r in mine))
    attributes = list(dict.fromkeys(r["attribute"] for r in mine))
    cells: dict[tuple[str, str], tuple[float, float]] = {}
    for m in methods:
        for a in attributes:
            values = [
                r["accuracy_pct"][table] for r in mine if (r["method"], r["attribute"]) == (m, a)
            ]
            if values:
                cells[(a, m)] = mean_std(values)
        seeds = per_seed_means([r for r in mine if r["method"] == m], table)
        if seeds:
            cells[("mean", m)] = mean_std(list(seeds.values()))
    head = "".join(f"<th>{html.escape(m)}</th>" for m in methods)
    body = []
    for a in [*attributes, "mean"]:
        best = max((cells[(a, m)][0] for m in methods if (a, m) in cells), default=None)
        tds = []
        for m in methods:
            if (a, m) not in cells:
                tds.append("<td>-</td>")
                continue
            mu, sd = cells[(a, m)]
            text = f"{mu:.1f} &plusmn; {sd:.1f}"
            tds.append(f"<td><b>{text}</b></td>" if mu == best else f"<td>{text}</td>")
        body.append(f"<tr><th>{html.escape(a)}</th>{''.join(tds)}</tr>")
    caption = f"{protocol}: accuracy (%) on '{table}', mean &plusmn; std over seeds"
    return (
        f'<table class="accuracy" id="table-{protocol}-{table}"><caption>{caption}</caption>'
        f"<tr><th>attribute</th>{head}</tr>{''.join(body)}</table>"
    )


def table_gains(rows: Sequence[Row], protocol: str, table: str) -> dict[str, np.ndarray]:
    """Per method of Table I/II (the real-pair methods in every protocol), its gain over Real
    on ``table`` per seed: the mean over attributes of (method - Real), in points."""
    mine = [r for r in rows if r["protocol"] != "active"]
    real = {
        (r["attribute"], r["seed"]): r["accuracy_pct"][table] for r in mine if r["method"] == "real"
    }
    mine = [r for r in mine if r["protocol"] == protocol or r["method"] in REAL_METHODS]
    gains: dict[str, np.ndarray] = {}
    for method in dict.fromkeys(r["method"] for r in mine if r["method"] != "real"):
        by_seed: dict[int, list[float]] = defaultdict(list)
        for r in mine:
            base = real.get((r["attribute"], r["seed"]))
            if r["method"] == method and base is not None:
                by_seed[r["seed"]].append(r["accuracy_pct"][table] - base)
        if by_seed:
            gains[method] = np.array([np.mean(v) for _, v in sorted(by_seed.items())])
    return gains


def tables_figure(rows: Sequence[Row], protocols: Sequence[str], table: str, path: Path) -> None:
    """Tables I-II at a glance: each method's gain over Real per protocol, the bar at the mean
    over seeds and the whiskers from the worst seed to the best."""
    fig, axes = plt.subplots(1, len(protocols), figsize=(4.2 * len(protocols), 3.2), squeeze=False)
    for ax, protocol in zip(axes.flat, protocols, strict=True):
        gains = table_gains(rows, protocol, table)
        names = list(gains)[::-1]
        mean = np.array([gains[m].mean() for m in names])
        low = mean - np.array([gains[m].min() for m in names])
        high = np.array([gains[m].max() for m in names]) - mean
        ax.barh(names, mean, xerr=[low, high], color="tab:blue", alpha=0.7, capsize=3)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_title(f"{protocol}: {table}", fontsize=9)
        ax.set_xlabel("gain over Real (pts): mean, worst..best seed", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def active_gains(rows: Sequence[Row], table: str) -> dict[str, dict[str, np.ndarray]]:
    """Per method and attribute (and "mean"): (seeds, rounds + 1) gains over round 0 (Real),
    and the labels spent per round."""
    active = [r for r in rows if r["protocol"] == "active" and r["method"] != "real"]
    out: dict[str, dict[str, np.ndarray]] = {}
    for method in dict.fromkeys(r["method"] for r in active):
        mine = [r for r in active if r["method"] == method]
        curves: dict[tuple[str, int], dict[int, float]] = defaultdict(dict)
        labels: dict[int, int] = {}
        for r in mine:
            curves[(r["attribute"], r["seed"])][r["round"]] = r["accuracy_pct"][table]
            labels[r["round"]] = (
                r["labels_spent"] if method not in ("jitter", "real_plus") else r["pairs_trained"]
            )
        rounds = sorted(labels)
        complete = {k: v for k, v in curves.items() if sorted(v) == rounds}
        gains: dict[str, np.ndarray] = {"labels": np.array([labels[i] for i in rounds])}
        for attribute in dict.fromkeys(a for a, _ in complete):
            seeds = [v for (a, _), v in complete.items() if a == attribute]
            gains[attribute] = np.array([[c[i] - c[0] for i in rounds] for c in seeds])
        per_seed: dict[int, list[np.ndarray]] = defaultdict(list)
        for (_, seed), c in complete.items():
            per_seed[seed].append(np.array([c[i] - c[0] for i in rounds]))
        if per_seed:
            gains["mean"] = np.array([np.mean(v, 0) for v in per_seed.values()])
        out[method] = gains
    return out


def active_figure(gains: dict[str, dict[str, np.ndarray]], table: str, path: Path) -> None:
    """Fig. 5: gain over Real against labels spent, a band from the worst to the best seed."""
    panels = list(dict.fromkeys(k for g in gains.values() for k in g if k != "labels"))
    panels = [p for p in panels if p != "mean"] + (["mean"] if "mean" in panels else [])
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.7 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        for method, g in gains.items():
            if panel not in g:
                continue
            curve = g[panel]
            line = ax.plot(g["labels"], curve.mean(0), marker="o", ms=3, label=method)[0]
            ax.fill_between(
                g["labels"], curve.min(0), curve.max(0), alpha=0.15, color=line.get_color()
            )
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("labels spent", fontsize=8)
        ax.set_ylabel(f"gain over Real ({table}, pts)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def labels_saved(rows: Sequence[Row], gains: dict[str, dict[str, np.ndarray]], table: str) -> str:
    """How many labels each active method needs to match Real with 2n (its mean over attributes
    and seeds): the first round whose mean gain reaches Real 2n's gain over Real."""
    real = per_seed_means([r for r in rows if r["method"] == "real"], table)
    double = per_seed_means([r for r in rows if r["method"] == "real_2n"], table)
    if not real or not double:
        return "<p>Labels saved: needs Real and Real 2n in the grid.</p>"
    target = float(np.mean(list(double.values())) - np.mean(list(real.values())))
    n2 = int(next(r["labels_spent"] for r in rows if r["method"] == "real_2n"))
    if target <= 0:
        return (
            f'<p id="labels-saved">Real with {n2} labels is no better than Real '
            f"({target:+.1f} pts on '{table}'): no labels to save.</p>"
        )
    body = []
    for method, g in gains.items():
        if "mean" not in g or method in ("jitter", "real_plus"):
            continue
        reached = np.flatnonzero(g["mean"].mean(0) >= target)  # round 0 has gain 0 < target
        needed = f"{int(g['labels'][reached[0]])}" if len(reached) else "not reached"
        saved = f"{n2 - int(g['labels'][reached[0]])}" if len(reached) else "-"
        body.append(f"<tr><th>{html.escape(method)}</th><td>{needed}</td><td>{saved}</td></tr>")
    return (
        f'<table id="labels-saved"><caption>Labels to reach Real with {n2} labels (gain '
        f"{target:+.1f} pts on '{table}')</caption><tr><th>method</th><th>labels needed</th>"
        f"<th>labels saved</th></tr>{''.join(body)}</table>"
    )


def crowd_table(rows: Sequence[Row]) -> str:
    """The crowd's verdicts on every batch each creator sent, and what the screen kept."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        status = r.get("created_status") or {}
        for k, v in status.items():
            counts[r["method"]][k] += v
        screen = r.get("screen") or {}
        counts[r["method"]]["screened_candidates"] += screen.get("candidates", 0)
        counts[r["method"]]["screened_kept"] += screen.get("kept", 0)
    body = []
    for method, c in counts.items():
        sent = c["accepted"] + c["rejected"] + c["pruned"]
        if not sent:
            continue
        rates = [100.0 * c[k] / sent for k in ("accepted", "rejected", "pruned")]
        kept = (
            f"{100.0 * c['screened_kept'] / c['screened_candidates']:.0f}%"
            if c["screened_candidates"]
            else "-"
        )
        tds = "".join(f"<td>{v:.1f}%</td>" for v in rates)
        body.append(f"<tr><th>{html.escape(method)}</th><td>{sent}</td>{tds}<td>{kept}</td></tr>")
    return (
        '<table id="crowd"><caption>The crowd on created pairs</caption><tr><th>creator</th>'
        "<th>pairs sent</th><th>accepted</th><th>illegible</th><th>pruned</th>"
        f"<th>screen kept</th></tr>{''.join(body)}</table>"
    )


def folder_of(row: Row) -> Path:
    """The cell's folder (a row without one, e.g. a results file moved alone, points nowhere)."""
    return row.run / row["folder"] if "folder" in row else row.run / "cells" / "(none)"


def first(rows: Sequence[Row], **match: Any) -> Row | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def progression(rows: Sequence[Row], out: Path) -> str | None:
    """Fig. 6 from an ATTIC cell's snapshots (Normal: the cell's creator; active: its first
    round's): a few pairs per epoch, the ranker's loss on them."""
    for r in rows:
        if r["method"] != "attic":
            continue
        folder = folder_of(r)
        found = [folder / "creator", *sorted(folder.glob("round_*/creator"))]
        snaps = next((c / "snapshots" for c in found if (c / "snapshots").is_dir()), None)
        if snaps is None:
            continue
        files = sorted(snaps.glob("epoch_*.npz"))
        if not files:
            continue
        shown = [files[i] for i in sorted(set(np.linspace(0, len(files) - 1, 4).astype(int)))]
        losses = {}
        log = snaps / "losses.jsonl"
        if log.exists():
            for line in log.read_text().splitlines():
                entry = json.loads(line)
                losses[entry["epoch"]] = entry["ranker_loss"]
        strips = []
        for f in shown:
            with np.load(f) as d:
                k = min(4, len(d["label"]))
                epoch = int(f.stem.split("_")[1])
                caption = [f"epoch {epoch}, ranker loss {losses.get(epoch, float('nan')):.3f}"] * k
                strips.append(
                    pair_grid(
                        d["images_a"][:k], d["images_b"][:k], d["label"][:k], caption, columns=k
                    )
                )
        width = max(s.width for s in strips)
        page = Image.new("RGB", (width, sum(s.height for s in strips)), "white")
        y = 0
        for s in strips:
            page.paste(s, (0, y))
            y += s.height
        save_gallery(page, out / "progression.png")
        return f"{r['attribute']}, seed {r['seed']} ({r['protocol']})"
    return None


def created_gallery(rows: Sequence[Row], status: str, path: Path, k: int = 8) -> str | None:
    """Created pairs the crowd gave ``status`` (ATTIC's first, then any creator's)."""
    ordered = sorted(rows, key=lambda r: r["method"] != "attic")
    for r in ordered:
        folder = folder_of(r)
        files = [folder / "created.npz", *sorted(folder.glob("round_*/created.npz"))]
        for f in files:
            if not f.exists():
                continue
            with np.load(f) as d:
                verdict = d["status"] if "status" in d.files else None
                labels_file = f.parent / "labels.npz"
                if verdict is None and labels_file.exists():
                    with np.load(labels_file) as saved:
                        verdict = saved["status"]
                if verdict is None:
                    continue
                pick = np.flatnonzero(verdict == status)[:k]
                if len(pick):
                    grid = pair_grid(
                        d["images_a"][pick], d["images_b"][pick], d["label"][pick], r["attribute"]
                    )
                    save_gallery(grid, path)
                    return f"{r['method']}, {r['attribute']}, {f.parent.name}"
    return None


def hard_real_pairs(rows: Sequence[Row], path: Path, k: int = 8) -> str | None:
    """Test pairs the Real ranker orders wrongly (Fig. 7, left)."""
    r = first(rows, method="real")
    if r is None:
        return None
    ranker_file = folder_of(r) / "ranker" / "ranker.pt"
    if r["protocol"] == "active":
        ranker_file = (
            r.run / "cells" / r["attribute"] / f"pretrained_seed_{r['seed']}" / "ranker.pt"
        )
    if not ranker_file.exists() or not (r.run / "dataset").is_dir():
        return None
    dataset = Dataset.load(r.run / "dataset")
    ranker, _ = load_deepstn(ranker_file)
    pairs = dataset.pairs["test"].for_attribute(r["attribute"])
    a, b = dataset.lookup(pairs.a), dataset.lookup(pairs.b)
    wrong = np.flatnonzero(
        np.sign(score_images(ranker, a) - score_images(ranker, b)) != pairs.label
    )
    wrong = wrong[pairs.label[wrong] != 0][:k]
    if not len(wrong):
        return None
    save_gallery(pair_grid(a[wrong], b[wrong], pairs.label[wrong], r["attribute"]), path)
    return f"{r['attribute']}, seed {r['seed']}: true order shown"


def attribute_space(rows: Sequence[Row], path: Path) -> str | None:
    """Where the pairs fall: the real pool and test images (true strengths) and each creator's
    generated pairs (commanded strengths), for the first attribute and its most correlated
    neighbour."""
    run = rows[0].run
    try:
        _, pool, names = Dataset.load_truth(run / "dataset", "train")
        _, test, _ = Dataset.load_truth(run / "dataset", "test")
    except (DataError, OSError, KeyError):
        return None
    attribute = rows[0]["attribute"]
    k = list(names).index(attribute)
    corr = np.abs(np.atleast_2d(np.corrcoef(pool.T))[k])
    corr[k] = -1
    j = int(np.argmax(corr))
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter(pool[:, k], pool[:, j], s=5, c="lightgrey", label="real pool")
    ax.scatter(test[:, k], test[:, j], s=5, c="lightsteelblue", label="test images")
    for method in dict.fromkeys(r["method"] for r in rows if r["attribute"] == attribute):
        points = []
        for r in rows:
            if r["method"] != method or r["attribute"] != attribute:
                continue
            folder = folder_of(r)
            for f in [folder / "created.npz", *sorted(folder.glob("round_*/created.npz"))]:
                if f.exists():
                    with np.load(f) as d:
                        if "y_a" in d.files:
                            points.append(np.concatenate([d["y_a"], d["y_b"]]))
        if points:
            y = np.concatenate(points)
            ax.scatter(y[:, k], y[:, j], s=7, alpha=0.6, label=method)
    ax.set_xlabel(attribute)
    ax.set_ylabel(str(names[j]))
    ax.legend(fontsize=7, markerscale=2)
    fig.tight_layout()
    save_figure(fig, path)
    return f"{attribute} against {names[j]}"


def build_report(runs: Sequence[Path], out: Path) -> Path:
    """Write ``out/index.html`` and its PNGs from the run folders; returns the page's path."""
    rows = load_rows(runs)
    out.mkdir(parents=True, exist_ok=True)
    tables = [t for t in rows[0]["accuracy_pct"] if all(t in r["accuracy_pct"] for r in rows)]
    protocols = [p for p in ("normal", "auto") if any(r["protocol"] == p for r in rows)]
    parts = [f"<h1>outpool experiment report</h1><p>{len(rows)} rows from "]
    parts.append(", ".join(html.escape(str(r)) for r in runs) + ".</p>")
    seeds = sorted({r["seed"] for r in rows})
    parts.append(f"<p>Seeds: {seeds}. Accuracy in % of non-equal test pairs.</p>")
    parts.append('<h2 id="tables">Tables I-II: every method with the same labels</h2>')
    for protocol in protocols:
        for table in tables:
            parts.append(accuracy_table(rows, protocol, table))
    if protocols and any(r["method"] == "real" for r in rows):
        for table in tables:
            name = f"tables_{table}.png"
            tables_figure(rows, protocols, table, out / name)
            parts.append(
                f'<img id="tables-{table}" src="{name}" alt="gain over Real on {table} per '
                'method and protocol, with the worst and best seed">'
            )
    if any(r["protocol"] == "active" for r in rows):
        parts.append('<h2 id="active">Fig. 5: active rounds</h2>')
        for table in tables:
            gains = active_gains(rows, table)
            if not gains:
                continue
            name = f"active_{table}.png"
            active_figure(gains, table, out / name)
            parts.append(
                f'<img id="active-{table}" src="{name}" alt="gain over Real on {table} against '
                'labels spent, per attribute and the mean">'
            )
            parts.append(labels_saved(rows, gains, table))
    parts.append('<h2 id="crowd-rates">The crowd</h2>' + crowd_table(rows))
    figures = [
        ("progression", "Fig. 6: ATTIC's pairs over control training", progression(rows, out)),
        (
            "hard_real",
            "Fig. 7, left: hard real pairs (the Real ranker orders them wrongly)",
            hard_real_pairs(rows, out / "hard_real.png"),
        ),
        (
            "accepted",
            "Fig. 7, middle: created pairs the crowd accepted",
            created_gallery(rows, "accepted", out / "accepted.png"),
        ),
        (
            "illegible",
            "Fig. 7, right: created pairs the crowd rejected as illegible",
            created_gallery(rows, "rejected", out / "illegible.png"),
        ),
        (
            "attribute_space",
            "Where the pairs fall in attribute space",
            attribute_space(rows, out / "attribute_space.png"),
        ),
    ]
    for name, title, what in figures:
        parts.append(f'<h2 id="{name}-title">{title}</h2>')
        if what is None:
            parts.append("<p>Nothing to show: the runs hold no such pairs.</p>")
        else:
            parts.append(
                f'<p>{html.escape(what)}</p><img id="{name}" src="{name}.png" alt="{title}">'
            )
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>outpool report'
        f"</title><style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )
    with atomic_path(out / "index.html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out / "index.html"
