"""Request bodies of the annotation service (pydantic): every field bounded, nothing extra.

Responses are plain JSON dicts built by the handlers; these schemas guard what comes in. Numbers
are strict (``true`` is not 1, ``"5"`` is not 5) and every string, dict keys included, must be
UTF-8: JSON's ``\udc00`` escape decodes to a lone surrogate that could be neither stored nor
sent back.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from outpool.service.batch import NO_CHECK

_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$"  # pair and image ids: no slashes, so never a path


def printable(text: str) -> str:
    """``text`` with anything that is not UTF-8 (a lone surrogate) written as an escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_utf8(value: Any, where: str = "") -> None:
    """Raise ValueError naming the first string or dict key (at any depth) that is not UTF-8."""
    if isinstance(value, str):
        if value.isascii():  # the common case (ids, base64 images): nothing to encode
            return
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"{where or 'the body'} is not UTF-8 text (a lone surrogate)"
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{where}.{printable(str(key))}".lstrip(".")
            check_utf8(key, f"the key of {name}")
            check_utf8(item, name)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_utf8(item, f"{where}.{i}".lstrip("."))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, strict=True)


class _Body(_Strict):
    """A whole request body: its text is checked once here, nested models included."""

    @model_validator(mode="before")
    @classmethod
    def _utf8(cls, data: Any) -> Any:
        check_utf8(data)
        return data


class VoteIn(_Body):
    """One answer, left/right as the annotator saw them."""

    submission_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    batch: str = Field(min_length=1, max_length=100)
    pair_id: str = Field(min_length=1, max_length=200)
    choice: Literal["left_more", "equal", "left_less", "illegible"]
    confidence: Literal["very", "somewhat", "not"]
    rationale: str = Field(default="", max_length=1000)
    elapsed_ms: int | None = Field(default=None, ge=0, le=86_400_000)


class PairIn(_Strict):
    id: str = Field(min_length=1, max_length=200, pattern=_ID)
    attribute: str = Field(min_length=1, max_length=100)
    a: str = Field(min_length=1, max_length=200, pattern=_ID)
    b: str = Field(min_length=1, max_length=200, pattern=_ID)
    # The known answer of a check pair (+1 a more, -1 b more, 0 equal); None for an ordinary pair.
    check_answer: Literal[1, -1, 0] | None = None

    @field_validator("check_answer", mode="before")
    @classmethod
    def _not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # True == 1 in Python: a Literal alone would take it
            raise ValueError("must be 1, -1, 0 or null, not a boolean")
        return value


class SkipIn(_Body):
    """Give back a held pair unanswered (it goes to someone else)."""

    batch: str = Field(min_length=1, max_length=100)
    pair_id: str = Field(min_length=1, max_length=200)


class ExampleIn(_Strict):
    """A solved pair for the instructions: ``answer`` +1 a more, -1 b more, 0 equal."""

    attribute: str = Field(min_length=1, max_length=100)
    a: str = Field(min_length=1, max_length=200, pattern=_ID)
    b: str = Field(min_length=1, max_length=200, pattern=_ID)
    answer: Literal[1, -1, 0]
    note: str = Field(default="", max_length=500)

    @field_validator("answer", mode="before")
    @classmethod
    def _not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be 1, -1 or 0, not a boolean")
        return value


class BatchIn(_Body):
    """A new batch: pairs, their images as base64 PNG, and how many votes each pair needs."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    pairs: list[PairIn] = Field(min_length=1, max_length=200_000)
    images: dict[str, str]  # image id -> base64 PNG (any size; shown scaled)
    definitions: dict[str, str] = Field(default_factory=dict)
    examples: list[ExampleIn] = Field(default_factory=list, max_length=50)
    k: int = Field(default=5, ge=1, le=100)
    lease_s: float = Field(default=600.0, gt=0, le=7 * 86_400)
    check_every: int = Field(default=10, ge=1, le=10_000)
    new_annotators: int = Field(default=0, ge=0, le=1000)
    meta: dict[str, Any] = Field(default_factory=dict)

    def check_answers(self) -> list[int]:
        return [NO_CHECK if p.check_answer is None else p.check_answer for p in self.pairs]


class AnnotatorIn(_Body):
    name: str = Field(min_length=1, max_length=100)
    role: Literal["annotator", "admin"] = "annotator"
    expires_in_s: float | None = Field(default=None, gt=0, lt=1e9)  # None: until revoked
