"""Load test of the annotation service: many simulated annotators vote against ``outpool
annotate serve``; then a server is killed (SIGKILL) in the middle of the load and restarted on
the same database, to check that every acknowledged vote is there, once.

    python benchmarks/annotation_load.py [--annotators 50] [--rate 8] [--seconds 20]
        [--warmup 3] [--db sqlite|postgresql://...] [--servers N] [--pairs N] [--k 5]
        [--client raw|httpx] [--out F]

Each annotator has its own keep-alive connection: GET /api/task once, then POST /api/votes in a
loop taking the next task from each answer; about 2% of the votes are sent a second time at once
with the same submission_id (they must come back as duplicates). A vote counts as acknowledged
when its 2xx answer has been read in full. Each annotator offers ``--rate`` votes per second
(Poisson arrivals: 50 x 8 = 400 votes/s by default); a vote's latency runs from when it was due,
not when it could be sent, so a stalled server is not hidden by annotators waiting on it.
``--rate 0`` removes the think time: a closed loop that measures capacity (the median latency is
then about annotators / throughput). ``--servers N`` runs N server processes on the one
database (hosts behind a load balancer; annotator i talks to server i mod N) and kills the first.
Throughput and latency cover the measured window only (after the warm-up, up to the kill).
``errors`` counts non-2xx answers and failures before the kill, by kind in ``errors_by_kind`` (a
409 "needs no more answers" refuses an answer to a pair that the others settled meanwhile);
failures caused by the kill are ``errors_at_kill``. ``server_cpu_ms_per_vote`` (CPU of the
server processes per acknowledged vote) is the least noisy figure on a shared machine. Targets
(``targets_met``): SQLite >= 1,000 votes/s with p99 < 50 ms, PostgreSQL >= 500 votes/s with
p99 < 100 ms. PostgreSQL runs use a fresh schema, dropped at the end, gather its statistics
(``ANALYZE``) at the end of the warm-up, as autovacuum does within about a minute of a real
batch's start (without them the planner reads every assignment of an annotator in the batch
for each check pair it considers), and report where the
database's busy backends were during the window (``postgresql_backends``: the mean number
running, and waiting, by wait event, sampled from ``pg_stat_activity`` every 20 ms: a WAL
flush, ``LWLock:WALWrite`` and ``IO:WALSync``, is the disk). Prints progress to stderr
and one JSON object as the last line of stdout; exits 1 when an acknowledged vote was lost, a
vote was stored twice (by submission_id, or by pair and annotator), a retry did not come back
as the same vote, or a pair got more than k votes."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from outpool.bench import drop_schema, emit, log, machine, parser, postgres_schema
from outpool.fileio import json_text

CHOICES = ["left_more", "equal", "left_less", "illegible"]
CHOICE_P = [0.45, 0.1, 0.4, 0.05]
CONFIDENCES = ["very", "somewhat", "not"]
BATCH = "load"
TARGETS = {"sqlite": (1000, 50), "postgresql": (500, 100)}  # votes/s at least, p99 ms below
HOST = "127.0.0.1"


# -- the server under test ----------------------------------------------------------------------


def outpool_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("outpool")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "outpool.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def admin_call(port: int, token: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json_text(body).encode()
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=300) as resp:
        return json.loads(resp.read())


@dataclass
class Server:
    db_url: str
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, admin_token: str, timeout_s: float = 60.0) -> None:
        cmd = [*outpool_cmd(), "annotate", "serve", "--db", self.db_url]
        cmd += ["--host", HOST, "--port", str(self.port)]
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{self.log_tail()}")
            try:
                admin_call(self.port, admin_token, "GET", "/api/admin/batches")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not answer:\n{self.log_tail()}") from None
                time.sleep(0.1)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cpu_s(self) -> float:
        """CPU seconds the server process has used so far (user + system, all threads)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def make_admin(db_url: str) -> str:
    out = subprocess.run(
        [*outpool_cmd(), "annotate", "token", "--db", db_url, "--name", "bench", "--admin"],
        check=True,
        capture_output=True,
        text=True,
    )
    return str(json.loads(out.stdout.strip().splitlines()[-1])["token"])


