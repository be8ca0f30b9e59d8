"""People as an annotator, end to end: ``PeopleAnnotator`` and ``outpool annotate`` against the
real service under uvicorn, with simulated people who open their links' API over HTTP, look at
the two images they are shown (mean brightness stands in for the attribute) and answer.

The answers come back in the pairs' own a/b orientation however the service swapped left and
right, a new process asking the same request finds the same batch, careless annotators can be
left out by check pairs, and every failure is one clear error.
"""

from __future__ import annotations

import csv
import http.server
import io
import json
import re
import shutil
import socket
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from outpool.annotate import PairRequest
from outpool.annotate.protocol import LabelResult
from outpool.annotate.votes import REJECT, VoteTable
from outpool.cli import main
from outpool.data import Dataset
from outpool.errors import ConfigError, OutpoolError
from outpool.service.batch import NO_CHECK, BatchSpec
from outpool.service.exchange import import_label_studio
from outpool.service.people import PeopleAnnotator, PeopleConfig
from outpool.synth import build

from .web_support import LiveServer, answer_all, call, running_server, token_of

# (brightness of a, brightness of b) per pair; the true label is which is brighter
LEVELS = [(200, 50), (40, 220), (120, 120), (90, 180), (230, 30), (60, 160)]
TRUTH = [1, -1, 0, -1, 1, -1]
LINK = re.compile(r"https?://\S+/a/\S+")


def shade(level: int, mark: int) -> np.ndarray:
    """A 64x64 image of one grey level; one corner pixel makes each image unique."""
    img = np.full((64, 64, 3), level, dtype=np.uint8)
    img[0, 0] = (mark * 37 % 256, mark * 11 % 256, 3)
    return img


def make_request(levels: list[tuple[int, int]] = LEVELS, prefix: str = "q") -> PairRequest:
    return PairRequest(
        ids=np.array([f"{prefix}{i}" for i in range(len(levels))]),
        attribute=np.full(len(levels), "bright"),
        images_a=np.stack([shade(a, 2 * i) for i, (a, _) in enumerate(levels)]),
        images_b=np.stack([shade(b, 2 * i + 1) for i, (_, b) in enumerate(levels)]),
    )


# -- simulated people ------------------------------------------------------------------------


def look(base: str, token: str, url: str) -> float:
    """Mean brightness of an image of the task, fetched as the page's <img> would."""
    with urllib.request.urlopen(f"{base}{url}?token={token}", timeout=30) as res:
        assert res.status == 200
        data = res.read()
    return float(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).mean())


def person(base: str, token: str, kind: str = "honest") -> Callable[[dict[str, Any]], Any]:
    """A decision rule from the two images shown: honest, contrary (says the opposite) or
    lazy (always "left is more", without looking)."""

    def decide(task: dict[str, Any]) -> tuple[str, str]:
        if kind == "lazy":
            return "left_more", "very"
        diff = look(base, token, task["left_url"]) - look(base, token, task["right_url"])
        choice = "equal" if abs(diff) < 2 else "left_more" if diff > 0 else "left_less"
        if kind == "contrary":
            choice = {"left_more": "left_less", "left_less": "left_more"}.get(choice, "left_more")
        return choice, "very" if kind == "honest" else "somewhat"

    return decide


def majority(records: list[dict[str, Any]], pair_ids: list[str]) -> list[int]:
    """The label most votes give each pair (ties are "equal", as majority_vote has it)."""
    out = []
    for pair in pair_ids:
        counts = Counter(r["answer"] for r in records if r["pair_id"] == pair and not r["is_check"])
        top = counts.most_common()
        tied = len(top) > 1 and top[0][1] == top[1][1]
        out.append(0 if tied else int(top[0][0]))
    return out


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with running_server(tmp_path) as live:
        yield live


