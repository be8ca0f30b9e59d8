"""Label Studio / MTurk export and import: files as the tools read and write them, round trips
that give back exactly the votes people cast, and every bad input naming its file and place.

The results files are fabricated here the way a real tool would fill them in: a person looks
at the exported task (decoding the images actually shown), picks the answer that means the
vote in left/right terms, and the tool writes it in its own export format.
"""

from __future__ import annotations

import base64
import copy
import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from outpool.annotate.aggregate import aggregate
from outpool.annotate.votes import (
    EQUAL,
    MORE_A,
    MORE_B,
    REJECT,
    Vote,
    VoteTable,
    answer_from_display,
    display_from_answer,
)
from outpool.errors import DataError
from outpool.service.batch import BatchSpec
from outpool.service.exchange import (
    AGGREGATED_BY,
    export_label_studio,
    export_mturk,
    import_label_studio,
    import_mturk,
)

# The test's own reading of the task page: what each displayed answer says about LEFT vs RIGHT.
LEFT_TOKEN = {MORE_A: "left_more", EQUAL: "equal", MORE_B: "left_less", REJECT: "illegible"}
CONF_TOKEN = {1.0: "very", 0.5: "somewhat", 0.0: "not"}
RATIONALES = (
    "brighter, clearly",
    'the "left" one — ünïcödé 笑顔',
    "line one\nline two, with a comma",
    "",
    'quote \' and "double" and \r\n windows newline',
    "plain",
)
N_PAIRS = 9


# ---- fixtures and helpers ------------------------------------------------------------------


def make_batch(n_pairs: int = N_PAIRS, seed: int = 3) -> BatchSpec:
    """n_pairs pairs over n_pairs + 2 random 64x64 images (some images in several pairs)."""
    rng = np.random.default_rng(seed)
    n_images = n_pairs + 2
    images = {
        f"img_{i:02d}": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(n_images)
    }
    a = [f"img_{i % n_images:02d}" for i in range(n_pairs)]
    b = [f"img_{(i * 2 + 1) % n_images:02d}" for i in range(n_pairs)]
    return BatchSpec(
        name="batch-1",
        ids=np.array([f"q{i:03d}" for i in range(n_pairs)]),
        attribute=np.array(["smile" if i % 2 else "open, wide" for i in range(n_pairs)]),
        a=np.array(a),
        b=np.array(b),
        images=images,
        definitions={
            "smile": 'how much "the person" smiles — 笑',
            "open, wide": "mouth open\nor not",
        },
    )


def make_votes(batch: BatchSpec, annotators: list[str]) -> list[Vote]:
    """Three or four votes per pair covering every answer, confidence level and rationale."""
    answers = (MORE_A, MORE_B, EQUAL, REJECT)
    confs = (1.0, 0.5, 0.0)
    votes = []
    k = 0
    for i, pair_id in enumerate(batch.ids.tolist()):
        for who in annotators[: 3 + i % 2]:
            rationale = RATIONALES[k % len(RATIONALES)]
            votes.append(Vote(pair_id, who, answers[k % 4], confs[k % 3], rationale))
            k += 1
    return votes


def sorted_records(table: VoteTable) -> list[Vote]:
    return sorted(table.records(), key=lambda v: (v.pair_id, v.annotator))


def decode_url(url: str, folder: Path, base: str | None = None) -> np.ndarray:
    """The (H, W, 3) image a task shows: a PNG data URI, or a file under ``folder/images``."""
    if url.startswith("data:image/png;base64,"):
        data = base64.b64decode(url.split(",", 1)[1])
    else:
        assert base is not None and url.startswith(base)
        data = (folder / "images" / url[len(base) :]).read_bytes()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def left_is_a(batch: BatchSpec, pair_id: str, left: np.ndarray, right: np.ndarray) -> bool:
    """Which way round the task was shown, found from the pixels alone."""
    i = batch.ids.tolist().index(pair_id)
    img_a, img_b = batch.images[str(batch.a[i])], batch.images[str(batch.b[i])]
    if np.array_equal(left, img_a) and np.array_equal(right, img_b):
        return True
    assert np.array_equal(left, img_b) and np.array_equal(right, img_a)
    return False


def shown_token(vote: Vote, a_on_left: bool) -> str:
    """The answer a person clicks, in left/right terms, to cast ``vote``."""
    answer = vote.answer
    if not a_on_left and answer in (MORE_A, MORE_B):
        answer = -answer
    return LEFT_TOKEN[answer]


