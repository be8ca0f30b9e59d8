"""The docs stay a front door: short, and naming only what the repository holds."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
DOCS = [
    ROOT / "README.md",
    ROOT / "ARCHITECTURE.md",
    RESULTS,
    *sorted((ROOT / "docs").glob("*.md")),
]


def test_readme_and_results_stay_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) < 300
    assert len(RESULTS.read_text().splitlines()) < 250


def test_every_result_file_is_cited_and_every_cited_file_exists() -> None:
    text = RESULTS.read_text()
    kept = {p.name for p in (ROOT / "benchmarks" / "results").iterdir()}
    cited = set(re.findall(r"\d{4}-\d\d-\d\d_[\w.-]+\.(?:jsonl|json|log|csv)\b", text))
    assert kept - cited == set(), "result files RESULTS.md does not cite"
    assert cited - kept == set(), "RESULTS.md cites files that are not there"


def test_links_name_files_in_the_repository() -> None:
    missing = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)\)", doc.read_text()):
            if "://" not in target and not (doc.parent / target).exists():
                missing.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert not missing
