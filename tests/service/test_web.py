"""The annotation web service over HTTP: who may call what, what it refuses (and that a refusal
stores nothing and leaks nothing), and the task -> vote -> labels flow an admin and annotators
go through. Most tests use FastAPI's in-process client; the ones about raw request targets and
chunked bodies talk to a real uvicorn server over a socket."""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from outpool.service.store import AnnotationStore
from outpool.service.web import ServiceSettings, create_app

from .web_support import (
    LiveServer,
    batch_body,
    canonical,
    create_batch,
    raw_request,
    running_server,
    token_of,
    vote_body,
)

with warnings.catch_warnings():  # starlette warns that its TestClient will move to httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

LIMIT = 64 * 1024


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(res: Any, status: int, *needles: str) -> str:
    """A JSON ``{"error": "..."}`` answer with this status, naming ``needles``; no traceback."""
    assert res.status_code == status, res.text
    assert "Traceback" not in res.text and 'File "' not in res.text
    message = res.json()["error"]
    assert isinstance(message, str) and message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


@dataclass
class Service:
    client: TestClient
    store: AnnotationStore
    admin: str
    workers: list[str]  # annotator tokens made with batch b1
    body: dict[str, Any]  # b1 as it was created

    def pair(self, pair_id: str) -> tuple[str, str]:
        """(a, b) image ids of one of b1's pairs."""
        p = next(p for p in self.body["pairs"] if p["id"] == pair_id)
        return p["a"], p["b"]

    def votes(self, batch: str = "b1") -> int:
        return len(self.store.vote_records(batch))

    def task(self, token: str) -> dict[str, Any]:
        res = self.client.get("/api/task", headers=bearer(token))
        assert res.status_code == 200, res.text
        return res.json()["task"]


def make_service(folder: Path, settings: ServiceSettings | None = None) -> Service:
    store = AnnotationStore.open(str(folder / "annotations.db"))
    _, admin = store.create_annotator("admin", role="admin")
    client = TestClient(create_app(store, settings), raise_server_exceptions=False)
    body = batch_body("b1", 4, k=2, new_annotators=3)
    res = client.post("/api/admin/batches", json=body, headers=bearer(admin))
    assert res.status_code == 200, res.text
    workers = [token_of(entry["link"]) for entry in res.json()["links"]]
    return Service(client, store, admin, workers, body)


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    service = make_service(tmp_path)
    yield service
    service.client.close()
    service.store.close()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service for the tests that must change nothing (each checks that it did not)."""
    service = make_service(tmp_path_factory.mktemp("shared"))
    yield service
    service.client.close()
    service.store.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    """A real server with batches b1 and b2 and one annotator (token) who holds a b1 task.
    Shared by the module's tests: none of them may change anything."""
    with running_server(tmp_path_factory.mktemp("live")) as server:
        reply = create_batch(server, batch_body("b1", 3, new_annotators=1))
        create_batch(server, batch_body("b2", 2, seed=1))
        worker = token_of(reply["links"][0]["link"])
        status, task = server.call("GET", "/api/task", worker)
        assert status == 200 and task["task"]["batch"] == "b1"
        yield server, worker


# -- who may call what --------------------------------------------------------------------

ROUTES = [
    ("GET", "/"),
    ("GET", "/index.html"),
    ("GET", "/no/such/route"),
    ("POST", "/no/such/route"),
    ("DELETE", "/api/admin/batches/b1"),
    ("HEAD", "/"),
    ("OPTIONS", "/api/votes"),
    ("GET", "/api/me"),
    ("GET", "/api/task"),
    ("POST", "/api/votes"),
    ("GET", "/api/images/b1/b1-i0.png"),
    ("GET", "/api/admin/annotators"),
    ("POST", "/api/admin/annotators"),
    ("GET", "/api/admin/batches"),
    ("POST", "/api/admin/batches"),
    ("GET", "/api/admin/batches/b1"),
    ("POST", "/api/admin/batches/b1/close"),
    ("GET", "/api/admin/batches/b1/votes"),
    ("GET", "/api/admin/batches/b1/pairs"),
    ("GET", "/api/admin/batches/b1/labels?method=dawid-skene"),
    ("GET", "/api/admin/batches/b1/report"),
    ("POST", "/admin"),
]
ADMIN_ROUTES = [
    ("GET", "/api/admin/annotators", None),
    ("POST", "/api/admin/annotators", {"name": "mallory", "role": "admin"}),
    ("GET", "/api/admin/batches", None),
    ("POST", "/api/admin/batches", "new-batch"),
    ("GET", "/api/admin/batches/b1", None),
    ("POST", "/api/admin/batches/b1/close", None),
    ("GET", "/api/admin/batches/b1/votes", None),
    ("GET", "/api/admin/batches/b1/pairs", None),
    ("GET", "/api/admin/batches/b1/labels", None),
    ("GET", "/api/admin/batches/b1/report", None),
]
BAD_CREDENTIALS = {
    "none": ({}, ""),
    "wrong-bearer": ({"Authorization": "Bearer not-a-token"}, ""),
    "empty-bearer": ({"Authorization": "Bearer "}, ""),
    "wrong-query": ({}, "token=not-a-token"),
}


@pytest.mark.slow
@pytest.mark.parametrize("cred", list(BAD_CREDENTIALS))
@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_needs_a_valid_token(
    shared: Service, method: str, path: str, cred: str
) -> None:
    headers, query = BAD_CREDENTIALS[cred]
    if query:
        path += ("&" if "?" in path else "?") + query
    # POST bodies are malformed on purpose: the token is checked before the body is read
    res = shared.client.request(
        method, path, headers={**headers, "Content-Type": "application/json"}, content=b"{oops"
    )
    assert res.status_code == 401, res.text
    assert res.headers["www-authenticate"] == "Bearer"
    if method != "HEAD":
        assert_error(res, 401, "token")
    # nothing happened: b1 is still open, nobody new, nothing voted
    assert shared.store.progress("b1").state == "open"
    assert len(shared.store.annotators()) == 4
    assert shared.votes() == 0


def test_a_real_token_in_another_scheme_is_not_accepted(shared: Service) -> None:
    res = shared.client.get(
        "/api/admin/batches", headers={"Authorization": f"Basic {shared.admin}"}
    )
    assert_error(res, 401)


