"""The statements of an annotator's transactions (next task, answer, skip), written once: the
store runs them itself on SQLite (``store.py``) and, on PostgreSQL, its server-side functions
run them (``pg_work.py``). ``?`` marks a parameter; each statement lists what it binds, in order.
"""

from __future__ import annotations

# The open batches an annotator may work on: those they were invited to, or every one for an
# annotator invited to none. Binds the annotator id twice.
MAY_WORK_ON = (
    "(NOT EXISTS (SELECT 1 FROM invitations i WHERE i.annotator_id = ?) "
    "OR EXISTS (SELECT 1 FROM invitations i WHERE i.annotator_id = ? AND i.batch_id = b.id))"
)

# A pair as a task shows it, for queries that go on with joins and conditions.
PAIR_COLUMNS = (
    "p.id, p.attribute, p.a, p.b, t.definition FROM pairs p "
    "JOIN attributes t ON t.batch_id = p.batch_id AND t.name = p.attribute"
)

# Slots of pair p taken: answered, or held by an unexpired assignment. Binds now.
SLOTS_TAKEN = (
    "(SELECT COUNT(*) FROM assignments s WHERE s.batch_id = p.batch_id AND s.pair_id = p.id "
    "AND (s.answered = 1 OR s.expires_at > ?))"
)

# Pair p was never assigned to this annotator. Binds the annotator.
NOT_HAD = (
    "NOT EXISTS (SELECT 1 FROM assignments s WHERE s.batch_id = p.batch_id AND s.pair_id = p.id "
    "AND s.annotator_id = ?)"
)

# Their current task: an unanswered, unexpired assignment (a reload shows the same pair).
# (annotator, now) -> batch, swapped, PAIR_COLUMNS
HELD_TASK = (
    f"SELECT s.batch_id, s.swapped, {PAIR_COLUMNS} "
    "JOIN assignments s ON s.batch_id = p.batch_id AND s.pair_id = p.id "
    "JOIN batches b ON b.id = s.batch_id "
    "WHERE s.annotator_id = ? AND s.answered = 0 AND s.skipped = 0 "
    "AND s.expires_at > ? AND b.state = 'open' AND (p.state = 'open' OR p.is_check = 1) "
    "ORDER BY s.assigned_at LIMIT 1"
)

# The open batches they may work on, oldest first, each with their counts of check pairs and
# of pairs in it (from their latest assignment in it; NULL before their first).
# (annotator x 4) -> batch, k, lease_s, check_every, their checks, their pairs
_LATEST = (
    "FROM assignments s WHERE s.annotator_id = ? AND s.batch_id = b.id "
    "ORDER BY s.n_upto DESC LIMIT 1"
)
OPEN_BATCHES = (
    f"SELECT b.id, b.k, b.lease_s, b.check_every, (SELECT s.checks_upto {_LATEST}) "
    f"AS checks_upto, (SELECT s.n_upto {_LATEST}) AS n_upto "
    f"FROM batches b WHERE b.state = 'open' AND {MAY_WORK_ON} "
    "ORDER BY b.created_at, b.id"
)

# The batch's open ordinary pairs after seq ``after`` they have not had with a free slot among
# its k, in seq order (the pairs_open index: the conditions are tested only until one fits).
# (batch, after, annotator, now, k) -> seq, PAIR_COLUMNS
FREE_PAIRS = (
    f"SELECT p.seq, {PAIR_COLUMNS} "
    "WHERE p.state = 'open' AND p.is_check = 0 AND p.batch_id = ? AND p.seq > ? "
    f"AND {NOT_HAD} AND {SLOTS_TAKEN} < ? ORDER BY p.seq"
)

# The batch's first check pair they have not had. Check pairs are never counted, so they stay
# 'open'; saying so lets the query use pairs_open instead of reading every pair of the batch.
# (batch, annotator) -> PAIR_COLUMNS
CHECK_PAIR = (
    f"SELECT {PAIR_COLUMNS} WHERE p.state = 'open' AND p.is_check = 1 AND p.batch_id = ? "
    f"AND {NOT_HAD} ORDER BY p.seq LIMIT 1"
)

# (batch, pair, annotator, is_check, swapped, now, expires_at, their pairs, their checks,
#  batch, pair)
ASSIGN = (
    "INSERT INTO assignments (batch_id, pair_id, annotator_id, is_check, swapped, "
    "assigned_at, expires_at, n_upto, checks_upto, pair_seq) "
    "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, p.seq FROM pairs p WHERE p.batch_id = ? AND p.id = ?"
)