def ls_result(name: str, value: dict[str, Any]) -> dict[str, Any]:
    kind = "textarea" if "text" in value else "choices"
    return {"id": f"r-{name}", "from_name": name, "to_name": "left", "type": kind, "value": value}


def ls_export(folder: Path, batch: BatchSpec, votes: list[Vote]) -> list[dict[str, Any]]:
    """What Label Studio's JSON export holds after people cast ``votes`` on the tasks."""
    tasks = json.loads((folder / "tasks.json").read_text(encoding="utf-8"))
    out = []
    for n, task in enumerate(tasks):
        data = task["data"]
        left, right = (
            decode_url(data["image_left"], folder),
            decode_url(data["image_right"], folder),
        )
        a_on_left = left_is_a(batch, data["pair_id"], left, right)
        annotations: list[dict[str, Any]] = []
        for v in votes:
            if v.pair_id != data["pair_id"]:
                continue
            user = v.annotator.removeprefix("ls:")
            # Label Studio writes completed_by as an id, or (older versions) a user object
            completed_by: Any = int(user) if user.isdigit() else {"email": user}
            if user == "12":
                completed_by = {"id": 12, "email": "twelve@example.org", "first_name": "T"}
            result = [
                ls_result("comparison", {"choices": [shown_token(v, a_on_left)]}),
                ls_result("confidence", {"choices": [CONF_TOKEN[v.confidence]]}),
            ]
            if v.rationale:  # an empty TextArea leaves no result at all
                result.append(ls_result("rationale", {"text": [v.rationale]}))
            annotations.append(
                {
                    "id": 1000 + len(annotations),
                    "completed_by": completed_by,
                    "result": result,
                    "was_cancelled": False,
                    "ground_truth": False,
                    "lead_time": 3.5,
                    "task": 100 + n,
                }
            )
        # a skipped task: cancelled, with no answers
        annotations.append({"id": 9, "completed_by": 99, "result": [], "was_cancelled": True})
        out.append(
            {
                "id": 100 + n,
                "data": data,
                "annotations": annotations,
                "predictions": [],
                "drafts": [],
                "project": 4,
            }
        )
    return out


MTURK_HEAD = (
    "HITId",
    "HITTypeId",
    "Title",
    "Reward",
    "AssignmentId",
    "WorkerId",
    "AssignmentStatus",
    "WorkTimeInSeconds",
)


