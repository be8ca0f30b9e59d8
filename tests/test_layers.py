"""The package's floor plan: imports run down the layers ARCHITECTURE.md lists, never up, and
the top level holds only the plumbing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import outpool

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(outpool.__file__).resolve().parent
PLUMBING = "plumbing"


def layer_order() -> dict[str, int]:
    """Layer of each top-level name (a package, or a plumbing module), from ARCHITECTURE.md's
    numbered "Layers" list: a line's backquoted names share its number."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    order: dict[str, int] = {}
    for line in section.splitlines():
        item = re.match(r"(\d+)\. (.*)", line)
        if item:
            for name in re.findall(r"`([a-z_]+)`", item.group(2)):
                order[name] = int(item.group(1))
    return order


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name / "__init__.py").exists()


def imports_of(path: Path) -> set[str]:
    """Every outpool module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "outpool":  # submodules by name; anything else is the package's
                found.update(
                    f"outpool.{a.name}" if is_module(a.name) else "outpool" for a in node.names
                )
            elif node.module.split(".")[0] == "outpool":
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "outpool")
    return found


def layer_of(module: str, order: dict[str, int]) -> int:
    """A module's layer: that of its top-level name (``outpool`` itself is plumbing)."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top == "__init__":
        return order["errors"]
    if top not in order:
        raise AssertionError(f"{module}: '{top}' is in no layer of ARCHITECTURE.md")
    return order[top]


def test_architecture_lists_every_package_and_top_level_module() -> None:
    order = layer_order()
    assert order["errors"] == order["config"] == order["fileio"] == order["bench"] == 1
    assert order["data"] < order["models"] < order["train"] < order["cli"]
    present = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    present |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert present <= set(order), f"not in ARCHITECTURE.md's layers: {present - set(order)}"


def test_no_import_runs_upward() -> None:
    order = layer_order()
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = module_name(path)
        for target in imports_of(path):
            if layer_of(target, order) > layer_of(here, order):
                upward.append(f"{here} -> {target}")
    assert not upward, "imports that run upward:\n" + "\n".join(upward)


def test_the_top_level_holds_at_most_five_modules() -> None:
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(modules) <= 5, modules


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    order = layer_order()
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from outpool.cli import main\n")
    assert imports_of(bad) == {"outpool.cli"}
    assert layer_of("outpool.cli", order) > layer_of("outpool.data.pairs", order)
    both = tmp_path / "both.py"
    both.write_text("import outpool.train.loop\nfrom outpool import config, errors\n")
    assert imports_of(both) == {"outpool.train.loop", "outpool.config", "outpool.errors"}