def test_every_answer_carries_the_security_headers(shared: Service) -> None:
    answers = [
        shared.client.get("/api/admin/batches"),  # 401 before the app
        shared.client.get("/api/admin/batches", headers=bearer(shared.admin)),  # JSON
        shared.client.get("/nowhere", headers=bearer(shared.admin)),  # 404
        shared.client.get(f"/a/{shared.workers[0]}"),  # the page
        shared.client.get("/a/not-a-token"),  # the refusal page
    ]
    for res in answers:
        policy = res.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "script-src 'sha256-" in policy and "unsafe-inline" not in policy
        assert res.headers["x-frame-options"] == "DENY"
        assert res.headers["x-content-type-options"] == "nosniff"
        assert res.headers["referrer-policy"] == "no-referrer"


def test_an_admin_makes_a_token_that_expires(svc: Service) -> None:
    admin = bearer(svc.admin)
    res = svc.client.post(
        "/api/admin/annotators", headers=admin, json={"name": "week", "expires_in_s": 604800}
    )
    assert res.status_code == 200, res.text
    made = res.json()
    assert made["expires_at"] is not None and made["link"].endswith(made["token"])
    assert svc.client.get("/api/me", headers=bearer(made["token"])).status_code == 200
    for bad in (0, -5, "soon", True, 1e12):
        res = svc.client.post(
            "/api/admin/annotators", headers=admin, json={"name": "x", "expires_in_s": bad}
        )
        assert_error(res, 422)


def test_an_admin_revokes_an_annotator_whose_token_then_fails(svc: Service) -> None:
    admin = bearer(svc.admin)
    worker = svc.workers[0]
    who = svc.client.get("/api/me", headers=bearer(worker)).json()["annotator"]
    res = svc.client.post(f"/api/admin/annotators/{who}/revoke", headers=admin)
    assert res.status_code == 200 and res.json()["revoked"] is True
    assert_error(svc.client.get("/api/task", headers=bearer(worker)), 401)
    assert svc.client.get(f"/a/{worker}").status_code == 401  # the link too
    listed = svc.client.get("/api/admin/annotators", headers=admin).json()["annotators"]
    assert [a["revoked"] for a in listed if a["id"] == who] == [True]
    assert_error(svc.client.post("/api/admin/annotators/w9999/revoke", headers=admin), 404)
    me = svc.store.authenticate(svc.admin)
    assert me is not None
    res = svc.client.post(f"/api/admin/annotators/{me.id}/revoke", headers=admin)
    assert_error(res, 409, "own token")
    # the audit trail: who did what to what (the batch and its links came first)
    svc.client.post("/api/admin/batches/b1/close", headers=admin)
    svc.client.get("/api/admin/batches/b1/votes", headers=admin)
    trail = svc.client.get("/api/admin/audit", headers=admin).json()["audit"]
    done = [(e["actor"], e["action"], e["target"]) for e in trail]
    assert done[0] == (me.id, "create batch", "b1")
    assert done[-3:] == [
        (me.id, "revoke", who),
        (me.id, "close batch", "b1"),
        (me.id, "read votes", "b1"),
    ]
    assert all(e["at"] > 0 for e in trail)


def test_an_admin_token_in_the_url_is_refused(shared: Service) -> None:
    # a token in a URL is written into logs and browser history: admins send the header
    res = shared.client.get(f"/api/admin/batches?token={shared.admin}")
    assert_error(res, 401, "only in the header")
    ok = shared.client.get("/api/admin/batches", headers=bearer(shared.admin))
    assert ok.status_code == 200


@pytest.mark.parametrize("link", ["/a/bad", "/a/", "/a/%2e%2e", "/a/ADMIN", "/a/WORKER_UPPER"])
def test_a_bad_annotator_link_is_401_without_the_page(shared: Service, link: str) -> None:
    link = link.replace("ADMIN", shared.admin).replace("WORKER_UPPER", shared.workers[0].upper())
    res = shared.client.get(link)
    assert res.status_code == 401
    assert res.headers["www-authenticate"] == "Bearer"
    assert "not valid" in res.text or "valid token" in res.text  # "/a/" is no link at all
    assert "<script" not in res.text and "Compare two images" not in res.text
    assert "Traceback" not in res.text


def test_an_annotator_link_opens_the_page(svc: Service) -> None:
    res = svc.client.get(f"/a/{svc.workers[0]}")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/html")
    assert res.headers["cache-control"] == "no-store"
    assert "<title>Compare two images</title>" in res.text
    assert svc.workers[0] not in res.text  # the page reads its token from the URL


@pytest.mark.parametrize(
    ("method", "path", "body"), ADMIN_ROUTES, ids=[f"{m} {p}" for m, p, _ in ADMIN_ROUTES]
)
def test_an_annotator_token_on_admin_routes_is_403(
    shared: Service, method: str, path: str, body: Any
) -> None:
    if body == "new-batch":
        body = batch_body("sneaky", 1)
    res = shared.client.request(method, path, json=body, headers=bearer(shared.workers[0]))
    assert_error(res, 403, "admin")
    assert [p.batch for p in shared.store.batches()] == ["b1"]
    assert shared.store.progress("b1").state == "open"
    assert [a.role for a in shared.store.annotators()].count("admin") == 1


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/me"), ("GET", "/api/task"), ("POST", "/api/votes")]
)
def test_an_admin_token_on_annotator_routes_is_403(shared: Service, method: str, path: str) -> None:
    body = vote_body({"batch": "b1", "pair_id": "b1-p0"}, "equal") if method == "POST" else None
    res = shared.client.request(method, path, json=body, headers=bearer(shared.admin))
    assert_error(res, 403, "annotators")
    assert shared.votes() == 0


def test_an_unknown_path_with_a_valid_token_is_404(shared: Service) -> None:
    for token in (shared.admin, shared.workers[0]):
        assert_error(
            shared.client.get("/no/such/page", headers=bearer(token)), 404, "no such route"
        )


# -- images -------------------------------------------------------------------------------


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def sent_image(body: dict[str, Any], key: str) -> np.ndarray:
    return decode(base64.b64decode(body["images"][key]))


