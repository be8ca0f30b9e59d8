"""Atomic outputs: ``atomic_dir``, ``atomic_path`` and ``check_output_dir``."""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from outpool.errors import DataError
from outpool.fileio import atomic_dir, atomic_path, check_output_dir, default_cache_dir


class Boom(Exception):
    pass


@pytest.fixture(autouse=True)
def _umask_022() -> Iterator[None]:
    before = os.umask(0o022)
    yield
    os.umask(before)


def leftovers(path: Path) -> list[str]:
    """Temporary siblings of ``path``: ``.NAME.new-*``, ``.NAME.old-*``, ``.NAME.*.tmp``."""
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def old_folder(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "a.txt").write_text("old a")
    (out / "sub" / "b.txt").write_text("old b")
    return out


# ---- atomic_dir --------------------------------------------------------------------------------


def test_atomic_dir_creates_with_parents(tmp_path: Path) -> None:
    out = tmp_path / "x" / "y" / "out"
    with atomic_dir(out) as tmp:
        assert tmp.parent == out.parent and tmp.name.startswith(".out.new-")
        assert not out.exists()  # nothing visible until the block succeeds
        (tmp / "f.txt").write_text("new")
    assert tree(out) == {"f.txt": "new"}
    assert mode(out) == 0o755  # an ordinary folder, not mkdtemp's 0700
    assert leftovers(out) == []


def test_atomic_dir_into_an_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with atomic_dir(out) as tmp:
        (tmp / "f.txt").write_text("new")
    assert tree(out) == {"f.txt": "new"} and leftovers(out) == []


def test_atomic_dir_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    out = old_folder(tmp_path)
    entered = False
    with pytest.raises(DataError, match="--force") as info, atomic_dir(out):
        entered = True
    assert not entered  # refused before the block runs
    assert str(out) in str(info.value)
    assert tree(out) == {"a.txt": "old a", "sub/b.txt": "old b"}
    assert leftovers(out) == []


def test_atomic_dir_overwrite_replaces(tmp_path: Path) -> None:
    out = old_folder(tmp_path)
    with atomic_dir(out, overwrite=True) as tmp:
        assert tree(out) == {"a.txt": "old a", "sub/b.txt": "old b"}  # old one intact meanwhile
        (tmp / "c.txt").write_text("new c")
    assert tree(out) == {"c.txt": "new c"}
    assert leftovers(out) == []


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_atomic_dir_failure_keeps_the_old_content(
    tmp_path: Path, overwrite: bool, error: type[BaseException]
) -> None:
    out = old_folder(tmp_path) if overwrite else tmp_path / "out"
    with pytest.raises(error), atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "half.txt").write_text("half-written")
        raise error()
    if overwrite:
        assert tree(out) == {"a.txt": "old a", "sub/b.txt": "old b"}
    else:
        assert not out.exists()
    assert leftovers(out) == []


def test_atomic_dir_regular_file_at_path(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("a file")
    for overwrite in (False, True):
        with pytest.raises(DataError, match="not a folder"), atomic_dir(out, overwrite=overwrite):
            pass
    assert out.read_text() == "a file" and leftovers(out) == []


def test_atomic_dir_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with atomic_dir("rel/") as tmp:
        (tmp / "f.txt").write_text("x")
    assert tree(tmp_path / "rel") == {"f.txt": "x"} and leftovers(tmp_path / "rel") == []


# ---- check_output_dir --------------------------------------------------------------------------


def test_check_output_dir(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    assert check_output_dir(missing, overwrite=False) is False
    assert check_output_dir(missing, overwrite=True) is False
    assert not missing.exists()  # only checks, never creates

    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_output_dir(empty, overwrite=False) is False
    assert check_output_dir(empty, overwrite=True) is False

    full = tmp_path / "full"
    full.mkdir()
    (full / ".hidden").write_text("")  # a hidden file still makes it non-empty
    assert check_output_dir(full, overwrite=True) is True
    with pytest.raises(DataError, match="pass --force to replace it") as info:
        check_output_dir(full, overwrite=False)
    assert info.value.path == full

    afile = tmp_path / "afile"
    afile.write_text("x")
    for overwrite in (False, True):
        with pytest.raises(DataError, match="exists and is not a folder"):
            check_output_dir(afile, overwrite=overwrite)
    assert (full / ".hidden").exists() and afile.read_text() == "x"


# ---- atomic_path -------------------------------------------------------------------------------


def test_atomic_path_writes_an_ordinary_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "f.txt"
    with atomic_path(path) as tmp:
        assert tmp.parent == path.parent and tmp != path
        tmp.write_text("new")
        assert not path.exists()
    assert path.read_text() == "new"
    assert mode(path) == 0o644  # not mkstemp's 0600
    assert leftovers(path) == []


def test_atomic_path_replaces(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("old")
    with atomic_path(path) as tmp:
        tmp.write_text("new")
    assert path.read_text() == "new" and leftovers(path) == []


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_atomic_path_failure_keeps_the_old_file(tmp_path: Path, error: type[BaseException]) -> None:
    path = tmp_path / "f.txt"
    path.write_text("old")
    with pytest.raises(error), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise error()
    assert path.read_text() == "old" and leftovers(path) == []

    fresh = tmp_path / "g.txt"
    with pytest.raises(error), atomic_path(fresh) as tmp:
        tmp.write_text("half")
        raise error()
    assert not fresh.exists() and leftovers(fresh) == []


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OUTPOOL_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("OUTPOOL_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "outpool"


def strict_loads(text: str) -> object:
    """JSON as JavaScript's JSON.parse reads it: NaN and Infinity are errors."""

    def refuse(name: str) -> object:
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_json_text_is_strict_json_and_an_infinite_config_value_round_trips() -> None:
    from outpool.config import from_dict, to_dict
    from outpool.fileio import json_text
    from outpool.train.generator import GeneratorTrainConfig

    value = {"a": math.inf, "b": [-math.inf, math.nan, 1.5], "c": {"d": "x"}}
    assert strict_loads(json_text(value)) == {"a": "inf", "b": ["-inf", None, 1.5], "c": {"d": "x"}}
    cfg = GeneratorTrainConfig()
    assert cfg.chroma_ratio == math.inf  # the default that used to be written as Infinity
    assert from_dict(GeneratorTrainConfig, strict_loads(json_text(to_dict(cfg)))) == cfg


def test_the_project_writes_json_only_through_json_text() -> None:
    root = Path(__file__).resolve().parents[1]
    writers = [
        f"{path.relative_to(root)}:{n}"
        for folder in ("src", "benchmarks")
        for path in sorted((root / folder).rglob("*.py"))
        if path.name != "fileio.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "json.dumps(" in line or "json.dump(" in line
    ]
    assert writers == []