def mturk_results(
    folder: Path,
    batch: BatchSpec,
    votes: list[Vote],
    *,
    radio: bool = False,
    rejected: int = 0,
    base: str | None = None,
) -> list[dict[str, str]]:
    """The rows of MTurk's batch results CSV after workers cast ``votes``; ``radio``: answers
    in crowd-html's one-column-per-value shape; ``rejected`` extra rejected assignments."""
    with open(folder / "input.csv", newline="", encoding="utf-8") as fh:
        inputs = list(csv.DictReader(fh))
    rows = []
    for hit, inp in enumerate(inputs):
        left = decode_url(inp["image_left_url"], folder, base)
        right = decode_url(inp["image_right_url"], folder, base)
        a_on_left = left_is_a(batch, inp["pair_id"], left, right)
        pair_votes = [v for v in votes if v.pair_id == inp["pair_id"]]
        junk = Vote(inp["pair_id"], "mturk:SPAMMER", MORE_A, 1.0, "x")
        for k, v in enumerate(pair_votes + [junk] * (rejected if hit == 0 else 0)):
            row = {
                "HITId": f"3HIT{hit}",
                "HITTypeId": "3TYPE",
                "Title": "Compare two images",
                "Reward": "$0.05",
                "AssignmentId": f"3AS{hit}_{k}",
                "WorkerId": v.annotator.removeprefix("mturk:"),
                "AssignmentStatus": "Rejected" if k >= len(pair_votes) else "Submitted",
                "WorkTimeInSeconds": "31",
            }
            row.update({f"Input.{c}": value for c, value in inp.items()})
            comparison, confidence = shown_token(v, a_on_left), CONF_TOKEN[v.confidence]
            if radio:
                row.update(
                    {
                        f"Answer.comparison.{t}": str(t == comparison).lower()
                        for t in LEFT_TOKEN.values()
                    }
                )
                row.update(
                    {
                        f"Answer.confidence.{t}": str(t == confidence).lower()
                        for t in CONF_TOKEN.values()
                    }
                )
            else:
                row["Answer.comparison"], row["Answer.confidence"] = comparison, confidence
            row["Answer.rationale"] = v.rationale
            row["Approve"], row["Reject"] = "", ""
            rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    """MTurk writes every field quoted, CRLF line ends."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def batch() -> BatchSpec:
    return make_batch()


LS_USERS = ["ls:7", "ls:12", "ls:annotator@example.org", "ls:3"]
MTURK_USERS = ["mturk:A1B2C3D4E5", "mturk:AZZ9", "mturk:A7QQ", "mturk:A0"]


# ---- the shared mapping --------------------------------------------------------------------


def test_answer_from_display_flips_only_the_direction_when_swapped() -> None:
    assert [answer_from_display(t, False) for t in LEFT_TOKEN.values()] == [1, 0, -1, REJECT]
    assert [answer_from_display(t, True) for t in LEFT_TOKEN.values()] == [-1, 0, 1, REJECT]
    for answer in (MORE_A, MORE_B, EQUAL, REJECT):
        for swapped in (False, True):
            assert answer_from_display(display_from_answer(answer, swapped), swapped) == answer
    with pytest.raises(ValueError, match="left_much_more"):
        answer_from_display("left_much_more", False)


# ---- round trips ---------------------------------------------------------------------------


def test_label_studio_round_trip_is_exact(batch: BatchSpec, tmp_path: Path) -> None:
    votes = make_votes(batch, LS_USERS)
    assert {v.answer for v in votes} == {MORE_A, MORE_B, EQUAL, REJECT}
    assert {v.confidence for v in votes} == {0.0, 0.5, 1.0}
    folder = export_label_studio(batch, tmp_path / "ls", seed=5)
    export = tmp_path / "export.json"
    export.write_text(json.dumps(ls_export(folder, batch, votes)), encoding="utf-8")
    imported = import_label_studio(export)
    assert sorted_records(imported) == sorted(votes, key=lambda v: (v.pair_id, v.annotator))
    assert imported.confidence.dtype == np.float32


def test_label_studio_export_carries_aggregated_labels(batch: BatchSpec, tmp_path: Path) -> None:
    illegible = [(str(batch.ids[0]), f"r{i}", REJECT, 1.0, "") for i in range(9)]
    votes = VoteTable.from_records([*make_votes(batch, LS_USERS), *illegible])
    labels = aggregate("majority", votes, batch.ids, min_agreement=0.0)
    folder = export_label_studio(batch, tmp_path / "ls", seed=3, labels=labels)
    tasks = json.loads((folder / "tasks.json").read_text())
    accepted = {str(p): i for i, p in enumerate(labels.pair_ids) if labels.status[i] == "accepted"}
    assert accepted and len(accepted) < len(batch)  # some pairs were rejected as illegible
    for task in tasks:
        pair = task["data"]["pair_id"]
        if pair not in accepted:
            assert "annotations" not in task
            continue
        (annotation,) = task["annotations"]
        assert annotation["completed_by"] == AGGREGATED_BY
        rationale = annotation["result"][2]["value"]["text"][0]
        assert rationale.startswith("aggregated from ")
    # read back as Label Studio would export it: the aggregated label, a/b orientation restored
    back = import_label_studio(folder / "tasks.json")
    assert len(back) == len(accepted)
    for vote in back.records():
        assert vote.annotator == f"ls:{AGGREGATED_BY}"
        assert vote.answer == int(labels.label[accepted[vote.pair_id]])


@pytest.mark.parametrize("radio", [False, True], ids=["flat", "radio-columns"])
def test_mturk_round_trip_is_exact(batch: BatchSpec, tmp_path: Path, radio: bool) -> None:
    votes = make_votes(batch, MTURK_USERS)
    folder = export_mturk(batch, tmp_path / "mt", seed=5)
    results = write_csv(
        tmp_path / "Batch_123_batch_results.csv",
        mturk_results(folder, batch, votes, radio=radio, rejected=2),
    )
    imported = import_mturk(results)
    # the rejected assignments are left out
    assert sorted_records(imported) == sorted(votes, key=lambda v: (v.pair_id, v.annotator))


def test_mturk_results_with_bom_and_approved_rows(batch: BatchSpec, tmp_path: Path) -> None:
    votes = make_votes(batch, MTURK_USERS)[:5]
    folder = export_mturk(batch, tmp_path / "mt")
    rows = mturk_results(folder, batch, votes)
    for row in rows:
        row["AssignmentStatus"] = "Approved"
    path = write_csv(tmp_path / "r.csv", rows)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # a spreadsheet's BOM
    assert sorted_records(import_mturk(path)) == sorted(votes)


def test_label_studio_display_text_instead_of_alias(batch: BatchSpec, tmp_path: Path) -> None:
    """Without alias support an export carries the choice's shown text; it means the same."""
    folder = export_label_studio(batch, tmp_path / "ls", seed=1)
    config = ET.fromstring((folder / "config.xml").read_text(encoding="utf-8"))
    text_of = {c.get("alias"): c.get("value") for c in config.iter("Choice")}
    votes = make_votes(batch, LS_USERS)
    tasks = ls_export(folder, batch, votes)
    for task in tasks:
        for ann in task["annotations"]:
            for r in ann["result"]:
                if r["type"] == "choices":
                    r["value"]["choices"] = [text_of[r["value"]["choices"][0]]]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks), encoding="utf-8")
    assert sorted_records(import_label_studio(export)) == sorted(votes)


