"""How answers are written (``service.writes``): group commit on SQLite, parallel transactions
under row locks on PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from outpool.service import pg_work
from outpool.service import store as store_module
from outpool.service.batch import BatchSpec
from outpool.service.db import Cursor
from outpool.service.store import AnnotationStore, Conflict, NotFound, Submission, Task
from outpool.service.writes import RETRIES, run_statement

pytest_plugins = ["service.store_fixtures"]


def answer_of(task: Task, choice: str = "equal") -> Submission:
    return Submission(uuid.uuid4().hex, task.batch, task.pair_id, choice, "very")


def count_votes(store: AnnotationStore) -> int:
    with store.db.transaction(write=False) as cur:
        row = cur.execute("SELECT COUNT(*) FROM votes").fetchone()
    assert row is not None
    return int(row[0])


@contextmanager
def writer_held(store: AnnotationStore) -> Iterator[None]:
    """Keep the group-commit writer busy until the block ends: what is submitted inside the
    block queues up and goes out as one group."""
    started, release = threading.Event(), threading.Event()

    def hold(cur: Cursor) -> None:
        started.set()
        release.wait(10)

    held = store._writes.submit(hold)
    assert started.wait(10)
    try:
        yield
    finally:
        release.set()
        held.result(10)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[AnnotationStore]:
    """Group commit is SQLite's way (on PostgreSQL answers commit in parallel)."""
    store = AnnotationStore.open(tmp_path / "votes.db")
    yield store
    store.close()


def test_answers_that_arrive_together_share_one_commit(
    make_spec: Callable[..., BatchSpec], sqlite_store: AnnotationStore
) -> None:
    store = sqlite_store
    store.create_batch(make_spec("b1", 12, images=8), k=1)
    people = [store.create_annotator(f"a{i}")[0] for i in range(6)]
    tasks = [store.next_task(p) for p in people]
    groups = store._writes.groups
    with writer_held(store):
        futures = [store.answer(p, answer_of(t)) for p, t in zip(people, tasks, strict=True)]
        assert not any(f.done() for f in futures)  # nothing is acknowledged before the commit
    results = [f.result(10) for f in futures]
    assert store._writes.groups == groups + 2  # the held job's commit, then all six answers'
    assert [ack.duplicate for ack, _, _ in results] == [False] * 6
    assert len({ack.vote_id for ack, _, _ in results}) == 6
    nexts = [task for _, task, _ in results]
    assert all(t is not None for t in nexts)
    assert len({t.pair_id for t in nexts if t is not None}) == 6  # k = 1: no pair given twice
    # each answer sees the ones before it in the group: 12 pairs, i + 1 done, one more held
    assert [progress for _, _, progress in results] == [(1, 10 - i) for i in range(6)]
    assert count_votes(store) == 6


def test_a_refused_answer_undoes_only_itself_and_the_group_commits(
    make_spec: Callable[..., BatchSpec], sqlite_store: AnnotationStore
) -> None:
    store = sqlite_store
    store.create_batch(make_spec("b1", 6, images=8), k=1)
    ann, bob, cat = (store.create_annotator(n)[0] for n in ("ann", "bob", "cat"))
    t_ann, t_bob = store.next_task(ann), store.next_task(bob)
    assert t_ann is not None and t_bob is not None
    with writer_held(store):
        good = store.answer(ann, answer_of(t_ann))
        stolen = store.answer(cat, answer_of(t_bob))  # not cat's pair
        again = store.answer(ann, answer_of(t_ann))  # a second answer to the same pair
        retry_sub = answer_of(t_bob)
        first, retry = store.answer(bob, retry_sub), store.answer(bob, retry_sub)
    assert good.result(10)[0].duplicate is False
    with pytest.raises(NotFound):
        stolen.result(10)
    with pytest.raises(Conflict):
        again.result(10)
    ack, ack_again = first.result(10)[0], retry.result(10)[0]
    assert (ack.duplicate, ack_again.duplicate, ack_again.vote_id) == (False, True, ack.vote_id)
    assert count_votes(store) == 2
    # the refused answers assigned nothing: cat's first task is the next open pair
    assert store.next_task(cat) is not None


