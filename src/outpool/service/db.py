"""Database connections for the annotation store: SQLite (one host) or PostgreSQL (many).

The store writes one SQL dialect (``?`` placeholders, standard types); ``Database`` adapts it
to the backend. SQLite allows one writer: every write transaction is serialised. On PostgreSQL
an advisory lock (``WRITE_LOCK_KEY``) orders two kinds of writes across every process and host
sharing the database: an annotator's transactions (answer, skip, next task: calls of the
store's functions, ``pg_work``, each one ``statement``) hold it shared and run in parallel,
each locking the rows it changes; every other write (batches, annotators, undo) is a
``transaction(write=True)`` and holds it alone.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from outpool.errors import ConfigError

WRITE_LOCK_KEY = 0x6F7574706F6F6C  # "outpool": the PostgreSQL advisory lock of write transactions


class Cursor(Protocol):
    """The part of a DB-API cursor the store uses, with ``?`` placeholders on every backend."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    def fetchone(self) -> tuple[Any, ...] | None: ...
    def fetchall(self) -> list[tuple[Any, ...]]: ...


class Database(Protocol):
    dialect: str  # "sqlite" or "postgresql"
    url: str

    def transaction(self, *, write: bool) -> AbstractContextManager[Cursor]: ...
    def retryable(self, exc: BaseException) -> bool: ...
    def close(self) -> None: ...


def connect(url: str | Path) -> SQLiteDatabase | PostgresDatabase:
    """Open a store database by URL: ``sqlite:///path/to/votes.db`` (or a plain file path)
    or ``postgresql://user:password@host:port/dbname``."""
    url = str(url)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url)
    if url.startswith("sqlite:///"):
        return SQLiteDatabase(Path(url[len("sqlite:///") :]))
    if "://" in url:
        raise ConfigError(
            f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://..."
        )
    return SQLiteDatabase(Path(url))


class SQLiteDatabase:
    """SQLite in WAL mode with ``synchronous=FULL``: a committed vote survives a crash of the
    process and of the machine. One writer connection behind a lock (waiting on a Python lock
    is fairer and faster than SQLite's busy-retry sleeps); one reader connection per thread,
    which WAL lets read while the writer writes."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        if not self.path.parent.is_dir():
            raise ConfigError(f"folder of the database does not exist: {self.path.parent}")
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._writer = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=10000")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot open SQLite database {self.path}: {exc}") from None
        return conn

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Cursor]:
        if write:
            with self._lock:
                yield from _sqlite_transaction(self._writer, "BEGIN IMMEDIATE")
            return
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._open()
            with self._lock:
                self._readers.append(conn)
        yield from _sqlite_transaction(conn, "BEGIN")

    def retryable(self, exc: BaseException) -> bool:
        return False  # one writer: no deadlocks

    def close(self) -> None:
        with self._lock:
            for conn in [self._writer, *self._readers]:
                conn.close()
            self._readers.clear()


def _sqlite_transaction(conn: sqlite3.Connection, begin: str) -> Iterator[Cursor]:
    cur = conn.cursor()
    cur.execute(begin)
    try:
        yield cur  # type: ignore[misc]
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


class PostgresDatabase:
    """PostgreSQL through psycopg 3 with a small connection pool (``pool_size`` connections,
    opened on demand, in autocommit mode: a ``transaction`` says BEGIN and COMMIT, a
    ``statement`` is its own transaction). Needs ``pip install 'outpool[postgres]'``."""

    dialect = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 8) -> None:
        try:
            import psycopg
        except ImportError:
            raise ConfigError(
                "PostgreSQL needs psycopg: pip install 'psycopg[binary]>=3.1'"
            ) from None
        self.url = url
        self.pool_size = pool_size
        self._psycopg = psycopg
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)
        self._all: list[Any] = []
        self._guard = threading.Lock()
        with self.transaction(write=False) as cur:  # fail now, not on the first request
            cur.execute("SELECT 1")

    def _get(self) -> Any:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        try:
            conn = self._psycopg.connect(self.url, autocommit=True)
        except self._psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"cannot connect to PostgreSQL: {first}") from None
        with self._guard:
            self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Cursor]:
        with self._connection() as conn, conn.transaction(), conn.cursor() as raw:
            cur = _PgCursor(raw)
            if write:
                cur.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK_KEY,))
            yield cur

    @contextmanager
    def statement(self) -> Iterator[Cursor]:
        """A cursor for one statement that is its own transaction: no BEGIN or COMMIT, one
        round trip. For the store's functions, which take the write lock themselves."""
        with self._connection() as conn, conn.cursor() as raw:
            yield _PgCursor(raw, statements=1)

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        with self._slots:
            conn = self._get()
            try:
                yield conn
            except BaseException:
                if conn.closed or conn.broken:
                    with self._guard:
                        self._all.remove(conn)
                else:
                    self._pool.put(conn)
                raise
            self._pool.put(conn)

    def retryable(self, exc: BaseException) -> bool:
        """A deadlock or serialisation failure: the transaction was rolled back and may be
        run again."""
        errors = self._psycopg.errors
        return isinstance(exc, errors.DeadlockDetected | errors.SerializationFailure)

    def close(self) -> None:
        with self._guard:
            for conn in self._all:
                conn.close()
            self._all.clear()


class _PgCursor:
    """A psycopg cursor speaking the store's ``?`` placeholders (the store's SQL never has a
    literal ``?``, nor a literal ``%`` in a statement with parameters); ``statements``: how
    many it may run (None: any)."""

    def __init__(self, raw: Any, *, statements: int | None = None) -> None:
        self._raw = raw
        self._left = statements

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _PgCursor:
        if self._left is not None:
            if self._left == 0:
                raise RuntimeError("one statement per transaction on this cursor")
            self._left -= 1
        if params:
            self._raw.execute(sql.replace("?", "%s"), tuple(params))
        else:  # no placeholders to fill: a literal % stays as it is
            self._raw.execute(sql)
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._raw.executemany(sql.replace("?", "%s"), [tuple(r) for r in rows])

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._raw.fetchone()
        return None if row is None else tuple(row)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._raw.fetchall()]