def people(server: LiveServer, out: io.StringIO | None = None, **changes: Any) -> PeopleAnnotator:
    cfg = PeopleConfig(server=server.url, admin_token=server.admin_token, **changes)
    return PeopleAnnotator(cfg, definitions={"bright": "how light the image is"}, out=out)


# -- PeopleAnnotator ---------------------------------------------------------------------------


@pytest.mark.slow
def test_pending_then_labels_from_a_new_process(server: LiveServer) -> None:
    request = make_request()
    out = io.StringIO()
    first = people(server, out, k=3, new_annotators=3).label(request)
    assert first.pending is True
    assert first.pair_ids.tolist() == request.ids.tolist()
    assert set(first.status.tolist()) == {"pending"}  # nothing trusted before votes are in
    assert len(first.votes) == 0
    printed = out.getvalue()
    links = LINK.findall(printed)
    assert len(links) == 3 and all(link.startswith(server.url + "/a/") for link in links)
    assert "6 pairs, 3 votes each" in printed
    batch = people(server).batch_name(request)
    assert batch in printed and batch.startswith("batch-")

    # asking again while people work: the same batch, no new links, still pending
    again_out = io.StringIO()
    again = people(server, again_out, k=3, new_annotators=3).label(request)
    assert again.pending and not LINK.findall(again_out.getvalue())
    assert len(server.store.annotators()) == 4

    # two people answer by the images, one says the opposite every time
    tokens = [token_of(link) for link in links]
    for token, kind in zip(tokens, ["honest", "contrary", "honest"], strict=True):
        answered = answer_all(server.url, token, person(server.url, token, kind))
        assert len(answered) == 6
        mid = people(server, k=3).label(request)
        assert mid.pending == (token != tokens[-1])  # closed at the last of the k votes
    records = server.store.vote_records(batch)
    assert len(records) == 18

    # a new PeopleAnnotator (as if a new process) gets the labels
    done_out = io.StringIO()
    result = people(server, done_out, k=3, new_annotators=3).label(request)
    assert result.pending is False
    assert done_out.getvalue() == ""  # no new batch, no links
    assert result.pair_ids.tolist() == request.ids.tolist()
    want = majority(records, request.ids.tolist())
    assert want == TRUTH  # the honest two outvote the contrary one on every pair
    assert result.label.tolist() == want
    assert result.status.tolist() == ["accepted"] * 6
    np.testing.assert_allclose(result.agreement, 2 / 3, rtol=1e-6)
    assert len(result.votes) == 18
    assert sorted(set(result.votes.annotator.tolist())) == sorted({r["annotator"] for r in records})


@pytest.mark.slow
def test_wait_returns_once_the_votes_are_in(server: LiveServer) -> None:
    request = make_request(LEVELS[:3], prefix="w")
    errors: list[BaseException] = []

    def crowd() -> None:  # two people with their own links, starting before the batch exists
        try:
            tokens = []
            for name in ("Ada", "Bo"):
                status, reply = call(
                    server.url, "POST", "/api/admin/annotators", server.admin_token, {"name": name}
                )
                assert status == 200, reply
                tokens.append(reply["token"])
            deadline = time.monotonic() + 20
            while call(server.url, "GET", "/api/task", tokens[0])[1]["task"] is None:
                assert time.monotonic() < deadline, "the batch never appeared"
                time.sleep(0.02)
            for token in tokens:
                answer_all(server.url, token, person(server.url, token))
        except BaseException as exc:  # reported by the test thread below
            errors.append(exc)

    thread = threading.Thread(target=crowd, daemon=True)
    thread.start()
    start = time.monotonic()
    result = people(server, k=2, wait=True, poll_s=0.05, timeout_s=30).label(request)
    elapsed = time.monotonic() - start
    thread.join(timeout=30)
    assert not errors, errors
    assert result.pending is False
    assert result.label.tolist() == TRUTH[:3]
    assert result.status.tolist() == ["accepted"] * 3
    assert elapsed < 20