def batch_request(rng: np.random.Generator, pairs: int, images: int, k: int, n: int) -> Any:
    """``pairs`` ordinary pairs (and 20 check pairs) over a pool of ``images`` random PNGs."""
    pngs = {}
    for i in range(images):
        buf = io.BytesIO()
        pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(buf, format="PNG")
        pngs[f"img{i:04d}"] = base64.b64encode(buf.getvalue()).decode()
    names = list(pngs)
    out = []
    for i in range(pairs + 20):
        a, b = rng.choice(len(names), 2, replace=False)
        pair = {"id": f"p{i:06d}", "attribute": "size", "a": names[a], "b": names[b]}
        if i >= pairs:
            pair["check_answer"] = int(rng.choice([1, -1]))
        out.append(pair)
    return {
        "name": BATCH,
        "pairs": out,
        "images": pngs,
        "definitions": {"size": "how big the thing looks"},
        "k": k,
        "check_every": 10,
        "new_annotators": n,
    }


# -- HTTP clients: one keep-alive connection per annotator ------------------------------------


class RawConnection:
    """HTTP/1.1 over asyncio streams, just what this service's answers need (Content-Length)."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.auth = f"Authorization: Bearer {token}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n{self.auth}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
            status = int(raw[9:12])
            headers = raw.lower()
            at = headers.find(b"\r\ncontent-length:")
            if at < 0:
                raise ConnectionError("an answer without Content-Length")
            length = int(headers[at + 17 : headers.find(b"\r\n", at + 2)])
            data = await self.reader.readexactly(length)
        except BaseException:
            await self.close()
            raise
        if b"\r\nconnection: close" in headers:
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = self.reader = None


class HttpxConnection:
    def __init__(self, port: int, token: str) -> None:
        import httpx

        self.client = httpx.AsyncClient(
            base_url=f"http://{HOST}:{port}",
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=60.0,
        )
        self.errors = (httpx.TransportError,)

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        try:
            headers = {"Content-Type": "application/json"} if body is not None else None
            resp = await self.client.request(method, path, content=body, headers=headers)
        except self.errors as exc:
            raise ConnectionError(str(exc)) from exc
        return resp.status_code, resp.content

    async def close(self) -> None:
        await self.client.aclose()


# -- the simulated annotators -----------------------------------------------------------------


@dataclass
class Load:
    """What every annotator saw; times are ``time.perf_counter()``."""

    killed_at: float | None = None
    acked: dict[str, int] = field(default_factory=dict)  # submission_id -> vote id
    acked_at: list[float] = field(default_factory=list)  # arrival of each new vote's ack
    latency: list[tuple[float, float]] = field(default_factory=list)  # (done at, seconds)
    errors: list[tuple[str, str]] = field(default_factory=list)  # before the kill: kind, text
    errors_at_kill: int = 0
    retries: int = 0
    retries_ok: int = 0  # came back duplicate with the first answer's vote id
    retries_bad: list[str] = field(default_factory=list)
    ran_out: int = 0  # annotators who got no task (the batch should be big enough)
    posts: int = 0
    backends: dict[str, float] = field(default_factory=dict)  # PostgreSQL: see sample_backends
    server_cpu_s: float = 0.0  # CPU the servers and this client used in the measured window
    client_cpu_s: float = 0.0


async def annotator(
    i: int, conn: RawConnection | HttpxConnection, load: Load, seed: int, rate: float
) -> None:
    rng = np.random.default_rng([seed, i])
    task: Any = None
    n = 0
    due = time.perf_counter()  # when the next vote is due (paced mode)
    while load.killed_at is None:
        try:
            if task is None:
                status, data = await conn.request("GET", "/api/task")
                if status != 200:
                    load.errors.append((f"GET /api/task {status}", data[:200].decode()))
                    await asyncio.sleep(0.05)
                    continue
                task = json.loads(data)["task"]
                if task is None:
                    load.ran_out += 1
                    return
            n += 1
            sid = f"a{i:03d}-{n:07d}-{secrets.token_hex(4)}"
            body = json_text(
                {
                    "submission_id": sid,
                    "batch": task["batch"],
                    "pair_id": task["pair_id"],
                    "choice": CHOICES[rng.choice(len(CHOICES), p=CHOICE_P)],
                    "confidence": CONFIDENCES[int(rng.integers(3))],
                    "elapsed_ms": int(rng.integers(500, 5000)),
                }
            ).encode()
            retry = rng.random() < 0.02
            if rate > 0:
                due += float(rng.exponential(1 / rate))
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            for attempt in range(2 if retry else 1):
                t0 = time.perf_counter()
                if rate > 0 and attempt == 0:
                    t0 = min(t0, due)  # late because the last answer was slow: that counts
                load.posts += 1
                status, data = await conn.request("POST", "/api/votes", body)
                t1 = time.perf_counter()
                load.latency.append((t1, t1 - t0))
                if not 200 <= status < 300:
                    load.errors.append((f"POST /api/votes {status}", data[:200].decode()))
                    task = None  # ask again for the current task
                    break
                answer = json.loads(data)
                ack = answer["ack"]
                if attempt == 0:
                    load.acked[sid] = int(ack["vote_id"])
                    load.acked_at.append(t1)
                    task = answer["task"]
                    if task is None:
                        load.ran_out += 1
                        return
                else:
                    load.retries += 1
                    if ack["duplicate"] and int(ack["vote_id"]) == load.acked[sid]:
                        load.retries_ok += 1
                    else:
                        load.retries_bad.append(f"{sid}: {ack}")
        except Exception as exc:  # connection errors; anything else is counted, not fatal
            if load.killed_at is not None:
                load.errors_at_kill += 1
                return
            load.errors.append((type(exc).__name__, str(exc)))
            task = None
            await asyncio.sleep(0.05)


async def run_load(
    servers: list[Server], tokens: list[str], warmup: float, seconds: float, args: Any
) -> tuple[Load, float, float]:
    load = Load()
    kind = RawConnection if args.client == "raw" else HttpxConnection
    # annotator i talks to server i mod N, as a load balancer with sticky sessions would do
    conns = [kind(servers[i % len(servers)].port, t) for i, t in enumerate(tokens)]
    started = time.perf_counter()
    workers = [
        asyncio.create_task(annotator(i, c, load, args.seed, args.rate))
        for i, c in enumerate(conns)
    ]
    await asyncio.sleep(warmup)
    if args.db != "sqlite":  # the statistics autovacuum gathers within a minute of a real start
        await asyncio.to_thread(analyze, servers[0].db_url)
    window_start = time.perf_counter()
    cpu0, own0 = sum(s.cpu_s() for s in servers), time.process_time()
    log(f"warm-up over after {window_start - started:.1f} s; measuring {seconds:g} s ...")
    if args.db == "sqlite":
        await asyncio.sleep(seconds)
    else:
        load.backends = await asyncio.to_thread(sample_backends, args.db, seconds)
    window_end = time.perf_counter()
    load.server_cpu_s = sum(s.cpu_s() for s in servers) - cpu0
    load.client_cpu_s = time.process_time() - own0
    log(f"{len(load.acked)} votes acknowledged; SIGKILL of server 1 of {len(servers)} under load")
    load.killed_at = window_end
    await asyncio.to_thread(servers[0].kill)
    done, pending = await asyncio.wait(workers, timeout=30)
    for w in pending:
        w.cancel()
    for w in done:
        if w.exception() is not None:
            raise w.exception()  # type: ignore[misc]
    for c in conns:
        await c.close()
    return load, window_start, window_end


def analyze(url: str) -> None:
    """Gather the planner's statistics of the tables an annotator's transactions read."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "ANALYZE annotators, invitations, batches, attributes, pairs, assignments, votes"
        )