def test_a_failed_commit_fails_every_answer_of_its_group_and_stores_none(
    make_spec: Callable[..., BatchSpec],
    sqlite_store: AnnotationStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = sqlite_store
    store.create_batch(make_spec("b1", 6, images=8), k=1)
    people = [store.create_annotator(f"a{i}")[0] for i in range(3)]
    tasks = [store.next_task(p) for p in people]
    real = store.db.transaction

    @contextmanager
    def failing(*, write: bool) -> Iterator[Any]:
        with real(write=write) as cur:
            yield cur
            raise OSError("disk full")  # inside the transaction: it rolls back

    with writer_held(store):
        monkeypatch.setattr(store.db, "transaction", failing)
        futures = [store.answer(p, answer_of(t)) for p, t in zip(people, tasks, strict=True)]
    for f in futures:
        with pytest.raises(OSError, match="disk full"):
            f.result(10)
    monkeypatch.setattr(store.db, "transaction", real)
    assert count_votes(store) == 0
    # the same submissions, retried, are stored once each
    retried = [store.submit_and_next(p, answer_of(t)) for p, t in zip(people, tasks, strict=True)]
    assert [ack.duplicate for ack, _ in retried] == [False] * 3
    assert count_votes(store) == 3


def test_closing_the_store_commits_what_was_queued(
    make_spec: Callable[..., BatchSpec], open_store: Callable[[], AnnotationStore]
) -> None:
    store = open_store()
    store.create_batch(make_spec("b1", 6, images=8), k=1)
    people = [store.create_annotator(f"a{i}")[0] for i in range(3)]
    tasks = [store.next_task(p) for p in people]
    futures = [store.answer(p, answer_of(t)) for p, t in zip(people, tasks, strict=True)]
    store._writes.close()
    assert all(f.done() for f in futures)
    with pytest.raises(RuntimeError, match="closed"):
        store.answer(people[0], answer_of(tasks[0]))
    assert count_votes(store) == 3


# -- PostgreSQL: one transaction per answer, row locks ----------------------------------------


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[AnnotationStore]:
    store = AnnotationStore.open(postgres_url)
    yield store
    store.close()


@contextmanager
def held_elsewhere(url: str, sql: str, params: tuple[Any, ...]) -> Iterator[None]:
    """Another connection (another process) runs ``sql`` in a transaction kept open until
    the block ends, holding the locks it took."""
    import psycopg

    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute(sql, params)
        yield


def vote_under_way(url: str, pair: str) -> AbstractContextManager[None]:
    """A vote on ``pair`` of batch b1 being counted elsewhere: the pair's row is locked."""
    return held_elsewhere(
        url, "SELECT 1 FROM pairs WHERE batch_id = 'b1' AND id = %s FOR NO KEY UPDATE", (pair,)
    )


def assignment_under_way(url: str, seq: int) -> AbstractContextManager[None]:
    """Pair number ``seq`` of batch b1 being assigned elsewhere: its advisory lock is held."""
    return held_elsewhere(url, "SELECT pg_advisory_xact_lock(hashtext('b1'), %s)", (seq,))


def test_answers_on_other_pairs_commit_while_one_pair_is_held(
    make_spec: Callable[..., BatchSpec], pg_store: AnnotationStore, postgres_url: str
) -> None:
    store = pg_store
    store.create_batch(make_spec("b1", 6, images=8), k=2)
    ann, bob, cat = (store.create_annotator(n)[0] for n in ("ann", "bob", "cat"))
    t_ann, t_bob, t_cat = store.next_task(ann), store.next_task(bob), store.next_task(cat)
    assert t_ann is not None and t_bob is not None and t_cat is not None
    assert t_ann.pair_id == t_bob.pair_id == "p000"  # k = 2: both get the first pair
    assert t_cat.pair_id == "p001"
    with vote_under_way(postgres_url, "p000"):
        held = store.answer(ann, answer_of(t_ann))  # its count waits for the other vote
        ack, _, _ = store.answer(cat, answer_of(t_cat)).result(10)  # another pair: commits
        assert ack.duplicate is False
        time.sleep(0.2)
        assert not held.done()
    assert held.result(10)[0].duplicate is False
    assert count_votes(store) == 2


def test_an_assigner_passes_over_a_pair_another_is_assigning_and_never_waits(
    make_spec: Callable[..., BatchSpec], pg_store: AnnotationStore, postgres_url: str
) -> None:
    store = pg_store
    store.create_batch(make_spec("b1", 6, images=8), k=2)
    ann, bob, cat = (store.create_annotator(n)[0] for n in ("ann", "bob", "cat"))
    with assignment_under_way(postgres_url, 0):
        t_ann = store.next_task(ann)
        assert t_ann is not None and t_ann.pair_id == "p001"
        with vote_under_way(postgres_url, "p001"):  # votes do not hold up assignment
            t_bob = store.next_task(bob)
            assert t_bob is not None and t_bob.pair_id == "p001"
    t_cat = store.next_task(cat)
    assert t_cat is not None and t_cat.pair_id == "p000"


def test_a_vote_that_finds_its_pair_filled_meanwhile_is_refused_and_not_stored(
    make_spec: Callable[..., BatchSpec], pg_store: AnnotationStore, postgres_url: str
) -> None:
    store = pg_store
    store.create_batch(make_spec("b1", 3, images=8), k=1, lease_s=1)
    ann, bob = (store.create_annotator(n)[0] for n in ("ann", "bob"))
    t_ann = store.next_task(ann)
    assert t_ann is not None and t_ann.pair_id == "p000"
    # ann's lease runs out; the slot goes to bob, who answers first
    t_bob = store.next_task(bob, now=time.time() + 5)
    assert t_bob is not None and t_bob.pair_id == "p000"
    store.submit(bob, answer_of(t_bob))
    with pytest.raises(Conflict, match="needs no more answers"):
        store.submit(ann, answer_of(t_ann))
    assert count_votes(store) == 1
    assert store.progress("b1").votes == 1


def test_a_call_rolled_back_for_a_deadlock_runs_again(pg_store: AnnotationStore) -> None:
    import psycopg

    with pg_store.db.transaction(write=True) as cur:
        cur.execute("CREATE TABLE tries (n INTEGER)")
        # one statement that writes, then fails as a deadlock would, until its third run
        cur.execute(
            "CREATE FUNCTION try_once(n integer) RETURNS integer LANGUAGE plpgsql AS $$ BEGIN "
            "INSERT INTO tries VALUES (n); IF n < 2 THEN RAISE EXCEPTION USING "
            "ERRCODE = 'deadlock_detected', MESSAGE = 'deadlock detected'; END IF; "
            "RETURN n; END $$"
        )
    runs: list[int] = []

    def job(cur: Cursor) -> int:
        runs.append(len(runs))
        row = cur.execute("SELECT try_once(?)", (runs[-1],)).fetchone()
        assert row is not None
        return int(row[0])

    assert run_statement(pg_store.db, job) == 2  # type: ignore[arg-type]
    with pg_store.db.transaction(write=False) as cur:
        assert cur.execute("SELECT n FROM tries").fetchall() == [(2,)]  # the failed runs undone

    attempts: list[int] = []

    def never(cur: Cursor) -> None:
        attempts.append(1)
        cur.execute("SELECT try_once(?)", (0,))

    with pytest.raises(psycopg.errors.DeadlockDetected):
        run_statement(pg_store.db, never)  # type: ignore[arg-type]
    assert len(attempts) == RETRIES

    def refused(cur: Cursor) -> None:
        attempts.append(1)
        raise ValueError("no")

    attempts.clear()
    with pytest.raises(ValueError):  # other errors are not retried
        run_statement(pg_store.db, refused)  # type: ignore[arg-type]
    assert attempts == [1]


def test_the_functions_draw_sides_and_check_places_as_the_store_does(
    pg_store: AnnotationStore,
) -> None:
    # the same hash of the same text: a store moved between backends keeps its draws
    cases = [("b1", "p000", "w0001", 3, 10), ("batch é", "pair 7", "ånn", 0, 7)]
    cases += [(f"b{i}", f"p{i * 7}", f"w{i % 5}", i, 2 + i % 9) for i in range(40)]
    with pg_store.db.transaction(write=False) as cur:
        for batch, pair, who, block, every in cases:
            row = cur.execute(
                "SELECT outpool_swapped(?, ?, ?), outpool_check_place(?, ?, ?, ?)",
                (batch, pair, who, batch, who, block, every),
            ).fetchone()
            assert row == (
                store_module._swapped(batch, pair, who),
                store_module.check_place(batch, who, block, every),
            )


def test_a_statement_cursor_runs_one_statement(pg_store: AnnotationStore) -> None:
    with pg_store.db.statement() as cur:  # type: ignore[union-attr]
        cur.execute("SELECT 1")
        with pytest.raises(RuntimeError, match="one statement"):
            cur.execute("SELECT 2")


def test_an_assigner_looks_past_a_run_of_pairs_others_are_assigning(
    make_spec: Callable[..., BatchSpec],
    pg_store: AnnotationStore,
    postgres_url: str,
) -> None:
    store = pg_store
    store.create_batch(make_spec("b1", 70, images=8), k=1)
    ann, bob = (store.create_annotator(n)[0] for n in ("ann", "bob"))
    with ThreadPoolExecutor(1) as pool:
        with ExitStack() as held:
            # more held pairs than one query of the assigner reads (pg_work._WINDOW)
            assert pg_work._WINDOW < 69
            held.enter_context(
                held_elsewhere(
                    postgres_url,
                    "SELECT pg_advisory_xact_lock(hashtext('b1'), s) FROM generate_series(0, 68) s",
                    (),
                )
            )
            task = store.next_task(ann)
            assert task is not None and task.pair_id == "p069"
            # (k = 1) every other pair is being assigned: bob waits for the first one, since
            # "no task" would tell him there is no work left
            waiting = pool.submit(store.next_task, bob)
            time.sleep(0.5)
            assert not waiting.done()
        task = waiting.result(timeout=10)
    assert task is not None and task.pair_id == "p000"  # released: first in line
