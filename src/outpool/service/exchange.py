"""Hand a batch to people on Label Studio or Amazon Mechanical Turk, and read their answers back.

Both tools show the task of the ATTIC paper (Fig. 10): two images side by side, "is the left
image more, equally or less <attribute> than the right one?", how confident the annotator is,
a short rationale, and "can't tell what this is" for an illegible pair.

Which image is shown on the left is randomised per pair (seeded), so a habit of favouring one
side does not become a bias towards ``a``; the swap is written into every task, and the
importers map the displayed answer back to the pair's own orientation (+1 always means image
``a`` shows more). Both formats use the same answer tokens (``left_more``, ``equal``,
``left_less``, ``illegible``; confidence ``very``, ``somewhat``, ``not``) and one mapping,
``votes.answer_from_display``.

Files written:

- Label Studio: ``tasks.json`` (a list of ``{"data": {pair_id, attribute, definition,
  image_left, image_right, swapped, batch}}``) and ``config.xml`` (the labelling config).
  Import a project's JSON export with ``import_label_studio``.
- MTurk: ``input.csv`` (``pair_id,attribute,definition,image_left_url,image_right_url,
  swapped,batch``) and ``layout.html`` (a crowd-html-elements HIT layout). Import the batch
  results CSV with ``import_mturk``.

Images are embedded as PNG data URIs by default, so an export needs no web server; with
``image_base_url`` they are written to ``images/<image id>.png`` instead, for the user to
upload to that URL.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from outpool.annotate.protocol import LabelResult
from outpool.annotate.votes import (
    COLUMNS as VOTE_COLUMNS,
)
from outpool.annotate.votes import (
    CONFIDENCE_LEVELS,
    DISPLAY_CHOICES,
    Vote,
    VoteTable,
    answer_from_display,
    display_from_answer,
)
from outpool.data.images import read_header, read_rows
from outpool.errors import DataError
from outpool.fileio import atomic_dir, atomic_path, json_text, sheet_safe
from outpool.service.batch import BatchSpec, encode_png

# Displayed answer token -> text shown to people. The tokens (``votes.DISPLAY_CHOICES`` and
# ``votes.CONFIDENCE_LEVELS``) are what both tools export (Label Studio through each Choice's
# alias); ``votes.answer_from_display`` maps them back to the pair's own orientation.
COMPARISON: Mapping[str, str] = {
    "left_more": "Left image: more",
    "equal": "About equal",
    "left_less": "Left image: less",
    "illegible": "Can't tell what this is",
}
CONFIDENCE: Mapping[str, str] = {
    "very": "Very confident",
    "somewhat": "Somewhat confident",
    "not": "Not confident",
}
assert tuple(COMPARISON) == DISPLAY_CHOICES and set(CONFIDENCE) == set(CONFIDENCE_LEVELS)

LS_TASKS, LS_CONFIG = "tasks.json", "config.xml"
MTURK_INPUT, MTURK_LAYOUT = "input.csv", "layout.html"
MTURK_COLUMNS = (
    "pair_id",
    "attribute",
    "definition",
    "image_left_url",
    "image_right_url",
    "swapped",
    "batch",
)
IMAGE_DIR = "images"
# the task fields written as input.csv's first five columns
_TASK_KEYS = ("pair_id", "attribute", "definition", "image_left", "image_right")
_MTURK_REQUIRED = ("WorkerId", "AssignmentStatus", "Input.pair_id", "Input.swapped")
# _vote's field names -> the results CSV's columns
_MTURK_COLUMN = {
    "pair_id": "Input.pair_id",
    "swapped": "Input.swapped",
    "comparison": "Answer.comparison",
    "confidence": "Answer.confidence",
}
_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # usable as a file name and in a URL


class _Bad(Exception):
    """A bad value in one record; each importer adds the file and where in it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# Label Studio may export a Choice's alias (our token) or, without alias support, its text.
_COMPARISON_TEXT = {**{t: t for t in COMPARISON}, **{v: t for t, v in COMPARISON.items()}}
_CONFIDENCE_TEXT = {**{t: t for t in CONFIDENCE}, **{v: t for t, v in CONFIDENCE.items()}}