# ---- left/right swap -----------------------------------------------------------------------


def test_swapped_tasks_show_b_on_the_left_and_import_unswaps(
    batch: BatchSpec, tmp_path: Path
) -> None:
    folder = export_label_studio(batch, tmp_path / "ls", seed=0)
    tasks = json.loads((folder / "tasks.json").read_text(encoding="utf-8"))
    flags = [t["data"]["swapped"] for t in tasks]
    assert True in flags and False in flags  # the seed gives a mix
    for i, task in enumerate(tasks):
        data = task["data"]
        left = decode_url(data["image_left"], folder)
        right = decode_url(data["image_right"], folder)
        assert data["pair_id"] == batch.ids[i]
        assert left_is_a(batch, data["pair_id"], left, right) == (not data["swapped"])
    # one person says "left is more" on every task: on swapped tasks that means b is more
    export = [
        {
            "id": i,
            "data": t["data"],
            "annotations": [
                {
                    "completed_by": 1,
                    "result": [
                        ls_result("comparison", {"choices": ["left_more"]}),
                        ls_result("confidence", {"choices": ["very"]}),
                    ],
                }
            ],
        }
        for i, t in enumerate(tasks)
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export), encoding="utf-8")
    table = import_label_studio(path)
    expected = np.where(flags, MORE_B, MORE_A)
    np.testing.assert_array_equal(table.answer, expected)


def test_swaps_are_seeded_and_shared_by_both_formats(batch: BatchSpec, tmp_path: Path) -> None:
    def ls_flags(seed: int, name: str) -> list[bool]:
        folder = export_label_studio(batch, tmp_path / name, seed=seed)
        return [t["data"]["swapped"] for t in json.loads((folder / "tasks.json").read_text())]

    with open(export_mturk(batch, tmp_path / "mt", seed=4) / "input.csv", newline="") as fh:
        mturk = [r["swapped"] == "true" for r in csv.DictReader(fh)]
    assert ls_flags(4, "x") == ls_flags(4, "y") == mturk
    assert any(ls_flags(s, f"s{s}") != mturk for s in range(5, 9))


# ---- images --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["ls", "mturk"])
def test_image_base_url_writes_png_files(batch: BatchSpec, tmp_path: Path, fmt: str) -> None:
    base = "https://cdn.example.org/batches/b1/"
    export = export_label_studio if fmt == "ls" else export_mturk
    folder = export(batch, tmp_path / fmt, seed=2, image_base_url=base)
    used = set(batch.a.tolist()) | set(batch.b.tolist())
    assert {p.name for p in (folder / "images").iterdir()} == {f"{k}.png" for k in used}
    for key in used:
        decoded = np.asarray(Image.open(folder / "images" / f"{key}.png"))
        np.testing.assert_array_equal(decoded, batch.images[key])
    if fmt == "ls":
        rows = [t["data"] for t in json.loads((folder / "tasks.json").read_text())]
        lefts = [(r["pair_id"], r["image_left"], r["image_right"], r["swapped"]) for r in rows]
    else:
        with open(folder / "input.csv", newline="") as fh:
            lefts = [
                (r["pair_id"], r["image_left_url"], r["image_right_url"], r["swapped"] == "true")
                for r in csv.DictReader(fh)
            ]
    for i, (pair_id, left, right, swapped) in enumerate(lefts):
        assert pair_id == batch.ids[i]
        a_url, b_url = f"{base}{batch.a[i]}.png", f"{base}{batch.b[i]}.png"
        assert (left, right) == ((b_url, a_url) if swapped else (a_url, b_url))
    if fmt == "mturk":  # and the round trip still holds with URLs
        votes = make_votes(batch, MTURK_USERS)
        results = write_csv(tmp_path / "r.csv", mturk_results(folder, batch, votes, base=base))
        assert sorted_records(import_mturk(results)) == sorted(votes)


