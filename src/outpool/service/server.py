"""Running the annotation service: open the store, make sure an admin exists, serve with uvicorn."""

from __future__ import annotations

import gc
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from outpool.service.people import ADMIN_TOKEN_ENV
from outpool.service.store import AnnotationStore
from outpool.service.web import ServiceSettings, create_app


def ensure_admin(store: AnnotationStore, out: TextIO | None = None) -> str | None:
    """Create the first admin when the store has none and print its token (to ``out``, by
    default stderr), which is shown only this once (the store keeps a hash). Returns the
    token, or None if an admin exists."""
    if any(a.role == "admin" for a in store.annotators()):
        return None
    _, token = store.create_annotator("admin", role="admin")
    print(
        f"outpool: created the first admin; its token (shown only now) is:\n  {token}\n"
        f"admin commands read it from ${ADMIN_TOKEN_ENV}; the admin page is /admin",
        file=out or sys.stderr,
        flush=True,
    )
    return token


def serve(
    db_url: str, *, host: str = "127.0.0.1", port: int = 8765, public_url: str | None = None
) -> None:
    """Serve until interrupted. SQLite suits one host; give a ``postgresql://`` URL to run
    several servers (on several hosts) over one database."""
    import uvicorn

    store = AnnotationStore.open(db_url)
    try:
        ensure_admin(store)
        app = create_app(store, ServiceSettings(public_url=public_url))
        print(f"outpool: serving annotations on http://{host}:{port} ({store.db.url})", flush=True)
        # Everything imported so far (the command line brings in torch: ~200,000 objects)
        # lives as long as the process. Frozen, it is left out of garbage collection, whose
        # full passes otherwise stalled every request for ~100 ms now and then under load.
        gc.collect()
        gc.freeze()
        app = _with_threads(app, SERVER_THREADS)
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        store.close()


# Threads of the pool that runs the service's (synchronous) routes; anyio's default is 40.
# Every write waits for the one write lock (and on PostgreSQL for one of the store's 8
# connections), so more threads do not add throughput: they only fight over the GIL, which
# stretches the write lock's hold and gave a long tail of slow requests under load.
SERVER_THREADS = 8


def _with_threads(app: Any, threads: int) -> Any:
    """``app`` with a thread pool of ``threads``, set in the server's event loop (the pool
    belongs to the loop) on its first event."""
    import anyio.to_thread

    ready = False

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        nonlocal ready
        if not ready:
            anyio.to_thread.current_default_thread_limiter().total_tokens = threads
            ready = True
        await app(scope, receive, send)

    return wrapped


@contextmanager
def serving(app: Any, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread; yields its base URL (``port=0``: a free
    port). For tests, notebooks and figures; ``serve`` is the command-line server."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the annotation server did not start")
            time.sleep(0.02)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