def _vote(
    pair_id: str,
    annotator: str,
    swapped: bool,
    comparison: str | None,
    confidence: str | None,
    rationale: str,
) -> Vote:
    """One vote from the displayed tokens (``None``: not answered); ``_Bad`` when invalid."""
    if not pair_id:
        raise _Bad("pair_id", "missing pair id")
    if comparison is None or comparison == "":
        raise _Bad("comparison", "no comparison answer")
    if comparison not in _COMPARISON_TEXT:
        raise _Bad("comparison", f"unknown answer {comparison!r}; expected {', '.join(COMPARISON)}")
    if confidence is None or confidence == "":
        raise _Bad("confidence", "no confidence answer")
    if confidence not in _CONFIDENCE_TEXT:
        raise _Bad("confidence", f"unknown answer {confidence!r}; expected {', '.join(CONFIDENCE)}")
    answer = answer_from_display(_COMPARISON_TEXT[comparison], swapped)
    return Vote(
        pair_id, annotator, answer, CONFIDENCE_LEVELS[_CONFIDENCE_TEXT[confidence]], rationale
    )


def _swapped(value: object) -> bool:
    """A task's swap flag: JSON true/false (or 0/1), or the CSV text true/false/1/0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise _Bad("swapped", f"must be true or false, got {value!r}")


# ---- export --------------------------------------------------------------------------------


def swap_sides(n_pairs: int, seed: int) -> np.ndarray:
    """(n_pairs,) bool: True where image b is shown on the left; a fair coin per pair."""
    return np.random.default_rng(seed).random(n_pairs) < 0.5


def _image_urls(batch: BatchSpec, out: Path, image_base_url: str | None) -> dict[str, str]:
    """Image id -> what a task shows: a data URI, or (writing the PNGs into ``out/images``)
    ``image_base_url + id + ".png"``. Each image is encoded once however many pairs use it."""
    used = list(dict.fromkeys([*batch.a.tolist(), *batch.b.tolist()]))
    if image_base_url is None:
        return {
            key: "data:image/png;base64," + base64.b64encode(encode_png(batch.images[key])).decode()
            for key in used
        }
    if not image_base_url.endswith("/"):
        # Plain concatenation would silently give https://host/pathimg.png.
        raise DataError(f"must end with '/', got {image_base_url!r}", field="image_base_url")
    bad = [key for key in used if not _SAFE_ID.fullmatch(key)]
    if bad:
        raise DataError(
            f"image id {bad[0]!r} cannot be a file name (letters, digits, _ . - only); "
            "leave image_base_url out to embed the images",
            field="images",
        )
    (out / IMAGE_DIR).mkdir()
    for key in used:
        (out / IMAGE_DIR / f"{key}.png").write_bytes(encode_png(batch.images[key]))
    return {key: f"{image_base_url}{key}.png" for key in used}


def _tasks(batch: BatchSpec, urls: Mapping[str, str], seed: int) -> Iterator[dict[str, Any]]:
    """One dict per pair: what a person is shown, left/right after the seeded swap."""
    swapped = swap_sides(len(batch), seed)
    for i in range(len(batch)):
        a, b = str(batch.a[i]), str(batch.b[i])
        left, right = (b, a) if swapped[i] else (a, b)
        attribute = str(batch.attribute[i])
        yield {
            "pair_id": str(batch.ids[i]),
            "attribute": attribute,
            "definition": batch.definitions.get(attribute, ""),
            "image_left": urls[left],
            "image_right": urls[right],
            "swapped": bool(swapped[i]),
            "batch": batch.name,
        }


def label_studio_config() -> str:
    """The Label Studio labelling config (XML) for ``tasks.json``'s fields."""
    view = ET.Element("View")
    ET.SubElement(
        view, "Header", value="Is the LEFT image more, equally or less $attribute than the right?"
    )
    ET.SubElement(view, "Header", value="$definition", size="6")
    pair = ET.SubElement(view, "View", style="display: flex; gap: 1em;")
    ET.SubElement(pair, "Image", name="left", value="$image_left")
    ET.SubElement(pair, "Image", name="right", value="$image_right")
    for name, table, title in (
        ("comparison", COMPARISON, "The left image is ..."),
        ("confidence", CONFIDENCE, "How confident are you?"),
    ):
        ET.SubElement(view, "Header", value=title, size="5")
        choices = ET.SubElement(
            view, "Choices", name=name, toName="left", choice="single-radio", required="true"
        )
        for token, text in table.items():
            # alias: the export carries the stable token, not the wording shown
            ET.SubElement(choices, "Choice", value=text, alias=token)
    ET.SubElement(view, "Header", value="Why? (one short sentence)", size="5")
    ET.SubElement(
        view,
        "TextArea",
        name="rationale",
        toName="left",
        required="true",
        maxSubmissions="1",
        rows="2",
        editable="true",
    )
    ET.indent(view)
    return ET.tostring(view, encoding="unicode") + "\n"


