"""Where a vote's time goes in the annotation service: the store alone, then the whole web app
in-process (no sockets), per vote, in one run.

    python benchmarks/annotation_cpu.py [--votes 2000] [--annotators 50] [--db sqlite|URL]
        [--history N] [--in-batch N]

Each of ``--annotators`` annotators answers the task they hold and takes the next (one
transaction per vote, as ``POST /api/votes`` does), first through ``AnnotationStore.
submit_and_next`` directly, then through the ASGI app called in-process with the same request a
client sends. ``--history N``: the store's annotators have first answered N pairs each of an
earlier batch, since closed; ``--in-batch N``: they have first answered N pairs each of the
measured batch (what a vote reads about its annotator must grow with neither). CPU
time (this process) and wall time per vote; their difference in the store is
mostly waiting for the commit to reach the disk. What the app adds beyond the store is the web
framework's routing, validation, thread hops and JSON; what a real server adds beyond that
(HTTP parsing, sockets) is ``annotation_load.py``'s ``server_cpu_ms_per_vote`` minus this.
Prints one JSON object as the last line.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from outpool.bench import drop_schema, emit, log, machine, parser, postgres_schema
from outpool.fileio import json_text
from outpool.service.batch import BatchSpec
from outpool.service.store import AnnotationStore, Annotator, Submission
from outpool.service.web import create_app


def batch(name: str, pairs: int, images: int, seed: int) -> BatchSpec:
    rng = np.random.default_rng(seed)
    pool = {f"i{i:04d}": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(images)}
    ids = list(pool)
    drawn = [rng.choice(len(ids), 2, replace=False) for _ in range(pairs)]
    return BatchSpec(
        name=name,
        ids=np.array([f"p{i:06d}" for i in range(pairs)]),
        attribute=np.array(["size"] * pairs),
        a=np.array([ids[a] for a, _ in drawn]),
        b=np.array([ids[b] for _, b in drawn]),
        images=pool,
        definitions={"size": "how big the thing looks"},
    )


def answer_history(store: AnnotationStore, people: list[Annotator], n: int, seed: int) -> None:
    """Each of ``people`` answers ``n`` pairs of a batch that is then closed."""
    # one more pair each: the task each is given after their last answer
    store.create_batch(batch("earlier", (n + 1) * len(people), 200, seed + 1), k=1)
    for who in people:
        task = store.next_task(who)
        for _ in range(n):
            assert task is not None
            sub = Submission(secrets.token_hex(8), task.batch, task.pair_id, "equal", "very")
            task = store.submit_and_next(who, sub)[1]
    store.close_batch("earlier")


def store_votes(
    store: AnnotationStore, n_votes: int, people: list[Annotator]
) -> tuple[float, float]:
    """(CPU ms, wall ms) per vote through the store alone."""
    n_people = len(people)
    held = {p.id: store.next_task(p) for p in people}
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n_votes):
        who = people[i % n_people]
        task = held[who.id]
        assert task is not None
        sub = Submission(secrets.token_hex(8), task.batch, task.pair_id, "equal", "very")
        held[who.id] = store.submit_and_next(who, sub)[1]
    return (
        1000 * (time.process_time() - cpu) / n_votes,
        1000 * (time.perf_counter() - wall) / n_votes,
    )


async def app_votes(store: AnnotationStore, n_votes: int, n_people: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per vote through the ASGI app, called in-process."""
    app = create_app(store)
    tokens = [store.create_annotator(f"w{i}")[1] for i in range(n_people)]

    async def call(method: str, path: str, token: str, body: Any = None) -> Any:
        data = b"" if body is None else json_text(body).encode()
        scope = {
            "type": "http", "method": method, "path": path, "raw_path": path.encode(),
            "query_string": b"", "http_version": "1.1", "scheme": "http", "root_path": "",
            "server": ("bench", 80), "client": ("bench", 1),
            "headers": [(b"authorization", f"Bearer {token}".encode()),
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(data)).encode())],
        }  # fmt: skip
        done = False
        out: dict[str, Any] = {"body": b""}

        async def receive() -> dict[str, Any]:
            nonlocal done
            if done:
                return {"type": "http.disconnect"}
            done = True
            return {"type": "http.request", "body": data, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                out["status"] = message["status"]
            elif message["type"] == "http.response.body":
                out["body"] += message.get("body", b"")

        await app(scope, receive, send)
        if out.get("status") != 200:
            raise RuntimeError(f"{method} {path}: {out.get('status')} {out['body'][:200]!r}")
        return json.loads(out["body"])

    held = {t: (await call("GET", "/api/task", t))["task"] for t in tokens}
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n_votes):
        token = tokens[i % n_people]
        task = held[token]
        body = {
            "submission_id": secrets.token_hex(8), "batch": task["batch"],
            "pair_id": task["pair_id"], "choice": "equal", "confidence": "very",
            "rationale": "", "elapsed_ms": 900,
        }  # fmt: skip
        held[token] = (await call("POST", "/api/votes", token, body))["task"]
    return (
        1000 * (time.process_time() - cpu) / n_votes,
        1000 * (time.perf_counter() - wall) / n_votes,
    )


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--votes", type=int, default=2000, help="votes per measurement")
    p.add_argument("--annotators", type=int, default=50)
    p.add_argument("--db", default="sqlite", help="sqlite (a temporary file) or a database URL")
    p.add_argument("--history", type=int, default=0, help="earlier answers per annotator")
    p.add_argument(
        "--in-batch", type=int, default=0, help="answers per annotator in the measured batch first"
    )
    args = p.parse_args()
    if args.votes < 1 or args.annotators < 1 or args.history < 0 or args.in_batch < 0:
        p.error("--votes and --annotators must be at least 1, --history and --in-batch at least 0")
    schema = None
    with tempfile.TemporaryDirectory() as tmp:
        url = str(Path(tmp) / "votes.db")
        if args.db != "sqlite":
            schema, url = postgres_schema(args.db)  # a fresh schema, dropped at the end
        store = AnnotationStore.open(url)
        try:
            # k 5 over enough pairs that nobody runs out: every vote is an ordinary one
            people = [store.create_annotator(f"s{i}")[0] for i in range(args.annotators)]
            if args.history:
                log(f"{args.history} earlier answers per annotator ...")
                answer_history(store, people, args.history, args.seed)
            pairs = 2 * args.votes // 5 + 4 * args.annotators + args.in_batch * args.annotators // 5
            store.create_batch(batch("bench", pairs, 200, args.seed), k=5)
            if args.in_batch:
                log(f"{args.in_batch} answers per annotator in the batch first ...")
                store_votes(store, args.in_batch * args.annotators, people)
            log(f"{args.votes} votes through the store ...")
            store_cpu, store_wall = store_votes(store, args.votes, people)
            log(f"{args.votes} votes through the web app, in-process ...")
            app_cpu, app_wall = asyncio.run(app_votes(store, args.votes, args.annotators))
        finally:
            store.close()
            if schema is not None:
                drop_schema(args.db, schema)
    emit(
        {
            "benchmark": "annotation_cpu",
            "machine": machine(),
            "db": "sqlite" if args.db == "sqlite" else "postgresql",
            "votes": args.votes,
            "annotators": args.annotators,
            "history_per_annotator": args.history,
            "in_batch_per_annotator": args.in_batch,
            "store_cpu_ms_per_vote": round(store_cpu, 3),
            "store_wall_ms_per_vote": round(store_wall, 3),
            "app_cpu_ms_per_vote": round(app_cpu, 3),
            "app_wall_ms_per_vote": round(app_wall, 3),
            "web_framework_cpu_ms_per_vote": round(app_cpu - store_cpu, 3),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