def sample_backends(url: str, seconds: float, every_s: float = 0.02) -> dict[str, float]:
    """The mean number of the database's busy client backends over ``seconds``, running or
    waiting, by wait event ("type:event")."""
    import psycopg

    counts: Counter[str] = Counter()
    samples = 0
    end = time.perf_counter() + seconds
    with psycopg.connect(url, autocommit=True) as conn:
        while time.perf_counter() < end:
            rows = conn.execute(
                "SELECT wait_event_type, wait_event FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND datname = current_database() "
                "AND state <> 'idle' AND pid <> pg_backend_pid()"
            ).fetchall()
            counts.update("running" if kind is None else f"{kind}:{event}" for kind, event in rows)
            samples += 1
            time.sleep(every_s)
    return {name: round(n / max(samples, 1), 2) for name, n in counts.most_common()}


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--annotators", type=int, default=50, help="concurrent annotators")
    p.add_argument(
        "--rate", type=float, default=8.0, help="votes/s each annotator offers (0: no pause)"
    )
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds of load")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    p.add_argument("--db", default="sqlite", help="'sqlite' (a temporary file) or postgresql://")
    p.add_argument("--pairs", type=int, help="ordinary pairs in the batch (default: plenty)")
    p.add_argument("--images", type=int, default=200, help="images the pairs share")
    p.add_argument("--k", type=int, default=5, help="votes per pair")
    p.add_argument("--client", choices=["raw", "httpx"], default="raw", help="HTTP client")
    p.add_argument("--keep-db", action="store_true", help="keep the database afterwards")
    p.add_argument(
        "--servers", type=int, default=1, help="server processes on one database (PostgreSQL)"
    )
    args = p.parse_args()
    if args.servers < 1:
        p.error("--servers must be at least 1")
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    # Enough pairs that nobody runs out: room for 30 votes/s per annotator on average, and
    # for 300 votes/s by one annotator (nobody gets a pair twice).
    duration = args.seconds + args.warmup + 5
    pairs = args.pairs or int(duration * max(args.annotators * 30 / args.k, 300))

    tmp = Path(tempfile.mkdtemp(prefix="outpool-load-"))
    schema = None
    if args.db == "sqlite":
        db_url, db_kind = f"sqlite:///{tmp / 'votes.db'}", "sqlite"
    elif args.db.startswith(("postgresql://", "postgres://")):
        schema, db_url = postgres_schema(args.db)
        db_kind = "postgresql"
    else:
        p.error("--db is 'sqlite' or a postgresql:// URL")
    log(f"database: {db_kind} ({tmp if schema is None else 'schema ' + schema})")
    servers = [Server(db_url, free_port(), tmp / f"server{j}.log") for j in range(args.servers)]
    server = servers[0]  # the one killed under load, then restarted to count the votes
    try:
        admin = make_admin(db_url)
        for s in servers:
            s.start(admin)
        log(f"{len(servers)} server(s) up; creating a batch of {pairs} pairs ...")
        made = admin_call(
            server.port,
            admin,
            "POST",
            "/api/admin/batches",
            batch_request(rng, pairs, args.images, args.k, args.annotators),
        )
        tokens = [link["link"].rsplit("/", 1)[1] for link in made["links"]]
        log(f"{len(tokens)} annotators start voting ...")
        load, w0, w1 = asyncio.run(run_load(servers, tokens, args.warmup, args.seconds, args))
        for s in servers[1:]:
            s.stop()
        log("restarting the killed server on the same database ...")
        server.start(admin)
        stored = admin_call(server.port, admin, "GET", f"/api/admin/batches/{BATCH}/votes")
        progress = admin_call(server.port, admin, "GET", f"/api/admin/batches/{BATCH}")
        server.stop()
    except BaseException:
        for s in servers:
            s.stop()
            if s.log_path.exists():
                log(f"log of the server on port {s.port}:\n{s.log_tail()}")
        raise
    finally:
        if schema is not None and not args.keep_db:
            drop_schema(args.db, schema)
        if not args.keep_db:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")

    result = summarise(load, stored["votes"], progress, w0, w1, args, pairs, db_kind)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    emit(result, args.out)
    bad = ("votes_lost", "duplicates", "ack_vote_id_mismatch", "pairs_over_k")
    if any(result[key] for key in bad) or result["retries"]["bad"]:
        sys.exit(1)