def test_an_annotator_sees_only_the_images_of_their_own_pairs(svc: Service) -> None:
    task = svc.task(svc.workers[0])
    for side in ("left", "right"):
        res = svc.client.get(task[f"{side}_url"], headers=bearer(svc.workers[0]))
        assert res.status_code == 200
        assert res.headers["content-type"] == "image/png"
        np.testing.assert_array_equal(decode(res.content), sent_image(svc.body, task[side]))
    # the page's <img> tags send the token in the query instead
    res = svc.client.get(f"{task['left_url']}?token={svc.workers[0]}")
    assert res.status_code == 200 and res.content.startswith(b"\x89PNG")
    shown = {task["left"], task["right"]}
    others = sorted(set(svc.body["images"]) - shown)
    assert others
    for key in others:  # images of pairs not assigned to this annotator
        res = svc.client.get(f"/api/images/b1/{key}.png", headers=bearer(svc.workers[0]))
        assert_error(res, 404, "no such image")
    # an annotator with no task yet sees none of them
    res = svc.client.get(task["left_url"], headers=bearer(svc.workers[1]))
    assert_error(res, 404)
    # an admin sees any image of the batch
    for key in svc.body["images"]:
        res = svc.client.get(f"/api/images/b1/{key}.png", headers=bearer(svc.admin))
        assert res.status_code == 200
        np.testing.assert_array_equal(decode(res.content), sent_image(svc.body, key))


def test_images_of_another_batch_are_not_found(svc: Service) -> None:
    b2 = batch_body("b2", 1, seed=7)
    assert svc.client.post("/api/admin/batches", json=b2, headers=bearer(svc.admin)).is_success
    task = svc.task(svc.workers[0])
    for token in (svc.workers[0], svc.admin):
        # an image of b2 asked for under b1, and b1's shown image asked for under b2
        assert_error(svc.client.get("/api/images/b1/b2-i0.png", headers=bearer(token)), 404)
        res = svc.client.get(f"/api/images/b2/{task['left']}.png", headers=bearer(token))
        assert_error(res, 404)
        assert_error(svc.client.get("/api/images/nope/b1-i0.png", headers=bearer(token)), 404)
    # b2's own images: the annotator has no b2 pair (b1 comes first), so none of them either
    res = svc.client.get("/api/images/b2/b2-i0.png", headers=bearer(svc.workers[0]))
    assert_error(res, 404)


SECRET = b"TOP-SECRET-FILE-CONTENT"
TRAVERSALS = [
    "/api/images/b1/../../../../../../etc/passwd",
    "/api/images/b1/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd.png",
    "/api/images/b1/%2e%2e%2f%2e%2e%2fsecret.png",
    "/api/images/b1/%2E%2E%2F%2E%2E%2Fannotations.db",
    "/api/images/b1/%2e%2e.png",
    "/api/images/b1/..png",
    "/api/images/%2e%2e/secret.png",
    "/api/images/..%2f..%2f/secret.png",
    "/api/images/b1/%2fetc%2fpasswd.png",
    "/api/images/b1//etc/passwd.png",
    "/api/images/b1/ABS.png",
    "/api/images/b1/..%5c..%5csecret.png",
    "/api/images/b1/b1-i0.png/../../../../secret.png",
    "/api/images/b1/annotations.db.png",
    "/api/images/b1/secret.png",
    "/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/a/../../etc/passwd",
]


@pytest.mark.parametrize("who", ["annotator", "admin"])
@pytest.mark.parametrize("target", TRAVERSALS)
def test_path_traversal_on_image_routes_is_404_and_leaks_nothing(
    live: tuple[LiveServer, str], who: str, target: str
) -> None:
    server, worker = live
    secret = server.db_path.parent / "secret.png"  # next to the database
    secret.write_bytes(SECRET)
    target = target.replace("ABS", str(secret.with_suffix("")).replace("/", "%2f"))
    token = worker if who == "annotator" else server.admin_token
    for headers, suffix in (({"Authorization": f"Bearer {token}"}, ""), ({}, f"?token={token}")):
        status, _, body = raw_request(server, "GET", target + suffix, headers)
        refused = who == "admin" and bool(suffix)  # an admin token only in the header
        assert status == (401 if refused else 404), (target, body)
        for leak in (SECRET, b"root:", b"SQLite format", b"\x89PNG", b"Traceback"):
            assert leak not in body
        if not target.startswith("/a/") or refused:
            assert "error" in json.loads(body)


# -- bodies over the limit ------------------------------------------------------------------


def big_vote(task: dict[str, Any], size: int = LIMIT + 1000) -> dict[str, Any]:
    body = vote_body(task, "equal")
    body["rationale"] = "x" * size  # over the limit long before the 1000-character check
    return body


def test_an_oversized_body_with_content_length_is_413(svc: Service) -> None:
    task = svc.task(svc.workers[0])
    res = svc.client.post("/api/votes", json=big_vote(task), headers=bearer(svc.workers[0]))
    assert_error(res, 413, str(LIMIT))
    assert svc.votes() == 0


def test_an_oversized_chunked_body_is_413(svc: Service) -> None:
    task = svc.task(svc.workers[0])
    data = json.dumps(big_vote(task)).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: the client streams it
        for i in range(0, len(data), 4096):
            yield data[i : i + 4096]

    headers = {**bearer(svc.workers[0]), "Content-Type": "application/json"}
    res = svc.client.post("/api/votes", content=chunks(), headers=headers)
    assert_error(res, 413, str(LIMIT))
    assert svc.votes() == 0


def test_an_oversized_chunked_body_over_a_real_socket_is_413(
    live: tuple[LiveServer, str],
) -> None:
    server, worker = live
    _, reply = server.call("GET", "/api/task", worker)
    data = json.dumps(big_vote(reply["task"], 2 * LIMIT)).encode()
    conn = http.client.HTTPConnection(*server.host_port, timeout=30)
    status: int | None = None
    body = b""
    try:
        # refused before the upload finished, sending fails; the answer may still be readable
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.request(
                "POST",
                "/api/votes",
                body=iter([data[i : i + 1000] for i in range(0, len(data), 1000)]),
                headers={"Authorization": f"Bearer {worker}", "Content-Type": "application/json"},
                encode_chunked=True,
            )
        try:
            res = conn.getresponse()
            status, body = res.status, res.read()
        except (ConnectionResetError, http.client.RemoteDisconnected):
            status = None  # the connection was cut: refused too, just less politely
    finally:
        conn.close()
    assert status in (413, None), body
    assert b"Traceback" not in body
    if status == 413:
        assert json.loads(body)["error"] == f"request body over {LIMIT} bytes"
    assert server.store.vote_records("b1") == []


def test_a_huge_declared_content_length_is_413_at_once(live: tuple[LiveServer, str]) -> None:
    server, worker = live
    headers = {
        "Authorization": f"Bearer {worker}",
        "Content-Type": "application/json",
        "Content-Length": str(10**9),
    }
    status, _, body = raw_request(server, "POST", "/api/votes", headers)
    assert status == 413 and b"request body over" in body
    assert server.store.vote_records("b1") == []


