"""Running the annotation service: open the store, make sure an admin exists, serve with uvicorn."""

from __future__ import annotations

import sys
from typing import TextIO

from outpool.annotate.store import AnnotationStore
from outpool.annotate.web import ServiceSettings, create_app


def ensure_admin(store: AnnotationStore, out: TextIO = sys.stderr) -> str | None:
    """Create the first admin when the store has none and print its token, which is shown
    only this once (the store keeps a hash). Returns the token, or None if an admin exists."""
    if any(a.role == "admin" for a in store.annotators()):
        return None
    _, token = store.create_annotator("admin", role="admin")
    print(
        f"outpool: created the first admin; its token (shown only now) is:\n  {token}",
        file=out,
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
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        store.close()
