"""An annotator's transactions on PostgreSQL as server-side functions: each next task, answer
or skip is one call, one round trip, where the store would send about fifteen statements (a
round trip costs the server and the database more CPU than most of these statements do).

The functions run the statements of ``work_sql``, the ones the store runs itself on SQLite;
what is written twice is the control flow, mirrored from ``store.py`` (``_next_task``,
``_assign``, ``_submit``, ``_count_vote``, ``skip_and_next``): change both together. The
store's tests run on both backends. ``install`` (re)creates the functions when a store opens.

Locking (PostgreSQL runs these in parallel, from every process and host sharing the database):
each call holds the write lock shared (the store's other writes hold it alone), then locks the
annotator's row (one annotator's calls one after another: nobody is given a pair twice). A pair
being assigned is held by its advisory lock, which other assigners pass over, and its free
slots are counted again once held: an assigner that held it before may have filled them after
this one's query began. A vote is counted last, by one statement that locks the pair's row and
counts only while the pair is still open; the batch's row is locked only when a pair is done.
"""

from __future__ import annotations

from outpool.service import work_sql as q
from outpool.service.db import WRITE_LOCK_KEY, Cursor

# SQLSTATEs the functions raise for a refused request, by the store's error they stand for.
NOT_FOUND, CONFLICT = "OP404", "OP409"

# The task columns every entry point returns (no task: all NULL).
_TASK_OUT = (
    "OUT t_batch text, OUT t_swapped integer, OUT t_pair text, OUT t_attribute text, "
    "OUT t_a text, OUT t_b text, OUT t_definition text"
)


def bind(sql: str, *names: str) -> str:
    """``sql`` with its ``?`` parameters replaced, in order, by these PL/pgSQL names."""
    parts = sql.split("?")
    if len(parts) != len(names) + 1:
        raise ValueError(f"{len(parts) - 1} parameters, {len(names)} names: {sql[:60]}")
    return "".join(p + n for p, n in zip(parts, (*names, ""), strict=True))


def _refuse(code: str, message: str, *ids: str) -> str:
    """A PL/pgSQL RAISE of ``message`` (``work_sql``'s, its ``{}`` filled with quoted ids)."""
    text = message.replace("{}", "%L").replace("'", "''")
    args = "".join(f", {i}" for i in ids)
    return f"RAISE EXCEPTION USING ERRCODE = '{code}', MESSAGE = format('{text}'{args});"


def _function(signature: str, returns: str, body: str, declare: str = "") -> str:
    return (
        f"CREATE OR REPLACE FUNCTION {signature} {returns} LANGUAGE plpgsql AS $fn$\n"
        f"{'DECLARE ' + declare if declare else ''}\nBEGIN\n{body}\nEND\n$fn$"
    )


_WINDOW = 64  # open pairs an assigner reads per query, in seq order
_WINDOW_SQL = (
    "SELECT p.seq, p.id, p.batch_id FROM pairs p WHERE p.state = 'open' AND p.is_check = 0 "
    f"AND p.batch_id = v_batch AND p.seq > v_after ORDER BY p.seq LIMIT {_WINDOW}"
)

_SHARED_LOCK = f"PERFORM pg_advisory_xact_lock_shared({WRITE_LOCK_KEY});"
_HOLD = f"{_SHARED_LOCK}\nPERFORM 1 FROM annotators WHERE id = v_who FOR NO KEY UPDATE;"
_ASSIGN = bind(
    q.ASSIGN,
    *("ob.id", "v_pair", "v_who", "v_is_check", "t_swapped", "v_now", "v_now + ob.lease_s"),
    *("v_all + 1", "v_checks + v_is_check", "ob.id", "v_pair"),
)
_INSERT_VOTE = bind(
    q.INSERT_VOTE,
    *("v_sid", "v_batch", "v_pair", "v_who", "v_final", "v_choice", "r.swapped"),
    *("v_confidence", "v_rationale", "r.is_check", "v_elapsed_ms", "v_now"),
)

