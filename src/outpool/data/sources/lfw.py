"""LFW faces with Kumar et al.'s attribute scores (``lfw_attributes.txt``) and score-derived pairs.

Layout under ``root`` (official)::

    lfw_attributes.txt                     comment line; '#'-prefixed TAB header
                                           'person imagenum Male Asian ...'; one TAB row per image
    lfw-100/<Person_Name>/<Person_Name>_<NNNN>.jpg   (``image_dir``; the official folder is 'lfw')

The ranker tables use only rows of the attribute file (the public file has 4,144 rows of
1,920 people). Attributes are columns chosen BY NAME (``PAPER_ATTRIBUTES``: the paper's 8
face attributes).

People (not images) are shuffled with ``seed`` and cut into ``generator``/``train``/``val``/
``test`` so each split gets about its fraction of the IMAGES and no identity is in two splits.
Image ids are file stems (``Aaron_Eckhart_0001``), groups are person names. Only the
``generator`` table carries strengths (the generator pre-trains on them); the ranker tables do
not, and their scores come back separately as ``truth`` (``{split: (ids, (N, K) scores)}``, the
shape ``Dataset.save(truth=...)`` takes) so no ranker can train on them by accident.

With ``unscored`` (the default), a fifth table ``generator_unscored`` holds the images of the
image folder that have NO row in the attribute file and whose person is in no ranker split: the
images of ``generator`` people without a row, and every image of people absent from the file
(9,072 images in the full LFW). No strengths: the generator workflow gives them regressed ones
(``outpool.judges.pseudo_labels``). A person with any score row outside the ``generator`` split
never joins it, so no identity is in both the generator's images and a ranker split. With
``max_people`` it keeps a seeded subset of at most that many of the people absent from the file.

Pairs (a stand-in for LFW-10, whose human labels are not available): for each ranker split and
attribute, pairs drawn uniformly without replacement from all pairs of images of DIFFERENT
people whose scores differ by at least ``margin`` (score units of the classifier), label =
sign(score a - score b), a/b order randomised. Their source is ``real`` (real images, used as
the real labelled pairs), confidence 1. When fewer valid pairs exist than asked, all are taken;
``meta["pairs"]`` has the counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from outpool.data.dataset import AttributeInfo, Dataset, Truth
from outpool.data.images import ImageTable
from outpool.data.pairs import PairTable
from outpool.data.sources.images import load_images
from outpool.errors import DataError, UnknownNameError

ATTRIBUTES_FILE = "lfw_attributes.txt"
PAPER_ATTRIBUTES: Mapping[str, str] = MappingProxyType(
    {
        "bald": "Bald",
        "dark_hair": "Black Hair",
        "big_eyes": "Eyes Open",  # closest column: the file has no "Big Eyes"
        "masculine": "Male",
        "mouth_open": "Mouth Wide Open",
        "smiling": "Smiling",
        "visible_forehead": "Fully Visible Forehead",
        "young": "Youth",
    }
)
SPLITS = ("generator", "train", "val", "test")
RANKER_SPLITS = ("train", "val", "test")
UNSCORED = "generator_unscored"  # images without a score row, of people in no ranker split
DEFAULT_FRACTIONS: Mapping[str, float] = MappingProxyType(
    {"generator": 0.4, "train": 0.3, "val": 0.1, "test": 0.2}
)
DEFAULT_PAIRS: Mapping[str, int] = MappingProxyType({"train": 500, "val": 200, "test": 500})


@dataclass(frozen=True)
class AttributeRows:
    """The rows of ``lfw_attributes.txt``: ``scores`` is ``(N, K)`` for the requested columns."""

    path: Path
    persons: list[str]  # as in the file, with spaces
    numbers: list[int]  # imagenum
    lines: list[int]  # 1-based file line of each row
    columns: tuple[str, ...]
    scores: npt.NDArray[np.float64]


def _header(text: str) -> list[str] | None:
    fields = [f.strip() for f in text.lstrip("#").split("\t")]
    while fields and not fields[0]:
        fields.pop(0)
    return fields if fields[:2] == ["person", "imagenum"] else None


def read_attributes(path: Path, columns: Sequence[str]) -> AttributeRows:
    """Parse ``lfw_attributes.txt``; only ``columns`` are converted (and must be finite)."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        raise DataError("file does not exist", path=path) from None
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text", path=path) from None
    header: list[str] | None = None
    persons: list[str] = []
    numbers: list[int] = []
    row_lines: list[int] = []
    values: list[list[float]] = []
    seen: dict[tuple[str, int], int] = {}
    where: list[int] = []
    for line_no, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        if text.startswith("#"):
            if header is None and (found := _header(text)) is not None:
                header = found
                missing = [c for c in columns if c not in header[2:]]
                if missing:
                    raise DataError(
                        f"no column '{missing[0]}' in the header",
                        path=path,
                        line=line_no,
                        field=missing[0],
                    )
                where = [header.index(c) for c in columns]
            continue
        if header is None:
            raise DataError(
                "expected a '#'-prefixed TAB-separated header 'person<TAB>imagenum<TAB>...' "
                "before the first row",
                path=path,
                line=line_no,
            )
        fields = text.split("\t")
        if len(fields) != len(header):
            raise DataError(
                f"{len(fields)} TAB-separated fields, expected {len(header)}",
                path=path,
                line=line_no,
            )
        person = fields[0].strip()
        if not person:
            raise DataError("empty person name", path=path, line=line_no, field="person")
        try:
            number = int(fields[1])
        except ValueError:
            number = 0
        if number < 1:
            raise DataError(
                f"imagenum {fields[1]!r} is not a positive integer",
                path=path,
                line=line_no,
                field="imagenum",
            )
        key = (person, number)
        if key in seen:
            raise DataError(
                f"duplicate row for {person} #{number} (first on line {seen[key]})",
                path=path,
                line=line_no,
            )
        seen[key] = line_no
        row: list[float] = []
        for col, at in zip(columns, where, strict=True):
            try:
                value = float(fields[at])
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise DataError(
                    f"score {fields[at]!r} is not a finite number",
                    path=path,
                    line=line_no,
                    field=col,
                )
            row.append(value)
        persons.append(person)
        numbers.append(number)
        row_lines.append(line_no)
        values.append(row)
    if header is None:
        raise DataError("no header line '#<TAB>person<TAB>imagenum<TAB>...'", path=path)
    return AttributeRows(
        path=path,
        persons=persons,
        numbers=numbers,
        lines=row_lines,
        columns=tuple(columns),
        scores=np.asarray(values, dtype=np.float64).reshape(len(persons), len(columns)),
    )


