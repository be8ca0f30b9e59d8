"""The durable annotation store, each test on SQLite and on PostgreSQL (see store_fixtures)."""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from outpool.annotate.votes import EQUAL, MORE_A, MORE_B, REJECT, display_from_answer
from outpool.service.batch import BatchSpec, Example, decode_png
from outpool.service.db import Cursor
from outpool.service.store import (
    SCHEMA_VERSION,
    Ack,
    AnnotationStore,
    Annotator,
    Conflict,
    NotFound,
    StoreError,
    Submission,
    Task,
    check_place,
)

pytest_plugins = ["service.store_fixtures"]

OpenStore = Callable[[], AnnotationStore]
MakeSpec = Callable[..., BatchSpec]


def submission(task: Task, choice: str = "equal", *, sid: str | None = None) -> Submission:
    return Submission(
        submission_id=sid or uuid.uuid4().hex,
        batch=task.batch,
        pair_id=task.pair_id,
        choice=choice,
        confidence="very",
    )


def answer(store: AnnotationStore, who: Annotator, task: Task, choice: str = "equal") -> Ack:
    return store.submit(who, submission(task, choice))


def rows(store: AnnotationStore, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with store.db.transaction(write=False) as cur:
        return cur.execute(sql, params).fetchall()


def work_through(store: AnnotationStore, who: Annotator, choice: str = "equal") -> list[Task]:
    """Answer every task the store gives ``who`` until it has none; the tasks in order."""
    tasks = []
    while (task := store.next_task(who)) is not None:
        answer(store, who, task, choice)
        tasks.append(task)
    return tasks


def is_swapped(store: AnnotationStore, task: Task) -> bool:
    spec = store.batch_spec(task.batch)
    i = spec.ids.tolist().index(task.pair_id)
    assert {task.left, task.right} == {spec.a[i], spec.b[i]}
    return bool(task.left != spec.a[i])


# -- schema -----------------------------------------------------------------------------------


def test_migrations_create_the_latest_version_and_reopening_changes_nothing(
    open_store: OpenStore,
) -> None:
    store = open_store()
    assert SCHEMA_VERSION == 9
    versions = [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    assert rows(store, "SELECT version FROM schema_version ORDER BY version") == versions
    tables = (
        "annotators",
        "batches",
        "attributes",
        "images",
        "pairs",
        "assignments",
        "invitations",
    )
    for table in tables:
        assert rows(store, f"SELECT COUNT(*) FROM {table}") == [(0,)]
    who, _ = store.create_annotator("ann")
    store.close()

    again = open_store()
    assert again.migrate() == SCHEMA_VERSION  # found the latest: nothing to do
    assert rows(again, "SELECT version FROM schema_version ORDER BY version") == versions
    assert again.annotators() == [who]


def test_a_version_1_store_with_work_in_progress_migrates_to_the_latest(
    open_store: OpenStore, make_spec: MakeSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    import outpool.service.store as store_module

    # A store made by the first release: schema version 1, no open-pair counter.
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 1)
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:1])
    old = open_store()
    with old.db.transaction(write=True) as cur:
        spec = make_spec(pairs=3)
        # version 1's create_batch: the same rows without n_open
        cur.execute(
            "INSERT INTO batches (id, k, lease_s, check_every, state, fingerprint, meta, "
            "created_at) VALUES (?, 2, 600, 10, 'open', ?, '{}', 0)",
            (spec.name, spec.fingerprint()),
        )
        cur.execute("INSERT INTO attributes VALUES (?, 'red', '')", (spec.name,))
        for key in sorted(set(spec.a.tolist()) | set(spec.b.tolist())):
            cur.execute("INSERT INTO images VALUES (?, ?, ?)", (spec.name, key, b"png"))
        for i, (pid, a, b) in enumerate(zip(spec.ids, spec.a, spec.b, strict=True)):
            state = "done" if i == 0 else "open"  # one pair already finished
            cur.execute(
                "INSERT INTO pairs (batch_id, id, seq, attribute, a, b, is_check, "
                "check_answer, state, n_votes) VALUES (?, ?, ?, 'red', ?, ?, 0, -9, ?, ?)",
                (spec.name, pid, i, a, b, state, 2 if state == "done" else 0),
            )
        # someone who answered the finished pair (their count of answers is made by version 8)
        cur.execute("INSERT INTO annotators VALUES ('w-old', 'old', 'annotator', 'h', 0)")
        cur.execute(
            "INSERT INTO assignments VALUES (?, ?, 'w-old', 0, 0, 0, 600, 1)",
            (spec.name, spec.ids[0]),
        )
    old.close()
    monkeypatch.undo()

    store = open_store()
    assert store.migrate() == SCHEMA_VERSION
    assert rows(store, "SELECT n_open FROM batches") == [(2,)]  # counted by the migration
    # version 9: the pair's seq and their counts in the batch on each assignment
    assert rows(store, "SELECT pair_seq, n_upto, checks_upto FROM assignments") == [(0, 1, 0)]
    annotators = [store.create_annotator(f"w{i}")[0] for i in range(2)]
    for _ in range(2):
        for who in annotators:
            task = store.next_task(who)
            assert task is not None and task.pair_id != spec.ids[0]
            answer(store, who, task)
    assert rows(store, "SELECT n_open, state FROM batches") == [(0, "closed")]
    counts = set(rows(store, "SELECT id, n_answered FROM annotators"))
    assert counts == {(annotators[0].id, 2), (annotators[1].id, 2), ("w-old", 1)}