FUNCTIONS: tuple[str, ...] = (
    # Left/right per (pair, annotator) and the place of a block's check pair: store.py's
    # _swapped and check_place, the same hash of the same text (STABLE, as convert_to is:
    # inlined where they are called).
    "CREATE OR REPLACE FUNCTION outpool_swapped(v_batch text, v_pair text, v_who text) "
    "RETURNS integer LANGUAGE sql STABLE AS $fn$ SELECT get_byte(sha256(convert_to("
    "v_batch || chr(31) || v_pair || chr(31) || v_who, 'UTF8')), 0) & 1 $fn$",
    "CREATE OR REPLACE FUNCTION outpool_check_place(v_batch text, v_who text, v_block bigint, "
    "v_every integer) RETURNS bigint LANGUAGE sql STABLE AS $fn$ SELECT ('x' || encode("
    "substring(sha256(convert_to(v_batch || chr(31) || v_who || chr(31) || v_block::text, "
    "'UTF8')) FROM 1 FOR 4), 'hex'))::bit(32)::bigint % v_every $fn$",
    # The batch's first open pair they have not had with a free slot, held by its advisory
    # lock (NULL: none). The next _WINDOW open pairs in seq order (plain columns of the
    # pairs_open index), then the per-pair conditions on them in that order, then the lock:
    # each stage pulls rows from the one before, so the conditions are evaluated only until a
    # pair is held (over the whole batch PostgreSQL tests them on every open pair, then sorts)
    # and no pair failing them is ever locked. When every pair that fits is being assigned by
    # others, it waits for the first ("no task" would tell them there is no work while there
    # is).
    _function(
        "outpool_free_pair(v_batch text, v_k integer, v_who text, v_now double precision)",
        "RETURNS text",
        f"""LOOP
  SELECT f.seq, f.id INTO c FROM (SELECT p.seq, p.id FROM ({_WINDOW_SQL}) p
    WHERE {bind(q.NOT_HAD, "v_who")} AND {bind(q.SLOTS_TAKEN, "v_now")} < v_k
    ORDER BY p.seq OFFSET 0) f
  WHERE pg_try_advisory_xact_lock(hashtext(v_batch), f.seq) LIMIT 1;
  IF NOT FOUND THEN
    SELECT MAX(w.seq), COUNT(*) INTO v_last, v_n FROM ({_WINDOW_SQL}) w;
    IF v_n = {_WINDOW} THEN  -- a window of pairs none of which fits: look further on
      v_after := v_last;
      CONTINUE;
    END IF;
    {bind(q.FREE_PAIRS, "v_batch", "-1", "v_who", "v_now", "v_k")} LIMIT 1 INTO c;
    IF NOT FOUND THEN RETURN NULL; END IF;
    PERFORM pg_advisory_xact_lock(hashtext(v_batch), c.seq);
  END IF;
  SELECT p.state, {bind(q.SLOTS_TAKEN, "v_now")} INTO v_state, v_taken FROM pairs p
    WHERE p.batch_id = v_batch AND p.id = c.id;
  IF v_state = 'open' AND v_taken < v_k THEN RETURN c.id; END IF;
  v_after := c.seq;  -- filled meanwhile: look further on
END LOOP;""",
        "c record; v_after bigint := -1; v_last bigint; v_n bigint; v_state text; v_taken bigint;",
    ),
    # A new assignment (store.py: _assign).
    _function(
        f"outpool_assign(v_who text, v_now double precision, {_TASK_OUT})",
        "",
        f"""FOR ob IN {bind(q.OPEN_BATCHES, *["v_who"] * 4)} LOOP
  v_pair := outpool_free_pair(ob.id, ob.k, v_who, v_now);
  IF v_pair IS NOT NULL THEN EXIT; END IF;
END LOOP;
IF v_pair IS NULL THEN RETURN; END IF;
v_checks := COALESCE(ob.checks_upto, 0);
v_all := COALESCE(ob.n_upto, 0);
v_block := (v_all - v_checks) / ob.check_every;
IF v_checks < v_block OR (v_checks = v_block AND (v_all - v_checks) % ob.check_every
    >= outpool_check_place(ob.id, v_who, v_block, ob.check_every)) THEN
  {bind(q.CHECK_PAIR, "ob.id", "v_who")} INTO c;
  IF FOUND THEN v_pair := c.id; v_is_check := 1; END IF;
END IF;
t_swapped := outpool_swapped(ob.id, v_pair, v_who);
{_ASSIGN};
t_batch := ob.id;
SELECT {q.PAIR_COLUMNS} WHERE p.batch_id = ob.id AND p.id = v_pair
  INTO t_pair, t_attribute, t_a, t_b, t_definition;""",
        "ob record; c record; v_pair text; v_checks bigint; v_all bigint; v_block bigint; "
        "v_is_check integer := 0;",
    ),
    # Their current task, else a new one (store.py: _next_task).
    _function(
        f"outpool_task(v_who text, v_now double precision, {_TASK_OUT})",
        "",
        f"""{bind(q.HELD_TASK, "v_who", "v_now")} INTO t_batch, t_swapped, t_pair, t_attribute,
  t_a, t_b, t_definition;
IF NOT FOUND THEN
  SELECT * INTO t_batch, t_swapped, t_pair, t_attribute, t_a, t_b, t_definition
    FROM outpool_assign(v_who, v_now);
END IF;""",
    ),
    # Count a vote; whether that closed the batch (store.py: _count_vote).
    _function(
        "outpool_count_vote(v_batch text, v_pair text, v_k integer, v_reject integer, "
        "v_now double precision)",
        "RETURNS boolean",
        f"""{bind(q.COUNT_VOTE, "v_reject", "v_reject", "v_k", "v_k", "v_batch", "v_pair")}
  INTO v_state;
IF NOT FOUND THEN {_refuse(CONFLICT, q.PAIR_FULL, "v_pair")} END IF;
IF v_state = 'open' THEN RETURN false; END IF;
{bind(q.PAIR_DONE, "v_now", "v_batch")} INTO v_left;
RETURN v_left <= 0;""",
        "v_state text; v_left bigint;",
    ),
    # An answer (store.py: _submit, then what answer() and submit() do after it). Refused
    # answers raise NOT_FOUND or CONFLICT; nothing of the call is kept.
    _function(
        "outpool_answer(v_who text, v_sid text, v_batch text, v_pair text, v_choice text, "
        "v_answer integer, v_answer_swapped integer, v_reject integer, v_confidence double "
        "precision, v_rationale text, v_elapsed_ms integer, v_now double precision, "
        f"v_and_next boolean, OUT vote_id bigint, OUT duplicate boolean, {_TASK_OUT}, "
        "OUT done bigint, OUT left_ bigint)",
        "",
        f"""{_SHARED_LOCK}
-- their count of answers first: its row lock orders one annotator's calls (a re-sent answer
-- gives the count back; a refused one undoes the whole call)
{bind(q.COUNT_ANSWER, "v_who")};
duplicate := false;
{bind(q.ANSWERED_TASK, "v_batch", "v_pair", "v_who")} INTO r;
-- a re-sent answer finds its pair answered (or, sent under another id, not its task)
IF NOT FOUND OR r.answered = 1 THEN
  {bind(q.PRIOR_VOTE, "v_sid")} INTO prior;
  IF prior.id IS NOT NULL THEN
    IF (prior.annotator_id, prior.batch_id, prior.pair_id) <> (v_who, v_batch, v_pair) THEN
      {_refuse(CONFLICT, q.ID_REUSED)}
    END IF;
    vote_id := prior.id; duplicate := true;
    UPDATE annotators SET n_answered = n_answered - 1 WHERE id = v_who;
  ELSIF r.answered IS NULL THEN {_refuse(NOT_FOUND, q.NO_TASK)}
  ELSE {_refuse(CONFLICT, q.ANSWERED_ALREADY)}
  END IF;
END IF;
IF NOT duplicate THEN
  IF r.skipped = 1 THEN {_refuse(CONFLICT, q.SKIPPED_ALREADY)} END IF;
  IF r.batch_state <> 'open' THEN {_refuse(CONFLICT, q.BATCH_CLOSED, "v_batch")} END IF;
  IF r.is_check = 0 AND r.pair_state <> 'open' THEN
    {_refuse(CONFLICT, q.PAIR_FULL + " (%s)", "v_pair", "r.pair_state")}
  END IF;
  v_final := CASE WHEN r.swapped = 1 THEN v_answer_swapped ELSE v_answer END;
  {_INSERT_VOTE}
    INTO vote_id;
  IF vote_id IS NULL THEN {_refuse(CONFLICT, q.ID_REUSED)} END IF;
  {bind(q.MARK_ANSWERED, "v_batch", "v_pair", "v_who")};
END IF;
IF v_and_next THEN
  SELECT * INTO t_batch, t_swapped, t_pair, t_attribute, t_a, t_b, t_definition
    FROM outpool_task(v_who, v_now);
  {bind(q.REMAINING, "v_who", "v_who", "v_who")} INTO done, v_open, v_mine;
  left_ := GREATEST(v_open - v_mine, 0);
END IF;
-- counted last: the pair's row (and, when it is done, the batch's) stays locked only while
-- this commits, not while the next task is found
IF NOT duplicate AND r.is_check = 0 THEN
  v_closed := outpool_count_vote(v_batch, v_pair, r.k,
    CASE WHEN v_final = v_reject THEN 1 ELSE 0 END, v_now);
  IF v_closed AND v_and_next AND t_batch = v_batch THEN  -- a check pair of the closed batch
    SELECT * INTO t_batch, t_swapped, t_pair, t_attribute, t_a, t_b, t_definition
      FROM outpool_task(v_who, v_now);
  END IF;
END IF;""",
        "r record; prior record; v_final integer; v_open bigint; v_mine bigint; v_closed boolean;",
    ),
    # Their next task.
    _function(
        f"outpool_next_task(v_who text, v_now double precision, {_TASK_OUT})",
        "",
        f"""{_HOLD}
SELECT * INTO t_batch, t_swapped, t_pair, t_attribute, t_a, t_b, t_definition
  FROM outpool_task(v_who, v_now);""",
    ),
    # Give back a held pair, then their next task (store.py: skip_and_next).
    _function(
        f"outpool_skip(v_who text, v_batch text, v_pair text, v_now double precision, {_TASK_OUT})",
        "",
        f"""{_HOLD}
{bind(q.SKIPPED_TASK, "v_batch", "v_pair", "v_who")} INTO r;
IF NOT FOUND THEN {_refuse(NOT_FOUND, q.NO_TASK)} END IF;
IF r.answered = 1 THEN {_refuse(CONFLICT, q.ANSWERED_NO_SKIP)} END IF;
IF r.batch_state <> 'open' THEN {_refuse(CONFLICT, q.BATCH_CLOSED, "v_batch")} END IF;
{bind(q.SKIP, "v_now", "v_batch", "v_pair", "v_who")};
SELECT * INTO t_batch, t_swapped, t_pair, t_attribute, t_a, t_b, t_definition
  FROM outpool_task(v_who, v_now);""",
        "r record;",
    ),
)


def install(cur: Cursor) -> None:
    """(Re)create the functions; in the transaction that brings the schema up to date."""
    for sql in FUNCTIONS:
        cur.execute(sql)