def image_file(images_root: Path, person: str, number: int) -> Path:
    """``<root>/<Person_Name>/<Person_Name>_<NNNN>.jpg``: the official LFW file name."""
    stem = person.replace(" ", "_")
    return images_root / stem / f"{stem}_{number:04d}.jpg"


def split_people(
    people: Sequence[str],
    image_counts: Sequence[int],
    fractions: Mapping[str, float],
    seed: int,
) -> dict[str, list[str]]:
    """Shuffle the people with ``seed`` and cut them so each split gets about its fraction of the
    images; a person lands in the split that holds the middle of their images."""
    order = np.random.default_rng(seed).permutation(len(people))
    counts = np.asarray(image_counts, dtype=np.float64)[order]
    middle = np.cumsum(counts) - counts / 2
    bounds = np.cumsum([fractions[s] for s in SPLITS]) * counts.sum()
    which = np.minimum(np.searchsorted(bounds, middle, side="right"), len(SPLITS) - 1)
    return {
        s: sorted(people[order[p]] for p in np.flatnonzero(which == k))
        for k, s in enumerate(SPLITS)
    }


def sample_pairs(
    scores: npt.NDArray[np.float64],
    groups: npt.NDArray[Any],
    count: int,
    *,
    margin: float,
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Up to ``count`` distinct unordered pairs ``(a, b)`` of positions with different ``groups``
    and ``|scores[a] - scores[b]| >= margin`` (and never equal scores), in random a/b order."""
    i, j = np.triu_indices(len(scores), k=1)
    diff = np.abs(scores[i] - scores[j])
    keep = (groups[i] != groups[j]) & (diff >= margin) & (diff > 0)
    i, j = i[keep], j[keep]
    take = np.sort(rng.choice(len(i), size=min(count, len(i)), replace=False))
    i, j = i[take], j[take]
    swap = rng.random(len(i)) < 0.5
    return np.where(swap, j, i), np.where(swap, i, j)


def _check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    for key in fractions:
        if key not in SPLITS:
            raise UnknownNameError("LFW split", key, SPLITS)
    out = {s: float(fractions.get(s, 0.0)) for s in SPLITS}
    if any(not (v >= 0) for v in out.values()) or not math.isclose(sum(out.values()), 1.0):
        raise DataError(f"split fractions must be >= 0 and sum to 1, got {out}")
    return out


def _check_pair_counts(pairs: int | Mapping[str, int]) -> dict[str, int]:
    if isinstance(pairs, int):
        counts = dict.fromkeys(RANKER_SPLITS, pairs)
    else:
        for key in pairs:
            if key not in RANKER_SPLITS:
                raise UnknownNameError("LFW ranker split", key, RANKER_SPLITS)
        counts = {s: pairs.get(s, 0) for s in RANKER_SPLITS}
    for s, n in counts.items():
        if not isinstance(n, int) or n < 0:
            raise DataError(f"pairs per attribute for '{s}' must be an integer >= 0, got {n!r}")
    return counts


def unscored_files(
    images_root: Path,
    rows: AttributeRows,
    generator_people: Sequence[str],
    *,
    max_people: int | None,
    seed: int,
) -> list[Path]:
    """Image files of ``images_root`` without a row in ``rows``, of ``generator_people`` or of
    people with no row at all (a seeded subset of ``max_people`` of those), sorted by name."""
    if not images_root.is_dir():
        raise DataError("image folder does not exist", path=images_root)
    folder = {p: p.replace(" ", "_") for p in rows.persons}
    scored = {(folder[p], k) for p, k in zip(rows.persons, rows.numbers, strict=True)}
    with_rows = set(folder.values())
    allowed = {p.replace(" ", "_") for p in generator_people}
    people = sorted(d.name for d in images_root.iterdir() if d.is_dir())
    absent = [p for p in people if p not in with_rows]
    if max_people is not None:
        keep = np.random.default_rng([seed, 1]).permutation(len(absent))[:max_people]
        absent = [absent[i] for i in sorted(keep)]
    files = []
    for person in sorted(allowed | set(absent)):
        for f in sorted((images_root / person).glob(f"{person}_[0-9][0-9][0-9][0-9].jpg")):
            if (person, int(f.stem[-4:])) not in scored:
                files.append(f)
    return files


def load_lfw(
    root: Path,
    *,
    attributes: Mapping[str, str] = PAPER_ATTRIBUTES,
    split_fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    margin: float = 0.5,
    pairs_per_attribute: int | Mapping[str, int] = DEFAULT_PAIRS,
    crop: float = 1.0,
    seed: int = 0,
    image_dir: str = "lfw-100",
    max_people: int | None = None,
    cache: Path | None = None,
    unscored: bool = True,
) -> tuple[Dataset, dict[str, Truth]]:
    """The LFW faces dataset at ``root`` and the true scores of its ranker tables.

    ``attributes`` maps dataset attribute names to columns of the attribute file;
    ``max_people`` keeps a seeded random subset of people (for quick tests and demos);
    ``unscored`` adds the ``generator_unscored`` table (see the module docstring).
    """
    root = Path(root)
    fractions = _check_fractions(split_fractions)
    pair_counts = _check_pair_counts(pairs_per_attribute)
    if not margin >= 0:
        raise DataError(f"margin must be >= 0, got {margin!r}")
    names = tuple(attributes)
    rows = read_attributes(root / ATTRIBUTES_FILE, [attributes[n] for n in names])
    images_root = root / image_dir
    files = [image_file(images_root, p, k) for p, k in zip(rows.persons, rows.numbers, strict=True)]
    for f, line in zip(files, rows.lines, strict=True):
        if not f.is_file():
            raise DataError(f"names image '{f}', which does not exist", path=rows.path, line=line)

    people, counts = np.unique(np.asarray(rows.persons, dtype=np.str_), return_counts=True)
    if max_people is not None:
        keep = np.sort(np.random.default_rng(seed).permutation(len(people))[:max_people])
        people, counts = people[keep], counts[keep]
    by_split = split_people(people.tolist(), counts.tolist(), fractions, seed)

    persons = np.asarray(rows.persons, dtype=np.str_)
    ids = np.asarray([f.stem for f in files], dtype=np.str_)
    members = {s: np.flatnonzero(np.isin(persons, by_split[s])) for s in SPLITS}
    members = {s: m[np.argsort(ids[m], kind="stable")] for s, m in members.items()}
    order = np.concatenate([members[s] for s in SPLITS])
    pixels = load_images([files[i] for i in order], source="lfw", crop=crop, cache=cache)

    tables: dict[str, ImageTable] = {}
    truth: dict[str, Truth] = {}
    pair_tables: dict[str, PairTable] = {}
    pair_meta: dict[str, dict[str, int]] = {}
    start = 0
    for k, split in enumerate(SPLITS):
        rows_k = members[split]
        px = pixels[start : start + len(rows_k)]  # a memmap slice: no copy
        start += len(rows_k)
        scores = rows.scores[rows_k]
        tables[split] = ImageTable(
            ids=ids[rows_k],
            pixels=px,
            groups=persons[rows_k],
            attributes=names if split == "generator" else (),
            strengths=scores.astype(np.float32) if split == "generator" else None,
        )
        if split == "generator":
            continue
        truth[split] = (ids[rows_k], scores)
        parts = []
        pair_meta[split] = {}
        for n, name in enumerate(names):
            rng = np.random.default_rng((seed, k, n))  # per (split, attribute): stable subsets
            a, b = sample_pairs(
                scores[:, n], persons[rows_k], pair_counts[split], margin=margin, rng=rng
            )
            pair_meta[split][name] = len(a)
            parts.append(
                PairTable.build(
                    attribute=name,
                    a=ids[rows_k][a],
                    b=ids[rows_k][b],
                    label=np.sign(scores[a, n] - scores[b, n]).astype(np.int8),
                    id_prefix=f"{name}-",
                )
            )
        pair_tables[split] = PairTable.concat(parts)

    n_unscored_people = 0
    if unscored:
        extra = unscored_files(
            images_root, rows, by_split["generator"], max_people=max_people, seed=seed
        )
        owners = np.asarray([f.parent.name.replace("_", " ") for f in extra], dtype=np.str_)
        n_unscored_people = len(np.unique(owners))
        tables[UNSCORED] = ImageTable(
            ids=np.asarray([f.stem for f in extra], dtype=np.str_),
            pixels=load_images(extra, source="lfw", crop=crop, cache=cache),
            groups=owners,
        )

    dataset = Dataset(
        name="lfw",
        attributes=tuple(
            AttributeInfo(n, f"LFW attribute score '{attributes[n]}' (Kumar et al. classifier)")
            for n in names
        ),
        images=tables,
        pairs=pair_tables,
        meta={
            "source": "lfw",
            "attributes_file": str(rows.path),
            "attribute_columns": dict(attributes),
            "rows_with_scores": len(rows.persons),
            "note": (
                "the generator/train/val/test tables hold the images with a row in the attribute "
                "file; generator_unscored (when present) the images without one, of people in no "
                "ranker split; pairs are a stand-in for LFW-10 (not available), derived from "
                "score differences of different people"
            ),
            "people": {
                **{s: len(by_split[s]) for s in SPLITS},
                **({UNSCORED: n_unscored_people} if unscored else {}),
            },
            "images": {s: len(t) for s, t in tables.items()},
            "split_fractions": fractions,
            "margin": margin,
            "seed": seed,
            "crop": crop,
            "max_people": max_people,
            "pairs": pair_meta,
        },
    )
    return dataset, truth


def load_lfw_dataset(root: Path, **kwargs: Any) -> Dataset:
    """``load_lfw(root, **kwargs)`` without the true scores (the registry's uniform signature)."""
    return load_lfw(root, **kwargs)[0]