def test_only_an_admin_may_send_a_large_body_to_admin_routes(svc: Service) -> None:
    body = batch_body("big", 5)
    assert len(json.dumps(body)) > LIMIT  # images make a batch large
    for headers, status in (({}, 401), (bearer(svc.workers[0]), 413)):
        res = svc.client.post("/api/admin/batches", json=body, headers=headers)
        assert_error(res, status)
    assert [p.batch for p in svc.store.batches()] == ["b1"]
    res = svc.client.post("/api/admin/batches", json=body, headers=bearer(svc.admin))
    assert res.status_code == 200 and res.json()["created"] is True


# -- bad votes ----------------------------------------------------------------------------


def _bad_votes() -> list[tuple[str, Any, str]]:
    """(case, body transform or raw bytes, a word the error must contain)."""

    def change(**kv: Any) -> Any:
        return lambda body: {**body, **kv}

    def drop(key: str) -> Any:
        return lambda body: {k: v for k, v in body.items() if k != key}

    return [
        ("malformed-json", b'{"submission_id": "abcdefgh", ', "JSON"),
        ("not-json", b"choice=equal", "JSON"),
        ("a-list", b"[1, 2]", "body"),
        ("missing-choice", drop("choice"), "choice"),
        ("missing-submission-id", drop("submission_id"), "submission_id"),
        ("missing-pair-id", drop("pair_id"), "pair_id"),
        ("unknown-field", change(annotator="w0001"), "annotator"),
        ("bad-choice", change(choice="left_much_more"), "choice"),
        ("choice-wrong-type", change(choice=1), "choice"),
        ("bad-confidence", change(confidence="extremely"), "confidence"),
        ("confidence-as-number", change(confidence=0.5), "confidence"),
        ("rationale-too-long", change(rationale="y" * 1001), "rationale"),
        ("rationale-not-text", change(rationale=["a"]), "rationale"),
        ("negative-elapsed", change(elapsed_ms=-1), "elapsed_ms"),
        ("elapsed-too-long", change(elapsed_ms=10**12), "elapsed_ms"),
        ("elapsed-not-int", change(elapsed_ms="soon"), "elapsed_ms"),
        ("short-submission-id", change(submission_id="abc"), "submission_id"),
        ("slash-submission-id", change(submission_id="../../etc/passwd"), "submission_id"),
        ("long-submission-id", change(submission_id="a" * 65), "submission_id"),
        ("empty-batch", change(batch=""), "batch"),
    ]


BAD_VOTES = _bad_votes()


@pytest.mark.slow
@pytest.mark.parametrize(("case", "bad", "field"), BAD_VOTES, ids=[c for c, _, _ in BAD_VOTES])
def test_a_bad_vote_is_refused_naming_the_field_and_nothing_is_stored(
    svc: Service, case: str, bad: Any, field: str
) -> None:
    task = svc.task(svc.workers[0])
    headers = {**bearer(svc.workers[0]), "Content-Type": "application/json"}
    if isinstance(bad, bytes):
        res = svc.client.post("/api/votes", content=bad, headers=headers)
    else:
        res = svc.client.post("/api/votes", json=bad(vote_body(task, "equal")), headers=headers)
    assert 400 <= res.status_code < 500
    message = assert_error(res, 422, field)
    assert "y" * 50 not in message  # the rejected value is not echoed back
    assert svc.votes() == 0
    assert svc.task(svc.workers[0]) == task  # still waiting for an answer


LONE = "\udc00"  # what JSON's "\\udc00" escape decodes to: not UTF-8


def post_raw(svc: Service, path: str, body: Any, token: str) -> Any:
    """POST ``body`` as JSON with non-ASCII escaped, so a lone surrogate travels as JSON allows."""
    headers = {**bearer(token), "Content-Type": "application/json"}
    return svc.client.post(path, content=json.dumps(body).encode(), headers=headers)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b["definitions"].update(heel=f"taller{LONE}"), "definitions.heel"),
        (lambda b: b["definitions"].update({f"x{LONE}": "y"}), "the key of definitions.x\\udc00"),
        (lambda b: b["images"].update({f"img{LONE}": "AAAA"}), "the key of images.img\\udc00"),
        (lambda b: b["images"].update({"img": f"AA{LONE}"}), "images.img"),
        (lambda b: b["pairs"][0].update(attribute=f"h{LONE}"), "pairs.0.attribute"),
        (lambda b: b.update(meta={"notes": [{"by": f"me{LONE}"}]}), "meta.notes.0.by"),
        (lambda b: b.update(name=f"b{LONE}"), "name"),
    ],
    ids=["definition", "definition-key", "image-key", "image", "attribute", "meta", "name"],
)
def test_text_that_is_not_utf8_is_422_naming_where(svc: Service, change: Any, field: str) -> None:
    body = batch_body("bad4", 2)
    change(body)
    res = post_raw(svc, "/api/admin/batches", body, svc.admin)
    assert_error(res, 422, field, "not UTF-8")
    assert [p.batch for p in svc.store.batches()] == ["b1"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.update(k=True), "k"),
        (lambda b: b.update(k="5"), "k"),
        (lambda b: b.update(lease_s="600"), "lease_s"),
        (lambda b: b.update(new_annotators=False), "new_annotators"),
        (lambda b: b["pairs"][0].update(check_answer=True), "check_answer"),
    ],
    ids=["k-true", "k-text", "lease-text", "new-annotators-false", "check-true"],
)
def test_a_number_must_be_a_number(svc: Service, change: Any, field: str) -> None:
    body = batch_body("bad5", 2)
    change(body)
    assert_error(post_raw(svc, "/api/admin/batches", body, svc.admin), 422, field)
    assert [p.batch for p in svc.store.batches()] == ["b1"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"elapsed_ms": True}, "elapsed_ms"),
        ({"elapsed_ms": "1200"}, "elapsed_ms"),
        ({"rationale": f"why{LONE}"}, "rationale"),
    ],
    ids=["elapsed-true", "elapsed-text", "rationale-surrogate"],
)
def test_a_vote_with_a_wrong_type_stores_nothing(
    svc: Service, change: dict[str, Any], field: str
) -> None:
    task = svc.task(svc.workers[0])
    body = {**vote_body(task, "equal"), **change}
    assert_error(post_raw(svc, "/api/votes", body, svc.workers[0]), 422, field)
    assert svc.votes() == 0


