"""How answers reach the database, acknowledged only once committed ("on disk").

SQLite (``GroupCommit``): one writer. A vote's cost is mostly the commit (an fsync) and the one
write lock, so the answers that arrive while one commit is under way share the next: one writer
thread takes every job queued, runs them in one write transaction and commits once. A job that
raises is undone alone and gets its error while the others commit: the group is rolled back and
run again with each job in its own SAVEPOINT (savepoints only then). Nothing waits for company:
a job that finds the writer idle commits at once, and under load the groups grow with the queue.

PostgreSQL (``ParallelWrites``): one transaction per answer, a call of the store's function
(``pg_work``), on a pool of threads, each locking the rows it changes, so answers on different
pairs commit in parallel, from every process and host sharing the database (PostgreSQL groups
the WAL flushes of concurrent commits itself). Groups would hold many pairs' row locks at once
and deadlock each other across processes. A call the database rolled back for a deadlock is
run again (``run_statement``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from outpool.service.db import Cursor, PostgresDatabase, SQLiteDatabase

T = TypeVar("T")
Job = tuple[Callable[[Cursor], Any], "Future[Any]"]

MAX_GROUP = 64  # jobs per commit at most: bounds how long the write lock is held
RETRIES = 5  # runs of a concurrent transaction the database keeps rolling back for deadlocks


def run_statement(db: PostgresDatabase, fn: Callable[[Cursor], T]) -> T:
    """``fn(cursor)``, which runs one statement (its own transaction), run again when the
    database rolled it back for a deadlock."""
    for attempt in range(1, RETRIES + 1):
        try:
            with db.statement() as cur:
                return fn(cur)
        except Exception as exc:
            if attempt == RETRIES or not db.retryable(exc):
                raise
    raise AssertionError("unreachable")


class ParallelWrites:
    """``submit(fn)`` runs ``fn(cursor)``, one statement, with ``run_statement`` on one of
    ``workers`` threads."""

    def __init__(self, db: PostgresDatabase, *, workers: int) -> None:
        self.db = db
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="outpool-write")
        self._closed = False

    def submit(self, fn: Callable[[Cursor], T]) -> Future[T]:
        if self._closed:
            raise RuntimeError("the store is closed")
        return self._pool.submit(run_statement, self.db, fn)

    def close(self) -> None:
        """Finish the queued jobs, then stop the threads."""
        self._closed = True
        self._pool.shutdown(wait=True)


class GroupCommit:
    """One writer thread over ``db``; ``submit(fn)`` runs ``fn(cursor)`` in the next group,
    a write transaction."""

    def __init__(self, db: SQLiteDatabase, *, max_group: int = MAX_GROUP):
        self.db = db
        self.max_group = max_group
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._closed = False
        self.groups = 0  # commits made

    def submit(self, fn: Callable[[Cursor], T]) -> Future[T]:
        """Queue ``fn``; its future holds what it returned (or raised) once committed."""
        future: Future[T] = Future()
        with self._guard:
            if self._closed:
                raise RuntimeError("the store is closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="outpool-group-commit", daemon=True
                )
                self._thread.start()
            self._jobs.put((fn, future))
        return future

    def close(self) -> None:
        """Finish the queued jobs, then stop the writer."""
        with self._guard:
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            group = [job]
            while len(group) < self.max_group:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._jobs.put(None)  # stop after this group
                    break
                group.append(more)
            self._commit(group)

    def _commit(self, group: list[Job]) -> None:
        live = [(fn, f) for fn, f in group if f.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            try:
                outcomes = self._run_group(live, savepoints=False)
            except _JobFailed:  # rolled back: run again, each job in a savepoint
                outcomes = self._run_group(live, savepoints=True)
        except BaseException as exc:  # the commit failed: nothing of the group was stored
            for _, future in live:
                future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.groups += 1
        for (_, future), (ok, value) in zip(live, outcomes, strict=True):
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _run_group(self, live: list[Job], *, savepoints: bool) -> list[tuple[bool, Any]]:
        """Every job in one transaction. Without savepoints (the common case: no job fails,
        and a savepoint costs two round trips on PostgreSQL) the first failure rolls the whole
        group back (``_JobFailed``)."""
        outcomes: list[tuple[bool, Any]] = []
        with self.db.transaction(write=True) as cur:
            for fn, _ in live:
                if not savepoints:
                    try:
                        outcomes.append((True, fn(cur)))
                    except Exception as exc:
                        raise _JobFailed from exc
                    continue
                cur.execute("SAVEPOINT job")
                try:
                    outcomes.append((True, fn(cur)))
                except Exception as exc:  # this job alone is undone; it gets the error
                    cur.execute("ROLLBACK TO SAVEPOINT job")
                    outcomes.append((False, exc))
                cur.execute("RELEASE SAVEPOINT job")
        return outcomes


class _JobFailed(Exception):
    """A job of a group run without savepoints raised: the group is rolled back."""
