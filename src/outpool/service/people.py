"""People as an annotator: the same ``Annotator`` protocol as the simulated crowd, answered by
the annotation web service.

``label(request)`` creates the batch in the service (its name is a hash of what is asked, so
asking again, even from a new process, finds the same batch), prints the annotators' links,
then either waits until the batch closes or returns at once with ``pending=True``. Asked again
later it returns the aggregated labels. Votes live in the service's store, so neither process
restarting loses any.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from outpool.annotate.aggregate import aggregate
from outpool.annotate.protocol import LabelResult, PairRequest
from outpool.annotate.votes import REJECT, VoteTable
from outpool.errors import ConfigError, OutpoolError
from outpool.fileio import json_text
from outpool.service.batch import BatchSpec, encode_png

ADMIN_TOKEN_ENV = "OUTPOOL_ADMIN_TOKEN"  # where commands read the admin token (never a file)


@dataclass(frozen=True)
class PeopleConfig:
    """How batches are asked and their votes aggregated.

    server: the service's URL; admin_token: an admin token of that service;
    k: votes per pair; new_annotators: fresh annotator links made with each new batch (0: the
    service's existing annotators do the work); wait: block until the batch closes (polling
    every poll_s seconds, at most timeout_s; None waits for ever) instead of returning pending;
    method: "majority" or "dawid-skene"; min_agreement / min_confidence: majority pruning;
    min_check_accuracy: leave out annotators who answered check pairs and got less than this
    share right; batch_prefix: batch names are PREFIX-<hash of the request>.
    """

    server: str
    admin_token: str
    k: int = 5
    new_annotators: int = 0
    wait: bool = False
    poll_s: float = 10.0
    timeout_s: float | None = None
    method: str = "majority"
    min_agreement: float = 0.6
    min_confidence: float = 0.0
    min_check_accuracy: float = 0.0
    lease_s: float = 600.0
    check_every: int = 10
    batch_prefix: str = "batch"

    def __post_init__(self) -> None:
        if not self.server.startswith(("http://", "https://")):
            raise ConfigError(f"server must be an http(s):// URL, got {self.server!r}")
        if not self.admin_token:
            raise ConfigError("an admin token of the annotation service is needed")
        if self.poll_s <= 0:
            raise ConfigError(f"poll_s must be positive, got {self.poll_s}")


class ServiceClient:
    """A minimal JSON client of the service's admin API (standard library only)."""

    def __init__(self, server: str, token: str, *, timeout_s: float = 60.0) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = None if body is None else json_text(body).encode()
        req = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as res:
                return json.load(res)
        except ValueError:  # a 2xx answer that is not JSON: not the annotation service
            raise OutpoolError(
                f"{self.server} answered {method} {path} with something other than JSON; "
                "is it the outpool annotation service?"
            ) from None
        except urllib.error.HTTPError as exc:
            try:
                message = json.load(exc).get("error", exc.reason)
            except (ValueError, AttributeError):
                message = exc.reason
            raise OutpoolError(
                f"the annotation service refused {method} {path}: {exc.code} {message}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise OutpoolError(
                f"cannot reach the annotation service at {self.server}: {reason}"
            ) from None