def test_a_vote_on_a_pair_not_assigned_is_refused(svc: Service) -> None:
    task = svc.task(svc.workers[0])
    for pair_id, batch in (("b1-p3", "b1"), (task["pair_id"], "nope"), ("b1-p0' OR 1=1", "b1")):
        body = vote_body({"batch": batch, "pair_id": pair_id}, "equal")
        res = svc.client.post("/api/votes", json=body, headers=bearer(svc.workers[0]))
        assert_error(res, 404, "no such task")
    # the task of one annotator cannot be answered by another
    body = vote_body(task, "equal")
    assert_error(svc.client.post("/api/votes", json=body, headers=bearer(svc.workers[1])), 404)
    assert svc.votes() == 0


@pytest.mark.parametrize("route", ["vote", "task", "labels"])
def test_an_internal_error_is_a_generic_500(
    svc: Service, monkeypatch: pytest.MonkeyPatch, route: str
) -> None:
    task = svc.task(svc.workers[0])
    secret = "secret detail: /srv/outpool/private.db password=hunter2"

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(secret)

    if route == "labels":
        monkeypatch.setattr(svc.store, "votes", boom)
        res = svc.client.get("/api/admin/batches/b1/labels", headers=bearer(svc.admin))
    else:
        # every write fails (whichever store method a route uses); reads, and so tokens, work
        real = svc.store.db.transaction

        def transaction(*, write: bool) -> Any:
            return boom() if write else real(write=write)

        monkeypatch.setattr(svc.store.db, "transaction", transaction)
        if route == "vote":
            body = vote_body(task, "equal")
            res = svc.client.post("/api/votes", json=body, headers=bearer(svc.workers[0]))
        else:
            res = svc.client.get("/api/task", headers=bearer(svc.workers[0]))
    message = assert_error(res, 500, "internal error")
    assert "secret" not in res.text and "hunter2" not in res.text
    assert "RuntimeError" not in res.text and message == res.json()["error"]
    monkeypatch.undo()
    assert svc.votes() == 0


# -- the flow -------------------------------------------------------------------------------


def test_task_vote_next_task_and_progress(svc: Service) -> None:
    worker = svc.workers[0]
    res = svc.client.get("/api/me", headers=bearer(worker))
    me = res.json()["annotator"]
    assert res.json()["name"] == "b1 #1"
    assert res.json()["progress"] == {"done": 0, "left": 4}
    res = svc.client.get("/api/task", headers=bearer(worker))
    first = res.json()
    task = first["task"]
    assert first["progress"] == {"done": 0, "left": 3}  # one pair is now this annotator's
    assert task["batch"] == "b1" and task["attribute"] == "smile"
    assert task["definition"] == svc.body["definitions"]["smile"]
    assert task["left_url"] == f"/api/images/b1/{task['left']}.png"
    assert svc.task(worker) == task  # a reload shows the same pair
    seen = []
    answered: dict[str, tuple[str, str, str]] = {}
    shown: dict[str, dict[str, Any]] = {}
    choices = ["left_more", "left_less", "equal", "illegible"]
    confs = ["very", "somewhat", "not", "very"]
    for n in range(4):
        seen.append(task["pair_id"])
        body = vote_body(task, choices[n], confs[n], rationale=f"because {n} — ü")
        res = svc.client.post("/api/votes", json=body, headers=bearer(worker))
        assert res.status_code == 200, res.text
        reply = res.json()
        assert reply["ack"]["submission_id"] == body["submission_id"]
        assert reply["ack"]["duplicate"] is False
        assert reply["progress"]["done"] == n + 1
        answered[task["pair_id"]] = (choices[n], confs[n], body["rationale"])
        shown[task["pair_id"]] = task
        task = reply["task"]
        if n < 3:
            assert task is not None and task["pair_id"] not in seen
    assert task is None  # all four pairs answered
    assert sorted(seen) == [f"b1-p{i}" for i in range(4)]
    records = {r["pair_id"]: r for r in svc.store.vote_records("b1")}
    levels = {"very": 1.0, "somewhat": 0.5, "not": 0.0}
    for pair_id, record in records.items():
        choice, conf, rationale = answered[pair_id]
        assert record["answer"] == canonical(choice, shown[pair_id], *svc.pair(pair_id))
        assert record["choice"] == choice
        assert record["swapped"] == int(shown[pair_id]["left"] != svc.pair(pair_id)[0])
        assert record["confidence"] == levels[conf]
        assert record["rationale"] == rationale
        assert record["annotator"] == me
        assert record["elapsed_ms"] == 1200
    progress = svc.client.get("/api/admin/batches/b1", headers=bearer(svc.admin)).json()
    assert progress["votes"] == 4 and progress["annotators"] == 1 and progress["state"] == "open"


def test_a_retried_vote_is_acknowledged_once_and_counted_once(svc: Service) -> None:
    worker = svc.workers[0]
    task = svc.task(worker)
    body = vote_body(task, "left_more", "somewhat")
    first = svc.client.post("/api/votes", json=body, headers=bearer(worker)).json()
    for _ in range(3):  # the page retries with the same submission_id after a lost answer
        again = svc.client.post("/api/votes", json=body, headers=bearer(worker))
        assert again.status_code == 200
        assert again.json()["ack"] == {**first["ack"], "duplicate": True}
        assert again.json()["progress"]["done"] == 1
    assert svc.votes() == 1
    assert svc.store.progress("b1").votes == 1
    # the same submission_id for another pair is a conflict, not a silent duplicate
    other = svc.task(worker)
    body2 = {**vote_body(other, "equal"), "submission_id": body["submission_id"]}
    res = svc.client.post("/api/votes", json=body2, headers=bearer(worker))
    assert_error(res, 409, "submission_id")
    # answering the same pair again under a new submission_id is refused too
    body3 = vote_body(task, "equal")
    assert_error(svc.client.post("/api/votes", json=body3, headers=bearer(worker)), 409)
    assert svc.votes() == 1