def summarise(
    load: Load,
    votes: list[dict[str, Any]],
    progress: dict[str, Any],
    w0: float,
    w1: float,
    args: Any,
    pairs: int,
    db_kind: str,
) -> dict[str, Any]:
    by_sid = Counter(v["submission_id"] for v in votes)
    by_task = Counter((v["pair_id"], v["annotator"]) for v in votes)
    per_pair = Counter(v["pair_id"] for v in votes if not v["is_check"])
    vote_id = {v["submission_id"]: v["vote_id"] for v in votes}
    found = sum(1 for sid in load.acked if sid in by_sid)
    mismatched = sum(1 for sid, vid in load.acked.items() if sid in vote_id and vote_id[sid] != vid)
    duplicates = sum(1 for n in by_sid.values() if n > 1) + sum(
        1 for n in by_task.values() if n > 1
    )
    window = w1 - w0
    in_window = sum(1 for t in load.acked_at if w0 <= t <= w1)
    lat_ms = np.array([s for t, s in load.latency if w0 <= t <= w1]) * 1000
    errors = Counter(kind for kind, _ in load.errors)
    if load.errors:
        log(f"{len(load.errors)} errors before the kill, e.g. {load.errors[:3]}")
    if load.retries_bad:
        log(f"retries that did not come back as duplicates: {load.retries_bad[:3]}")
    if load.ran_out:
        log(f"WARNING: {load.ran_out} annotators ran out of pairs; use a bigger --pairs")
    pct = (
        {q: round(float(np.percentile(lat_ms, int(q[1:]))), 2) for q in ("p50", "p90", "p99")}
        if lat_ms.size
        else {"p50": None, "p90": None, "p99": None}
    )
    latency = {**pct, "max": round(float(lat_ms.max()), 2) if lat_ms.size else None}
    votes_per_s = round(in_window / window, 1)
    floor, p99_ms = TARGETS[db_kind]
    lost = len(load.acked) - found
    over_k = sum(1 for n in per_pair.values() if n > args.k)
    return {
        "benchmark": "annotation_load",
        "machine": machine(),
        "db": db_kind,
        "client": args.client,
        "servers": args.servers,
        "annotators": args.annotators,
        "offered_votes_per_s": round(args.annotators * args.rate, 1) if args.rate else None,
        "seconds": args.seconds,
        "warmup_s": args.warmup,
        "pairs": pairs,
        "k": args.k,
        "votes_acknowledged": len(load.acked),
        "votes_found_after_restart": found,
        "votes_stored_total": len(votes),
        "votes_lost": lost,
        "duplicates": duplicates,
        "ack_vote_id_mismatch": mismatched,
        "pairs_over_k": over_k,
        "retries": {
            "sent": load.retries,
            "duplicate_ok": load.retries_ok,
            "bad": len(load.retries_bad),
        },
        "votes_per_s": votes_per_s,
        "latency_ms": latency,
        "vote_posts_in_window": int(lat_ms.size),
        # CPU per acknowledged vote in the window: less noisy than votes/s on a shared machine
        "server_cpu_ms_per_vote": round(1000 * load.server_cpu_s / max(in_window, 1), 3),
        "client_cpu_ms_per_vote": round(1000 * load.client_cpu_s / max(in_window, 1), 3),
        **({"postgresql_backends": load.backends} if db_kind == "postgresql" else {}),
        "errors": len(load.errors),
        "errors_by_kind": dict(errors),
        "errors_at_kill": load.errors_at_kill,
        "annotators_ran_out": load.ran_out,
        "batch_after_restart": {
            k: progress[k] for k in ("votes", "check_votes", "done", "rejected")
        },
        "targets_met": {
            f"votes_per_s_ge_{floor}": votes_per_s >= floor,
            f"p99_lt_{p99_ms}ms": pct["p99"] is not None and pct["p99"] < p99_ms,
            "zero_lost": lost == 0,
            "zero_duplicates": duplicates == 0,
        },
        "seed": args.seed,
    }


if __name__ == "__main__":
    main()