class PeopleAnnotator:
    """Label pairs with people through the annotation service (see the module docstring)."""

    def __init__(
        self,
        config: PeopleConfig,
        *,
        definitions: Mapping[str, str] | None = None,
        out: TextIO | None = None,
    ) -> None:
        self.config = config
        self.definitions = dict(definitions or {})
        self.client = ServiceClient(config.server, config.admin_token)
        # sys.stderr as it is now, not as it was at import (a default argument would pin that)
        self.out = sys.stderr if out is None else out

    def label(self, request: PairRequest) -> LabelResult:
        spec = BatchSpec.from_request(self.batch_name(request), request, self.definitions)
        return self.label_batch(spec)

    def batch_name(self, request: PairRequest) -> str:
        probe = BatchSpec.from_request("probe", request, self.definitions)
        return f"{self.config.batch_prefix}-{probe.fingerprint()[:16]}"

    def label_batch(self, spec: BatchSpec) -> LabelResult:
        """Create ``spec`` in the service if it is new, then wait for or peek at its labels."""
        self.submit(spec)
        deadline = None if self.config.timeout_s is None else time.time() + self.config.timeout_s
        while True:
            result = self.result(spec.name)
            if not result.pending or not self.config.wait:
                return result
            if deadline is not None and time.time() >= deadline:
                return result
            time.sleep(self.config.poll_s)

    def submit(self, spec: BatchSpec) -> bool:
        """Create the batch unless it exists; prints the new annotators' links. True if new."""
        assert spec.check_answer is not None
        body = {
            "name": spec.name,
            "pairs": [
                {"id": i, "attribute": t, "a": a, "b": b} | ({} if c == -9 else {"check_answer": c})
                for i, t, a, b, c in zip(
                    spec.ids.tolist(),
                    spec.attribute.tolist(),
                    spec.a.tolist(),
                    spec.b.tolist(),
                    spec.check_answer.tolist(),
                    strict=True,
                )
            ],
            "images": {
                key: base64.b64encode(encode_png(img)).decode() for key, img in spec.images.items()
            },
            "definitions": spec.definitions,
            "examples": [dataclasses.asdict(ex) for ex in spec.examples],
            "k": self.config.k,
            "lease_s": self.config.lease_s,
            "check_every": self.config.check_every,
            "new_annotators": self.config.new_annotators,
        }
        reply = self.client.call("POST", "/api/admin/batches", body)
        progress = reply["batch"]
        if reply["created"]:
            print(
                f"outpool: batch {spec.name} is waiting for people: {progress['pairs']} pairs, "
                f"{self.config.k} votes each",
                file=self.out,
            )
            for entry in reply["links"]:
                print(f"  {entry['annotator']}: {entry['link']}", file=self.out)
        self.out.flush()
        return bool(reply["created"])

    def result(self, batch: str) -> LabelResult:
        """The labels so far; ``pending`` until the batch closes. Pairs that are not finished
        yet (fewer than k votes, not rejected) are "pending", so no partial label is trusted."""
        progress = self.client.call("GET", f"/api/admin/batches/{batch}")
        records = self.client.call("GET", f"/api/admin/batches/{batch}/votes")["votes"]
        spec_ids = self.client.call("GET", f"/api/admin/batches/{batch}/pairs")["pairs"]
        pair_ids = np.array(spec_ids, dtype=str)
        votes = _trusted_votes(records, self.config.min_check_accuracy)
        result = aggregate(
            self.config.method,
            votes,
            pair_ids,
            min_agreement=self.config.min_agreement,
            min_confidence=self.config.min_confidence,
        )
        pending = progress["state"] != "closed"
        if not pending:
            return result
        status = result.status.copy()
        n = {p: 0 for p in pair_ids.tolist()}
        rejects = dict(n)
        for v in votes.records():
            n[v.pair_id] = n.get(v.pair_id, 0) + 1
            rejects[v.pair_id] = rejects.get(v.pair_id, 0) + int(v.answer == REJECT)
        k = int(progress["k"])
        for i, p in enumerate(pair_ids.tolist()):
            if n[p] < k and 2 * rejects[p] < k:
                status[i] = "pending"
        return LabelResult(
            pair_ids=result.pair_ids,
            label=result.label,
            confidence=result.confidence,
            agreement=result.agreement,
            status=status,
            votes=result.votes,
            pending=True,
        )


def _trusted_votes(records: list[dict[str, Any]], min_check_accuracy: float) -> VoteTable:
    """Votes on ordinary pairs, leaving out annotators whose check answers fall below
    ``min_check_accuracy`` (annotators who saw no check pair are kept)."""
    checks: dict[str, list[int]] = {}
    for r in records:
        if r["is_check"]:
            tally = checks.setdefault(r["annotator"], [0, 0])
            tally[0] += 1
            tally[1] += int(r["answer"] == r["check_answer"])
    careless = {a for a, (n, right) in checks.items() if right < min_check_accuracy * n}
    return VoteTable.from_records(
        (r["pair_id"], r["annotator"], r["answer"], r["confidence"], r["rationale"])
        for r in records
        if not r["is_check"] and r["annotator"] not in careless
    )