def test_new_batch_links_open_the_page_and_use_the_public_url(tmp_path: Path) -> None:
    settings = ServiceSettings(public_url="https://annotate.example.org/")
    service = make_service(tmp_path, settings)
    try:
        res = service.client.post(
            "/api/admin/batches",
            json=batch_body("b3", 2, new_annotators=2),
            headers=bearer(service.admin),
        )
        links = [e["link"] for e in res.json()["links"]]
        assert len(links) == 2 and len(set(links)) == 2
        assert all(link.startswith("https://annotate.example.org/a/") for link in links)
        for link in links:
            page = service.client.get(link.removeprefix("https://annotate.example.org"))
            assert page.status_code == 200 and "Compare two images" in page.text
        res = service.client.post(
            "/api/admin/annotators", json={"name": "Ada"}, headers=bearer(service.admin)
        )
        assert res.json()["link"] == f"https://annotate.example.org/a/{res.json()['token']}"
        res = service.client.post(
            "/api/admin/annotators",
            json={"name": "Root", "role": "admin"},
            headers=bearer(service.admin),
        )
        assert res.json()["role"] == "admin" and "link" not in res.json()
    finally:
        service.client.close()
        service.store.close()


def test_batches_list_progress_pairs_and_close(svc: Service) -> None:
    admin = bearer(svc.admin)
    svc.client.post("/api/admin/batches", json=batch_body("b2", 2, seed=2), headers=admin)
    listed = svc.client.get("/api/admin/batches", headers=admin).json()["batches"]
    assert [b["batch"] for b in listed] == ["b1", "b2"]
    assert listed[0]["pairs"] == 4 and listed[0]["k"] == 2 and listed[0]["state"] == "open"
    pairs = svc.client.get("/api/admin/batches/b1/pairs", headers=admin).json()["pairs"]
    assert pairs == [f"b1-p{i}" for i in range(4)]
    assert_error(svc.client.get("/api/admin/batches/nope", headers=admin), 404, "nope")
    # a task is out when the batch is closed: its answer is refused, nothing new is handed out
    task = svc.task(svc.workers[0])
    closed = svc.client.post("/api/admin/batches/b1/close", headers=admin).json()
    assert closed["state"] == "closed" and closed["closed_at"] is not None
    again = svc.client.post("/api/admin/batches/b1/close", headers=admin).json()
    assert again["closed_at"] == closed["closed_at"]  # closing twice is harmless
    res = svc.client.post(
        "/api/votes", json=vote_body(task, "equal"), headers=bearer(svc.workers[0])
    )
    assert_error(res, 409, "closed")
    assert svc.task(svc.workers[0]) is None  # invited by b1's links: b2 is not theirs
    _, team = svc.store.create_annotator("team")
    nxt = svc.task(team)
    assert nxt is not None and nxt["batch"] == "b2"  # b2 is still open, for the team
    assert svc.votes() == 0


def answer_as(svc: Service, token: str, wanted: dict[str, int]) -> None:
    """Answer every task of this annotator so that its canonical answer is ``wanted[pair]``."""
    task = svc.task(token)
    while task is not None:
        want = wanted[task["pair_id"]]
        a, _ = svc.pair(task["pair_id"])
        if want == 0:
            choice = "equal"
        elif want == 2:
            choice = "illegible"
        else:
            choice = "left_more" if (task["left"] == a) == (want == 1) else "left_less"
        res = svc.client.post(
            "/api/votes", json=vote_body(task, choice, "very"), headers=bearer(token)
        )
        assert res.status_code == 200, res.text
        task = res.json()["task"]