def test_embedded_images_decode_to_the_arrays(batch: BatchSpec, tmp_path: Path) -> None:
    folder = export_mturk(batch, tmp_path / "mt")
    assert not (folder / "images").exists()
    with open(folder / "input.csv", newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        assert next(reader) == [
            "pair_id",
            "attribute",
            "definition",
            "image_left_url",
            "image_right_url",
            "swapped",
            "batch",
        ]
        rows = list(reader)
    assert len(rows) == len(batch)
    for i, row in enumerate(rows):
        assert row[1] == batch.attribute[i] and row[6] == "batch-1"
        assert row[2] == batch.definitions[row[1]]  # commas, quotes and newlines survive
        left, right = decode_url(row[3], folder), decode_url(row[4], folder)
        left_is_a(batch, row[0], left, right)


def test_bad_image_base_url_or_id_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    batch = make_batch()
    with pytest.raises(DataError, match="end with '/'") as err:
        export_label_studio(batch, tmp_path / "a", image_base_url="https://host/path")
    assert err.value.field == "image_base_url"
    assert not (tmp_path / "a").exists()
    images = {"a/../x": batch.images["img_00"], "b c": batch.images["img_01"]}
    odd = BatchSpec("odd", ["p"], ["smile"], ["a/../x"], ["b c"], images)
    with pytest.raises(DataError, match="file name") as err:
        export_mturk(odd, tmp_path / "b", image_base_url="https://host/")
    assert err.value.field == "images"
    assert not (tmp_path / "b").exists()
    export_mturk(odd, tmp_path / "b")  # embedded, any id is fine


# ---- the task pages ------------------------------------------------------------------------


def test_label_studio_config_asks_the_whole_question(batch: BatchSpec, tmp_path: Path) -> None:
    folder = export_label_studio(batch, tmp_path / "ls")
    root = ET.fromstring((folder / "config.xml").read_text(encoding="utf-8"))
    assert root.tag == "View"
    images = {i.get("name"): i.get("value") for i in root.iter("Image")}
    assert images == {"left": "$image_left", "right": "$image_right"}
    choices = {c.get("name"): c for c in root.iter("Choices")}
    assert set(choices) == {"comparison", "confidence"}
    comparison = [c.get("alias") for c in choices["comparison"].iter("Choice")]
    assert comparison == ["left_more", "equal", "left_less", "illegible"]
    shown = [c.get("value") for c in choices["comparison"].iter("Choice")]
    assert any("can't tell" in s.lower() for s in shown)
    assert [c.get("alias") for c in choices["confidence"].iter("Choice")] == [
        "very",
        "somewhat",
        "not",
    ]
    for c in choices.values():
        assert c.get("choice") in ("single", "single-radio") and c.get("required") == "true"
    (textarea,) = root.iter("TextArea")
    assert textarea.get("name") == "rationale"
    # every control labels a shown image, every $variable is a task field
    for control in [*choices.values(), textarea]:
        assert control.get("toName") in images
    data = json.loads((folder / "tasks.json").read_text(encoding="utf-8"))[0]["data"]
    assert set(data) == {
        "pair_id",
        "attribute",
        "definition",
        "image_left",
        "image_right",
        "swapped",
        "batch",
    }
    variables = set(re.findall(r"\$(\w+)", (folder / "config.xml").read_text()))
    assert "attribute" in variables and variables <= set(data)


class _Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_mturk_layout_has_the_inputs_the_importer_reads(batch: BatchSpec, tmp_path: Path) -> None:
    folder = export_mturk(batch, tmp_path / "mt")
    layout = (folder / "layout.html").read_text(encoding="utf-8")
    parser = _Inputs()
    parser.feed(layout)
    tags = parser.tags
    assert any(tag == "crowd-form" for tag, _ in tags)
    radios: dict[str, list[str | None]] = {}
    for tag, attrs in tags:
        if tag == "input" and attrs.get("type") == "radio":
            radios.setdefault(str(attrs["name"]), []).append(attrs.get("value"))
    assert radios == {
        "comparison": ["left_more", "equal", "left_less", "illegible"],
        "confidence": ["very", "somewhat", "not"],
    }
    assert any(a.get("name") == "rationale" for _, a in tags)
    with open(folder / "input.csv", newline="") as fh:
        columns = next(csv.reader(fh))
    placeholders = set(re.findall(r"\$\{(\w+)\}", layout))
    assert {"attribute", "image_left_url", "image_right_url"} <= placeholders <= set(columns)


# ---- output folders ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["ls", "mturk"])
def test_existing_folder_is_not_overwritten(batch: BatchSpec, tmp_path: Path, fmt: str) -> None:
    export = export_label_studio if fmt == "ls" else export_mturk
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        export(batch, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    export(batch, out, overwrite=True)
    assert not (out / "keep.txt").exists()
    assert len(list(out.iterdir())) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folders left


# ---- bad Label Studio exports --------------------------------------------------------------


def _drop(results: list[dict[str, Any]], name: str) -> None:
    results[:] = [r for r in results if r["from_name"] != name]


def _choice(results: list[dict[str, Any]], name: str, value: list[Any]) -> None:
    next(r for r in results if r["from_name"] == name)["value"]["choices"] = value


LS_BAD = {
    "no comparison": (lambda t: _drop(t["annotations"][0]["result"], "comparison"), "comparison"),
    "unknown choice": (
        lambda t: _choice(t["annotations"][0]["result"], "comparison", ["much more"]),
        "comparison",
    ),
    "two choices": (
        lambda t: _choice(t["annotations"][0]["result"], "comparison", ["equal", "left_more"]),
        "comparison",
    ),
    "no confidence": (lambda t: _drop(t["annotations"][0]["result"], "confidence"), "confidence"),
    "bad confidence": (
        lambda t: _choice(t["annotations"][0]["result"], "confidence", ["totally"]),
        "confidence",
    ),
    "no pair_id": (lambda t: t["data"].pop("pair_id"), "pair_id"),
    "no swapped": (lambda t: t["data"].pop("swapped"), "swapped"),
    "bad swapped": (lambda t: t["data"].update(swapped="maybe"), "swapped"),
    "no annotator": (lambda t: t["annotations"][0].pop("completed_by"), "completed_by"),
    "result not a list": (lambda t: t["annotations"][0].update(result={}), "result"),
    "no data": (lambda t: t.pop("data"), "data"),
}


@pytest.mark.parametrize("case", list(LS_BAD))
def test_bad_label_studio_task_names_file_task_and_field(
    batch: BatchSpec, tmp_path: Path, case: str
) -> None:
    folder = export_label_studio(batch, tmp_path / "ls")
    tasks = ls_export(folder, batch, make_votes(batch, LS_USERS))
    mutate, field = LS_BAD[case]
    good = copy.deepcopy(tasks)
    mutate(tasks[2])
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks), encoding="utf-8")
    with pytest.raises(DataError) as err:
        import_label_studio(path)
    assert err.value.path == path
    assert err.value.field == field
    assert "task 2 (id 102)" in str(err.value) and str(path) in str(err.value)
    path.write_text(json.dumps(good), encoding="utf-8")
    import_label_studio(path)  # the unmutated export is fine


