"""The experiment report from a results file alone: the paper's tables with the best in bold,
the active curves, the labels saved, the crowd's rates; and every table and figure found by a
browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from browser import headless_chromium
from outpool.errors import DataError
from outpool.experiments.results import RESULTS, append_cell
from outpool.report.experiment import build_report, table_gains

ACCURACY = {  # (method, protocol) -> accuracy on "test" for seeds 0 and 1 (both attributes)
    ("real", "normal"): (70.0, 72.0),
    ("real_2n", "normal"): (76.0, 78.0),
    ("semantic_jitter", "normal"): (72.0, 74.0),
    ("attic", "normal"): (80.0, 82.0),
    ("semantic_jitter", "auto"): (71.0, 71.0),
    ("attic", "auto"): (73.0, 75.0),
}
ACTIVE_GAIN = {"semantic_jitter": (0.0, 2.0, 4.0), "attic": (0.0, 4.0, 7.0)}  # per round


def row(attribute: str, method: str, protocol: str, seed: int, **fields: Any) -> dict[str, Any]:
    return {"attribute": attribute, "method": method, "protocol": protocol, "seed": seed, **fields}


def write_results(run: Path) -> None:
    for attribute in ("heel", "open"):
        for (method, protocol), values in ACCURACY.items():
            for seed, value in enumerate(values):
                status = {"accepted": 40, "rejected": 8, "pruned": 2}
                extra = {"created_status": status} if protocol == "normal" and "j" in method else {}
                labels = 300 if method == "real_2n" else 150
                acc = {"test": value, "test_fine": value - 10}
                fields = {"accuracy_pct": acc, "labels_spent": labels, **extra}
                append_cell(run / RESULTS, [row(attribute, method, protocol, seed, **fields)])
        for method, gains in ACTIVE_GAIN.items():
            for seed in (0, 1):
                base = ACCURACY[("real", "normal")][seed]
                append_cell(
                    run / RESULTS,
                    [
                        row(
                            attribute,
                            method,
                            "active",
                            seed,
                            round=r,
                            labels_spent=150 + 50 * r,
                            pairs_trained=150 + 40 * r,
                            accuracy_pct={"test": base + g, "test_fine": base + g - 10},
                        )
                        for r, g in enumerate(gains)
                    ],
                )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("run")
    write_results(run)
    return build_report([run], run / "report")


def test_the_tables_hold_mean_and_std_over_seeds_with_the_best_in_bold(report: Path) -> None:
    page = report.read_text()
    for table in ("normal-test", "normal-test_fine", "auto-test", "auto-test_fine"):
        assert f'id="table-{table}"' in page
    normal = page.split('id="table-normal-test"')[1].split("</table>")[0]
    assert "<b>81.0 &plusmn; 1.0</b>" in normal  # attic, best
    assert "<td>71.0 &plusmn; 1.0</td>" in normal  # real, in every protocol's table
    auto = page.split('id="table-auto-test"')[1].split("</table>")[0]
    assert "<b>77.0 &plusmn; 1.0</b>" in auto  # real_2n beats the auto methods here
    assert "attic" in auto and "71.0 &plusmn; 0.0" in auto


def test_table_gains_are_per_seed_means_over_attributes_of_the_gap_to_real() -> None:
    rows = [row(a, m, p, s, accuracy_pct={"test": v}) for a, m, p, s, v in [
        ("heel", "real", "normal", 0, 70.0), ("open", "real", "normal", 0, 60.0),
        ("heel", "real", "normal", 1, 72.0), ("open", "real", "normal", 1, 62.0),
        ("heel", "attic", "auto", 0, 75.0), ("open", "attic", "auto", 0, 61.0),
        ("heel", "attic", "auto", 1, 71.0), ("open", "attic", "auto", 1, 63.0),
        ("heel", "real_2n", "normal", 0, 71.0), ("open", "real_2n", "normal", 0, 61.0),
        ("heel", "attic", "active", 0, 99.0),
    ]]  # fmt: skip
    gains = table_gains(rows, "auto", "test")
    assert list(gains) == ["attic", "real_2n"]  # Real's own methods stand in every protocol
    assert gains["attic"].tolist() == [3.0, 0.0]  # seed 0: (5 + 1) / 2; seed 1: (-1 + 1) / 2
    assert gains["real_2n"].tolist() == [1.0]
    assert list(table_gains(rows, "normal", "test")) == ["real_2n"]


def test_labels_saved_reads_the_active_curves_against_real_2n(report: Path) -> None:
    page = report.read_text()
    saved = page.split('id="labels-saved"')[1].split("</table>")[0]
    # Real 2n gains 6 points; ATTIC's mean gain reaches 7 at round 2 (250 labels),
    # Semantic Jitter's peaks at 4: it never gets there
    assert "<th>attic</th><td>250</td><td>50</td>" in saved
    assert "<th>semantic_jitter</th><td>not reached</td>" in saved


def test_the_crowd_table_gives_rates_per_creator(report: Path) -> None:
    page = report.read_text()
    crowd = page.split('id="crowd"')[1].split("</table>")[0]
    assert "<th>semantic_jitter</th><td>200</td><td>80.0%</td><td>16.0%</td><td>4.0%</td>" in crowd


def test_a_run_without_results_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"{tmp_path / RESULTS}: no results yet"):
        build_report([tmp_path], tmp_path / "report")


def test_a_browser_finds_every_table_and_figure(report: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    with headless_chromium(tmp_path / "profile") as browser:
        browser.get(report.as_uri())
        tables = browser.find_elements(By.CSS_SELECTOR, "table")
        assert {t.get_attribute("id") for t in tables} >= {
            "table-normal-test",
            "table-auto-test",
            "labels-saved",
            "crowd",
        }
        for name in ("tables-test", "tables-test_fine", "active-test", "active-test_fine"):
            image = browser.find_element(By.ID, name)
            loaded = browser.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0", image
            )
            assert loaded, f"{name} did not load"
        assert browser.title == "outpool report"


def test_fig6_reads_the_snapshots_of_an_active_cells_first_round(tmp_path: Path) -> None:
    import json

    import numpy as np
    from PIL import Image

    from outpool.report.experiment import Row, progression

    snaps = tmp_path / "cells" / "c" / "round_001" / "creator" / "snapshots"
    snaps.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for epoch in (1, 2, 3):
        images = rng.integers(0, 256, (2, 4, 64, 64, 3), dtype=np.uint8)
        np.savez(snaps / f"epoch_{epoch:03d}.npz", images_a=images[0], images_b=images[1],
                 label=np.array([1, -1, 0, 1]))  # fmt: skip
    (snaps / "losses.jsonl").write_text(
        "".join(json.dumps({"epoch": e, "ranker_loss": 0.5 + e / 10}) + "\n" for e in (1, 2, 3))
    )
    r = Row(row("heel", "attic", "active", 2, round=1, folder="cells/c"))
    r.run = tmp_path
    assert progression([r], tmp_path) == "heel, seed 2 (active)"
    with Image.open(tmp_path / "progression.png") as page:
        assert page.height > 3 * 64  # a strip per epoch shown