def test_a_newer_schema_version_is_refused(open_store: OpenStore) -> None:
    store = open_store()
    with store.db.transaction(write=True) as cur:
        cur.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    store.close()
    newer = f"schema version {SCHEMA_VERSION + 1}, newer than this outpool \\({SCHEMA_VERSION}\\)"
    with pytest.raises(StoreError, match=newer):
        open_store()


# -- batches and annotators -------------------------------------------------------------------


def test_create_batch_is_idempotent_and_a_reused_name_conflicts(
    make_spec: MakeSpec, store: AnnotationStore
) -> None:
    made = store.create_batch(make_spec("b1", 3, checks=1), k=2, new_annotators=2)
    assert made is not None and [who.name for who, _ in made] == ["b1 #1", "b1 #2"]
    assert all(store.authenticate(token) == who for who, token in made)
    assert store.create_batch(make_spec("b1", 3, checks=1), k=2) is None  # same batch again
    with pytest.raises(Conflict, match="different batch named 'b1'"):
        store.create_batch(make_spec("b1", 4, checks=1), k=2, check_every=1)
    with pytest.raises(Conflict):
        store.create_batch(make_spec("b1", 3, checks=1, seed=5), k=2)  # other images
    (progress,) = store.batches()
    assert (progress.batch, progress.pairs, progress.check_pairs, progress.k) == ("b1", 3, 1, 2)
    assert rows(store, "SELECT COUNT(*) FROM pairs") == [(4,)]
    assert rows(store, "SELECT COUNT(*) FROM images") == [(8,)]

    spec, back = make_spec("b1", 3, checks=1), store.batch_spec("b1")
    assert back.fingerprint() == spec.fingerprint()
    assert store.pair_ids("b1").tolist() == ["p000", "p001", "p002"]


def test_tokens_authenticate_and_only_their_hash_is_stored(
    store: AnnotationStore, store_url: str
) -> None:
    ann, token = store.create_annotator("Ann")
    admin, admin_token = store.create_annotator("Boss", role="admin")
    assert (ann.role, admin.role) == ("annotator", "admin")
    assert ann.id != admin.id
    assert store.authenticate(token) == ann
    assert store.authenticate(admin_token) == admin
    assert store.authenticate(token + "x") is None
    assert store.authenticate("") is None
    assert store.authenticate(admin_token[:-1]) is None

    stored = dict(rows(store, "SELECT id, token_hash FROM annotators"))
    assert stored[ann.id] == hashlib.sha256(token.encode()).hexdigest()
    # The token itself is nowhere: in no column of any table, nor in the SQLite files.
    if store.db.dialect == "sqlite":
        tables = rows(store, "SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        tables = rows(
            store,
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema()",
        )
    assert len(tables) >= 7
    for (table,) in tables:
        for row in rows(store, f"SELECT * FROM {table}"):
            text = " ".join(str(bytes(v)) if isinstance(v, memoryview) else str(v) for v in row)
            assert token not in text and admin_token not in text
    if store.db.dialect == "sqlite":
        path = Path(store_url[len("sqlite:///") :])
        files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
        assert files
        for p in files:
            data = p.read_bytes()
            assert token.encode() not in data and admin_token.encode() not in data


# -- assignment -------------------------------------------------------------------------------


def test_each_pair_goes_to_exactly_k_distinct_annotators(
    make_spec: MakeSpec, store: AnnotationStore
) -> None:
    store.create_batch(make_spec("b1", 6), k=3)
    people = [store.create_annotator(f"a{i}")[0] for i in range(5)]
    seen: list[tuple[str, str]] = []
    active = list(people)
    while active:  # round robin, one task each
        for who in list(active):
            task = store.next_task(who)
            if task is None:
                active.remove(who)
                continue
            seen.append((task.pair_id, who.id))
            answer(store, who, task)
    assert len(seen) == len(set(seen)) == 18  # nobody got a pair twice
    votes = store.votes("b1")
    per_pair = Counter(votes.pair_id.tolist())
    assert per_pair == {f"p{j:03d}": 3 for j in range(6)}
    for pair in per_pair:
        assert len(set(votes.annotator[votes.pair_id == pair].tolist())) == 3
    progress = store.progress("b1")
    assert (progress.state, progress.done, progress.votes, progress.annotators) == (
        "closed",
        6,
        18,
        5,
    )
    assert all(store.next_task(who) is None for who in people)


