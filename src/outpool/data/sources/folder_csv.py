"""Your own images: a folder of images plus a CSV of labelled pairs (and optional strengths).

Images
    ``images_root`` holds the images, in any sub-folders, any size and aspect ratio, JPEG or PNG
    (``.jpg``, ``.jpeg``, ``.png``, any case; names starting with ``.`` are skipped). Every such
    image is loaded, also those no pair names (they are the unlabelled pool; one of those that
    cannot be read is skipped with a warning). Each is made square by ``fit`` (``center``,
    ``top``, ``letterbox``: ``sources/images.py``), optionally cut to its ``crop`` fraction
    (0 < crop <= 1, relative to the square, never pixels), and resized to 64x64 RGB. An image's
    id is its path relative to ``images_root`` with ``/`` separators, e.g. ``shoes/red_01.jpg``.

Pairs CSV (``pairs_csv``), UTF-8 (a spreadsheet's BOM is fine), comma-separated, one header row::

    attribute,a,b,label,confidence,split
    sporty,shoes/red_01.jpg,shoes/boot_7.png,1,0.9,train
    sporty,shoes/boot_7.png,shoes/sandal.jpg,-1,,test

- ``attribute`` (required): the attribute's name, non-empty.
- ``a``, ``b`` (required): image paths relative to ``images_root`` (``/`` or ``\\``); they must
  name existing images and differ; no absolute paths or ``..``.
- ``label`` (required): ``1`` (or ``+1``): ``a`` shows the attribute more; ``-1``: ``b`` more;
  ``0``: equal.
- ``confidence`` (optional, default 1): a number in [0, 1].
- ``source`` (optional, default ``real``): ``real``, ``synthetic`` or ``pseudo``.
- ``round`` (optional, default 0): the labelling round, an integer >= 0.
- ``split`` (optional, default ``train``): ``train``, ``val`` or ``test``; the pair table it
  goes to.
- ``id`` (optional): a pair id, unique within its split; default ``p000000``, ``p000001``...
  per split.

Columns may come in any order; an unknown column is an error (a typo never silently does
nothing); an empty optional cell takes its default; blank lines are skipped.

Strengths CSV (``attributes_csv``, optional): header ``image,<attribute>,...``, one row per image
(a path as above) with a finite number per attribute. Those images form the image table
``generator`` (with strengths: what a generator pre-trains on; keep it disjoint from ranker test
images), all other images the table ``images``.

Rows that ask the same pair again, in either order, are merged or kept, and pairs answered
both ways kept out or kept, by the ``duplicates`` / ``conflicts`` policy (``data/duplicates.py``);
either is reported as a warning naming the CSV lines.

Every problem is a ``DataError`` naming the file, line and column, including a pair that names a
missing or corrupt image.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt

from outpool.data.dataset import AttributeInfo, Dataset
from outpool.data.duplicates import EXAMPLES, DuplicateReport, resolve, shared
from outpool.data.images import ImageTable, parse_float, read_header, read_rows
from outpool.data.pairs import PairTable, parse_label_fields
from outpool.data.sources.images import Origin, check_crop, check_fit, load_images_skipping
from outpool.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SPLITS = ("train", "val", "test")
REQUIRED = ("attribute", "a", "b", "label")
OPTIONAL = ("confidence", "source", "round", "split", "id")
_RESERVED = ("id", "group")  # image-table columns that cannot be attribute names


def scan_images(images_root: Path) -> list[str]:
    """Relative ``/`` paths of the JPEG/PNG files under ``images_root``, sorted."""
    if not images_root.is_dir():
        raise DataError("image folder does not exist", path=images_root)
    found = []
    for f in images_root.rglob("*"):
        rel = f.relative_to(images_root)
        if any(p.startswith(".") for p in rel.parts):
            continue
        if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
            if any(c in rel.as_posix() for c in ",\n\r"):  # the path is the id: no commas
                raise DataError("image file names cannot contain commas or line breaks", path=f)
            found.append(rel.as_posix())
    return sorted(found)


def _image_ref(text: str, images_root: Path, *, path: Path, line: int, field: str) -> str:
    """Normalised relative path of an image named in a CSV; it must exist."""
    raw = text.strip()
    rel = PurePosixPath(raw.replace("\\", "/"))
    if not raw or rel.is_absolute() or ".." in rel.parts or str(rel) == ".":
        raise DataError(
            f"image path {text!r} must be relative to the image folder (no '..')",
            path=path,
            line=line,
            field=field,
        )
    ref = rel.as_posix()
    if any(c in ref for c in ",\n\r"):
        raise DataError(
            f"image path {text!r} contains a comma or line break (ids cannot)",
            path=path,
            line=line,
            field=field,
        )
    if not (images_root / ref).is_file():
        raise DataError(
            f"pair names a missing image '{raw}'"
            if field in ("a", "b")
            else f"names a missing image '{raw}'",
            path=path,
            line=line,
            field=field,
        )
    return ref


def read_pairs_csv(
    pairs_csv: Path, images_root: Path
) -> tuple[dict[str, PairTable], dict[str, Origin], list[str], dict[str, list[int]]]:
    """The pair tables by split, the first line naming each image, the attribute names in
    order of first appearance, and each table's rows' line numbers."""
    path = Path(pairs_csv)
    rows = iter(read_rows(path))
    header = read_header(path, rows, (*REQUIRED, *OPTIONAL), REQUIRED)
    cols: dict[str, dict[str, list[Any]]] = {}
    origins: dict[str, Origin] = {}
    attributes: dict[str, None] = {}
    seen_ids: dict[str, dict[str, int]] = {}  # per split: each split is its own pair table
    for line, row in rows:
        if len(row) != len(header):
            raise DataError(f"{len(row)} fields, expected {len(header)}", path=path, line=line)
        rec = {h: v.strip() for h, v in zip(header, row, strict=True)}

        def fail(field: str, message: str, line: int = line) -> DataError:
            return DataError(message, path=path, line=line, field=field)

        attr = rec["attribute"]
        if not attr:
            raise fail("attribute", "empty attribute name")
        a = _image_ref(rec["a"], images_root, path=path, line=line, field="a")
        b = _image_ref(rec["b"], images_root, path=path, line=line, field="b")
        if a == b:
            raise fail("b", f"a and b are the same image '{a}'")
        label, conf, source, round_ = parse_label_fields(rec, path=path, line=line)
        split = rec.get("split") or "train"
        if split not in SPLITS:
            raise fail("split", f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        table = cols.setdefault(split, {c: [] for c in ("id", *REQUIRED, *OPTIONAL[:3], "line")})
        pair_id = rec.get("id") or f"p{len(table['id']):06d}"
        seen = seen_ids.setdefault(split, {})
        if pair_id in seen:
            raise fail("id", f"duplicate pair id '{pair_id}' (first on line {seen[pair_id]})")
        seen[pair_id] = line
        for key, value in (
            ("id", pair_id), ("attribute", attr), ("a", a), ("b", b), ("label", label),
            ("confidence", conf), ("source", source), ("round", round_), ("line", line),
        ):  # fmt: skip
            table[key].append(value)
        attributes[attr] = None
        origins.setdefault(a, (path, line))
        origins.setdefault(b, (path, line))
    tables = {"train": PairTable.empty()} if "train" not in cols else {}
    for split in SPLITS:
        if split in cols:
            c = cols[split]
            tables[split] = PairTable.build(
                ids=c["id"], attribute=c["attribute"], a=c["a"], b=c["b"], label=c["label"],
                confidence=c["confidence"], source=c["source"], round=c["round"],
            )  # fmt: skip
    lines = {split: cols[split]["line"] if split in cols else [] for split in tables}
    return tables, origins, list(attributes), lines


def resolve_duplicates(
    tables: dict[str, PairTable],
    lines: dict[str, list[int]],
    *,
    duplicates: str,
    conflicts: str,
) -> tuple[dict[str, PairTable], dict[str, dict[str, Any]]]:
    """Each split's table under the duplicates/conflicts policy (``data/duplicates.py``) plus a
    ``SPLIT_conflicts`` table of the conflicting rows kept out, and what was found per split."""
    out: dict[str, PairTable] = {}
    found: dict[str, dict[str, Any]] = {}
    for split, table in tables.items():
        where = [f"line {n}" for n in lines[split]]
        kept, conflicting, report = resolve(
            table, duplicates=duplicates, conflicts=conflicts, where=where.__getitem__
        )
        out[split] = kept
        if len(conflicting):
            out[f"{split}_conflicts"] = conflicting
        if report:
            found[split] = report.as_dict()
            warnings.warn(_describe(split, report, duplicates, conflicts), stacklevel=3)
    for earlier, later in itertools.combinations([s for s in SPLITS if s in tables], 2):
        rows, disagree = shared(tables[earlier], tables[later])
        if not rows:
            continue
        found.setdefault("across_splits", {})[f"{earlier}/{later}"] = {
            "rows": len(rows), "opposite_answers": disagree
        }  # fmt: skip
        examples = "; ".join(
            f"line {lines[later][j]} asks line {lines[earlier][i]}" for i, j in rows[:EXAMPLES]
        )
        warnings.warn(
            f"{len(rows)} pair(s) of split '{later}' ask what a pair of '{earlier}' asks "
            f"({disagree} with the opposite answer): {examples}; a ranker would be scored on "
            "pairs it trained on ('outpool data split' makes disjoint splits)",
            stacklevel=3,
        )
    return out, found


def _describe(split: str, report: DuplicateReport, duplicates: str, conflicts: str) -> str:
    parts = []
    if report.duplicate_rows:
        done = "merged as votes" if duplicates == "merge" else "kept (--duplicates keep)"
        n = report.duplicate_rows
        parts.append(
            f"{n} {'row repeats' if n == 1 else 'rows repeat'} an earlier pair "
            f"({report.reversed_rows} with a and b swapped), {done}: "
            f"{'; '.join(report.duplicate_examples)}"
        )
    if report.conflicting_rows:
        done = (
            f"kept out of training in table '{split}_conflicts'"
            if conflicts == "exclude"
            else "kept (--conflicts keep)"
        )
        n = report.conflicting_questions
        parts.append(
            f"{n} {'pair has' if n == 1 else 'pairs have'} contradicting labels "
            f"({report.conflicting_rows} rows), {done}: {'; '.join(report.conflict_examples)}"
        )
    return f"pairs of split '{split}': " + ". ".join(parts)


def read_strengths_csv(
    attributes_csv: Path, images_root: Path
) -> tuple[list[str], list[str], npt.NDArray[np.float32], dict[str, Origin]]:
    """``(image ids, attribute names, (N, K) float32 strengths, origins)`` of a strengths CSV."""
    path = Path(attributes_csv)
    rows = iter(read_rows(path))
    header = read_header(path, rows, (), ("image",))
    if header[0] != "image":
        raise DataError("the first column must be 'image'", path=path, line=1)
    names = header[1:]
    bad = [n for n in names if not n or n in _RESERVED]
    if bad or not names:
        raise DataError(
            f"attribute columns must be non-empty and not {' or '.join(_RESERVED)}",
            path=path,
            line=1,
        )
    ids: list[str] = []
    values: list[list[float]] = []
    origins: dict[str, Origin] = {}
    for line, row in rows:
        if len(row) != len(header):
            raise DataError(f"{len(row)} fields, expected {len(header)}", path=path, line=line)
        image = _image_ref(row[0], images_root, path=path, line=line, field="image")
        if image in origins:
            raise DataError(
                f"image '{image}' is listed twice (first on line {origins[image][1]})",
                path=path,
                line=line,
                field="image",
            )
        origins[image] = (path, line)
        ids.append(image)
        values.append(
            [
                parse_float(t, path=path, line=line, field=n)
                for t, n in zip(row[1:], names, strict=True)
            ]
        )
    return ids, names, np.asarray(values, dtype=np.float32).reshape(len(ids), len(names)), origins


def load_folder(
    images_root: Path,
    pairs_csv: Path,
    *,
    crop: float = 1.0,
    fit: str = "center",
    cache: Path | None = None,
    attributes_csv: Path | None = None,
    duplicates: str = "merge",
    conflicts: str = "exclude",
) -> Dataset:
    """A dataset from a folder of images and a pairs CSV (format in the module docstring)."""
    images_root = Path(images_root)
    crop, fit = check_crop(crop), check_fit(fit)
    files = scan_images(images_root)
    read, origins, attr_names, lines = read_pairs_csv(Path(pairs_csv), images_root)
    pairs, repeated = resolve_duplicates(read, lines, duplicates=duplicates, conflicts=conflicts)
    scored: list[str] = []
    strength_names: list[str] = []
    strengths = np.zeros((0, 0), dtype=np.float32)
    if attributes_csv is not None:
        scored, strength_names, strengths, scored_origins = read_strengths_csv(
            Path(attributes_csv), images_root
        )
        for image, origin in scored_origins.items():
            origins.setdefault(image, origin)
    # every image: the scanned ones plus any a CSV names with another extension
    all_ids = sorted(set(files) | set(origins))
    in_scored = set(scored)
    plain = [i for i in all_ids if i not in in_scored]
    order = [*scored, *plain]
    # an image no CSV names is only part of the unlabelled pool: one that cannot be read is
    # left out with a warning instead of stopping the import
    pixels, skipped_at = load_images_skipping(
        [images_root / i for i in order],
        source="folder",
        crop=crop,
        fit=fit,
        cache=cache,
        origins=[origins.get(i) for i in order],
        optional=[i not in origins for i in order],
    )
    skipped = [order[k] for k in skipped_at]
    if skipped:
        shown = ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        warnings.warn(
            f"{images_root}: {len(skipped)} image file(s) no pair names could not be read and "
            f"were skipped: {shown}",
            stacklevel=2,
        )
        plain = [i for i in plain if i not in set(skipped)]
    tables: dict[str, ImageTable] = {}
    if attributes_csv is not None:
        tables["generator"] = ImageTable(
            ids=np.asarray(scored, dtype=np.str_),
            pixels=pixels[: len(scored)],
            attributes=tuple(strength_names),
            strengths=strengths,
        )
    tables["images"] = ImageTable(
        ids=np.asarray(plain, dtype=np.str_), pixels=pixels[len(scored) :]
    )
    names = list(dict.fromkeys([*attr_names, *strength_names]))
    return Dataset(
        name=images_root.resolve().name or "folder",
        attributes=tuple(AttributeInfo(n) for n in names),
        images=tables,
        pairs=pairs,
        meta={
            "source": "folder",
            "images_root": str(images_root),
            "pairs_csv": str(pairs_csv),
            "attributes_csv": None if attributes_csv is None else str(attributes_csv),
            "crop": crop,
            "fit": fit,
            "images": {t: len(v) for t, v in tables.items()},
            "pairs": {t: len(p) for t, p in pairs.items()},
            "skipped_images": skipped,
            "duplicates": {"policy": duplicates, "conflicts_policy": conflicts, **repeated},
        },
    )
