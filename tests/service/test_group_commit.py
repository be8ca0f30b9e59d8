"""Group commit of answers (``service.group_commit``), on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from outpool.service.batch import BatchSpec
from outpool.service.db import Cursor
from outpool.service.store import AnnotationStore, Conflict, NotFound, Submission, Task

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


def test_answers_that_arrive_together_share_one_commit(
    make_spec: Callable[..., BatchSpec], store: AnnotationStore
) -> None:
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
    make_spec: Callable[..., BatchSpec], store: AnnotationStore
) -> None:
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
    make_spec: Callable[..., BatchSpec], store: AnnotationStore, monkeypatch: pytest.MonkeyPatch
) -> None:
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