def test_an_invited_annotator_works_only_on_the_batches_they_were_invited_to(
    make_spec: MakeSpec, store: AnnotationStore
) -> None:
    store.create_batch(make_spec("old", 3), k=1)
    team, _ = store.create_annotator("team")
    invited = store.create_batch(make_spec("new", 2, seed=1), k=1, new_annotators=1)
    assert invited is not None
    [(guest, _)] = invited
    assert store.remaining(guest) == (0, 2)  # the older batch is not theirs to count
    seen = []
    while (task := store.next_task(guest)) is not None:
        seen.append(task.batch)
        answer(store, guest, task)
    assert seen == ["new", "new"]  # never the older batch, even once theirs is done
    assert store.remaining(guest) == (2, 0)  # their work counts after "new" closed itself
    first = store.next_task(team)  # a team annotator still works on every open batch
    assert first is not None and first.batch == "old"


def test_an_expired_token_stops_working_even_when_remembered(
    open_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import outpool.service.store as store_module

    store = open_store()
    who, token = store.create_annotator("week", expires_in_s=7 * 86400)
    forever, other = store.create_annotator("team")
    assert who.expires_at is not None and forever.expires_at is None
    assert store.authenticate(token) == who  # now remembered
    later = who.expires_at + 1.0

    class Clock:
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def time() -> float:
            return later

    monkeypatch.setattr(store_module, "time", Clock)
    assert store.known(token) is None and store.authenticate(token) is None
    assert store.authenticate(other) == forever
    listed = {a.id: a.expires_at for a in store.annotators()}
    assert listed[who.id] == who.expires_at and listed[forever.id] is None
    with pytest.raises(StoreError, match="expires_in_s must be a positive number"):
        store.create_annotator("never", expires_in_s=0)


def test_a_revoked_token_stops_working_here_at_once_and_elsewhere_within_the_ttl(
    make_spec: MakeSpec, open_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import outpool.service.store as store_module

    here, elsewhere = open_store(), open_store()  # two processes on one database
    store_module_ttl = store_module.KNOWN_TTL_S
    who, token = here.create_annotator("ann")
    here.create_batch(make_spec("b", 2), k=1)
    task = here.next_task(who)
    assert task is not None
    answer(here, who, task)
    assert elsewhere.authenticate(token) == who  # remembered there
    revoked = here.revoke(who.id)
    assert revoked.revoked and here.authenticate(token) is None  # at once in this process
    assert elsewhere.known(token) == who  # the other process still trusts its memory ...
    monkeypatch.setattr(store_module, "KNOWN_TTL_S", -1.0)  # ... until the TTL has passed
    assert elsewhere.known(token) is None and elsewhere.authenticate(token) is None
    monkeypatch.setattr(store_module, "KNOWN_TTL_S", store_module_ttl)
    assert here.revoke(who.id).revoked  # twice is harmless
    assert [a.revoked for a in here.annotators() if a.id == who.id] == [True]
    assert len(here.votes("b")) == 1  # their votes stay
    with pytest.raises(NotFound, match="no annotator 'w9999'"):
        here.revoke("w9999")


def test_a_reload_returns_the_same_task(make_spec: MakeSpec, store: AnnotationStore) -> None:
    store.create_batch(make_spec("b1", 3), k=1)
    who, _ = store.create_annotator("ann")
    first = store.next_task(who)
    assert first is not None
    assert store.next_task(who) == first
    assert store.next_task(who) == first
    assert rows(store, "SELECT COUNT(*) FROM assignments") == [(1,)]
    answer(store, who, first)
    second = store.next_task(who)
    assert second is not None and second.pair_id != first.pair_id
    assert first.definition == "how much red the image shows"


def test_an_expired_lease_frees_the_slot_for_another_annotator(
    make_spec: MakeSpec, store: AnnotationStore
) -> None:
    store.create_batch(make_spec("b1", 1), k=1, lease_s=60.0)
    ann, bob = store.create_annotator("ann")[0], store.create_annotator("bob")[0]
    t0 = time.time()
    task = store.next_task(ann, now=t0)
    assert task is not None and task.pair_id == "p000"
    assert store.next_task(bob, now=t0 + 30) is None  # ann's lease still holds the only slot
    assert store.next_task(ann, now=t0 + 30) == task
    again = store.next_task(bob, now=t0 + 61)
    assert again is not None and again.pair_id == "p000"
    assert store.next_task(ann, now=t0 + 61) is None  # never the same pair twice
    store.submit(bob, submission(again), now=t0 + 62)
    assert store.progress("b1").state == "closed"
    with pytest.raises(Conflict):
        store.submit(ann, submission(task), now=t0 + 63)  # too late
    assert len(store.votes("b1")) == 1


def test_a_late_answer_counts_only_while_its_pair_needs_votes(
    make_spec: MakeSpec, store: AnnotationStore
) -> None:
    store.create_batch(make_spec("b1", 2), k=1, lease_s=60.0)
    ann, bob = store.create_annotator("ann")[0], store.create_annotator("bob")[0]
    t0 = time.time()
    late = store.next_task(ann, now=t0)
    assert late is not None and late.pair_id == "p000"
    taken = store.next_task(bob, now=t0 + 61)  # ann's slot on p000, offered again
    assert taken is not None and taken.pair_id == "p000"
    store.submit(bob, submission(taken), now=t0 + 62)
    with pytest.raises(Conflict):  # p000 has its k votes already
        store.submit(ann, submission(late), now=t0 + 63)
    assert store.votes("b1").pair_id.tolist() == ["p000"]
    assert store.progress("b1").state == "open"

    # Expired but nobody took the slot: the answer is still welcome.
    mine = store.next_task(ann, now=t0 + 64)
    assert mine is not None and mine.pair_id == "p001"
    store.submit(ann, submission(mine), now=t0 + 500)
    assert store.votes("b1").pair_id.tolist() == ["p000", "p001"]
    assert store.progress("b1").state == "closed"


def test_left_right_swap_is_stored_and_the_answer_is_unswapped(
    make_spec: MakeSpec, store: AnnotationStore
) -> None:
    store.create_batch(make_spec("b1", 16), k=1)
    who, _ = store.create_annotator("ann")
    swapped = {}
    while (task := store.next_task(who)) is not None:
        assert store.next_task(who) == task  # the same side on a reload
        swapped[task.pair_id] = is_swapped(store, task)
        answer(store, who, task, "left_more")
    assert 0 < sum(swapped.values()) < 16
    votes = store.votes("b1")
    for pair, ans in zip(votes.pair_id.tolist(), votes.answer.tolist(), strict=True):
        assert ans == (MORE_B if swapped[pair] else MORE_A)  # "left_more" on b-left: b more
    stored = dict(rows(store, "SELECT pair_id, swapped FROM assignments"))
    assert {p: bool(s) for p, s in stored.items()} == swapped
    for rec in store.vote_records("b1"):
        assert (rec["choice"], bool(rec["swapped"])) == ("left_more", swapped[rec["pair_id"]])


def test_about_half_of_the_assignments_are_swapped(
    make_spec: MakeSpec, store: AnnotationStore
) -> None:
    store.create_batch(make_spec("b1", 80, images=24), k=2)
    people = [store.create_annotator(f"a{i}")[0] for i in range(2)]
    for who in people:
        work_through(store, who)
    ((n, n_swapped),) = rows(store, "SELECT COUNT(*), SUM(swapped) FROM assignments")
    assert n == 160
    assert 0.35 < int(n_swapped) / n < 0.65
    # Swaps are drawn per (pair, annotator): the two annotators' sides differ on some pairs.
    sides = rows(
        store,
        "SELECT pair_id, COUNT(DISTINCT swapped) FROM assignments GROUP BY pair_id "
        "HAVING COUNT(DISTINCT swapped) = 2",
    )
    assert 10 < len(sides) < 70


def test_check_pairs_are_interleaved_scored_and_never_labels(
    make_spec: MakeSpec, store: AnnotationStore
) -> None:
    spec = make_spec("b1", 12, checks=3)
    answers = dict(zip(spec.ids.tolist(), spec.check_answer.tolist(), strict=True))
    store.create_batch(spec, k=1, check_every=4)
    who, _ = store.create_annotator("ann")
    order = []
    while (task := store.next_task(who)) is not None:
        order.append(task.pair_id)
        if task.pair_id.startswith("c"):
            right = display_from_answer(answers[task.pair_id], is_swapped(store, task))
            wrong = "illegible"
            answer(store, who, task, wrong if task.pair_id == "c001" else right)
        else:
            answer(store, who, task, "left_less")
    # One check in each block of 4 ordinary pairs, after check_place(...) of them.
    ordinary_before = [
        sum(not q.startswith("c") for q in order[:i]) for i, p in enumerate(order) if p[0] == "c"
    ]
    assert ordinary_before == [4 * j + check_place("b1", who.id, j, 4) for j in range(3)]
    assert len(order) == 15
    assert sorted(p for p in order if p.startswith("c")) == ["c000", "c001", "c002"]

    labels = store.votes("b1")
    assert sorted(labels.pair_id.tolist()) == [f"p{j:03d}" for j in range(12)]
    checks = store.votes("b1", checks=True)
    assert sorted(checks.pair_id.tolist()) == ["c000", "c001", "c002"]
    assert store.check_accuracy("b1") == {who.id: (3, 2)}
    progress = store.progress("b1")
    assert (progress.pairs, progress.check_pairs, progress.votes, progress.check_votes) == (
        12,
        3,
        12,
        3,
    )
    assert (progress.done, progress.state) == (12, "closed")  # check pairs never hold it open
    records = {r["pair_id"]: r for r in store.vote_records("b1")}
    assert records["c000"]["check_answer"] == 1 and records["p000"]["check_answer"] is None


def test_the_place_of_a_check_in_its_block_varies() -> None:
    places = [check_place("b1", f"w{i:04d}", block, 10) for i in range(30) for block in range(3)]
    assert all(0 <= p < 10 for p in places)
    assert len(set(places)) >= 6  # not always first (annotators would learn to spot checks)
    assert check_place("b1", "w0001", 0, 10) == check_place("b1", "w0001", 0, 10)


@pytest.mark.parametrize(("k", "rejects_needed"), [(4, 2), (3, 2)])
def test_a_pair_is_rejected_at_half_of_k_and_the_batch_closes_itself(
    make_spec: MakeSpec, store: AnnotationStore, k: int, rejects_needed: int
) -> None:
    store.create_batch(make_spec("b1", 2), k=k)
    people = [store.create_annotator(f"a{i}")[0] for i in range(k)]
    for i in range(rejects_needed):  # p000: only "can't tell" answers
        task = store.next_task(people[i])
        assert task is not None and task.pair_id == "p000"
        assert store.progress("b1").rejected == 0
        answer(store, people[i], task, "illegible")
    assert store.progress("b1").rejected == 1
    assert store.progress("b1").state == "open"
    for i, who in enumerate(people):  # p001: one "can't tell", too few to reject
        task = store.next_task(who)
        assert task is not None and task.pair_id == "p001"
        answer(store, who, task, "illegible" if i == 0 else "equal")
    progress = store.progress("b1")
    assert (progress.state, progress.done, progress.rejected) == ("closed", 1, 1)
    assert progress.votes == rejects_needed + k
    assert progress.closed_at is not None and progress.closed_at <= time.time()
    votes = store.votes("b1")
    assert Counter(zip(votes.pair_id.tolist(), votes.answer.tolist(), strict=True)) == {
        ("p000", REJECT): rejects_needed,
        ("p001", REJECT): 1,
        ("p001", EQUAL): k - 1,
    }
    assert all(store.next_task(who) is None for who in people)


def test_close_batch_is_idempotent_and_refuses_further_votes(
    make_spec: MakeSpec, store: AnnotationStore
) -> None:
    store.create_batch(make_spec("b1", 3), k=1)
    who, _ = store.create_annotator("ann")
    task = store.next_task(who)
    assert task is not None
    closed = store.close_batch("b1")
    assert closed.state == "closed" and closed.closed_at is not None
    again = store.close_batch("b1")
    assert again.state == "closed" and again.closed_at == closed.closed_at
    with pytest.raises(Conflict, match="closed"):
        answer(store, who, task)
    assert store.next_task(who) is None
    assert len(store.votes("b1")) == 0
    with pytest.raises(NotFound):
        store.close_batch("nope")


# -- submissions ------------------------------------------------------------------------------


def test_a_retried_submission_counts_once(make_spec: MakeSpec, store: AnnotationStore) -> None:
    store.create_batch(make_spec("b1", 2), k=1)
    who, _ = store.create_annotator("ann")
    task = store.next_task(who)
    assert task is not None
    sub = submission(task, "left_more")
    first = store.submit(who, sub)
    second = store.submit(who, sub)
    third = store.submit(who, submission(task, "equal", sid=sub.submission_id))
    assert not first.duplicate and second.duplicate and third.duplicate
    assert first.vote_id == second.vote_id == third.vote_id
    assert len(store.votes("b1")) == 1
    assert store.progress("b1").votes == 1
    again, _, (done, _) = store.answer(who, sub).result()  # re-sent, answer-and-next path
    assert again.duplicate and again.vote_id == first.vote_id
    assert done == store.remaining(who)[0] == 1  # their count of answers: one
    assert store.vote_records("b1")[0]["choice"] == "left_more"  # the first one stands


def test_a_second_answer_to_the_same_pair_conflicts(
    make_spec: MakeSpec, store: AnnotationStore
) -> None:
    store.create_batch(make_spec("b1", 2), k=2)
    who, _ = store.create_annotator("ann")
    task = store.next_task(who)
    assert task is not None
    answer(store, who, task)
    with pytest.raises(Conflict, match="already answered"):
        answer(store, who, task)
    assert len(store.votes("b1")) == 1


def test_a_submission_id_reused_for_another_pair_conflicts(
    make_spec: MakeSpec, store: AnnotationStore
) -> None:
    store.create_batch(make_spec("b1", 2), k=1)
    ann, bob = store.create_annotator("ann")[0], store.create_annotator("bob")[0]
    task = store.next_task(ann)
    assert task is not None
    sid = uuid.uuid4().hex
    store.submit(ann, submission(task, sid=sid))
    other = store.next_task(ann)
    assert other is not None and other.pair_id != task.pair_id
    with pytest.raises(Conflict, match="submission_id"):
        store.submit(ann, submission(other, sid=sid))
    with pytest.raises(Conflict, match="submission_id"):  # nor by somebody else
        store.submit(bob, submission(task, sid=sid))
    assert len(store.votes("b1")) == 1


def test_a_submission_for_a_pair_not_assigned_is_not_found(
    make_spec: MakeSpec, store: AnnotationStore
) -> None:
    store.create_batch(make_spec("b1", 3), k=1)
    ann, bob = store.create_annotator("ann")[0], store.create_annotator("bob")[0]
    task = store.next_task(ann)
    assert task is not None
    with pytest.raises(NotFound):  # somebody else's task
        store.submit(bob, submission(task))
    for batch, pair in [("b1", "p002"), ("b1", "nope"), ("nope", task.pair_id)]:
        stray = Task(batch, pair, "red", "", "i000", "i001")
        with pytest.raises(NotFound):
            store.submit(ann, submission(stray))
    with pytest.raises(StoreError, match="confidence"):
        store.submit(ann, Submission("s1", "b1", task.pair_id, "equal", "extremely"))
    with pytest.raises(StoreError, match="unknown choice"):
        store.submit(ann, submission(task, "left_most"))
    assert len(store.votes("b1")) == 0


# -- images and durability --------------------------------------------------------------------


def test_annotators_get_only_the_images_of_their_pairs(
    make_spec: MakeSpec, store: AnnotationStore
) -> None:
    spec = make_spec("b1", 3)
    store.create_batch(spec, k=1)
    store.create_batch(make_spec("b2", 1, seed=9), k=1)
    ann, bob = store.create_annotator("ann")[0], store.create_annotator("bob")[0]
    admin, _ = store.create_annotator("boss", role="admin")
    task = store.next_task(ann)
    assert task is not None and task.pair_id == "p000"
    for image in (task.left, task.right):
        got = decode_png(store.image_png(ann, "b1", image))
        np.testing.assert_array_equal(got, spec.images[image])
    for image in ("i002", "i005", "nope"):  # other pairs' images, a missing one
        with pytest.raises(NotFound):
            store.image_png(ann, "b1", image)
    with pytest.raises(NotFound):  # the same id in a batch where ann has no pair
        store.image_png(ann, "b2", "i000")
    with pytest.raises(NotFound):
        store.image_png(bob, "b1", task.left)
    answer(store, ann, task)
    assert store.image_png(ann, "b1", task.left)  # still theirs after answering
    for image in ("i000", "i005"):
        got = decode_png(store.image_png(admin, "b1", image))
        np.testing.assert_array_equal(got, spec.images[image])
    with pytest.raises(NotFound):
        store.image_png(admin, "b1", "nope")
    with pytest.raises(NotFound):
        store.image_png(admin, "nope", "i000")


def test_votes_survive_closing_and_reopening_the_store(
    make_spec: MakeSpec, open_store: OpenStore
) -> None:
    store = open_store()
    store.create_batch(make_spec("b1", 4, checks=1), k=2, check_every=1)
    ann, token = store.create_annotator("ann")
    work_through(store, ann, "left_more")
    before = (store.votes("b1"), store.votes("b1", checks=True), store.vote_records("b1"))
    progress = store.progress("b1")
    assert (len(before[0]), len(before[1])) == (4, 1)
    store.close()

    again = open_store()
    assert again.authenticate(token) == ann
    after = (again.votes("b1"), again.votes("b1", checks=True), again.vote_records("b1"))
    for old, new in zip(before[:2], after[:2], strict=True):
        assert old.pair_id.tolist() == new.pair_id.tolist()
        assert old.annotator.tolist() == new.annotator.tolist()
        assert old.answer.tolist() == new.answer.tolist()
    assert before[2] == after[2]
    assert again.progress("b1") == progress
    bob, _ = again.create_annotator("bob")
    assert len(work_through(again, bob)) == 5  # one check pair and the 4 pairs still open
    assert again.progress("b1").state == "closed"


# -- concurrency ------------------------------------------------------------------------------


class ClosingSpy(AnnotationStore):
    """Records, inside the very transaction, each vote that closed its batch (on SQLite: on
    PostgreSQL votes are counted by the store's functions)."""

    closings: list[str]

    def _count_vote(
        self, cur: Cursor, batch: str, pair: str, k: int, reject: bool, now: float
    ) -> bool:
        state = "SELECT state FROM batches WHERE id = ?"
        before = cur.execute(state, (batch,)).fetchone()
        closed = super()._count_vote(cur, batch, pair, k, reject, now)
        after = cur.execute(state, (batch,)).fetchone()
        assert before is not None and after is not None
        assert closed == (before[0] == "open" and after[0] == "closed")
        if closed:
            self.closings.append(pair)
        return closed


@pytest.mark.parametrize("instances", [1, 2])
def test_concurrent_annotators_never_over_assign(
    make_spec: MakeSpec, store_url: str, instances: int
) -> None:
    # Two instances: two hosts on one PostgreSQL database, or two processes on one SQLite file.
    k, n_pairs, threads = 3, 40, 8
    closings: list[str] = []
    stores = []
    for _ in range(instances):
        spy = ClosingSpy.open(store_url)
        spy.closings = closings
        stores.append(spy)
    try:
        stores[0].create_batch(make_spec("b1", n_pairs, checks=2, images=16), k=k, check_every=5)
        people = [stores[0].create_annotator(f"a{i}")[0] for i in range(threads)]
        errors: list[BaseException] = []
        retries: list[tuple[Ack, Ack]] = []
        late_checks: list[str] = []
        start = threading.Barrier(threads)

        def annotate(i: int) -> None:
            store, who, rng = stores[i % instances], people[i], random.Random(i)
            try:
                start.wait()
                while (task := store.next_task(who)) is not None:
                    again = store.next_task(who)  # a reload under load: the same task, unless
                    if again is None:  # the others closed the batch meanwhile (a held check
                        assert task.pair_id.startswith("c")  # pair outlives it, as below)
                        assert store.progress("b1").state == "closed"
                        late_checks.append(task.pair_id)
                        break
                    assert again == task
                    sub = submission(task, rng.choice(["left_more", "equal", "left_less"]))
                    try:
                        ack = store.submit(who, sub)
                    except Conflict:
                        # Only a check pair can outlive its batch: the others finished the
                        # last ordinary pair meanwhile.
                        assert task.pair_id.startswith("c")
                        assert store.progress("b1").state == "closed"
                        late_checks.append(task.pair_id)
                        continue
                    if rng.random() < 0.2:  # a lost acknowledgement, retried
                        retries.append((ack, store.submit(who, sub)))
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=annotate, args=(i,)) for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=60)
        assert not any(w.is_alive() for w in workers)
        assert errors == []

        store = stores[-1]
        votes = store.votes("b1")
        pairs = Counter(votes.pair_id.tolist())
        assert pairs == {f"p{j:03d}": k for j in range(n_pairs)}  # exactly k votes each
        answered = list(zip(votes.pair_id.tolist(), votes.annotator.tolist(), strict=True))
        assert len(answered) == len(set(answered)) == k * n_pairs  # nobody answered twice
        assert all(not a.duplicate and b.duplicate and a.vote_id == b.vote_id for a, b in retries)
        assert rows(store, "SELECT n_open FROM batches") == [(0,)]  # each pair done once
        if not store_url.startswith("postgresql"):
            assert len(closings) == 1  # the batch closed exactly once
        progress = store.progress("b1")
        assert (progress.state, progress.done, progress.votes) == ("closed", n_pairs, k * n_pairs)
        assert progress.closed_at is not None
        records = store.vote_records("b1")
        assert len(records) == k * n_pairs + progress.check_votes
        open_left = rows(store, "SELECT COUNT(*) FROM assignments WHERE answered = 0")
        assert open_left == [(len(late_checks),)]
        check = Counter(r["annotator"] for r in records if r["is_check"])
        assert all(n <= 2 for n in check.values())  # each of the 2 check pairs once at most
    finally:
        for s in stores:
            s.close()