def test_cancelled_annotation_may_be_incomplete(batch: BatchSpec, tmp_path: Path) -> None:
    folder = export_label_studio(batch, tmp_path / "ls")
    tasks = ls_export(folder, batch, [])
    assert all(a["was_cancelled"] and not a["result"] for t in tasks for a in t["annotations"])
    del tasks[0]["annotations"]  # a task nobody opened
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks), encoding="utf-8")
    assert len(import_label_studio(path)) == 0


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ('[{"data": {}},\n  {"oops"}]', 2, "not valid JSON"),
        ('{"data": {}}', None, "list of tasks"),
        ("", 1, "not valid JSON"),
    ],
)
def test_label_studio_file_that_is_not_an_export(
    tmp_path: Path, text: str, line: int | None, match: str
) -> None:
    path = tmp_path / "export.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=match) as err:
        import_label_studio(path)
    assert err.value.path == path and err.value.line == line


def test_label_studio_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read") as err:
        import_label_studio(tmp_path / "nope.json")
    assert err.value.path == tmp_path / "nope.json"


# ---- bad MTurk results ---------------------------------------------------------------------


def _results(batch: BatchSpec, tmp_path: Path, *, radio: bool = False) -> list[dict[str, str]]:
    """Results with one-line fields, so row k (0-based) is on file line k + 2."""
    votes = [v._replace(rationale="ok") for v in make_votes(batch, MTURK_USERS)]
    rows = mturk_results(export_mturk(batch, tmp_path / "mt"), batch, votes, radio=radio)
    for row in rows:
        row["Input.definition"] = "one line"
    return rows