@pytest.mark.slow
def test_wait_gives_up_after_timeout_s(server: LiveServer) -> None:
    start = time.monotonic()
    result = people(server, k=2, wait=True, poll_s=0.05, timeout_s=0.3).label(make_request())
    assert result.pending is True
    assert 0.3 <= time.monotonic() - start < 10


def with_checks(request: PairRequest, name: str) -> BatchSpec:
    """``request``'s pairs plus two check pairs of known answer (a clearly brighter)."""
    base = BatchSpec.from_request(name, request)
    images = dict(base.images)
    images["chk-dark"], images["chk-light"] = shade(20, 90), shade(240, 91)
    images["chk-dark2"], images["chk-light2"] = shade(30, 92), shade(250, 93)
    return BatchSpec(
        name=name,
        ids=np.array([*base.ids.tolist(), "check-1", "check-2"]),
        attribute=np.array([*base.attribute.tolist(), "bright", "bright"]),
        a=np.array([*base.a.tolist(), "chk-light", "chk-dark2"]),
        b=np.array([*base.b.tolist(), "chk-dark", "chk-light2"]),
        images=images,
        check_answer=np.array([NO_CHECK] * len(base) + [1, -1], dtype=np.int8),
    )


@pytest.mark.slow
def test_check_pairs_leave_careless_annotators_out(server: LiveServer) -> None:
    request = make_request()
    spec = with_checks(request, "checked")
    out = io.StringIO()
    ask = people(server, out, k=3, new_annotators=3, check_every=3)
    assert ask.label_batch(spec).pending
    tokens = [token_of(link) for link in LINK.findall(out.getvalue())]
    kinds = ["honest", "contrary", "contrary"]  # the two careless ones are the majority
    for token, kind in zip(tokens, kinds, strict=True):
        answered = answer_all(server.url, token, person(server.url, token, kind))
        assert {t["pair_id"] for t, _ in answered} >= {"check-1"}  # everyone saw a check
    records = server.store.vote_records("checked")
    careless = {
        r["annotator"] for r in records if r["is_check"] and r["answer"] != r["check_answer"]
    }
    assert len(careless) == 2

    trusting = people(server, k=3, min_check_accuracy=0.0).result("checked")
    assert not trusting.pending
    assert trusting.label.tolist() != TRUTH  # the careless majority wins without checks
    strict = people(server, k=3, min_check_accuracy=0.75).result("checked")
    assert strict.pair_ids.tolist() == request.ids.tolist()  # check pairs never get labels
    assert strict.label.tolist() == TRUTH
    assert strict.status.tolist() == ["accepted"] * 6
    assert not careless & set(strict.votes.annotator.tolist())
    assert len(strict.votes) == 6  # only the honest annotator's votes on ordinary pairs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_server_is_an_error_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    annotator = PeopleAnnotator(PeopleConfig(server=url, admin_token="x"), out=io.StringIO())
    with pytest.raises(OutpoolError, match=re.escape(url)) as exc:
        annotator.label(make_request())
    assert "cannot reach" in str(exc.value)


def test_a_bad_admin_token_is_a_clear_error(server: LiveServer) -> None:
    bad = PeopleConfig(server=server.url, admin_token="not-a-token")
    with pytest.raises(OutpoolError, match=r"refused POST /api/admin/batches: 401 .*token"):
        PeopleAnnotator(bad, out=io.StringIO()).label(make_request())
    _, reply = call(server.url, "POST", "/api/admin/annotators", server.admin_token, {"name": "w"})
    not_admin = PeopleConfig(server=server.url, admin_token=reply["token"])
    with pytest.raises(OutpoolError, match=r"403 .*admin"):
        PeopleAnnotator(not_admin, out=io.StringIO()).label(make_request())
    assert server.store.batches() == []


