"""Shared plumbing of long work: the benchmarks' machine description, peak memory and
one-JSON-object-last output contract (ARCHITECTURE.md, "Benchmarks"), and progress for long
loops: a bar with a total and an ETA on stderr that writes one line every 30 s in a log file
instead of ten a second, and an ETA line for loops that print a line per item."""

from __future__ import annotations

import argparse
import os
import platform
import resource
import secrets
import sys
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import torch
from tqdm import tqdm

from outpool.fileio import atomic_path, json_text


def machine() -> dict[str, Any]:
    """What the figures were measured on: they are only comparable on the same machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", type=Path, help="also write the JSON result to this file")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    return p


def emit(result: dict[str, Any], out: Path | None) -> None:
    """Print the result as the last line of stdout (and to ``out``)."""
    text = json_text(result)
    if out is not None:
        with atomic_path(out) as tmp:
            tmp.write_text(text + "\n")
    print(text, flush=True)


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N: this process runs every N-th item from the I-th."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a shard is I/N, e.g. 0/4, got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"a shard I/N needs 0 <= I < N, got {text!r}")
    return i, n


T = TypeVar("T")


def progress_bar(items: Iterable[T], desc: str, **kwargs: Any) -> tqdm:
    """``items`` with a bar labelled ``desc`` (no bar where ``desc`` is empty); ``kwargs`` go to
    tqdm (``total``, ``unit``, ``leave``...)."""
    if not sys.stderr.isatty():  # a log file: a line every 30 s, and each bar's end stays
        kwargs.update(mininterval=30.0, leave=True)
    kwargs.setdefault("mininterval", 0.1)
    return tqdm(items, desc=desc, disable=not desc, file=sys.stderr, **kwargs)


def eta_text(done: int, total: int, started: float, now: float) -> str:
    """``[done/total, about N min left]``: the time left at the mean pace so far (for loops
    whose items each print a line, such as a benchmark's runs or a grid's cells)."""
    if done <= 0:
        return f"[{done}/{total}]"
    left = (now - started) / done * (total - done)
    return f"[{done}/{total}, about {left / 60:.0f} min left]"


def postgres_schema(url: str) -> tuple[str, str]:
    """A fresh schema on the server of ``url``; returns (its name, a URL that uses it)."""
    import psycopg

    schema = f"outpool_bench_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    option = urllib.parse.quote(f"-csearch_path={schema}")
    return schema, f"{url}{'&' if '?' in url else '?'}options={option}"


def drop_schema(url: str, schema: str) -> None:
    """Drop what ``postgres_schema`` made, with everything in it."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