# (their answers, in any batch; open ordinary pairs in the batches they may work on; their
# assignments to those). Per open batch, their assignments in it from its first open pair on
# (those before it are to closed pairs), each with a look-up of its pair: correlated scalar
# subqueries are not turned into joins, which would read every assignment of theirs or every
# open pair. (annotator x 3)
REMAINING = (
    "SELECT a.n_answered, "
    "(SELECT COALESCE(SUM(b.n_open), 0) FROM batches b WHERE b.state = 'open' "
    f"  AND {MAY_WORK_ON}), "
    "(SELECT COALESCE(SUM((SELECT COUNT(*) FROM assignments s "
    "  WHERE s.annotator_id = a.id AND s.batch_id = b.id AND s.is_check = 0 "
    "  AND s.pair_seq >= (SELECT MIN(p.seq) FROM pairs p WHERE p.state = 'open' "
    "    AND p.is_check = 0 AND p.batch_id = b.id) "
    "  AND (SELECT p.state FROM pairs p "
    "    WHERE p.batch_id = s.batch_id AND p.id = s.pair_id) = 'open')), 0) "
    "  FROM batches b WHERE b.state = 'open') "
    "FROM annotators a WHERE a.id = ?"
)

# (batch, pair, annotator) -> swapped, is_check, answered, batch state, k, pair state, skipped
ANSWERED_TASK = (
    "SELECT s.swapped, s.is_check, s.answered, b.state AS batch_state, b.k, "
    "p.state AS pair_state, s.skipped "
    "FROM assignments s JOIN batches b ON b.id = s.batch_id "
    "JOIN pairs p ON p.batch_id = s.batch_id AND p.id = s.pair_id "
    "WHERE s.batch_id = ? AND s.pair_id = ? AND s.annotator_id = ?"
)

# (submission id) -> vote id, annotator, batch, pair
PRIOR_VOTE = "SELECT id, annotator_id, batch_id, pair_id FROM votes WHERE submission_id = ?"

# (submission id, batch, pair, annotator, answer, choice, swapped, confidence, rationale,
#  is_check, elapsed_ms, now) -> vote id; no row when the submission id is taken
INSERT_VOTE = (
    "INSERT INTO votes (submission_id, batch_id, pair_id, annotator_id, answer, "
    "choice, swapped, confidence, rationale, is_check, elapsed_ms, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (submission_id) DO NOTHING RETURNING id"
)

# (batch, pair, annotator), then (annotator)
MARK_ANSWERED = (
    "UPDATE assignments SET answered = 1 WHERE batch_id = ? AND pair_id = ? AND annotator_id = ?"
)
COUNT_ANSWER = "UPDATE annotators SET n_answered = n_answered + 1 WHERE id = ?"

# Count a vote on a pair while it is open. (reject, reject, k, k, batch, pair) -> new state;
# no row when the pair needs no more answers
COUNT_VOTE = (
    "UPDATE pairs SET n_votes = n_votes + 1, n_rejects = n_rejects + ?, state = CASE "
    "WHEN 2 * (n_rejects + ?) >= ? THEN 'rejected' "
    "WHEN n_votes + 1 >= ? THEN 'done' ELSE 'open' END "
    "WHERE batch_id = ? AND id = ? AND state = 'open' RETURNING state"
)

# A pair is done: the batch closes with its last one. (now, batch) -> open pairs left
PAIR_DONE = (
    "UPDATE batches SET n_open = n_open - 1, "
    "state = CASE WHEN n_open <= 1 THEN 'closed' ELSE state END, "
    "closed_at = CASE WHEN n_open <= 1 THEN ? ELSE closed_at END "
    "WHERE id = ? RETURNING n_open"
)

# (batch, pair, annotator) -> answered, batch state; then (now, batch, pair, annotator)
SKIPPED_TASK = (
    "SELECT s.answered, b.state AS batch_state "
    "FROM assignments s JOIN batches b ON b.id = s.batch_id "
    "WHERE s.batch_id = ? AND s.pair_id = ? AND s.annotator_id = ?"
)
SKIP = (
    "UPDATE assignments SET skipped = 1, expires_at = ? "
    "WHERE batch_id = ? AND pair_id = ? AND annotator_id = ?"
)

# What the annotator is told when a transaction is refused; ``{}`` is a quoted id.
NO_TASK = "no such task for this annotator"
ID_REUSED = "this submission_id was already used for another answer"
ANSWERED_ALREADY = "this pair was already answered by this annotator"
SKIPPED_ALREADY = "this pair was skipped; it went to someone else"
ANSWERED_NO_SKIP = "this pair was already answered; undo the answer first"
BATCH_CLOSED = "batch {} is closed"
PAIR_FULL = "pair {} needs no more answers"