# -- skip, undo, examples (both backends) ------------------------------------------------------


def test_skip_frees_the_slot_and_undo_reopens_a_finished_pair(
    make_spec: MakeSpec, store: AnnotationStore
) -> None:
    store.create_batch(make_spec("b1", 2), k=1)
    ann, bob = store.create_annotator("ann")[0], store.create_annotator("bob")[0]
    held = store.next_task(ann)
    assert held is not None
    after = store.skip_and_next(ann, "b1", held.pair_id)
    assert after is not None and after.pair_id != held.pair_id
    with pytest.raises(Conflict, match="skipped"):
        store.submit(ann, submission(held))
    assert store.next_task(bob).pair_id == held.pair_id  # the slot went back at once
    # ann answers the other pair (k = 1: it is done), then takes the answer back
    answer(store, ann, after, "left_more")
    assert store.progress("b1").done == 1
    assert store.remaining(ann) == (1, 0)  # (answered, open pairs left that they have not had)
    again = store.undo_last(ann)
    assert again.pair_id == after.pair_id
    assert store.remaining(ann) == (0, 0)  # the answer taken back; the pair is theirs again
    progress = store.progress("b1")
    assert (progress.done, progress.votes) == (0, 0)
    assert store.next_task(ann).pair_id == after.pair_id  # theirs to answer again
    answer(store, ann, again, "equal")
    answer(store, bob, store.next_task(bob) or held, "equal")
    assert store.progress("b1").state == "closed"
    with pytest.raises(Conflict, match="closed"):
        store.undo_last(ann)
    assert sorted(r["choice"] for r in store.vote_records("b1")) == ["equal", "equal"]
    with pytest.raises(NotFound, match="no answer"):
        store.undo_last(store.create_annotator("cal")[0])


