"""Created pairs: well formed or refused, and tables that keep what drew each image."""

from __future__ import annotations

import numpy as np
import pytest

from outpool.creators.pairs import CreatedPairs
from outpool.errors import DataError


def pairs(n: int = 3, **changes: object) -> CreatedPairs:
    rng = np.random.default_rng(0)
    fields: dict[str, object] = {
        "attribute": "heel",
        "creator": "attic",
        "images_a": rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8),
        "images_b": rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8),
        "label": np.array([1, -1, 0][:n], np.int8),
        "y_a": rng.random((n, 2)).astype(np.float32),
        "y_b": rng.random((n, 2)).astype(np.float32),
        "u_a": rng.standard_normal((n, 4)).astype(np.float32),
        "u_b": rng.standard_normal((n, 4)).astype(np.float32),
        "round": 2,
    }
    return CreatedPairs(**{**fields, **changes})  # type: ignore[arg-type]


def test_tables_keep_each_image_s_control_parameters() -> None:
    made = pairs()
    images, table = made.tables("r2_attic")
    assert images.ids.tolist()[:2] == ["r2_attic_00000_a", "r2_attic_00001_a"]
    assert table.a.tolist() == ["r2_attic_00000_a", "r2_attic_00001_a", "r2_attic_00002_a"]
    assert table.b.tolist()[0] == "r2_attic_00000_b"
    assert table.label.tolist() == [1, -1, 0] and set(table.source) == {"synthetic"}
    assert set(table.round) == {2} and set(table.attribute) == {"heel"}
    assert np.array_equal(images.pixels[3], made.images_b[0])
    assert images.provenance is not None
    first_b = images.provenance[3]
    assert first_b["side"] == "b" and first_b["creator"] == "attic" and first_b["round"] == 2
    assert first_b["y"] == pytest.approx(made.y_b[0].tolist(), abs=1e-6)  # type: ignore[index]
    assert first_b["u"] == pytest.approx(made.u_b[0].tolist(), abs=1e-6)  # type: ignore[index]


def test_copies_of_real_images_have_no_control_parameters() -> None:
    made = pairs(y_a=None, y_b=None, u_a=None, u_b=None)
    images, _ = made.tables("jitter")
    assert images.provenance is not None and "y" not in images.provenance[0]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"label": np.array([1, 2, 0], np.int8)}, "labels must be -1, 0 or 1"),
        ({"images_a": np.zeros((3, 32, 32, 3), np.uint8)}, "images_a must be"),
        ({"images_b": np.zeros((3, 64, 64, 3), np.float32)}, "images_b must be"),
        ({"y_a": np.zeros((2, 2), np.float32)}, "y_a must have one row per pair"),
        ({"u_b": np.full((3, 4), np.nan, np.float32)}, "u_b has a non-finite value"),
    ],
)
def test_malformed_pairs_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        pairs(**changes)


def test_joined_pairs_keep_both_in_order_and_refuse_a_mismatch() -> None:
    first, second = pairs(2), pairs(3, label=np.array([-1, 0, 1], np.int8))
    both = first.joined(second)
    assert len(both) == 5 and both.label.tolist() == [*first.label.tolist(), -1, 0, 1]
    assert both.y_a is not None and np.array_equal(both.y_a[2:], second.y_a)
    with pytest.raises(DataError, match="one attribute and creator"):
        first.joined(pairs(1, creator="semantic_jitter"))
    with pytest.raises(DataError, match="same fields"):
        first.joined(pairs(1, u_a=None, u_b=None))