AGGREGATED_BY = "outpool-aggregate"  # the annotator of an aggregated label in Label Studio


def aggregated_annotation(label: int, agreement: float, votes: int, swapped: bool) -> dict:
    """A Label Studio annotation holding an aggregated label: the comparison as the task shows
    it (left/right after the swap), a confidence from the agreement (all votes agree: very; at
    least two thirds: somewhat; else not), and a rationale that says it was aggregated."""
    choice = display_from_answer(label, swapped)
    level = "very" if agreement >= 1.0 else "somewhat" if agreement >= 2 / 3 else "not"
    text = f"aggregated from {votes} votes ({100 * agreement:.0f}% agree)"
    region = {"to_name": "left", "type": "choices"}
    return {
        "completed_by": AGGREGATED_BY,
        "result": [
            {**region, "from_name": "comparison", "value": {"choices": [COMPARISON[choice]]}},
            {**region, "from_name": "confidence", "value": {"choices": [CONFIDENCE[level]]}},
            {"from_name": "rationale", "to_name": "left", "type": "textarea",
             "value": {"text": [text]}},
        ],
    }  # fmt: skip


def export_label_studio(
    batch: BatchSpec,
    out_dir: str | Path,
    *,
    seed: int = 0,
    image_base_url: str | None = None,
    overwrite: bool = False,
    labels: LabelResult | None = None,
) -> Path:
    """Write ``tasks.json`` and ``config.xml`` (and ``images/`` with ``image_base_url``) into
    ``out_dir``, atomically; a non-empty ``out_dir`` is an error unless ``overwrite``. With
    ``labels`` (a stored batch's aggregated votes), each pair with an accepted label carries it
    as an annotation by ``AGGREGATED_BY``, to review or correct in Label Studio. Returns
    ``out_dir``."""
    accepted: dict[str, dict[str, Any]] = {}
    if labels is not None:
        for i, pair in enumerate(labels.pair_ids.tolist()):
            if labels.status[i] == "accepted":
                accepted[str(pair)] = {
                    "label": int(labels.label[i]),
                    "agreement": float(labels.agreement[i]),
                    "votes": int((labels.votes.pair_id == pair).sum()),
                }
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        urls = _image_urls(batch, tmp, image_base_url)
        tasks: list[dict[str, Any]] = []
        for data in _tasks(batch, urls, seed):
            task: dict[str, Any] = {"data": data}
            found = accepted.get(data["pair_id"])
            if found is not None:
                task["annotations"] = [aggregated_annotation(**found, swapped=data["swapped"])]
            tasks.append(task)
        (tmp / LS_TASKS).write_text(
            json_text(tasks, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
        (tmp / LS_CONFIG).write_text(label_studio_config(), encoding="utf-8")
    return Path(out_dir)


def mturk_layout() -> str:
    """An MTurk HIT layout (crowd-html-elements) for ``input.csv``'s columns."""

    def radios(name: str, table: Mapping[str, str]) -> str:
        return "\n".join(
            f'  <label><input type="radio" name="{name}" value="{token}" required> '
            f"{html.escape(text)}</label><br>"
            for token, text in table.items()
        )

    return f"""<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form answer-format="flatten-objects">
  <h3>Is the LEFT image more, equally or less <b>${{attribute}}</b> than the right?</h3>
  <p><i>${{definition}}</i></p>
  <style>.pair img {{ width: 256px; image-rendering: pixelated; }}</style>
  <div class="pair" style="display: flex; gap: 1em;">
    <img src="${{image_left_url}}" alt="left image">
    <img src="${{image_right_url}}" alt="right image">
  </div>
  <p>The left image is ...</p>
{radios("comparison", COMPARISON)}
  <p>How confident are you?</p>
{radios("confidence", CONFIDENCE)}
  <p>Why? (one short sentence)</p>
  <crowd-text-area name="rationale" rows="2" required></crowd-text-area>
</crowd-form>
"""


def export_mturk(
    batch: BatchSpec,
    out_dir: str | Path,
    *,
    seed: int = 0,
    image_base_url: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``input.csv`` and ``layout.html`` (and ``images/`` with ``image_base_url``) into
    ``out_dir``, atomically; a non-empty ``out_dir`` is an error unless ``overwrite``.
    Returns ``out_dir``."""
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        urls = _image_urls(batch, tmp, image_base_url)
        with open(tmp / MTURK_INPUT, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(MTURK_COLUMNS)
            for t in _tasks(batch, urls, seed):
                swapped = "true" if t["swapped"] else "false"
                writer.writerow([*(t[c] for c in _TASK_KEYS), swapped, t["batch"]])
        (tmp / MTURK_LAYOUT).write_text(mturk_layout(), encoding="utf-8")
    return Path(out_dir)


# ---- import: Label Studio ------------------------------------------------------------------


def _ls_annotator(completed_by: object) -> str:
    """``ls:<user id>`` from an int id or a user object (its id, else its email)."""
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("id", completed_by.get("email"))
    if (
        isinstance(completed_by, bool)
        or not isinstance(completed_by, int | str)
        or (completed_by == "")
    ):
        raise _Bad("completed_by", f"no annotator id, got {completed_by!r}")
    return f"ls:{completed_by}"


def _ls_results(result: object) -> dict[str, dict[str, Any]]:
    """An annotation's result list, keyed by control name (``from_name``) -> its ``value``."""
    if not isinstance(result, list):
        raise _Bad("result", "must be a list")
    values: dict[str, dict[str, Any]] = {}
    for region in result:
        if not isinstance(region, dict) or not isinstance(region.get("value"), dict):
            raise _Bad("result", "each result must be an object with a 'value' object")
        name = str(region.get("from_name", ""))
        if name in values:
            raise _Bad(name, "answered twice in one annotation")
        values[name] = region["value"]
    return values


def _ls_choice(values: Mapping[str, dict[str, Any]], name: str) -> str | None:
    """The single choice of control ``name``, or None when it was not answered."""
    if name not in values:
        return None
    choices = values[name].get("choices")
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], str):
        raise _Bad(name, f"expected exactly one choice, got {choices!r}")
    return choices[0]


def _ls_text(values: Mapping[str, dict[str, Any]], name: str) -> str:
    """TextArea ``name``'s text ("" when empty); several submissions are joined by lines."""
    if name not in values:
        return ""
    text = values[name].get("text")
    if isinstance(text, str):
        return text
    if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
        raise _Bad(name, f"expected a list of strings, got {text!r}")
    return "\n".join(text)


def _ls_task_votes(task: object) -> list[Vote]:
    """The votes of one exported task; cancelled (skipped) annotations give none."""
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise _Bad("data", "each task must be an object with a 'data' object")
    data = task["data"]
    pair_id = data.get("pair_id")
    if not isinstance(pair_id, str) or not pair_id:
        raise _Bad("pair_id", "missing pair id (not a task exported by outpool?)")
    if "swapped" not in data:
        raise _Bad("swapped", "missing (not a task exported by outpool?)")
    swapped = _swapped(data["swapped"])
    annotations = task.get("annotations", [])
    if not isinstance(annotations, list):
        raise _Bad("annotations", "must be a list")
    votes = []
    for annotation in annotations:
        if not isinstance(annotation, dict):
            raise _Bad("annotations", "each annotation must be an object")
        if annotation.get("was_cancelled"):
            continue
        values = _ls_results(annotation.get("result", []))
        votes.append(
            _vote(
                pair_id,
                _ls_annotator(annotation.get("completed_by")),
                swapped,
                _ls_choice(values, "comparison"),
                _ls_choice(values, "confidence"),
                _ls_text(values, "rationale"),
            )
        )
    return votes


def import_label_studio(path: str | Path) -> VoteTable:
    """The votes in a Label Studio JSON export of a project made from ``export_label_studio``:
    one per completed (not skipped) annotation, annotator ``ls:<user id>``, answers in the
    pairs' own a/b orientation. Any bad task raises ``DataError`` naming the file, the task
    (its position and Label Studio id) and the field."""
    path = Path(path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise DataError(f"cannot read ({exc.strerror})", path=path) from None
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text", path=path) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg})", path=path, line=exc.lineno) from None
    if not isinstance(tasks, list):
        raise DataError("expected a list of tasks (Label Studio's JSON export)", path=path)
    votes: list[Vote] = []
    for index, task in enumerate(tasks):
        try:
            votes.extend(_ls_task_votes(task))
        except _Bad as bad:
            ls_id = task.get("id") if isinstance(task, dict) else None
            where = f"task {index}" + ("" if ls_id is None else f" (id {ls_id})")
            raise DataError(f"{where}: {bad.message}", path=path, field=bad.field) from None
    return VoteTable.from_records(votes)


# ---- import: MTurk -------------------------------------------------------------------------


def _mturk_answer(row: Mapping[str, str], name: str) -> str | None:
    """Question ``name``'s token from an ``Answer.<name>`` column or from crowd-html's
    one-column-per-value shape (``Answer.<name>.<token>`` = true/false); None if unanswered."""
    picked = [row[f"Answer.{name}"]] if row.get(f"Answer.{name}") else []
    prefix = f"Answer.{name}."
    for column, value in row.items():
        if column.startswith(prefix):
            flag = value.strip().lower()
            if flag not in ("true", "false", ""):
                raise _Bad(column, f"must be true or false, got {value!r}")
            if flag == "true":
                picked.append(column[len(prefix) :])
    if len(set(picked)) > 1:
        raise _Bad(f"Answer.{name}", f"several answers: {', '.join(sorted(set(picked)))}")
    return picked[0] if picked else None


def _mturk_row_vote(row: Mapping[str, str]) -> Vote | None:
    """The vote of one results row; None for a rejected assignment."""
    if row["AssignmentStatus"].strip() == "Rejected":
        return None
    if not row["WorkerId"]:
        raise _Bad("WorkerId", "must not be empty")
    try:
        return _vote(
            row["Input.pair_id"],
            f"mturk:{row['WorkerId']}",
            _swapped(row["Input.swapped"]),
            _mturk_answer(row, "comparison"),
            _mturk_answer(row, "confidence"),
            row.get("Answer.rationale", ""),
        )
    except _Bad as bad:  # name the CSV column, as a user sees it in the file
        raise _Bad(_MTURK_COLUMN.get(bad.field, bad.field), bad.message) from None


def import_mturk(path: str | Path) -> VoteTable:
    """The votes in an MTurk batch results CSV of a batch made from ``export_mturk``: one per
    assignment that is not rejected, annotator ``mturk:<WorkerId>``, answers in the pairs' own
    a/b orientation. Columns other than the ones read are ignored. Any bad row raises
    ``DataError`` naming the file, the line and the column."""
    path = Path(path)
    rows = iter(read_rows(path))
    header = read_header(path, rows, (), _MTURK_REQUIRED)
    for name in ("comparison", "confidence"):
        if not any(h == f"Answer.{name}" or h.startswith(f"Answer.{name}.") for h in header):
            raise DataError(
                f"no Answer.{name} column(s) (not the results of an outpool layout?)",
                path=path,
                line=1,
                field=f"Answer.{name}",
            )
    votes: list[Vote] = []
    for line, row in rows:
        if len(row) != len(header):
            raise DataError(f"expected {len(header)} fields, got {len(row)}", path=path, line=line)
        try:
            vote = _mturk_row_vote(dict(zip(header, row, strict=True)))
        except _Bad as bad:
            raise DataError(bad.message, path=path, line=line, field=bad.field) from None
        if vote is not None:
            votes.append(vote)
    return VoteTable.from_records(votes)


# ---- export: every stored field of a batch's votes ----------------------------------------

VOTE_RECORD_EXTRA = (
    "submission_id",
    "choice",
    "swapped",
    "is_check",
    "check_answer",
    "elapsed_ms",
    "created_at",
    "vote_id",
)


def export_vote_records(records: list[dict[str, Any]], path: str | Path) -> int:
    """Every vote of a batch (``AnnotationStore.vote_records``) as CSV: the vote file's five
    columns (``VoteTable.load`` reads it) then everything else the store keeps (the client's
    submission id, the choice as displayed and whether the sides were swapped, check pairs and
    their answers, time to answer, when). People's text is written so no spreadsheet runs it."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow((*VOTE_COLUMNS, *VOTE_RECORD_EXTRA))
        for r in records:
            conf = np.format_float_positional(np.float32(r["confidence"]), trim="-")
            base = (r["pair_id"], sheet_safe(str(r["annotator"])), r["answer"], conf)
            text = sheet_safe(str(r["rationale"]))
            extra = ["" if r[k] is None else r[k] for k in VOTE_RECORD_EXTRA]
            writer.writerow((*base, text, *extra))
    return len(records)
