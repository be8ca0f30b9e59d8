"""Fixtures for the annotation store's tests, on both of its backends.

``store_url`` runs a test once on SQLite (a file in ``tmp_path``) and once on PostgreSQL (a
fresh schema per test in the database named by ``OUTPOOL_TEST_POSTGRES_URL``; ``.ci/run``
starts a server and sets it). Without that variable the PostgreSQL half is skipped, unless
``OUTPOOL_REQUIRE_SERVICES=1`` (set by CI), where it fails: CI never skips it silently.

Registered with ``pytest_plugins = ["service.store_fixtures"]`` in the test module.
"""

from __future__ import annotations

import os
import secrets
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest

from outpool.service.batch import NO_CHECK, BatchSpec
from outpool.service.store import AnnotationStore

POSTGRES_ENV = "OUTPOOL_TEST_POSTGRES_URL"
REQUIRE_ENV = "OUTPOOL_REQUIRE_SERVICES"
NO_POSTGRES = f"PostgreSQL tests need {POSTGRES_ENV} (.ci/run starts a server)"

BACKENDS = ("sqlite", "postgresql")


def with_search_path(url: str, schema: str) -> str:
    """``url`` with libpq's ``options=-csearch_path=SCHEMA`` added: every connection opened
    from it creates and finds its tables in ``schema``."""
    options = urllib.parse.quote(f"-csearch_path={schema}", safe="")
    return f"{url}{'&' if '?' in url else '?'}options={options}"


def _postgres_unavailable() -> NoReturn:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(NO_POSTGRES, pytrace=False)
    pytest.skip(NO_POSTGRES)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL of the test PostgreSQL database whose search path is a new, empty schema
    ``t_<random>``; the schema and everything in it is dropped afterwards."""
    base = os.environ.get(POSTGRES_ENV, "").strip()
    if not base:
        _postgres_unavailable()
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(base, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(f"cannot connect to {POSTGRES_ENV}: {exc}", pytrace=False)
    try:
        admin.execute(f"CREATE SCHEMA {schema}")
        yield with_search_path(base, schema)
    finally:
        try:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            admin.close()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def open_store(store_url: str) -> Iterator[Callable[[], AnnotationStore]]:
    """Opens ``AnnotationStore``s on ``store_url`` (each call a new instance: a new process
    or host); all still open are closed at the end of the test."""
    opened: list[AnnotationStore] = []

    def make() -> AnnotationStore:
        store = AnnotationStore.open(store_url)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def make_spec() -> Callable[..., BatchSpec]:
    """``build_spec`` as a fixture (a module registered as a plugin is better not imported)."""
    return build_spec


@pytest.fixture
def store(open_store: Callable[[], AnnotationStore]) -> AnnotationStore:
    return open_store()


def random_images(n: int, *, seed: int = 0, size: int = 64) -> dict[str, np.ndarray]:
    """``n`` random (size, size, 3) uint8 images named ``i000``, ``i001``, ..."""
    rng = np.random.default_rng(seed)
    return {f"i{i:03d}": rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for i in range(n)}


def build_spec(
    name: str = "b1",
    pairs: int = 4,
    *,
    checks: int = 0,
    images: int | None = None,
    attribute: str = "red",
    seed: int = 0,
) -> BatchSpec:
    """A batch of ``pairs`` ordinary pairs ``p000``... then ``checks`` check pairs ``c000``...
    (known answers cycling +1, -1, 0), on one attribute, over random 64x64 images.

    Without ``images`` every pair has two images of its own (pair j: ``i{2j}`` and
    ``i{2j+1}``); with it, pairs draw two different images from a pool of that many. The
    same arguments always give the same batch.
    """
    total = pairs + checks
    rng = np.random.default_rng(seed + 1)
    if images is None:
        a = [f"i{2 * j:03d}" for j in range(total)]
        b = [f"i{2 * j + 1:03d}" for j in range(total)]
        pool = random_images(2 * total, seed=seed)
    else:
        pool = random_images(images, seed=seed)
        keys = sorted(pool)
        drawn = [rng.choice(len(keys), 2, replace=False) for _ in range(total)]
        a = [keys[int(d[0])] for d in drawn]
        b = [keys[int(d[1])] for d in drawn]
    answers = [NO_CHECK] * pairs + [(1, -1, 0)[j % 3] for j in range(checks)]
    return BatchSpec(
        name=name,
        ids=np.array([f"p{j:03d}" for j in range(pairs)] + [f"c{j:03d}" for j in range(checks)]),
        attribute=np.full(total, attribute),
        a=np.array(a),
        b=np.array(b),
        images=pool,
        definitions={attribute: f"how much {attribute} the image shows"},
        check_answer=np.array(answers, dtype=np.int8),
    )
