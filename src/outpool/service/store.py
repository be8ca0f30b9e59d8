"""Durable storage of people's annotation work: annotators, batches, assignments and votes.

One schema on SQLite and PostgreSQL (``db.py`` adapts the SQL), versioned by ``MIGRATIONS``.
Every method is one transaction (``writes``: on SQLite answers share theirs with the answers
that arrive meanwhile; on PostgreSQL answers run in parallel under row locks), so a vote is
acknowledged only after it is committed and a crash loses nothing that was acknowledged. Votes
carry a client-made ``submission_id``: a retried submission returns the first one's
acknowledgement and never counts twice.

Assignment rules: each ordinary pair goes to ``k`` distinct annotators (an unanswered
assignment holds its slot for ``lease_s`` seconds, then the slot is offered again); nobody gets
a pair twice; left/right is drawn per (pair, annotator) and stored; in every block of
``check_every`` ordinary pairs an annotator also gets one of the batch's check pairs, at a
place in the block drawn per annotator. A pair is done at ``k``
votes, rejected once "can't tell what this is" has half of ``k``; the batch closes when no
ordinary pair is left open.

An annotator's transactions (next task, answer, skip) are the statements of ``work_sql``: the
store runs them on SQLite, where one writer makes them one after another; on PostgreSQL each
is one call of a server-side function (``pg_work``, which says how they lock and run in
parallel).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from outpool.annotate.votes import (
    CONFIDENCE_LEVELS,
    REJECT,
    VoteTable,
    answer_from_display,
)
from outpool.errors import OutpoolError
from outpool.fileio import json_text
from outpool.service import pg_work
from outpool.service import work_sql as q
from outpool.service.batch import NO_CHECK, BatchSpec, Example, decode_png, encode_png
from outpool.service.db import Cursor, PostgresDatabase, SQLiteDatabase, connect
from outpool.service.writes import GroupCommit, ParallelWrites, run_statement

SCHEMA_VERSION = 9

# Each entry migrates from version i to i + 1; {blob} and {id} are filled in per dialect.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE annotators (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            role TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            created_at DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE batches (
            id TEXT PRIMARY KEY,
            k INTEGER NOT NULL,
            lease_s DOUBLE PRECISION NOT NULL,
            check_every INTEGER NOT NULL,
            state TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            meta TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            closed_at DOUBLE PRECISION)""",
        """CREATE TABLE attributes (
            batch_id TEXT NOT NULL REFERENCES batches(id),
            name TEXT NOT NULL,
            definition TEXT NOT NULL,
            PRIMARY KEY (batch_id, name))""",
        """CREATE TABLE images (
            batch_id TEXT NOT NULL REFERENCES batches(id),
            id TEXT NOT NULL,
            png {blob} NOT NULL,
            PRIMARY KEY (batch_id, id))""",
        """CREATE TABLE pairs (
            batch_id TEXT NOT NULL REFERENCES batches(id),
            id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            attribute TEXT NOT NULL,
            a TEXT NOT NULL,
            b TEXT NOT NULL,
            is_check INTEGER NOT NULL,
            check_answer INTEGER NOT NULL,
            state TEXT NOT NULL,
            n_votes INTEGER NOT NULL DEFAULT 0,
            n_rejects INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (batch_id, id))""",
        "CREATE INDEX pairs_open ON pairs (state, is_check, batch_id, seq)",
        """CREATE TABLE assignments (
            batch_id TEXT NOT NULL,
            pair_id TEXT NOT NULL,
            annotator_id TEXT NOT NULL REFERENCES annotators(id),
            is_check INTEGER NOT NULL,
            swapped INTEGER NOT NULL,
            assigned_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            answered INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (batch_id, pair_id, annotator_id),
            FOREIGN KEY (batch_id, pair_id) REFERENCES pairs(batch_id, id))""",
        "CREATE INDEX assignments_by_annotator ON assignments (annotator_id, answered)",
        """CREATE TABLE votes (
            id {id},
            submission_id TEXT NOT NULL UNIQUE,
            batch_id TEXT NOT NULL,
            pair_id TEXT NOT NULL,
            annotator_id TEXT NOT NULL REFERENCES annotators(id),
            answer INTEGER NOT NULL,
            choice TEXT NOT NULL,
            swapped INTEGER NOT NULL,
            confidence DOUBLE PRECISION NOT NULL,
            rationale TEXT NOT NULL,
            is_check INTEGER NOT NULL,
            elapsed_ms INTEGER,
            created_at DOUBLE PRECISION NOT NULL,
            UNIQUE (batch_id, pair_id, annotator_id),
            FOREIGN KEY (batch_id, pair_id) REFERENCES pairs(batch_id, id))""",
        "CREATE INDEX votes_by_batch ON votes (batch_id, id)",
    ),
    (
        # Version 2: a count of each batch's open ordinary pairs, so progress and "is the
        # batch done?" cost one row read per vote instead of a count over the batch's pairs.
        "ALTER TABLE batches ADD COLUMN n_open INTEGER NOT NULL DEFAULT 0",
        "UPDATE batches SET n_open = (SELECT COUNT(*) FROM pairs p "
        "WHERE p.batch_id = batches.id AND p.state = 'open' AND p.is_check = 0)",
    ),
    (
        # Version 3: the batches an annotator was invited to (the links a batch made); an
        # annotator with none is the team's and works on every open batch.
        """CREATE TABLE invitations (
            annotator_id TEXT NOT NULL REFERENCES annotators(id),
            batch_id TEXT NOT NULL REFERENCES batches(id),
            PRIMARY KEY (annotator_id, batch_id))""",
    ),
    (
        # Version 4: an annotator's access can be taken back (their token stops working).
        "ALTER TABLE annotators ADD COLUMN revoked_at DOUBLE PRECISION",
    ),
    (
        # Version 5: the audit trail of what admins did.
        """CREATE TABLE audit (
            id {id},
            at DOUBLE PRECISION NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL)""",
    ),
    (
        # Version 6: a token may expire (an annotator invited for a week, say).
        "ALTER TABLE annotators ADD COLUMN expires_at DOUBLE PRECISION",
    ),
    (
        # Version 7: a pair an annotator skipped goes to someone else; solved example pairs
        # for the instructions.
        "ALTER TABLE assignments ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE examples (
            batch_id TEXT NOT NULL REFERENCES batches(id),
            seq INTEGER NOT NULL,
            attribute TEXT NOT NULL,
            a TEXT NOT NULL,
            b TEXT NOT NULL,
            answer INTEGER NOT NULL,
            note TEXT NOT NULL,
            PRIMARY KEY (batch_id, seq))""",
    ),
    (
        # Version 8: what a vote reads about its annotator stays the same size as their
        # history grows: their count of answers on their row, and their assignments found
        # by batch (their progress reads only the open batches').
        "ALTER TABLE annotators ADD COLUMN n_answered INTEGER NOT NULL DEFAULT 0",
        "UPDATE annotators SET n_answered = (SELECT COUNT(*) FROM assignments s "
        "WHERE s.annotator_id = annotators.id AND s.answered = 1)",
        "CREATE INDEX assignments_by_annotator_batch ON assignments (annotator_id, batch_id)",
    ),
    (
        # Version 9: nor as their work in one batch grows. An assignment carries its pair's
        # seq (their assignments to open pairs are among those at or after the batch's first
        # open pair) and the annotator's counts of assignments and check assignments in the
        # batch up to it (their latest holds their counts). Backfilled for open batches only:
        # closed batches' counts are never read.
        "ALTER TABLE assignments ADD COLUMN pair_seq INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE assignments ADD COLUMN n_upto INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE assignments ADD COLUMN checks_upto INTEGER NOT NULL DEFAULT 0",
        "UPDATE assignments SET pair_seq = p.seq FROM pairs p "
        "WHERE p.batch_id = assignments.batch_id AND p.id = assignments.pair_id",
        "UPDATE assignments SET n_upto = c.n, checks_upto = c.checks FROM ("
        "  SELECT s.annotator_id, s.batch_id, COUNT(*) AS n, SUM(s.is_check) AS checks "
        "  FROM assignments s JOIN batches b ON b.id = s.batch_id AND b.state = 'open' "
        "  GROUP BY s.annotator_id, s.batch_id) c "
        "WHERE c.annotator_id = assignments.annotator_id AND c.batch_id = assignments.batch_id",
        "DROP INDEX assignments_by_annotator_batch",
        "CREATE INDEX assignments_by_seq ON assignments (annotator_id, batch_id, pair_seq)",
        "CREATE INDEX assignments_latest ON assignments (annotator_id, batch_id, n_upto)",
    ),
)
KNOWN_TTL_S = 10.0  # how long a process trusts a token it looked up without asking again
_DIALECT = {
    "sqlite": {"blob": "BLOB", "id": "INTEGER PRIMARY KEY AUTOINCREMENT"},
    "postgresql": {"blob": "BYTEA", "id": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"},
}


class StoreError(OutpoolError):
    """A request the store refuses; ``status`` is the HTTP status the web layer answers."""

    status = 400


class Unauthorized(StoreError):
    status = 401


class Forbidden(StoreError):
    status = 403


class NotFound(StoreError):
    status = 404


class Conflict(StoreError):
    status = 409


@dataclass(frozen=True)
class Annotator:
    id: str
    name: str
    role: str  # "annotator" or "admin"
    revoked: bool = False  # a revoked annotator's token no longer works
    expires_at: float | None = None  # Unix time after which the token no longer works


@dataclass(frozen=True)
class Task:
    """One pair as one annotator sees it: ``left``/``right`` are image ids, already swapped."""

    batch: str
    pair_id: str
    attribute: str
    definition: str
    left: str
    right: str


@dataclass(frozen=True)
class Submission:
    """One answer as the page sends it (left/right as shown; see ``DISPLAY_CHOICES``)."""

    submission_id: str
    batch: str
    pair_id: str
    choice: str
    confidence: str
    rationale: str = ""
    elapsed_ms: int | None = None


@dataclass(frozen=True)
class Ack:
    """The store committed the vote ``vote_id``; ``duplicate`` when this retried an earlier
    submission with the same id (nothing new was stored)."""

    submission_id: str
    vote_id: int
    duplicate: bool


@dataclass(frozen=True)
class BatchProgress:
    batch: str
    state: str  # "open" or "closed"
    k: int
    pairs: int  # ordinary pairs
    check_pairs: int
    done: int  # ordinary pairs with k votes
    rejected: int  # ordinary pairs rejected as illegible
    votes: int  # votes on ordinary pairs
    check_votes: int
    annotators: int  # distinct annotators who voted
    created_at: float
    closed_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def hash_token(token: str) -> str:
    # Tokens are random 192-bit strings, so a plain hash is enough: no salt or stretching.
    return hashlib.sha256(token.encode()).hexdigest()


class AnnotationStore:
    """The annotation service's state; thread-safe, one instance per process."""

    def __init__(self, db: SQLiteDatabase | PostgresDatabase) -> None:
        self.db = db
        # token hash -> (annotator, when looked up), for tokens found before: remembering them
        # saves a query (and, in the web app, a thread hop) on almost every request. Entries
        # live KNOWN_TTL_S, so a token revoked through another process stops working here
        # within that time; revoking through this store clears them at once.
        self._known: dict[str, tuple[Annotator, float]] = {}
        # answers: on PostgreSQL one function call each, in parallel (``pg_work``); on SQLite
        # through one writer that commits the answers that arrive together at once
        self._pgdb: PostgresDatabase | None = None
        self._writes: GroupCommit | ParallelWrites
        if isinstance(db, PostgresDatabase):
            self._pgdb = db
            self._writes = ParallelWrites(db, workers=max(1, db.pool_size - 2))  # 2 for reads
        else:
            self._writes = GroupCommit(db)
        self.migrate()

    @classmethod
    def open(cls, url: str | Path) -> AnnotationStore:
        """``sqlite:///path.db`` (or a path) or ``postgresql://...``; creates the schema."""
        return cls(connect(url))

    def close(self) -> None:
        self._writes.close()
        self.db.close()

    # -- schema ---------------------------------------------------------------------------

    def migrate(self) -> int:
        """Bring the schema to ``SCHEMA_VERSION``; returns the version found before."""
        with self.db.transaction(write=True) as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = cur.execute("SELECT MAX(version) FROM schema_version").fetchone()
            found = int(row[0]) if row and row[0] is not None else 0
            if found > SCHEMA_VERSION:
                raise StoreError(
                    f"the database has schema version {found}, newer than this outpool "
                    f"({SCHEMA_VERSION}); upgrade outpool"
                )
            for version in range(found, SCHEMA_VERSION):
                for sql in MIGRATIONS[version]:
                    cur.execute(sql.format(**_DIALECT[self.db.dialect]))
                cur.execute("INSERT INTO schema_version (version) VALUES (?)", (version + 1,))
            if self._pgdb is not None:
                pg_work.install(cur)  # this version's functions
        return found

    # -- annotators -----------------------------------------------------------------------

    def create_annotator(
        self, name: str, *, role: str = "annotator", expires_in_s: float | None = None
    ) -> tuple[Annotator, str]:
        """A new annotator (or admin) and its secret token; only the token's hash is stored,
        so the token is shown this once. ``expires_in_s``: the token stops working after that
        many seconds (None: when revoked)."""
        if expires_in_s is not None and not 0 < expires_in_s < 1e9:
            raise StoreError(
                f"expires_in_s must be a positive number of seconds, got {expires_in_s}"
            )
        if role not in ("annotator", "admin"):
            raise StoreError(f"role must be 'annotator' or 'admin', got {role!r}")
        name = name.strip()
        if not name or len(name) > 100:
            raise StoreError("an annotator name must have 1 to 100 characters")
        with self.db.transaction(write=True) as cur:
            return _insert_annotator(cur, name, role, expires_in_s)

    def authenticate(self, token: str) -> Annotator | None:
        """The annotator of a valid (not revoked, not expired) token, else None."""
        who = self.known(token)
        if who is not None:
            return who
        key = hash_token(token)
        with self.db.transaction(write=False) as cur:
            row = cur.execute(
                "SELECT id, name, role, expires_at FROM annotators WHERE token_hash = ? "
                "AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
                (key, time.time()),
            ).fetchone()
        if row is None:
            return None  # unknown tokens are not remembered: they may be created later
        if len(self._known) >= 100_000:
            self._known.clear()
        ident, name, role, expires_at = row
        who = Annotator(ident, name, role, expires_at=expires_at)
        self._known[key] = (who, time.monotonic())
        return who

    def known(self, token: str) -> Annotator | None:
        """``authenticate`` from memory alone, without the database: the annotator when this
        token was found in the last ``KNOWN_TTL_S`` seconds, else None (then ask
        ``authenticate``)."""
        entry = self._known.get(hash_token(token))
        if entry is None or time.monotonic() - entry[1] > KNOWN_TTL_S:
            return None
        expires_at = entry[0].expires_at
        if expires_at is not None and time.time() >= expires_at:
            return None
        return entry[0]

    def annotators(self) -> list[Annotator]:
        """Every annotator, revoked and expired ones included (``revoked``, ``expires_at``)."""
        with self.db.transaction(write=False) as cur:
            rows = cur.execute(
                "SELECT id, name, role, revoked_at IS NOT NULL, expires_at FROM annotators "
                "ORDER BY id"
            ).fetchall()
        return [Annotator(a, n, r, bool(revoked), e) for a, n, r, revoked, e in rows]

    def revoke(self, annotator: str) -> Annotator:
        """Take back ``annotator``'s access: their token stops working (in this process at
        once, in others within ``KNOWN_TTL_S``); their votes stay. Revoking twice is harmless."""
        with self.db.transaction(write=True) as cur:
            row = cur.execute(
                "SELECT id, name, role FROM annotators WHERE id = ?", (annotator,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no annotator {annotator!r}")
            cur.execute(
                "UPDATE annotators SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (time.time(), annotator),
            )
        self._known.clear()
        ident, name, role = row
        return Annotator(ident, name, role, revoked=True)

    # -- the audit trail -----------------------------------------------------------------

    def record(self, actor: str, action: str, target: str) -> None:
        """Add to the audit trail: ``actor`` (an admin's id, or "cli") did ``action`` to
        ``target`` (an annotator or a batch), now."""
        with self.db.transaction(write=True) as cur:
            cur.execute(
                "INSERT INTO audit (at, actor, action, target) VALUES (?, ?, ?, ?)",
                (time.time(), actor, action, target),
            )

    def audit(self) -> list[dict[str, Any]]:
        """The audit trail, oldest first."""
        with self.db.transaction(write=False) as cur:
            rows = cur.execute("SELECT at, actor, action, target FROM audit ORDER BY id").fetchall()
        return [{"at": at, "actor": a, "action": act, "target": tg} for at, a, act, tg in rows]

    # -- batches --------------------------------------------------------------------------

    def create_batch(
        self,
        spec: BatchSpec,
        *,
        k: int = 5,
        lease_s: float = 600.0,
        check_every: int = 10,
        meta: dict[str, Any] | None = None,
        new_annotators: int = 0,
    ) -> list[tuple[Annotator, str]] | None:
        """Store a batch, and ``new_annotators`` annotators (with their tokens) in the same
        transaction, so a crash cannot keep the batch but lose the only copy of its links.
        Returns the new annotators (possibly none), or None (nothing changed) when the same
        batch already exists. Raises ``Conflict`` when a different batch has this name.
        """
        if not 1 <= k <= 100:
            raise StoreError(f"k (votes per pair) must be between 1 and 100, got {k}")
        if not lease_s > 0:
            raise StoreError(f"lease_s must be positive, got {lease_s}")
        if check_every < 1:
            raise StoreError(f"check_every must be at least 1, got {check_every}")
        fingerprint = spec.fingerprint()
        pngs = {key: encode_png(img) for key, img in spec.images.items()}  # outside the lock
        assert spec.check_answer is not None
        with self.db.transaction(write=True) as cur:
            row = cur.execute(
                "SELECT fingerprint FROM batches WHERE id = ?", (spec.name,)
            ).fetchone()
            if row is not None:
                if row[0] != fingerprint:
                    raise Conflict(f"a different batch named {spec.name!r} already exists")
                return None
            cur.execute(
                "INSERT INTO batches (id, k, lease_s, check_every, state, fingerprint, meta, "
                "created_at, n_open) VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?)",
                (
                    spec.name,
                    k,
                    lease_s,
                    check_every,
                    fingerprint,
                    json_text(meta or {}),
                    time.time(),
                    int((spec.check_answer == NO_CHECK).sum()),
                ),
            )
            names = sorted(set(spec.attribute.tolist()))
            cur.executemany(
                "INSERT INTO attributes (batch_id, name, definition) VALUES (?, ?, ?)",
                [(spec.name, a, spec.definitions.get(a, "")) for a in names],
            )
            cur.executemany(
                "INSERT INTO images (batch_id, id, png) VALUES (?, ?, ?)",
                [(spec.name, key, png) for key, png in pngs.items()],
            )
            cur.executemany(
                "INSERT INTO pairs (batch_id, id, seq, attribute, a, b, is_check, check_answer, "
                "state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open')",
                [
                    (spec.name, pid, i, attr, a, b, int(chk != NO_CHECK), int(chk))
                    for i, (pid, attr, a, b, chk) in enumerate(
                        zip(
                            spec.ids.tolist(),
                            spec.attribute.tolist(),
                            spec.a.tolist(),
                            spec.b.tolist(),
                            spec.check_answer.tolist(),
                            strict=True,
                        )
                    )
                ],
            )
            cur.executemany(
                "INSERT INTO examples (batch_id, seq, attribute, a, b, answer, note) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (spec.name, i, ex.attribute, ex.a, ex.b, ex.answer, ex.note)
                    for i, ex in enumerate(spec.examples)
                ],
            )
            invited = [
                _insert_annotator(cur, f"{spec.name} #{i + 1}", "annotator")
                for i in range(new_annotators)
            ]
            cur.executemany(
                "INSERT INTO invitations (annotator_id, batch_id) VALUES (?, ?)",
                [(who.id, spec.name) for who, _ in invited],
            )
            return invited

    def batch_spec(self, batch: str) -> BatchSpec:
        """The batch as it was created (images decoded back from PNG)."""
        with self.db.transaction(write=False) as cur:
            self._batch_row(cur, batch)
            pairs = cur.execute(
                "SELECT id, attribute, a, b, check_answer FROM pairs WHERE batch_id = ? "
                "ORDER BY seq",
                (batch,),
            ).fetchall()
            images = cur.execute(
                "SELECT id, png FROM images WHERE batch_id = ?", (batch,)
            ).fetchall()
            defs = cur.execute(
                "SELECT name, definition FROM attributes WHERE batch_id = ?", (batch,)
            ).fetchall()
            examples = cur.execute(
                "SELECT attribute, a, b, answer, note FROM examples WHERE batch_id = ? "
                "ORDER BY seq",
                (batch,),
            ).fetchall()
        cols = list(zip(*pairs, strict=True)) if pairs else [(), (), (), (), ()]
        return BatchSpec(
            name=batch,
            ids=np.array(cols[0], dtype=str),
            attribute=np.array(cols[1], dtype=str),
            a=np.array(cols[2], dtype=str),
            b=np.array(cols[3], dtype=str),
            images={key: decode_png(bytes(png)) for key, png in images},
            definitions=dict(defs),
            check_answer=np.array(cols[4], dtype=np.int8),
            examples=tuple(Example(t, a, b, int(y), n) for t, a, b, y, n in examples),
        )

    def batches(self) -> list[BatchProgress]:
        with self.db.transaction(write=False) as cur:
            names = [
                r[0]
                for r in cur.execute("SELECT id FROM batches ORDER BY created_at, id").fetchall()
            ]
            return [self._progress(cur, name) for name in names]

    def progress(self, batch: str) -> BatchProgress:
        with self.db.transaction(write=False) as cur:
            return self._progress(cur, batch)

    def close_batch(self, batch: str) -> BatchProgress:
        """Close a batch early: no more assignments or votes. Closing twice is harmless."""
        with self.db.transaction(write=True) as cur:
            self._batch_row(cur, batch)
            cur.execute(
                "UPDATE batches SET state = 'closed', closed_at = ? "
                "WHERE id = ? AND state = 'open'",
                (time.time(), batch),
            )
            return self._progress(cur, batch)

    # -- annotating -----------------------------------------------------------------------

    def next_task(self, annotator: Annotator, *, now: float | None = None) -> Task | None:
        """The annotator's current task: an unanswered, unexpired assignment if there is one
        (a reload shows the same pair), else a newly assigned pair; None when nothing is left."""
        at = time.time() if now is None else now
        if self._pgdb is not None:
            row = run_statement(self._pgdb, _pg_call("outpool_next_task", annotator.id, at))
            return _task_of_row(row)
        with self.db.transaction(write=True) as cur:
            return self._next_task(cur, annotator.id, at)

    def submit_and_next(
        self, annotator: Annotator, sub: Submission, *, now: float | None = None
    ) -> tuple[Ack, Task | None]:
        """``submit``, then ``next_task``, in one transaction; returns once it is committed.
        When the answer is refused, nothing is assigned either."""
        ack, task, _ = self.answer(annotator, sub, now=now).result()
        return ack, task

    def answer(
        self, annotator: Annotator, sub: Submission, *, now: float | None = None
    ) -> Future[tuple[Ack, Task | None, tuple[int, int]]]:
        """What ``POST /api/votes`` does: the answer, the annotator's next task and their
        ``remaining`` counts, in one transaction (``writes``: on SQLite shared with the answers
        that arrive meanwhile). The future is resolved once the answer is committed."""
        answers = _answers(sub)
        if self._pgdb is not None:
            call = self._pg_answer(annotator, sub, answers, now, and_next=True)

            def pg_job(cur: Cursor) -> tuple[Ack, Task | None, tuple[int, int]]:
                row = call(cur)
                ack = Ack(sub.submission_id, int(row[0]), duplicate=bool(row[1]))
                return ack, _task_of_row(row[2:9]), (int(row[9]), int(row[10]))

            return self._writes.submit(pg_job)

        def job(cur: Cursor) -> tuple[Ack, Task | None, tuple[int, int]]:
            at = time.time() if now is None else now
            ack, count = self._submit(cur, annotator, sub, answers, at)
            task = self._next_task(cur, annotator.id, at)
            remaining = self._remaining(cur, annotator)
            closed = count is not None and self._count_vote(cur, *count, at)
            if closed and task is not None and task.batch == sub.batch:  # a check pair
                task = self._next_task(cur, annotator.id, at)  # of the batch the vote closed
            return ack, task, remaining

        return self._writes.submit(job)

    def _pg_answer(
        self,
        annotator: Annotator,
        sub: Submission,
        answers: tuple[int, int],
        now: float | None,
        *,
        and_next: bool,
    ) -> Callable[[Cursor], tuple[Any, ...]]:
        """The call of ``outpool_answer`` for this answer (``pg_work``)."""
        return _pg_call(
            "outpool_answer",
            *(annotator.id, sub.submission_id, sub.batch, sub.pair_id, sub.choice, *answers),
            *(REJECT, CONFIDENCE_LEVELS[sub.confidence], sub.rationale, sub.elapsed_ms),
            time.time() if now is None else now,
            and_next,
        )

    # The annotator's transactions on SQLite (one writer: what a query saw holds until the
    # commit). On PostgreSQL the functions of pg_work do the same in one call: change both.

    def _next_task(self, cur: Cursor, who: str, now: float) -> Task | None:
        row = cur.execute(q.HELD_TASK, (who, now)).fetchone()
        if row is None:
            return self._assign(cur, who, now)
        return _task_of(row[0], row[2:], bool(row[1]))

    def _assign(self, cur: Cursor, who: str, now: float) -> Task | None:
        # The first open ordinary pair (oldest open batch they may work on first, then by
        # seq) this annotator has not had, with a free slot among its k. One query per open
        # batch, so that each walks the pairs_open index in seq order and stops at the first
        # fit; one query over all batches sorted every open pair of every batch, on every
        # assignment.
        open_batches = cur.execute(q.OPEN_BATCHES, (who, who, who, who)).fetchall()
        for batch, k, lease_s, check_every, n_checks, n_all in open_batches:  # noqa: B007
            found = cur.execute(q.FREE_PAIRS + " LIMIT 1", (batch, -1, who, now, k)).fetchone()
            if found is not None:
                pair_row = found[1:]
                break
        else:
            return None
        # One unseen check pair in every block of check_every ordinary pairs, at a place in
        # the block drawn per (batch, annotator, block): a check never comes predictably.
        n_checks, n_all = int(n_checks or 0), int(n_all or 0)
        block, place = divmod(n_all - n_checks, check_every)
        is_check = 0
        if n_checks < block or (
            n_checks == block and place >= check_place(batch, who, block, check_every)
        ):
            check = cur.execute(q.CHECK_PAIR, (batch, who)).fetchone()
            if check is not None:
                pair_row, is_check = check, 1
        pair = str(pair_row[0])
        swapped = _swapped(batch, pair, who)
        cur.execute(
            q.ASSIGN,
            (
                *(batch, pair, who, is_check, swapped, now, now + lease_s),
                *(n_all + 1, n_checks + is_check, batch, pair),
            ),
        )
        return _task_of(batch, pair_row, bool(swapped))

    def _task(self, cur: Cursor, who: str, batch: str, pair: str) -> Task:
        row = cur.execute(
            f"SELECT s.swapped, {q.PAIR_COLUMNS} "
            "JOIN assignments s ON s.batch_id = p.batch_id AND s.pair_id = p.id "
            "WHERE p.batch_id = ? AND p.id = ? AND s.annotator_id = ?",
            (batch, pair, who),
        ).fetchone()
        assert row is not None
        return _task_of(batch, row[1:], bool(row[0]))

    def remaining(self, annotator: Annotator) -> tuple[int, int]:
        """(pairs this annotator answered, in any batch, closed ones included; ordinary pairs
        still open in the batches they may work on that they have not had). The second is an
        upper bound: others may fill those pairs first. Both cost this annotator's own
        assignments from each open batch's first open pair on, not a count over the batches'
        pairs (nor over all their work in them, while the batch's pairs close in about the
        order they were given)."""
        with self.db.transaction(write=False) as cur:
            return self._remaining(cur, annotator)

    def _remaining(self, cur: Cursor, annotator: Annotator) -> tuple[int, int]:
        row = cur.execute(q.REMAINING, (annotator.id, annotator.id, annotator.id)).fetchone()
        done, open_pairs, mine = (int(n) for n in row) if row else (0, 0, 0)
        return done, max(open_pairs - mine, 0)

    def submit(self, annotator: Annotator, sub: Submission, *, now: float | None = None) -> Ack:
        """Store one answer; returns once it is committed. Idempotent per ``submission_id``."""
        answers = _answers(sub)
        if self._pgdb is not None:
            call = self._pg_answer(annotator, sub, answers, now, and_next=False)
            row = run_statement(self._pgdb, call)
            return Ack(sub.submission_id, int(row[0]), duplicate=bool(row[1]))
        at = time.time() if now is None else now
        with self.db.transaction(write=True) as cur:
            ack, count = self._submit(cur, annotator, sub, answers, at)
            if count is not None:
                self._count_vote(cur, *count, at)
            return ack

    def _prior(self, cur: Cursor, annotator: Annotator, sub: Submission) -> Ack | None:
        """The acknowledgement of an earlier submission with this id (None: there is none)."""
        prior = cur.execute(q.PRIOR_VOTE, (sub.submission_id,)).fetchone()
        if prior is None:
            return None
        if tuple(prior[1:]) != (annotator.id, sub.batch, sub.pair_id):
            raise Conflict(q.ID_REUSED)
        return Ack(sub.submission_id, int(prior[0]), duplicate=True)

    def _submit(
        self,
        cur: Cursor,
        annotator: Annotator,
        sub: Submission,
        answers: tuple[int, int],
        now: float,
    ) -> tuple[Ack, tuple[str, str, int, bool] | None]:
        """Store the vote; returns its acknowledgement and what ``_count_vote`` must count (a
        new vote on an ordinary pair), which the caller does before it commits."""
        row = cur.execute(q.ANSWERED_TASK, (sub.batch, sub.pair_id, annotator.id)).fetchone()
        # a re-sent answer finds its pair answered (or, sent under another id, not its task)
        if row is None or row[2]:
            prior = self._prior(cur, annotator, sub)
            if prior is not None:
                return prior, None
        if row is None:
            raise NotFound(q.NO_TASK)
        swapped, is_check, answered, state, k, pair_state, skipped = row
        if answered:
            raise Conflict(q.ANSWERED_ALREADY)
        if skipped:
            raise Conflict(q.SKIPPED_ALREADY)
        if state != "open":
            raise Conflict(q.BATCH_CLOSED.format(repr(sub.batch)))
        if not is_check and pair_state != "open":
            # A late answer after the lease ran out and the slot went to someone else:
            # the pair already has its k votes (or was rejected); counting it would
            # over-fill the pair.
            raise Conflict(f"{q.PAIR_FULL.format(repr(sub.pair_id))} ({pair_state})")
        answer = answers[1] if swapped else answers[0]
        vote = cur.execute(
            q.INSERT_VOTE,
            (
                *(sub.submission_id, sub.batch, sub.pair_id, annotator.id, answer, sub.choice),
                *(swapped, CONFIDENCE_LEVELS[sub.confidence], sub.rationale, is_check),
                *(sub.elapsed_ms, now),
            ),
        ).fetchone()
        if vote is None:  # the id is taken by an answer to another pair
            self._prior(cur, annotator, sub)
            raise AssertionError("a submission_id in use had no vote")
        cur.execute(q.MARK_ANSWERED, (sub.batch, sub.pair_id, annotator.id))
        cur.execute(q.COUNT_ANSWER, (annotator.id,))
        ack = Ack(sub.submission_id, int(vote[0]), duplicate=False)
        return ack, None if is_check else (sub.batch, sub.pair_id, int(k), answer == REJECT)

    def skip_and_next(
        self, annotator: Annotator, batch: str, pair: str, *, now: float | None = None
    ) -> Task | None:
        """Give back a pair this annotator holds without answering it: its slot goes to someone
        else at once, they are never given it again, and an answer to it is refused. Returns
        their next task."""
        at = time.time() if now is None else now
        if self._pgdb is not None:
            call = _pg_call("outpool_skip", annotator.id, batch, pair, at)
            return _task_of_row(run_statement(self._pgdb, call))
        with self.db.transaction(write=True) as cur:
            row = cur.execute(q.SKIPPED_TASK, (batch, pair, annotator.id)).fetchone()
            if row is None:
                raise NotFound(q.NO_TASK)
            if row[0]:
                raise Conflict(q.ANSWERED_NO_SKIP)
            if row[1] != "open":
                raise Conflict(q.BATCH_CLOSED.format(repr(batch)))
            cur.execute(q.SKIP, (at, batch, pair, annotator.id))
            return self._next_task(cur, annotator.id, at)

    def undo_last(self, annotator: Annotator, *, now: float | None = None) -> Task:
        """Take back this annotator's latest answer while its batch is open: the vote is
        removed, the pair counts one vote fewer (and is open again), and it is theirs to answer
        again (returned as their task). Each call steps one answer further back."""
        now = time.time() if now is None else now
        with self.db.transaction(write=True) as cur:
            row = cur.execute(
                "SELECT v.id, v.batch_id, v.pair_id, v.answer, v.is_check, b.state, b.lease_s "
                "FROM votes v JOIN batches b ON b.id = v.batch_id WHERE v.annotator_id = ? "
                "ORDER BY v.id DESC LIMIT 1",
                (annotator.id,),
            ).fetchone()
            if row is None:
                raise NotFound("no answer to undo")
            vote, batch, pair, answer, is_check, state, lease_s = row
            if state != "open":
                raise Conflict(f"batch {batch!r} is closed: its answers are final")
            cur.execute("DELETE FROM votes WHERE id = ?", (vote,))
            if not is_check:
                before = cur.execute(
                    "SELECT state FROM pairs WHERE batch_id = ? AND id = ?", (batch, pair)
                ).fetchone()
                cur.execute(
                    "UPDATE pairs SET n_votes = n_votes - 1, n_rejects = n_rejects - ?, "
                    "state = 'open' WHERE batch_id = ? AND id = ?",
                    (int(answer == REJECT), batch, pair),
                )
                if before is not None and before[0] != "open":
                    cur.execute("UPDATE batches SET n_open = n_open + 1 WHERE id = ?", (batch,))
            # assigned "long ago": served before the task they were given after answering it
            cur.execute(
                "UPDATE assignments SET answered = 0, expires_at = ?, assigned_at = ? "
                "WHERE batch_id = ? AND pair_id = ? AND annotator_id = ?",
                (now + lease_s, 0.0, batch, pair, annotator.id),
            )
            cur.execute(
                "UPDATE annotators SET n_answered = n_answered - 1 WHERE id = ?", (annotator.id,)
            )
            return self._task(cur, annotator.id, batch, pair)

    def instructions(self, annotator: Annotator, batch: str) -> dict[str, Any]:
        """The definitions and solved examples of a batch this annotator may work on."""
        with self.db.transaction(write=False) as cur:
            allowed = cur.execute(
                f"SELECT 1 FROM batches b WHERE b.id = ? AND {q.MAY_WORK_ON}",
                (batch, annotator.id, annotator.id),
            ).fetchone()
            if allowed is None:
                raise NotFound(f"no batch named {batch!r} for this annotator")
            defs = cur.execute(
                "SELECT name, definition FROM attributes WHERE batch_id = ? ORDER BY name",
                (batch,),
            ).fetchall()
            examples = cur.execute(
                "SELECT attribute, a, b, answer, note FROM examples WHERE batch_id = ? "
                "ORDER BY seq",
                (batch,),
            ).fetchall()
        return {
            "definitions": dict(defs),
            "examples": [asdict(Example(t, a, b, int(y), n)) for t, a, b, y, n in examples],
        }

    def _count_vote(
        self, cur: Cursor, batch: str, pair: str, k: int, reject: bool, now: float
    ) -> bool:
        """Count a vote on ``pair``; returns whether that closed the batch. A pair that others
        filled since the vote's transaction read it refuses the vote (``Conflict``: the
        transaction is rolled back)."""
        r = int(reject)
        row = cur.execute(q.COUNT_VOTE, (r, r, k, k, batch, pair)).fetchone()
        if row is None:
            raise Conflict(q.PAIR_FULL.format(repr(pair)))
        if row[0] == "open":
            return False
        left = cur.execute(q.PAIR_DONE, (now, batch)).fetchone()  # the batch closes with it
        return left is not None and left[0] <= 0

    def image_png(self, annotator: Annotator, batch: str, image: str) -> bytes:
        """PNG bytes of an image of ``batch``. An annotator may fetch only the images of pairs
        assigned to them; an admin any image of the batch. Anything else is ``NotFound``."""
        with self.db.transaction(write=False) as cur:
            if annotator.role == "admin":
                row = cur.execute(
                    "SELECT png FROM images WHERE batch_id = ? AND id = ?", (batch, image)
                ).fetchone()
            else:
                row = cur.execute(
                    "SELECT i.png FROM images i WHERE i.batch_id = ? AND i.id = ? AND (EXISTS ("
                    "SELECT 1 FROM assignments s JOIN pairs p "
                    "ON p.batch_id = s.batch_id AND p.id = s.pair_id "
                    "WHERE s.batch_id = i.batch_id AND s.annotator_id = ? "
                    "AND (p.a = i.id OR p.b = i.id)) OR EXISTS ("
                    "SELECT 1 FROM examples e JOIN batches b ON b.id = e.batch_id "
                    "WHERE e.batch_id = i.batch_id AND (e.a = i.id OR e.b = i.id) "
                    f"AND {q.MAY_WORK_ON}))",
                    (batch, image, annotator.id, annotator.id, annotator.id),
                ).fetchone()
        if row is None:
            raise NotFound("no such image")
        return bytes(row[0])

    # -- results --------------------------------------------------------------------------

    def votes(self, batch: str, *, checks: bool = False) -> VoteTable:
        """Every vote on the batch's ordinary pairs (or, with ``checks``, on its check pairs),
        in the canonical a/b orientation, in the order they were stored."""
        with self.db.transaction(write=False) as cur:
            self._batch_row(cur, batch)
            rows = cur.execute(
                "SELECT pair_id, annotator_id, answer, confidence, rationale FROM votes "
                "WHERE batch_id = ? AND is_check = ? ORDER BY id",
                (batch, int(checks)),
            ).fetchall()
        return VoteTable.from_records(rows)

    def vote_records(self, batch: str) -> list[dict[str, Any]]:
        """Every vote of the batch with everything stored about it, and for check pairs the
        known answer (for audits, exports and leaving out careless annotators)."""
        keys = [
            "vote_id",
            "submission_id",
            "pair_id",
            "annotator",
            "answer",
            "choice",
            "swapped",
            "confidence",
            "rationale",
            "is_check",
            "check_answer",
            "elapsed_ms",
            "created_at",
        ]
        with self.db.transaction(write=False) as cur:
            self._batch_row(cur, batch)
            rows = cur.execute(
                "SELECT v.id, v.submission_id, v.pair_id, v.annotator_id, v.answer, v.choice, "
                "v.swapped, v.confidence, v.rationale, v.is_check, "
                "CASE WHEN v.is_check = 1 THEN p.check_answer END, v.elapsed_ms, v.created_at "
                "FROM votes v JOIN pairs p ON p.batch_id = v.batch_id AND p.id = v.pair_id "
                "WHERE v.batch_id = ? ORDER BY v.id",
                (batch,),
            ).fetchall()
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def check_accuracy(self, batch: str) -> dict[str, tuple[int, int]]:
        """Per annotator: (check pairs answered, answered correctly)."""
        with self.db.transaction(write=False) as cur:
            self._batch_row(cur, batch)
            rows = cur.execute(
                "SELECT v.annotator_id, COUNT(*), "
                "COALESCE(SUM(CASE WHEN v.answer = p.check_answer THEN 1 ELSE 0 END), 0) "
                "FROM votes v JOIN pairs p ON p.batch_id = v.batch_id AND p.id = v.pair_id "
                "WHERE v.batch_id = ? AND v.is_check = 1 GROUP BY v.annotator_id "
                "ORDER BY v.annotator_id",
                (batch,),
            ).fetchall()
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    def pair_ids(self, batch: str) -> np.ndarray:
        """(P,) str ids of the batch's ordinary pairs, in creation order."""
        with self.db.transaction(write=False) as cur:
            self._batch_row(cur, batch)
            rows = cur.execute(
                "SELECT id FROM pairs WHERE batch_id = ? AND is_check = 0 ORDER BY seq", (batch,)
            ).fetchall()
        return np.array([r[0] for r in rows], dtype=str)

    def pair_images(self, batch: str) -> dict[str, tuple[str, str, str]]:
        """Pair id -> (attribute, image a, image b) of the batch's ordinary pairs."""
        with self.db.transaction(write=False) as cur:
            self._batch_row(cur, batch)
            rows = cur.execute(
                "SELECT id, attribute, a, b FROM pairs WHERE batch_id = ? AND is_check = 0",
                (batch,),
            ).fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def _batch_row(self, cur: Cursor, batch: str) -> tuple[Any, ...]:
        row = cur.execute(
            "SELECT k, state, created_at, closed_at FROM batches WHERE id = ?", (batch,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no batch named {batch!r}")
        return row

    def _progress(self, cur: Cursor, batch: str) -> BatchProgress:
        k, state, created_at, closed_at = self._batch_row(cur, batch)
        pairs = cur.execute(
            "SELECT is_check, state, COUNT(*) FROM pairs WHERE batch_id = ? "
            "GROUP BY is_check, state",
            (batch,),
        ).fetchall()
        count = {(int(c), s): int(n) for c, s, n in pairs}
        votes = cur.execute(
            "SELECT is_check, COUNT(*) FROM votes WHERE batch_id = ? GROUP BY is_check", (batch,)
        ).fetchall()
        nvotes = {int(c): int(n) for c, n in votes}
        who = cur.execute(
            "SELECT COUNT(DISTINCT annotator_id) FROM votes WHERE batch_id = ?", (batch,)
        ).fetchone()
        return BatchProgress(
            batch=batch,
            state=state,
            k=int(k),
            pairs=sum(n for (c, _), n in count.items() if c == 0),
            check_pairs=sum(n for (c, _), n in count.items() if c == 1),
            done=count.get((0, "done"), 0),
            rejected=count.get((0, "rejected"), 0),
            votes=nvotes.get(0, 0),
            check_votes=nvotes.get(1, 0),
            annotators=int(who[0]) if who else 0,
            created_at=float(created_at),
            closed_at=None if closed_at is None else float(closed_at),
        )


def _insert_annotator(
    cur: Cursor, name: str, role: str, expires_in_s: float | None = None
) -> tuple[Annotator, str]:
    token = secrets.token_urlsafe(24)
    n = cur.execute("SELECT COUNT(*) FROM annotators").fetchone()
    ident = f"{'admin' if role == 'admin' else 'w'}{int(n[0]) + 1 if n else 1:04d}"
    now = time.time()
    expires_at = None if expires_in_s is None else now + expires_in_s
    cur.execute(
        "INSERT INTO annotators (id, name, role, token_hash, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (ident, name, role, hash_token(token), now, expires_at),
    )
    return Annotator(ident, name, role, expires_at=expires_at), token


def _answers(sub: Submission) -> tuple[int, int]:
    """The answer ``sub`` stands for when its pair was shown as stored, and when swapped;
    refuses an unknown confidence or choice before anything is read."""
    if sub.confidence not in CONFIDENCE_LEVELS:
        raise StoreError(f"confidence must be one of {sorted(CONFIDENCE_LEVELS)}")
    try:
        return answer_from_display(sub.choice, False), answer_from_display(sub.choice, True)
    except ValueError as exc:
        raise StoreError(str(exc)) from None


# The store's errors by the SQLSTATE its PostgreSQL functions raise them with.
_PG_ERRORS: dict[str, type[StoreError]] = {pg_work.NOT_FOUND: NotFound, pg_work.CONFLICT: Conflict}


def _pg_call(function: str, *args: Any) -> Callable[[Cursor], tuple[Any, ...]]:
    """A call of one of the store's PostgreSQL functions, for ``run_statement``: its one row,
    with a refusal raised as the store's error."""
    sql = f"SELECT * FROM {function}({', '.join('?' * len(args))})"

    def call(cur: Cursor) -> tuple[Any, ...]:
        try:
            row = cur.execute(sql, args).fetchone()
        except Exception as exc:
            error = _PG_ERRORS.get(getattr(exc, "sqlstate", None) or "")
            if error is None:
                raise
            raise error(exc.diag.message_primary) from None  # type: ignore[attr-defined]
        assert row is not None
        return row

    return call


def _task_of_row(row: Sequence[Any]) -> Task | None:
    """The task of a function's (batch, swapped, PAIR_COLUMNS) columns; None when NULL."""
    if row[0] is None:
        return None
    return _task_of(row[0], row[2:7], bool(row[1]))


def _task_of(batch: str, pair: Sequence[Any], swapped: bool) -> Task:
    """The task of a row of ``work_sql.PAIR_COLUMNS``, its sides in the order the annotator
    sees."""
    pair_id, attribute, a, b, definition = pair
    left, right = (b, a) if swapped else (a, b)
    return Task(batch, pair_id, attribute, definition, left, right)


def check_place(batch: str, annotator: str, block: int, check_every: int) -> int:
    """After how many of the ordinary pairs of its ``block`` an annotator gets the block's
    check pair: in [0, check_every), fixed per (batch, annotator, block)."""
    digest = hashlib.sha256(f"{batch}\x1f{annotator}\x1f{block}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % check_every


def _swapped(batch: str, pair: str, annotator: str) -> int:
    """Left/right for this (pair, annotator): a fair coin that is the same on every retry."""
    digest = hashlib.sha256(f"{batch}\x1f{pair}\x1f{annotator}".encode()).digest()
    return digest[0] & 1