def test_votes_and_labels_by_majority_and_dawid_skene(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    admin = bearer(service.admin)
    try:
        body = batch_body("lab", 4, k=3, new_annotators=3, seed=4)
        res = service.client.post("/api/admin/batches", json=body, headers=admin)
        service.body = body
        tokens = [token_of(e["link"]) for e in res.json()["links"]]
        plans = [  # canonical answers per annotator: p0 a more, p1 b more 2:1, p2 can't tell
            {"lab-p0": 1, "lab-p1": -1, "lab-p2": 2, "lab-p3": 0},
            {"lab-p0": 1, "lab-p1": -1, "lab-p2": 2, "lab-p3": 0},
            {"lab-p0": 1, "lab-p1": 0, "lab-p2": 2, "lab-p3": 1},
        ]
        # b1 comes first in the queue: close it so these three see only lab's pairs
        service.client.post("/api/admin/batches/b1/close", headers=admin)
        for token, plan in zip(tokens, plans, strict=True):
            answer_as(service, token, plan)
        votes = service.client.get("/api/admin/batches/lab/votes", headers=admin).json()["votes"]
        # p2 is rejected at its second "can't tell" (half of k): the third annotator never
        # sees it
        assert len(votes) == 11
        got = sorted((v["pair_id"], v["answer"]) for v in votes)
        want = sorted((p, plan[p]) for n, plan in enumerate(plans) for p in plan)
        want.remove(("lab-p2", 2))
        assert got == want
        assert service.client.get("/api/admin/batches/lab", headers=admin).json()["state"] == (
            "closed"  # every pair has its k votes
        )

        res = service.client.get("/api/admin/batches/lab/labels?method=majority", headers=admin)
        assert res.status_code == 200 and "NaN" not in res.text
        out = res.json()
        assert out["method"] == "majority"
        labels = {x["pair_id"]: x for x in out["labels"]}
        assert [x["pair_id"] for x in out["labels"]] == [f"lab-p{i}" for i in range(4)]
        assert (labels["lab-p0"]["label"], labels["lab-p0"]["status"]) == (1, "accepted")
        assert labels["lab-p0"]["agreement"] == 1.0
        assert (labels["lab-p1"]["label"], labels["lab-p1"]["status"]) == (-1, "accepted")
        assert labels["lab-p1"]["agreement"] == pytest.approx(2 / 3)
        assert labels["lab-p2"]["status"] == "rejected"
        assert (labels["lab-p3"]["label"], labels["lab-p3"]["status"]) == (0, "accepted")
        assert set(out["annotators"]) == {v["annotator"] for v in votes}
        assert len(out["annotators"]) == 3
        for stats in out["annotators"].values():
            assert stats["checks"] == [0, 0]
        assert sorted(s["n_votes"] for s in out["annotators"].values()) == [3, 4, 4]

        strict = service.client.get(
            "/api/admin/batches/lab/labels?method=majority&min_agreement=0.9", headers=admin
        ).json()
        assert {x["pair_id"]: x["status"] for x in strict["labels"]}["lab-p1"] == "pruned"

        res = service.client.get("/api/admin/batches/lab/labels?method=dawid-skene", headers=admin)
        assert res.status_code == 200 and "NaN" not in res.text
        ds = {x["pair_id"]: x for x in res.json()["labels"]}
        assert res.json()["method"] == "dawid-skene"
        assert (ds["lab-p0"]["label"], ds["lab-p0"]["status"]) == (1, "accepted")
        assert ds["lab-p2"]["status"] == "rejected"
        assert all(x["status"] in ("accepted", "rejected", "pruned") for x in ds.values())

        res = service.client.get("/api/admin/batches/lab/labels?method=mode", headers=admin)
        assert_error(res, 400, "mode", "majority")
        res = service.client.get("/api/admin/batches/lab/labels?min_agreement=lots", headers=admin)
        assert_error(res, 422, "min_agreement")
    finally:
        service.client.close()
        service.store.close()


@pytest.mark.slow
def test_check_pairs_show_in_the_labels_annotator_checks(svc: Service) -> None:
    body = batch_body("chk", 2, k=1, new_annotators=1, check_answers=(1,), seed=5)
    body["check_every"] = 1  # the check comes first
    res = svc.client.post("/api/admin/batches", json=body, headers=bearer(svc.admin))
    assert res.json()["batch"]["check_pairs"] == 1
    svc.client.post("/api/admin/batches/b1/close", headers=bearer(svc.admin))
    svc.body = body
    token = token_of(res.json()["links"][0]["link"])
    answer_as(svc, token, {"chk-p0": 1, "chk-p1": -1, "chk-c0": -1})  # the check answered wrong
    out = svc.client.get("/api/admin/batches/chk/labels", headers=bearer(svc.admin)).json()
    assert [x["pair_id"] for x in out["labels"]] == ["chk-p0", "chk-p1"]  # checks never labels
    (stats,) = out["annotators"].values()
    assert stats["checks"] == [1, 0]


def test_the_batch_report_names_agreement_annotators_and_disputed_pairs(svc: Service) -> None:
    # b1: 4 pairs, k = 2, three invited annotators; two of them answer every pair
    first, second, _ = svc.workers
    answer_as(svc, first, {"b1-p0": 1, "b1-p1": 1, "b1-p2": -1, "b1-p3": 1})
    answer_as(svc, second, {"b1-p0": 1, "b1-p1": -1, "b1-p2": -1, "b1-p3": 2})
    res = svc.client.get("/api/admin/batches/b1/report", headers=bearer(svc.admin))
    assert res.status_code == 200, res.text
    rep = res.json()
    assert rep["batch"]["votes"] == 8 and rep["batch"]["state"] == "closed"  # all pairs done
    agreement = rep["agreement"]
    assert agreement["measure"] == "Krippendorff's alpha (nominal)"
    assert agreement["pairs_with_two_votes"] == 4
    assert -1 <= agreement["value"] < 1  # two of four pairs split
    people = {p["name"]: p for p in rep["annotators"]}
    assert len(people) == 2 and all(p["votes"] == 4 for p in people.values())
    assert all(p["revoked"] is False for p in people.values())
    assert {p["agreement_with_majority"] for p in people.values()} <= {None, 1.0}
    disputed = {d["pair_id"]: d for d in rep["disputed"]}
    assert set(disputed) == {"b1-p1", "b1-p3"}
    assert disputed["b1-p3"]["counts"] == {"a more": 1, "can't tell": 1}
    png = svc.client.get(disputed["b1-p1"]["a_url"], headers=bearer(svc.admin))
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    # an annotator may not read it
    res = svc.client.get("/api/admin/batches/b1/report", headers=bearer(first))
    assert_error(res, 403)


def test_the_admin_page_holds_no_data_and_needs_the_token_for_everything(svc: Service) -> None:
    page = svc.client.get("/admin")
    assert page.status_code == 200 and "Admin token" in page.text
    assert "b1" not in page.text and svc.admin not in page.text
    assert page.headers["cache-control"] == "no-store"
    policy = page.headers["content-security-policy"]
    assert "unsafe-inline" not in policy and "img-src 'self' blob:" in policy
    assert svc.client.post("/admin").status_code == 401  # only the page itself is open
    assert svc.client.get("/admin/x").status_code == 401
    assert_error(svc.client.get("/api/admin/batches/b1/report"), 401)


# -- bad admin input ------------------------------------------------------------------------


def test_a_pair_naming_a_missing_image_is_400_naming_it(svc: Service) -> None:
    body = batch_body("bad1", 3)
    del body["images"]["bad1-i3"]
    res = svc.client.post("/api/admin/batches", json=body, headers=bearer(svc.admin))
    assert_error(res, 400, "bad1-i3")
    assert [p.batch for p in svc.store.batches()] == ["b1"]


@pytest.mark.parametrize(
    "data",
    [
        base64.b64encode(b"GIF89a\x01\x00 this is not an image").decode(),
        base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg'/>").decode(),
        "@@not base64@@",
        "",
        base64.b64encode(b"\x89PNG\r\n\x1a\n truncated").decode(),
    ],
    ids=["gif-ish", "svg", "not-base64", "empty", "truncated-png"],
)
def test_a_bad_image_is_400_naming_the_image_field(svc: Service, data: str) -> None:
    body = batch_body("bad2", 2)
    body["images"]["bad2-i1"] = data
    res = svc.client.post("/api/admin/batches", json=body, headers=bearer(svc.admin))
    assert_error(res, 400, "images.bad2-i1")
    assert [p.batch for p in svc.store.batches()] == ["b1"]


def test_a_duplicate_batch_name_is_409_unless_it_is_the_same_batch(svc: Service) -> None:
    admin = bearer(svc.admin)
    res = svc.client.post("/api/admin/batches", json=svc.body, headers=admin)
    assert res.status_code == 200  # asking for the same batch again finds it
    assert res.json()["created"] is False and res.json()["links"] == []
    different = batch_body("b1", 4, k=2, new_annotators=3, seed=9)
    assert_error(svc.client.post("/api/admin/batches", json=different, headers=admin), 409, "b1")
    assert len(svc.store.annotators()) == 4  # no links made for a refused batch


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b["pairs"][0].update(id="../p0"), "pairs.0.id"),
        (lambda b: b["pairs"][1].update(a="/etc/passwd"), "pairs.1.a"),
        (lambda b: b.update(name="a b"), "name"),
        (lambda b: b.update(k=0), "k"),
        (lambda b: b.update(pairs=[]), "pairs"),
        (lambda b: b.update(owner="me"), "owner"),
        (lambda b: b["pairs"][0].update(check_answer=5), "check_answer"),
    ],
    ids=["pair-id-slash", "image-id-path", "name-space", "k-zero", "no-pairs", "extra", "check"],
)
def test_a_malformed_batch_is_422_naming_the_field(svc: Service, change: Any, field: str) -> None:
    body = batch_body("bad3", 2)
    change(body)
    res = svc.client.post("/api/admin/batches", json=body, headers=bearer(svc.admin))
    assert_error(res, 422, field)
    assert [p.batch for p in svc.store.batches()] == ["b1"]


