"""The annotation web service: an app factory over an ``AnnotationStore`` (thin handlers).

Annotators open ``/a/<token>`` (their own link), see one pair at a time and answer it; admins
use ``/api/admin/...`` with an admin token to create batches, watch progress, close batches and
read votes and labels, or the page ``/admin`` (it holds no data: it asks for the admin token and
sends it in the header) for batches, agreement, annotators and disputed pairs. Every other
route needs a token (``/a/<token>`` carries its own): without a valid one the answer is 401, an
annotator token on an admin route is 403. Errors are JSON ``{"error": "..."}`` with a
clear sentence; a traceback never reaches a client.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import json
import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive, Scope, Send

from outpool.annotate.aggregate import aggregate, per_annotator_stats
from outpool.annotate.agreement import krippendorff_alpha, most_disputed, votes_per_hour
from outpool.annotate.votes import EQUAL, MORE_A, MORE_B, REJECT
from outpool.errors import DataError, OutpoolError
from outpool.fileio import json_text
from outpool.service.batch import BatchSpec, Example
from outpool.service.schemas import AnnotatorIn, BatchIn, SkipIn, VoteIn, printable
from outpool.service.store import (
    AnnotationStore,
    Annotator,
    Conflict,
    Forbidden,
    StoreError,
    Submission,
    Task,
    Unauthorized,
)

log = logging.getLogger("outpool.service")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ServiceSettings:
    """public_url: how annotators reach the service (for the links it hands out; defaults to
    the URL a request came in on); body limits in bytes: annotator requests are tiny, an
    admin's new batch carries its images."""

    public_url: str | None = None
    max_body_bytes: int = 64 * 1024
    max_admin_body_bytes: int = 512 * 1024 * 1024