@pytest.mark.slow
def test_a_server_that_is_not_the_service_is_a_clear_error() -> None:
    class Html(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>hello</html>")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Html)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        cfg = PeopleConfig(server=url, admin_token="x")
        with pytest.raises(OutpoolError, match="other than JSON"):
            PeopleAnnotator(cfg, out=io.StringIO()).label(make_request())
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"server": "localhost:8765"}, "http"),
        ({"admin_token": ""}, "admin token"),
        ({"poll_s": 0}, "poll_s"),
    ],
)
def test_people_config_is_checked(changes: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        PeopleConfig(**{"server": "http://127.0.0.1:1", "admin_token": "t", **changes})


# -- the command line ------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_clean_error(rc: int, err: str, *needles: str) -> None:
    """Exit 2 with exactly one ``outpool: error:`` line and no traceback."""
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("outpool: error: "), err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


@pytest.fixture(scope="module")
def dataset_dir(
    make_small_config: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A toy synthetic dataset with few pairs (read-only: tests copy it)."""
    world = build(make_small_config(train_pairs=3, val_pairs=2, test_pairs=4, seed=5))
    folder = tmp_path_factory.mktemp("people-ds") / "ds"
    world.dataset.save(folder, truth=world.truth)
    return folder


@pytest.fixture
def ds(dataset_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ds"
    shutil.copytree(dataset_dir, copy)
    return copy


def shown_answer(task: dict[str, Any], a: str, want: int) -> str:
    """The choice that means canonical answer ``want`` on this task as shown."""
    if want == 0:
        return "equal"
    if want == REJECT:
        return "illegible"
    return "left_more" if (task["left"] == a) == (want == 1) else "left_less"


def test_status_counts_tell_unanswered_pairs_from_pruned_ones() -> None:
    from outpool.cli.annotate import status_counts

    votes = VoteTable(
        pair_id=np.array(["a", "b", "b", "d"]),
        annotator=np.array(["w1", "w1", "w2", "w1"]),
        answer=np.array([1, 1, -1, REJECT]),
        confidence=np.ones(4),
        rationale=np.array(["", "", "", ""]),
    )
    result = LabelResult(
        pair_ids=np.array(["a", "b", "c", "d"]),
        label=np.array([1, 0, 0, 0], dtype=np.int8),
        confidence=np.ones(4, dtype=np.float32),
        agreement=np.array([1, 0.5, 0, 1], dtype=np.float32),
        status=np.array(["accepted", "pruned", "pruned", "rejected"]),  # c: no votes at all
        votes=votes,
    )
    assert status_counts(result) == {
        "accepted": 1, "rejected": 1, "pruned": 1, "pairs_pending": 0, "unanswered": 1
    }  # fmt: skip


@pytest.mark.slow
def test_cli_request_is_pending_then_writes_the_labels(
    server: LiveServer,
    ds: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OUTPOOL_ADMIN_TOKEN", server.admin_token)
    pairs = Dataset.load(ds).pairs["train"]
    argv = ("annotate", "request", ds, "--pairs", "train", "--server", server.url)
    rc, out, err = run(capsys, *argv, "--k", "1", "--new-annotators", "1")
    assert rc == 3, err
    summary = json.loads(out)
    assert summary["pending"] is True and summary["votes"] == 0
    assert summary["pairs_pending"] == len(pairs) and summary["pruned"] == 0  # not "pruned"
    assert summary["accepted"] == summary["rejected"] == 0
    batch = summary["batch"]
    assert batch == f"{Dataset.load(ds).name}-train"
    links = LINK.findall(err)
    assert len(links) == 1
    assert "train_people" not in Dataset.load(ds).pairs
    rc, out, err = run(capsys, *argv, "--k", "1")  # still pending: exit 3 again, no new link
    assert rc == 3 and not LINK.findall(err)

    # the person answers: a cycle of more / less / equal / can't tell, in canonical terms
    plan = {pid: [1, -1, 0, REJECT][i % 4] for i, pid in enumerate(pairs.ids.tolist())}
    a_of = dict(zip(pairs.ids.tolist(), pairs.a.tolist(), strict=True))
    token = token_of(links[0])
    answered = answer_all(
        server.url,
        token,
        lambda t: (shown_answer(t, a_of[t["pair_id"]], plan[t["pair_id"]]), "somewhat"),
    )
    assert len(answered) == len(pairs)

    rc, out, err = run(capsys, *argv, "--k", "1")
    assert rc == 0, err
    summary = json.loads(out)
    n_reject = sum(v == REJECT for v in plan.values())
    assert summary == {
        "batch": batch,
        "pending": False,
        "votes": len(pairs),
        "pairs": "train_people",
        "accepted": len(pairs) - n_reject,
        "rejected": n_reject,
        "pruned": 0,
        "pairs_pending": 0,
        "unanswered": 0,
    }
    table = Dataset.load(ds).pairs["train_people"]
    keep = [i for i, pid in enumerate(pairs.ids.tolist()) if plan[pid] != REJECT]
    assert table.ids.tolist() == pairs.ids[keep].tolist()  # in the request's order
    assert table.a.tolist() == pairs.a[keep].tolist() and table.b.tolist() == pairs.b[keep].tolist()
    assert table.label.tolist() == [plan[p] for p in table.ids.tolist()]
    np.testing.assert_allclose(table.confidence, 0.5)
    votes = VoteTable.load(ds / "votes" / "train_people.csv")
    assert sorted(zip(votes.pair_id.tolist(), votes.answer.tolist(), strict=True)) == sorted(
        plan.items()
    )

    # asked again, it will not overwrite the table without --force
    rc, _, err = run(capsys, *argv, "--k", "1")
    assert_clean_error(rc, err, "train_people", "--force")
    rc, _, err = run(capsys, *argv, "--k", "1", "--force")
    assert rc == 0, err

    # the same votes straight from the store
    rc, out, err = run(
        capsys, "annotate", "export", "--db", server.db_path, "--batch", batch,
        "--format", "votes", "--out", ds / "exported.csv",
    )  # fmt: skip
    assert rc == 0, err
    exported = VoteTable.load(ds / "exported.csv")
    assert sorted(exported.records()) == sorted(votes.records())
    with open(ds / "exported.csv", newline="", encoding="utf-8") as fh:
        full = list(csv.DictReader(fh))  # everything the store keeps, after the five columns
    assert len(full) == len(votes)
    for row in full:
        assert row["submission_id"] and row["choice"] in (
            "left_more",
            "equal",
            "left_less",
            "illegible",
        )
        assert row["swapped"] in ("0", "1") and row["is_check"] == "0"
        assert float(row["created_at"]) > 0 and row["vote_id"]

    # for Label Studio: the aggregated labels come as annotations, read back the same
    rc, out, err = run(
        capsys, "annotate", "export", "--db", server.db_path, "--batch", batch,
        "--format", "label-studio", "--out", ds / "ls",
    )  # fmt: skip
    assert rc == 0, err
    back = import_label_studio(ds / "ls" / "tasks.json")
    assert dict(zip(back.pair_id.tolist(), back.answer.tolist(), strict=True)) == dict(
        zip(table.ids.tolist(), table.label.tolist(), strict=True)
    )

    rc, out, err = run(capsys, "annotate", "status", "--server", server.url, "--batch", batch)
    assert rc == 0 and json.loads(out)["state"] == "closed"
    rc, out, err = run(capsys, "annotate", "status", "--server", server.url)
    assert rc == 0 and [b["batch"] for b in json.loads(out)["batches"]] == [batch]


def test_cli_token_prints_a_working_token(
    server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    db = server.db_path
    rc, out, err = run(
        capsys, "annotate", "token", "--db", db, "--name", "Ada", "--public-url", server.url
    )
    assert rc == 0, err
    made = json.loads(out)
    assert made["role"] == "annotator" and made["name"] == "Ada"
    assert made["link"] == f"{server.url}/a/{made['token']}"
    status, reply = call(server.url, "GET", "/api/me", made["token"])
    assert status == 200 and reply["annotator"] == made["annotator"]
    with urllib.request.urlopen(made["link"], timeout=30) as res:
        assert res.status == 200 and b"Compare two images" in res.read()

    rc, out, err = run(
        capsys, "annotate", "token", "--db", f"sqlite:///{db}", "--name", "Root", "--admin"
    )
    assert rc == 0, err
    admin = json.loads(out)
    assert admin["role"] == "admin" and "link" not in admin
    status, reply = call(server.url, "GET", "/api/admin/annotators", admin["token"])
    assert status == 200
    assert {a["name"] for a in reply["annotators"]} == {"admin", "Ada", "Root"}


def ls_results(folder: Path, plan: dict[str, int]) -> list[dict[str, Any]]:
    """A Label Studio JSON export of ``folder/tasks.json`` after one person (user 7) answered
    each pair so that its canonical answer is ``plan[pair]``."""
    tasks = json.loads((folder / "tasks.json").read_text(encoding="utf-8"))
    out = []
    for n, task in enumerate(tasks):
        data = task["data"]
        want = plan[data["pair_id"]]
        shown = "equal" if want == 0 else "illegible" if want == REJECT else None
        if shown is None:
            shown = "left_more" if (want == 1) != bool(data["swapped"]) else "left_less"
        result = [
            {"from_name": "comparison", "to_name": "left", "type": "choices",
             "value": {"choices": [shown]}},
            {"from_name": "confidence", "to_name": "left", "type": "choices",
             "value": {"choices": ["very"]}},
            {"from_name": "rationale", "to_name": "left", "type": "textarea",
             "value": {"text": [f"pair {n}, \"quoted\", ü"]}},
        ]  # fmt: skip
        annotation = {"id": n, "completed_by": 7, "result": result, "was_cancelled": False}
        out.append({"id": 100 + n, "data": data, "annotations": [annotation]})
    return out


def test_cli_export_and_import_label_studio(
    ds: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = Dataset.load(ds).pairs["train"]
    rc, out, err = run(
        capsys, "annotate", "export", ds, "--pairs", "train", "--format", "label-studio",
        "--out", tmp_path / "ls", "--seed", "3",
    )  # fmt: skip
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["pairs"] == len(pairs) and summary["format"] == "label-studio"
    folder = Path(summary["out"])
    assert (folder / "tasks.json").is_file() and (folder / "config.xml").is_file()
    tasks = json.loads((folder / "tasks.json").read_text(encoding="utf-8"))
    assert [t["data"]["pair_id"] for t in tasks] == pairs.ids.tolist()

    plan = {pid: [-1, 1, 0, REJECT][i % 4] for i, pid in enumerate(pairs.ids.tolist())}
    results = tmp_path / "project-1-at-2024.json"
    unanswered = pairs.ids[-1]  # nobody answered the last pair in Label Studio
    answers = [r for r in ls_results(folder, plan) if r["data"]["pair_id"] != unanswered]
    results.write_text(json.dumps(answers), encoding="utf-8")
    del plan[unanswered]
    rc, out, err = run(
        capsys, "annotate", "import", results, "--format", "label-studio",
        "--out", tmp_path / "votes.csv", "--dataset", ds, "--pairs", "train", "--name", "ls_people",
    )  # fmt: skip
    assert rc == 0, err
    summary = json.loads(out)
    n_reject = sum(v == REJECT for v in plan.values())
    assert summary["votes"] == len(pairs) - 1 and summary["pairs"] == "ls_people"
    accepted = len(pairs) - 1 - n_reject
    assert (summary["accepted"], summary["rejected"]) == (accepted, n_reject)
    assert (summary["pruned"], summary["unanswered"]) == (0, 1)  # not answered is not pruned
    votes = VoteTable.load(tmp_path / "votes.csv")
    assert set(votes.annotator.tolist()) == {"ls:7"}
    assert dict(zip(votes.pair_id.tolist(), votes.answer.tolist(), strict=True)) == plan
    table = Dataset.load(ds).pairs["ls_people"]
    assert table.label.tolist() == [plan[p] for p in table.ids.tolist()]
    assert len(table) == accepted

    # the same import again: refused (the table exists) before any file is written
    rc, _, err = run(
        capsys, "annotate", "import", results, "--format", "label-studio",
        "--out", tmp_path / "again.csv", "--dataset", ds, "--pairs", "train", "--name", "ls_people",
    )  # fmt: skip
    assert_clean_error(rc, err, "pair table 'ls_people' already exists")
    assert not (tmp_path / "again.csv").exists()

    # a broken results file: one error line naming the file
    results.write_text('[{"data": {"pair_id": "x"}}', encoding="utf-8")
    rc, _, err = run(
        capsys,
        "annotate",
        "import",
        results,
        "--format",
        "label-studio",
        "--out",
        tmp_path / "v2.csv",
    )
    assert_clean_error(rc, err, str(results), "JSON")
    assert not (tmp_path / "v2.csv").exists()


@pytest.mark.slow
def test_cli_errors_are_one_line(
    server: LiveServer,
    ds: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = ("annotate", "request", ds, "--pairs", "train")
    monkeypatch.delenv("OUTPOOL_ADMIN_TOKEN", raising=False)
    rc, _, err = run(capsys, *request, "--server", server.url)
    assert_clean_error(rc, err, "OUTPOOL_ADMIN_TOKEN")

    monkeypatch.setenv("OUTPOOL_ADMIN_TOKEN", "not-a-token")
    rc, _, err = run(capsys, *request, "--server", server.url)
    assert_clean_error(rc, err, "401")

    monkeypatch.setenv("OUTPOOL_ADMIN_TOKEN", server.admin_token)
    dead = f"http://127.0.0.1:{free_port()}"
    rc, _, err = run(capsys, *request, "--server", dead)
    assert_clean_error(rc, err, dead)
    rc, _, err = run(capsys, *request, "--server", "ftp://example.org")
    assert_clean_error(rc, err, "http")
    rc, _, err = run(capsys, "annotate", "request", ds, "--pairs", "nope", "--server", server.url)
    assert_clean_error(rc, err, "nope")
    rc, _, err = run(capsys, "annotate", "status", "--server", server.url, "--batch", "nope")
    assert_clean_error(rc, err, "404", "nope")
    rc, _, err = run(capsys, "annotate", "status", "--server", server.url, "--close")
    assert_clean_error(rc, err, "--batch")
    rc, _, err = run(capsys, "annotate", "token", "--db", tmp_path / "no" / "x.db", "--name", "A")
    assert_clean_error(rc, err, "does not exist")
    rc, _, err = run(capsys, "annotate", "token", "--db", "mysql://h/db", "--name", "A")
    assert_clean_error(rc, err, "mysql")
    rc, _, err = run(
        capsys,
        "annotate",
        "export",
        "--db",
        server.db_path,
        "--format",
        "votes",
        "--out",
        tmp_path / "v.csv",
    )
    assert_clean_error(rc, err, "--batch")
    rc, _, err = run(
        capsys, "annotate", "export", "--db", server.db_path, "--batch", "nope",
        "--format", "votes", "--out", tmp_path / "v.csv",
    )  # fmt: skip
    assert_clean_error(rc, err, "nope")
    rc, _, err = run(
        capsys, "annotate", "import", tmp_path / "missing.json", "--format", "label-studio",
        "--out", tmp_path / "v.csv",
    )  # fmt: skip
    assert_clean_error(rc, err, "missing.json")
    assert server.store.batches() == []  # nothing was created by any of these