def brute_remaining(store: AnnotationStore, who: Annotator) -> tuple[int, int]:
    """``remaining`` counted the slow way, from every row."""
    done = rows(store, "SELECT COUNT(*) FROM assignments WHERE annotator_id = ? AND answered = 1",
                (who.id,))[0][0]  # fmt: skip
    left = rows(
        store,
        "SELECT COUNT(*) FROM pairs p JOIN batches b ON b.id = p.batch_id "
        "WHERE b.state = 'open' AND p.state = 'open' AND p.is_check = 0 AND NOT EXISTS "
        "(SELECT 1 FROM assignments s WHERE s.batch_id = p.batch_id AND s.pair_id = p.id "
        "AND s.annotator_id = ?)",
        (who.id,),
    )[0][0]
    return int(done), int(left)


def test_progress_and_check_counts_match_a_count_of_every_row_through_any_history(
    make_spec: MakeSpec, store: AnnotationStore
) -> None:
    # what a vote reads (their latest assignment's counts, their assignments from the batch's
    # first open pair on) must equal what counting every row gives, whatever was answered,
    # skipped, taken back or left held (a pair held from mid-way keeps the batch's first open
    # pair there; pairs answered k times close the others)
    store.create_batch(make_spec("b1", 24, checks=3), k=2, check_every=3)
    store.create_batch(make_spec("b2", 10, checks=1, seed=1), k=1, check_every=4)
    team = [store.create_annotator(f"w{i}")[0] for i in range(4)]
    rng = random.Random(0)
    for step in range(120):
        if step == 40:
            assert store.next_task(team[3]) is not None  # held from now on, never answered
        who = team[rng.randrange(3)]
        task, move = store.next_task(who), rng.random()
        if task is not None and move < 0.7:
            answer(store, who, task, rng.choice(["left_more", "equal"]))
        elif task is not None and move < 0.85:
            store.skip_and_next(who, task.batch, task.pair_id)
        elif rows(store, "SELECT 1 FROM votes v JOIN batches b ON b.id = v.batch_id "
                  "WHERE v.annotator_id = ? AND b.state = 'open'", (who.id,)):  # fmt: skip
            store.undo_last(who)
        for person in team:
            assert store.remaining(person) == brute_remaining(store, person)
            for batch in ("b1", "b2"):
                latest = rows(
                    store,
                    "SELECT n_upto, checks_upto FROM assignments WHERE annotator_id = ? "
                    "AND batch_id = ? ORDER BY n_upto DESC LIMIT 1",
                    (person.id, batch),
                )
                counted = rows(
                    store,
                    "SELECT COUNT(*), SUM(is_check) FROM assignments "
                    "WHERE annotator_id = ? AND batch_id = ?",
                    (person.id, batch),
                )
                assert [tuple(map(int, r)) for r in latest] == (
                    [tuple(map(int, counted[0]))] if counted[0][0] else []
                )
    assert store.progress("b1").done > 0 and store.progress("b2").done > 0


def test_examples_are_stored_and_their_images_served_to_the_team(
    make_spec: MakeSpec, store: AnnotationStore
) -> None:
    spec = make_spec("b1", 2)
    examples = (Example("red", "i000", "i003", -1, "the right one is redder"),)
    spec = BatchSpec(spec.name, spec.ids, spec.attribute, spec.a, spec.b, spec.images,
                     {"red": "how red"}, spec.check_answer, examples)  # fmt: skip
    store.create_batch(spec, k=1)
    assert store.batch_spec("b1").examples == examples
    ann = store.create_annotator("ann")[0]
    got = store.instructions(ann, "b1")
    assert got["definitions"] == {"red": "how red"}
    assert got["examples"] == [
        {"attribute": "red", "a": "i000", "b": "i003", "answer": -1,
         "note": "the right one is redder"}
    ]  # fmt: skip
    assert store.image_png(ann, "b1", "i003")[:4] == b"\x89PNG"  # before any assignment
    with pytest.raises(NotFound):
        store.image_png(ann, "b1", "i002")  # a pair's image, not yet assigned to ann