def create_app(store: AnnotationStore, settings: ServiceSettings | None = None) -> FastAPI:
    """The service's ASGI app; run it with uvicorn (``outpool annotate serve`` does)."""
    settings = settings or ServiceSettings()
    app = FastAPI(
        title="outpool annotation service",
        docs_url=None,  # no unauthenticated pages at all
        redoc_url=None,
        openapi_url=None,
    )
    app.state.store = store
    page = _page()

    def link(request: Request, token: str) -> str:
        base = settings.public_url or str(request.base_url)
        return f"{base.rstrip('/')}/a/{token}"

    # -- annotators -------------------------------------------------------------------------

    @app.get("/a/{token}", response_class=HTMLResponse)
    def annotate_page(token: str) -> HTMLResponse:
        who = store.authenticate(token)
        if who is None or who.role != "annotator":
            return HTMLResponse(
                _UNAUTHORIZED_PAGE, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @app.get("/api/me")
    def me(who: AnnotatorDep) -> dict[str, Any]:
        return {"annotator": who.id, "name": who.name, "progress": _progress(store, who)}

    @app.get("/api/task")
    def task(who: AnnotatorDep) -> dict[str, Any]:
        return {"task": _task_json(store.next_task(who)), "progress": _progress(store, who)}

    async def vote(request: Request) -> JSONResponse:
        # The busiest route, kept lean: a plain Starlette route (FastAPI's dependency solving
        # cost more CPU than the vote's SQL), and the vote, the next assignment and the progress
        # in one transaction (``service.writes``) awaited on the event loop (no thread-pool hop).
        who = await annotator(await caller(request))
        body = await json_body(request, VoteIn)
        ack, task, (done, left) = await asyncio.wrap_future(
            store.answer(who, Submission(**body.model_dump()))
        )
        progress = {"done": done, "left": left}
        return JSONResponse({"ack": asdict(ack), "task": _task_json(task), "progress": progress})

    app.add_route("/api/votes", vote, methods=["POST"])

    @app.post("/api/skip")
    def skip(body: SkipIn, who: AnnotatorDep) -> dict[str, Any]:
        task = store.skip_and_next(who, body.batch, body.pair_id)
        return {"task": _task_json(task), "progress": _progress(store, who)}

    @app.post("/api/undo")
    def undo(who: AnnotatorDep) -> dict[str, Any]:
        task = store.undo_last(who)
        return {"task": _task_json(task), "progress": _progress(store, who)}

    @app.get("/api/instructions/{batch}")
    def instructions(batch: str, who: AnnotatorDep) -> dict[str, Any]:
        found = store.instructions(who, batch)
        for ex in found["examples"]:
            ex["a_url"] = f"/api/images/{batch}/{ex['a']}.png"
            ex["b_url"] = f"/api/images/{batch}/{ex['b']}.png"
        return found

    @app.get("/api/images/{batch}/{image}.png")
    def image(batch: str, image: str, who: Caller) -> Response:
        png = store.image_png(who, batch, image)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private"})

    # -- admins -----------------------------------------------------------------------------

    @app.post("/api/admin/annotators")
    def new_annotator(body: AnnotatorIn, request: Request, admin: AdminDep) -> dict[str, Any]:
        who, token = store.create_annotator(
            body.name, role=body.role, expires_in_s=body.expires_in_s
        )
        store.record(admin.id, f"create {who.role}", who.id)
        out: dict[str, Any] = {"annotator": who.id, "name": who.name, "role": who.role}
        out["expires_at"] = who.expires_at
        out["token"] = token
        if who.role == "annotator":
            out["link"] = link(request, token)
        return out

    @app.get("/api/admin/annotators")
    def list_annotators(_: AdminDep) -> dict[str, Any]:
        return {"annotators": [asdict(a) for a in store.annotators()]}

    @app.post("/api/admin/annotators/{annotator}/revoke")
    def revoke_annotator(annotator: str, who: AdminDep) -> dict[str, Any]:
        if annotator == who.id:
            raise Conflict("an admin cannot revoke their own token")
        revoked = store.revoke(annotator)
        store.record(who.id, "revoke", annotator)
        return asdict(revoked)

    @app.get("/api/admin/audit")
    def audit(_: AdminDep) -> dict[str, Any]:
        return {"audit": store.audit()}

    @app.post("/api/admin/batches")
    def new_batch(body: BatchIn, request: Request, admin: AdminDep) -> dict[str, Any]:
        spec = _spec(body)
        new = store.create_batch(
            spec,
            k=body.k,
            lease_s=body.lease_s,
            check_every=body.check_every,
            meta=body.meta,
            new_annotators=body.new_annotators,
        )
        links = [{"annotator": who.id, "link": link(request, token)} for who, token in new or []]
        if new is not None:
            store.record(admin.id, "create batch", body.name)
            for entry in links:
                store.record(admin.id, "create annotator", entry["annotator"])
        return {
            "created": new is not None,
            "batch": store.progress(body.name).as_dict(),
            "links": links,
        }

    @app.get("/api/admin/batches")
    def list_batches(_: AdminDep) -> dict[str, Any]:
        return {"batches": [p.as_dict() for p in store.batches()]}

    @app.get("/api/admin/batches/{batch}")
    def batch_progress(batch: str, _: AdminDep) -> dict[str, Any]:
        return store.progress(batch).as_dict()

    @app.post("/api/admin/batches/{batch}/close")
    def close(batch: str, admin: AdminDep) -> dict[str, Any]:
        progress = store.close_batch(batch).as_dict()
        store.record(admin.id, "close batch", batch)
        return progress

    @app.get("/api/admin/batches/{batch}/votes")
    def votes(batch: str, admin: AdminDep) -> dict[str, Any]:
        records = store.vote_records(batch)
        store.record(admin.id, "read votes", batch)
        return {"votes": records}

    @app.get("/api/admin/batches/{batch}/pairs")
    def pairs(batch: str, _: AdminDep) -> dict[str, Any]:
        return {"pairs": store.pair_ids(batch).tolist()}

    @app.get("/api/admin/batches/{batch}/labels")
    def labels(
        batch: str,
        _: AdminDep,
        method: str = "majority",
        min_agreement: Annotated[float, Query(ge=0.0, le=1.0)] = 0.6,
        min_confidence: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
    ) -> dict[str, Any]:
        result = aggregate(
            method,
            store.votes(batch),
            store.pair_ids(batch),
            min_agreement=min_agreement,
            min_confidence=min_confidence,
        )
        stats = per_annotator_stats(result.votes, result)
        checks = store.check_accuracy(batch)
        return {
            "method": method,
            "labels": [
                {
                    "pair_id": str(result.pair_ids[i]),
                    "label": int(result.label[i]),
                    "confidence": float(result.confidence[i]),
                    "agreement": float(result.agreement[i]),
                    "status": str(result.status[i]),
                }
                for i in range(len(result))
            ],
            "annotators": {
                name: {**_finite(dict(s)), "checks": list(checks.get(name, (0, 0)))}
                for name, s in stats.items()
            },
        }

    @app.get("/api/admin/batches/{batch}/report")
    def batch_report(batch: str, _: AdminDep) -> dict[str, Any]:
        return _batch_report(store, batch)

    @app.get("/admin", response_class=HTMLResponse)
    def admin_page() -> HTMLResponse:
        # no data in it: the page asks for the admin token and sends it in the header
        return HTMLResponse(_ADMIN_PAGE, headers={"Cache-Control": "no-store"})

    # -- errors: one JSON shape, no tracebacks ----------------------------------------------

    @app.exception_handler(StoreError)
    def store_error(_: Request, exc: StoreError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)

    @app.exception_handler(OutpoolError)
    def outpool_error(_: Request, exc: OutpoolError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors()[:5]:
            if err.get("type") == "json_invalid":
                problems.append("the body is not valid JSON")
                continue
            where = ".".join(printable(str(p)) for p in err.get("loc", ()) if p != "body")
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            problems.append(f"{where or 'body'}: {printable(msg)}")
        return JSONResponse({"error": "; ".join(problems)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        return JSONResponse({"error": detail}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    def crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return JSONResponse({"error": _INTERNAL}, 500)

    # Unknown paths: 401 without a valid token (nothing is public), 404 with one.
    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def unknown(path: str, who: Caller) -> JSONResponse:
        return JSONResponse({"error": "no such route"}, status_code=404)

    return _BodyLimit(app, settings)  # type: ignore[return-value]


class _BodyLimit:
    """Check the token, then the body size, before the app reads anything: a request without a
    valid token gets 401 at once (only ``/a/<token>`` checks its own), and a body over the
    limit gets 413 whether or not a Content-Length is sent. Only an admin token on an admin
    route gets the larger admin limit, so nobody without one can make the service read and
    parse a huge body."""

    def __init__(self, app: FastAPI, settings: ServiceSettings) -> None:
        self.app = app
        self.settings = settings

    def __getattr__(self, name: str) -> Any:  # let callers reach the FastAPI app's attributes
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(send)
        path = scope["path"]
        token, in_header = _token_and_place(Request(scope))
        store: AnnotationStore = self.app.state.store
        try:
            # A token seen before is known without a thread hop; else ask the database.
            who = store.known(token) if token else None
            if who is None and token:
                who = await run_in_threadpool(store.authenticate, token)
        except Exception:
            log.exception("internal error")
            await _send_json(send, 500, _INTERNAL)
            return
        public = path.startswith("/a/") or (path == "/admin" and scope["method"] == "GET")
        if who is None and not public:
            await _send_json(send, 401, _NEED_TOKEN, [(b"www-authenticate", b"Bearer")])
            return
        if who is not None and who.role == "admin" and not in_header:
            await _send_json(send, 401, _ADMIN_IN_HEADER, [(b"www-authenticate", b"Bearer")])
            return
        scope[_CALLER] = who  # for ``caller``: no second look-up (and thread hop) per request
        admin = who is not None and who.role == "admin" and path.startswith("/api/admin/")
        limit = self.settings.max_admin_body_bytes if admin else self.settings.max_body_bytes
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _send_json(send, 413, _too_large(limit))
            return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except _TooLarge:
            if not started:
                await _send_json(send, 413, _too_large(limit))


class _TooLarge(StarletteHTTPException):
    """Raised from the body stream. An HTTP exception, because FastAPI re-raises those from
    its body parsing (the app's handler answers 413) but turns any other exception there into
    a 400 "error parsing the body"."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large(limit))


def _too_large(limit: int) -> str:
    return f"request body over {limit} bytes"


_IMAGE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}")  # never a path
_MAX_IMAGE_PIXELS = 4096 * 4096  # images are shown small; anything bigger is a mistake
_CALLER = "outpool.caller"  # the scope key where _BodyLimit leaves the authenticated caller
_NEED_TOKEN = "a valid token is needed (Authorization: Bearer <token>)"
# a token in a URL is written into server logs and browser history
_ADMIN_IN_HEADER = "an admin token is accepted only in the header (Authorization: Bearer <token>)"
_INTERNAL = "internal error; the server log has details"


async def _send_json(
    send: Send, status: int, error: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json_text({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- authentication: module-level dependencies (FastAPI resolves annotations by module name) --


async def caller(request: Request) -> Annotator:
    """Whoever the request's token names: ``Authorization: Bearer <token>``, or ``?token=``
    for the ``<img>`` tags of the annotation page, which cannot send headers. ``_BodyLimit``
    has looked the token up already; the dependencies are ``async`` so that FastAPI does not
    send each of them through the thread pool (a vote went through it four times)."""
    who: Annotator | None = request.scope.get(_CALLER)
    if who is None:
        token = _token(request)
        store: AnnotationStore = request.app.state.store
        who = await run_in_threadpool(store.authenticate, token) if token else None
    if who is None:
        raise Unauthorized(_NEED_TOKEN)
    return who


async def json_body(request: Request, schema: type[M]) -> M:
    """The request's JSON body validated by ``schema``, refused as FastAPI refuses a body
    parameter (``RequestValidationError``, answered 422 by the app's handler)."""
    raw = await request.body()
    try:
        data = json.loads(raw) if raw else None
    except ValueError:  # not JSON, or not UTF-8
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body",)}]) from None
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def _token(request: Request) -> str:
    return _token_and_place(request)[0]


def _token_and_place(request: Request) -> tuple[str, bool]:
    """(the request's token, whether it came in the Authorization header)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), True
    return request.query_params.get("token", ""), False


async def annotator(who: Annotated[Annotator, Depends(caller)]) -> Annotator:
    if who.role != "annotator":
        raise Forbidden("this route is for annotators; admins use /api/admin")
    return who


async def admin(who: Annotated[Annotator, Depends(caller)]) -> Annotator:
    if who.role != "admin":
        raise Forbidden("this route needs an admin token")
    return who


Caller = Annotated[Annotator, Depends(caller)]
AnnotatorDep = Annotated[Annotator, Depends(annotator)]
AdminDep = Annotated[Annotator, Depends(admin)]


def _spec(body: BatchIn) -> BatchSpec:
    images = {}
    for key, data in body.images.items():
        if not _IMAGE_ID.fullmatch(key):
            raise DataError("image ids are letters, digits and _ . : -", field=f"images.{key}")
        try:
            with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as img:
                if img.width * img.height > _MAX_IMAGE_PIXELS:
                    raise DataError(
                        f"image is {img.width} x {img.height}; at most {_MAX_IMAGE_PIXELS} pixels",
                        field=f"images.{key}",
                    )
                images[key] = np.asarray(img.convert("RGB"), dtype=np.uint8)
        except (
            binascii.Error,
            UnidentifiedImageError,
            Image.DecompressionBombError,
            OSError,
            ValueError,
        ):
            raise DataError("not a base64 PNG/JPEG image", field=f"images.{key}") from None
    return BatchSpec(
        name=body.name,
        ids=np.array([p.id for p in body.pairs], dtype=str),
        attribute=np.array([p.attribute for p in body.pairs], dtype=str),
        a=np.array([p.a for p in body.pairs], dtype=str),
        b=np.array([p.b for p in body.pairs], dtype=str),
        images=images,
        definitions=body.definitions,
        check_answer=np.array(body.check_answers(), dtype=np.int8),
        examples=tuple(Example(**e.model_dump()) for e in body.examples),
    )


def _task_json(task: Task | None) -> dict[str, Any] | None:
    if task is None:
        return None
    out = asdict(task)
    for side in ("left", "right"):
        out[f"{side}_url"] = f"/api/images/{task.batch}/{getattr(task, side)}.png"
    return out


def _progress(store: AnnotationStore, who: Annotator) -> dict[str, int]:
    done, left = store.remaining(who)
    return {"done": done, "left": left}


def _batch_report(store: AnnotationStore, batch: str, disputed: int = 12) -> dict[str, Any]:
    """What the admin page shows of a batch: progress, Krippendorff's alpha, per annotator
    votes, throughput, agreement with the majority and check accuracy, and the pairs people
    disagree on most (with their image URLs)."""
    progress = store.progress(batch).as_dict()
    votes = store.votes(batch)
    result = aggregate("majority", votes, store.pair_ids(batch))
    stats = per_annotator_stats(result.votes, result)
    checks = store.check_accuracy(batch)
    records = store.vote_records(batch)
    names = {a.id: a for a in store.annotators()}
    times: dict[str, list[float]] = {}
    for r in records:
        times.setdefault(r["annotator"], []).append(float(r["created_at"]))
    people = []
    for who, stamps in sorted(times.items()):
        s = stats.get(who)
        answered, right = checks.get(who, (0, 0))
        person = names.get(who)
        people.append(
            {
                "annotator": who,
                "name": person.name if person else who,
                "revoked": bool(person and person.revoked),
                "votes": len(stamps),
                "votes_per_hour": votes_per_hour(np.asarray(stamps)),
                "agreement_with_majority": None if s is None else _finite(dict(s))["agreement"],
                "check_pairs": answered,
                "check_accuracy": round(right / answered, 3) if answered else None,
            }
        )
    pairs = store.pair_images(batch)
    alpha = krippendorff_alpha(votes)
    return {
        "batch": progress,
        "agreement": {
            "measure": "Krippendorff's alpha (nominal)",
            "value": None if alpha is None else round(alpha, 3),
            "pairs_with_two_votes": int(
                sum(c >= 2 for c in Counter(votes.pair_id.tolist()).values())
            ),
        },
        "annotators": people,
        "disputed": [
            {
                "pair_id": d.pair_id,
                "attribute": pairs[d.pair_id][0],
                "a_url": f"/api/images/{batch}/{pairs[d.pair_id][1]}.png",
                "b_url": f"/api/images/{batch}/{pairs[d.pair_id][2]}.png",
                "counts": {_ANSWER_NAMES[k]: n for k, n in d.counts.items()},
                "spread": d.spread,
            }
            for d in most_disputed(votes, disputed)
        ],
    }


_ANSWER_NAMES = {MORE_A: "a more", MORE_B: "b more", EQUAL: "equal", REJECT: "can't tell"}


def _finite(stats: dict[str, Any]) -> dict[str, Any]:
    # JSON has no NaN: an undefined rate (no votes to compare) is null.
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in stats.items()}


def _page(name: str = "page.html") -> str:
    return resources.files("outpool.service").joinpath(name).read_text(encoding="utf-8")


def _inline_hash(page: str, tag: str) -> str:
    """The CSP source of the page's one inline <tag> element: its content's SHA-256."""
    content = page.split(f"<{tag}>", 1)[1].split(f"</{tag}>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(content.encode()).digest()).decode()
    return f"'sha256-{digest}'"


def _security_headers(*pages: str) -> list[tuple[bytes, bytes]]:
    """On every response: the pages run only their own scripts and styles, load only this
    service's images and API (the admin page shows images it fetched with its token as blob:
    URLs), cannot be framed, and send no referrer (a link holds a token)."""
    scripts = " ".join(_inline_hash(page, "script") for page in pages)
    styles = " ".join(_inline_hash(page, "style") for page in pages)
    policy = (
        f"default-src 'none'; script-src {scripts}; style-src {styles}; img-src 'self' blob:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return [
        (b"content-security-policy", policy.encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]


_ADMIN_PAGE = _page("admin.html")
_SECURITY_HEADERS = _security_headers(_page(), _ADMIN_PAGE)


def _with_security_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *_SECURITY_HEADERS]}
        await send(message)

    return sending


_UNAUTHORIZED_PAGE = (
    "<!doctype html><meta charset=utf-8><title>outpool</title>"
    "<p>This link is not valid. Ask whoever sent it for a new one.</p>"
)