# -- skip, undo, instructions ---------------------------------------------------------------


def test_a_skipped_pair_goes_to_someone_else_and_never_back(svc: Service) -> None:
    first, second, _ = svc.workers
    held = svc.task(first)
    res = svc.client.post(
        "/api/skip", json={"batch": "b1", "pair_id": held["pair_id"]}, headers=bearer(first)
    )
    assert res.status_code == 200, res.text
    after = res.json()["task"]
    assert after is not None and after["pair_id"] != held["pair_id"]
    # the answer to the skipped pair is refused; nothing is stored
    late = svc.client.post("/api/votes", json=vote_body(held, "equal"), headers=bearer(first))
    assert_error(late, 409, "skipped")
    assert svc.votes() == 0
    # the first annotator works through the rest and is never given it again
    seen = []
    task: dict[str, Any] | None = after
    while task is not None:
        seen.append(task["pair_id"])
        res = svc.client.post("/api/votes", json=vote_body(task, "equal"), headers=bearer(first))
        task = res.json()["task"]
    assert held["pair_id"] not in seen and len(seen) == 3
    # ...while its slot went back to the pool: the next annotator is given it
    answer_as(svc, second, {f"b1-p{i}": 0 for i in range(4)})
    who = svc.store.authenticate(second)
    assert who is not None
    theirs = {r["pair_id"] for r in svc.store.vote_records("b1") if r["annotator"] == who.id}
    assert held["pair_id"] in theirs and len(theirs) == 4
    # refusals name why
    res = svc.client.post(
        "/api/skip", json={"batch": "b1", "pair_id": "b1-p9"}, headers=bearer(first)
    )
    assert_error(res, 404, "no such task")
    res = svc.client.post(
        "/api/skip", json={"batch": "b1", "pair_id": seen[0]}, headers=bearer(first)
    )
    assert_error(res, 409, "already answered")
    res = svc.client.post("/api/skip", json={"batch": "b1"}, headers=bearer(first))
    assert_error(res, 422, "pair_id")


def test_undo_takes_back_the_last_answer_while_the_batch_is_open(svc: Service) -> None:
    body = batch_body("u1", 2, k=1, new_annotators=1, seed=3)
    res = svc.client.post("/api/admin/batches", json=body, headers=bearer(svc.admin))
    worker = token_of(res.json()["links"][0]["link"])
    res = svc.client.post("/api/undo", headers=bearer(worker))
    assert_error(res, 404, "no answer to undo")
    first = svc.task(worker)
    res = svc.client.post("/api/votes", json=vote_body(first, "illegible"), headers=bearer(worker))
    assert res.status_code == 200 and res.json()["progress"]["done"] == 1
    assert svc.store.progress("u1").rejected == 1  # k = 1: one "can't tell" rejects the pair
    res = svc.client.post("/api/undo", headers=bearer(worker))
    assert res.status_code == 200, res.text
    again = res.json()
    assert again["task"]["pair_id"] == first["pair_id"] and again["progress"]["done"] == 0
    progress = svc.store.progress("u1")
    assert progress.rejected == 0 and progress.votes == 0 and len(svc.store.vote_records("u1")) == 0
    # answered again (differently), then the second pair: the batch closes, answers are final
    res = svc.client.post(
        "/api/votes", json=vote_body(again["task"], "left_more"), headers=bearer(worker)
    )
    second = res.json()["task"]
    assert second["pair_id"] != first["pair_id"]
    svc.client.post("/api/votes", json=vote_body(second, "equal"), headers=bearer(worker))
    assert svc.store.progress("u1").state == "closed"
    assert_error(svc.client.post("/api/undo", headers=bearer(worker)), 409, "closed")
    answers = [r["choice"] for r in svc.store.vote_records("u1")]
    assert answers == ["left_more", "equal"]


def test_instructions_show_definitions_and_solved_examples(svc: Service) -> None:
    body = batch_body("ex1", 2, new_annotators=1, seed=6)
    body["images"]["ex1-e0"] = body["images"]["ex1-i0"]
    body["examples"] = [
        {"attribute": "smile", "a": "ex1-e0", "b": "ex1-i2", "answer": 1, "note": "teeth show"}
    ]
    res = svc.client.post("/api/admin/batches", json=body, headers=bearer(svc.admin))
    assert res.status_code == 200, res.text
    worker = token_of(res.json()["links"][0]["link"])
    res = svc.client.get("/api/instructions/ex1", headers=bearer(worker))
    assert res.status_code == 200, res.text
    got = res.json()
    assert got["definitions"] == {"smile": "how widely the mouth smiles"}
    (ex,) = got["examples"]
    assert (ex["answer"], ex["note"]) == (1, "teeth show")
    # the example's image is served to whoever may work on the batch, before any assignment
    png = svc.client.get(ex["a_url"], headers=bearer(worker))
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    # but not to an annotator invited elsewhere, nor its instructions
    outsider = svc.workers[0]
    assert svc.client.get(ex["a_url"], headers=bearer(outsider)).status_code == 404
    assert_error(svc.client.get("/api/instructions/ex1", headers=bearer(outsider)), 404)


@pytest.mark.parametrize(
    ("example", "field"),
    [
        ({"attribute": "smile", "a": "nope", "b": "ex2-i0", "answer": 1}, "examples"),
        ({"attribute": "size", "a": "ex2-i1", "b": "ex2-i0", "answer": 1}, "examples"),
        ({"attribute": "smile", "a": "ex2-i1", "b": "ex2-i0", "answer": True}, "answer"),
        ({"attribute": "smile", "a": "ex2-i1", "b": "ex2-i0", "answer": 2}, "answer"),
    ],
)
def test_a_bad_example_is_refused_naming_it(
    svc: Service, example: dict[str, Any], field: str
) -> None:
    body = batch_body("ex2", 2, seed=6)
    body["examples"] = [example]
    res = svc.client.post("/api/admin/batches", json=body, headers=bearer(svc.admin))
    assert res.status_code in (400, 422), res.text
    assert field in res.json()["error"]
    assert "ex2" not in [p.batch for p in svc.store.batches()]
