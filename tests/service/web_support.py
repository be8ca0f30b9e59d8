"""Helpers shared by the web service tests: a live uvicorn server over a store in a temporary
folder, plain HTTP calls, and batches made through the admin API.

Test modules import these (``from .web_support import ...``) and wrap ``running_server`` in a
fixture of their own.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from outpool.service.server import serving
from outpool.service.store import AnnotationStore
from outpool.service.web import ServiceSettings, create_app

ATTRIBUTE = "smile"
DEFINITION = "how widely the mouth smiles"


@dataclass
class LiveServer:
    """A running service: ``url`` without a trailing slash, its ``store`` (the test may read
    it directly), an admin token and the database's path."""

    url: str
    store: AnnotationStore
    admin_token: str
    db_path: Path

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").split(":")
        return host, int(port)

    def call(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        """(status, decoded JSON body) of one request; ``token`` defaults to the admin's."""
        return call(self.url, method, path, self.admin_token if token is None else token, body)


@contextmanager
def running_server(folder: Path, settings: ServiceSettings | None = None) -> Iterator[LiveServer]:
    """The real app under uvicorn in a background thread, on a free loopback port, over a new
    SQLite store ``folder/annotations.db`` with one admin."""
    db_path = folder / "annotations.db"
    store = AnnotationStore.open(str(db_path))
    _, admin = store.create_annotator("admin", role="admin")
    try:
        with serving(create_app(store, settings)) as url:
            yield LiveServer(url, store, admin, db_path)
    finally:
        store.close()


def call(base: str, method: str, path: str, token: str | None, body: Any = None) -> tuple[int, Any]:
    """(status, decoded JSON body or None) of one HTTP request; never raises on 4xx/5xx."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            status, raw = res.status, res.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def raw_request(
    live: LiveServer, method: str, target: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """One request with ``target`` sent exactly as given (no URL normalisation)."""
    conn = http.client.HTTPConnection(*live.host_port, timeout=30)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for key, value in headers.items():
            conn.putheader(key, value)
        conn.endheaders(body or None)
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


# -- images and batches --------------------------------------------------------------------


def drawn_image(seed: int) -> np.ndarray:
    """A 64x64 RGB image: a random background with a filled circle, different per seed."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    draw = ImageDraw.Draw(img)
    x, y = (int(v) for v in rng.integers(8, 40, 2))
    color = tuple(int(v) for v in rng.integers(0, 256, 3))
    draw.ellipse((x, y, x + 20, y + 20), fill=color)
    return np.asarray(img, dtype=np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def png_b64(image: np.ndarray) -> str:
    return base64.b64encode(png_bytes(image)).decode()


def batch_body(
    name: str,
    n_pairs: int = 4,
    *,
    k: int = 2,
    new_annotators: int = 0,
    check_answers: tuple[int, ...] = (),
    seed: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    """A new-batch request: ``n_pairs`` ordinary pairs ``{name}-p{i}`` comparing images
    ``{name}-i{i}`` (a) and ``{name}-i{i + 1}`` (b), then one check pair per entry of
    ``check_answers`` (``{name}-c{j}``, over images ``{name}-x{j}`` / ``{name}-y{j}``)."""
    images = {f"{name}-i{i}": drawn_image(seed * 1000 + i) for i in range(n_pairs + 1)}
    pairs: list[dict[str, Any]] = [
        {"id": f"{name}-p{i}", "attribute": ATTRIBUTE, "a": f"{name}-i{i}", "b": f"{name}-i{i + 1}"}
        for i in range(n_pairs)
    ]
    for j, answer in enumerate(check_answers):
        a, b = f"{name}-x{j}", f"{name}-y{j}"
        images[a] = drawn_image(seed * 1000 + 500 + 2 * j)
        images[b] = drawn_image(seed * 1000 + 501 + 2 * j)
        pairs.append(
            {"id": f"{name}-c{j}", "attribute": ATTRIBUTE, "a": a, "b": b, "check_answer": answer}
        )
    return {
        "name": name,
        "pairs": pairs,
        "images": {key: png_b64(img) for key, img in images.items()},
        "definitions": {ATTRIBUTE: DEFINITION},
        "k": k,
        "new_annotators": new_annotators,
        **extra,
    }


def create_batch(live: LiveServer, body: dict[str, Any]) -> dict[str, Any]:
    """Create a batch through the admin API; returns the reply (asserting it succeeded)."""
    status, reply = live.call("POST", "/api/admin/batches", body=body)
    assert status == 200, reply
    return reply


def token_of(link: str) -> str:
    """The annotator token at the end of an ``/a/<token>`` link."""
    assert "/a/" in link, link
    return link.rsplit("/a/", 1)[1]


def new_annotator(live: LiveServer, name: str) -> str:
    status, reply = live.call("POST", "/api/admin/annotators", body={"name": name})
    assert status == 200, reply
    return str(reply["token"])


def canonical(choice: str, task: dict[str, Any], pair_a: str, pair_b: str) -> int:
    """The canonical answer (+1 a more, -1 b more, 0 equal, 2 can't tell) of ``choice``
    made on ``task`` as shown (left/right image ids), worked out from the images alone."""
    if choice == "equal":
        return 0
    if choice == "illegible":
        return 2
    assert {task["left"], task["right"]} == {pair_a, pair_b}, task
    more_is_left = choice == "left_more"
    more = task["left"] if more_is_left else task["right"]
    return 1 if more == pair_a else -1


def vote_body(
    task: dict[str, Any],
    choice: str,
    confidence: str = "very",
    rationale: str = "",
    submission_id: str | None = None,
) -> dict[str, Any]:
    return {
        "submission_id": submission_id or secrets.token_hex(12),
        "batch": task["batch"],
        "pair_id": task["pair_id"],
        "choice": choice,
        "confidence": confidence,
        "rationale": rationale,
        "elapsed_ms": 1200,
    }


def answer_all(
    base: str, token: str, decide: Any, *, limit: int = 10_000
) -> list[tuple[dict[str, Any], str]]:
    """Answer every task this annotator is given: ``decide(task) -> (choice, confidence)``.
    Returns the (task, choice) pairs answered, in order."""
    done: list[tuple[dict[str, Any], str]] = []
    status, reply = call(base, "GET", "/api/task", token)
    assert status == 200, reply
    task = reply["task"]
    while task is not None and len(done) < limit:
        choice, confidence = decide(task)
        status, reply = call(base, "POST", "/api/votes", token, vote_body(task, choice, confidence))
        assert status == 200, reply
        done.append((task, choice))
        task = reply["task"]
    return done