MT_BAD = {
    "unknown comparison": ({"Answer.comparison": "sideways"}, False, "Answer.comparison"),
    "no comparison": ({"Answer.comparison": ""}, False, "Answer.comparison"),
    "no confidence": ({"Answer.confidence": ""}, False, "Answer.confidence"),
    "unknown confidence": ({"Answer.confidence": "very very"}, False, "Answer.confidence"),
    "bad swapped": ({"Input.swapped": "yes"}, False, "Input.swapped"),
    "no pair id": ({"Input.pair_id": ""}, False, "Input.pair_id"),
    "no worker": ({"WorkerId": ""}, False, "WorkerId"),
    "radio two true": ({"Answer.comparison.equal": "true"}, True, "Answer.comparison"),
    "radio none true": (
        {f"Answer.confidence.{t}": "false" for t in CONF_TOKEN.values()},
        True,
        "Answer.confidence",
    ),
    "radio bad flag": ({"Answer.comparison.equal": "maybe"}, True, "Answer.comparison.equal"),
}


@pytest.mark.parametrize("case", list(MT_BAD))
def test_bad_mturk_row_names_file_line_and_column(
    batch: BatchSpec, tmp_path: Path, case: str
) -> None:
    change, radio, column = MT_BAD[case]
    rows = _results(batch, tmp_path, radio=radio)
    if case == "radio two true":
        # make sure the row's own answer is not "equal", so two values are true
        k = next(k for k, r in enumerate(rows) if r["Answer.comparison.equal"] == "false")
    else:
        k = 3
    rows[k].update(change)
    path = write_csv(tmp_path / "results.csv", rows)
    with pytest.raises(DataError) as err:
        import_mturk(path)
    assert (err.value.path, err.value.line, err.value.field) == (path, k + 2, column)
    assert str(path) in str(err.value) and f"line {k + 2}" in str(err.value)


def test_mturk_line_numbers_count_multiline_rationales(batch: BatchSpec, tmp_path: Path) -> None:
    rows = _results(batch, tmp_path)
    rows[0]["Answer.rationale"] = "one\ntwo\nthree"
    rows[1]["Answer.comparison"] = "?"
    path = write_csv(tmp_path / "results.csv", rows)
    with pytest.raises(DataError) as err:
        import_mturk(path)
    assert err.value.line == 5  # header, a three-line row, then the bad row


@pytest.mark.parametrize(
    ("drop", "field"),
    [
        ("Input.swapped", None),
        ("WorkerId", None),
        ("Answer.comparison", "Answer.comparison"),
        ("Answer.confidence", "Answer.confidence"),
    ],
)
def test_mturk_missing_column_is_reported_on_the_header(
    batch: BatchSpec, tmp_path: Path, drop: str, field: str | None
) -> None:
    rows = _results(batch, tmp_path)
    for row in rows:
        del row[drop]
    path = write_csv(tmp_path / "results.csv", rows)
    with pytest.raises(DataError, match=re.escape(drop)) as err:
        import_mturk(path)
    assert (err.value.path, err.value.line, err.value.field) == (path, 1, field)


def test_mturk_short_row_and_bad_files(batch: BatchSpec, tmp_path: Path) -> None:
    rows = _results(batch, tmp_path)
    path = write_csv(tmp_path / "results.csv", rows)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = '"only","three","fields"\r\n'
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(DataError, match="fields") as err:
        import_mturk(path)
    assert (err.value.path, err.value.line) == (path, 3)
    with pytest.raises(DataError, match="does not exist"):
        import_mturk(tmp_path / "missing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="empty file") as err:
        import_mturk(empty)
    assert err.value.path == empty
