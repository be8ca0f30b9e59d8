"""What people are asked in one batch: pairs, their images, and the attributes' definitions.

A ``BatchSpec`` is the one description every people-facing path shares: the web service stores
it, and the Label Studio / MTurk exports write it out. It carries images by id (each image once,
however many pairs show it) so a batch is self-contained: it needs no dataset folder to serve.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from outpool.annotate.protocol import LABELS, PairRequest
from outpool.data import Dataset, PairTable
from outpool.errors import DataError

NO_CHECK = -9  # check_answer of an ordinary pair (a check pair has +1, -1 or 0)
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True)
class Example:
    """A solved pair shown in the instructions: ``answer`` +1 (a shows the attribute more),
    -1 (b more) or 0 (equal), and an optional ``note`` saying why."""

    attribute: str
    a: str
    b: str
    answer: int
    note: str = ""


@dataclass(frozen=True, eq=False)
class BatchSpec:
    """P pairs to label, one attribute each.

    name: a batch id (letters, digits, ``_ . -``; at most 100 characters);
    ids, attribute, a, b: (P,) str pair ids, attribute names, image ids of the two sides;
    images: image id -> (H, W, 3) uint8, every id named by ``a`` or ``b``;
    definitions: attribute name -> short definition shown to annotators (may be empty);
    check_answer: (P,) int8, the known label of a check pair (+1 a more, -1 b more, 0 equal)
    or ``NO_CHECK`` for an ordinary pair. Check pairs catch careless annotators; their votes
    never become labels;
    examples: solved pairs the instructions show (their images are in ``images`` too).
    """

    name: str
    ids: np.ndarray
    attribute: np.ndarray
    a: np.ndarray
    b: np.ndarray
    images: Mapping[str, np.ndarray]
    definitions: Mapping[str, str] = field(default_factory=dict)
    check_answer: np.ndarray | None = None
    examples: tuple[Example, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise DataError(
                f"invalid batch name {self.name!r} (letters, digits, _ . - only)", field="name"
            )
        cols = {c: np.asarray(getattr(self, c)).astype(str).reshape(-1) for c in ["ids", "a", "b"]}
        cols["attribute"] = np.asarray(self.attribute).astype(str).reshape(-1)
        p = len(cols["ids"])
        for name, arr in cols.items():
            if len(arr) != p:
                raise DataError(f"expected {p} values, got {len(arr)}", field=name)
            if p and (np.char.str_len(arr) == 0).any():
                raise DataError("must not be empty", field=name)
        if len(np.unique(cols["ids"])) != p:
            raise DataError("pair ids must be unique within a batch", field="ids")
        if p and (cols["a"] == cols["b"]).any():
            i = int(np.flatnonzero(cols["a"] == cols["b"])[0])
            raise DataError(f"pair {cols['ids'][i]!r} compares an image with itself", field="b")
        check = (
            np.full(p, NO_CHECK, dtype=np.int8)
            if self.check_answer is None
            else np.asarray(self.check_answer).astype(np.int8).reshape(-1)
        )
        if len(check) != p:
            raise DataError(f"expected {p} values, got {len(check)}", field="check_answer")
        if not np.isin(check, (*LABELS, NO_CHECK)).all():
            raise DataError(f"must be one of {LABELS} or {NO_CHECK}", field="check_answer")
        if check.size and (check != NO_CHECK).all():
            raise DataError("a batch needs at least one ordinary pair", field="check_answer")
        examples = tuple(self.examples)
        for i, ex in enumerate(examples):
            if ex.answer not in LABELS or ex.a == ex.b or ex.attribute not in cols["attribute"]:
                raise DataError(
                    f"example {i}: needs two different images, an answer in {LABELS} and an "
                    "attribute the batch asks about",
                    field="examples",
                )
            for side in (ex.a, ex.b):
                if side not in self.images:
                    raise DataError(f"no image for id {side!r}", field="examples")
        # Only the images the pairs and examples show: nothing else is stored or served.
        used = set(cols["a"].tolist()) | set(cols["b"].tolist())
        used |= {side for ex in examples for side in (ex.a, ex.b)}
        images = {key: img for key, img in self.images.items() if key in used}
        for side in ("a", "b"):
            missing = sorted(set(cols[side].tolist()) - self.images.keys())
            if missing:
                raise DataError(f"no image for id {missing[0]!r}", field=side)
        for key, img in images.items():
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3:
                raise DataError(f"image {key!r} must be an (H, W, 3) uint8 array", field="images")
            if img.shape[2] != 3:
                raise DataError(f"image {key!r} must have 3 channels", field="images")
        for name, arr in cols.items():
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "check_answer", check)
        object.__setattr__(self, "examples", examples)
        object.__setattr__(self, "images", images)
        object.__setattr__(
            self, "definitions", {str(k): str(v) for k, v in self.definitions.items()}
        )

    def __len__(self) -> int:
        return len(self.ids)

    def fingerprint(self) -> str:
        """A hash of everything asked (pairs, checks, images, definitions), so asking for the
        same batch twice can be told apart from reusing a batch name for different pairs."""
        h = hashlib.sha256()
        assert self.check_answer is not None
        for col in (self.ids, self.attribute, self.a, self.b):
            h.update("\x1f".join(col.tolist()).encode() + b"\x1e")
        h.update(self.check_answer.tobytes())
        for key in sorted(self.images):
            img = self.images[key]
            h.update(key.encode() + str(img.shape).encode() + img.tobytes())
        for key in sorted(self.definitions):
            h.update(f"{key}\x1f{self.definitions[key]}\x1e".encode())
        for ex in self.examples:
            h.update(f"{ex.attribute}\x1f{ex.a}\x1f{ex.b}\x1f{ex.answer}\x1f{ex.note}\x1e".encode())
        return h.hexdigest()

    @property
    def is_check(self) -> np.ndarray:
        """(P,) bool: True for check pairs."""
        assert self.check_answer is not None
        return self.check_answer != NO_CHECK

    @classmethod
    def from_pairs(
        cls,
        name: str,
        dataset: Dataset,
        pairs: PairTable,
        *,
        check: PairTable | None = None,
        examples: PairTable | None = None,
    ) -> BatchSpec:
        """The pairs of a dataset's pair table; ``check`` pairs (labelled) are added as checks,
        ``examples`` (labelled) are shown in the instructions."""
        tables = [pairs] if check is None else [pairs, check]
        every = PairTable.concat(tables)
        shown = every if examples is None else PairTable.concat([every, examples])
        ids = np.unique(np.concatenate([shown.a, shown.b]))
        images = dict(zip(ids.tolist(), dataset.lookup(ids), strict=True))
        answers = np.full(len(every), NO_CHECK, dtype=np.int8)
        if check is not None:
            answers[len(pairs) :] = check.label
        return cls(
            name=name,
            ids=every.ids,
            attribute=every.attribute,
            a=every.a,
            b=every.b,
            images=images,
            definitions={a.name: a.description for a in dataset.attributes},
            check_answer=answers,
            examples=()
            if examples is None
            else tuple(
                Example(str(t), str(a), str(b), int(y))
                for t, a, b, y in zip(
                    examples.attribute, examples.a, examples.b, examples.label, strict=True
                )
            ),
        )

    @classmethod
    def from_request(
        cls, name: str, request: PairRequest, definitions: Mapping[str, str] | None = None
    ) -> BatchSpec:
        """A batch asking ``request``'s pairs; image ids are content hashes, so an image shown
        in several pairs is stored once and the same request always gives the same batch."""
        images: dict[str, np.ndarray] = {}

        def key(img: np.ndarray) -> str:
            digest = hashlib.sha256(np.ascontiguousarray(img).tobytes()).hexdigest()[:20]
            images.setdefault(digest, img)
            return digest

        a = [key(img) for img in request.images_a]
        b = [key(img) for img in request.images_b]
        return cls(
            name=name,
            ids=request.ids,
            attribute=request.attribute,
            a=np.array(a, dtype=str),
            b=np.array(b, dtype=str),
            images=images,
            definitions=dict(definitions or {}),
        )


def encode_png(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> lossless PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> (H, W, 3) uint8."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
