from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outpool.data import LABELS, PAIR_SOURCES, PairTable
from outpool.data.pairs import _FIELDS, COLUMNS
from outpool.errors import DataError

HEADER = ",".join(COLUMNS)


def assert_pairs_equal(x: PairTable, y: PairTable) -> None:
    for c in _FIELDS:
        np.testing.assert_array_equal(getattr(x, c), getattr(y, c), err_msg=c)
        assert getattr(x, c).dtype.kind == getattr(y, c).dtype.kind, c  # <U width may differ


def table() -> PairTable:
    return PairTable.build(
        attribute=["smile", "smile", "age"],
        a=["x", "y", "z"],
        b=["y", "z", "x"],
        label=[1, -1, 0],
        confidence=[1.0, 0.25, 0.1],
        source=["real", "synthetic", "pseudo"],
        round=[0, 1, 2],
    )


def test_build_broadcasts_and_generates_ids() -> None:
    t = PairTable.build(attribute="smile", a=["x", "y"], b=["y", "x"], label=1)
    assert t.ids.tolist() == ["p000000", "p000001"]
    assert t.attribute.tolist() == ["smile", "smile"]
    assert t.label.dtype == np.int8 and t.confidence.dtype == np.float32
    assert t.round.dtype == np.int32 and t.source.tolist() == ["real", "real"]
    assert t.confidence.tolist() == [1.0, 1.0]
    r = PairTable.build(attribute="age", a=["x"], b=["y"], label=0, id_prefix="r3-")
    assert r.ids.tolist() == ["r3-000000"]


def test_queries() -> None:
    t = table()
    assert len(t) == 3
    assert t.attributes_present() == ("smile", "age")
    assert t.for_attribute("age").a.tolist() == ["z"]
    assert len(t.for_attribute("height")) == 0
    assert t.subset([2, 0]).ids.tolist() == ["p000002", "p000000"]
    assert t.subset(t.label != 0).label.tolist() == [1, -1]
    both = PairTable.concat(
        [t, PairTable.build(attribute="age", a=["x"], b=["y"], label=1, ids=["q"])]
    )
    assert len(both) == 4 and both.ids[-1] == "q"
    with pytest.raises(DataError, match="duplicate pair id"):
        PairTable.concat([t, t])
    assert len(PairTable.empty()) == 0 and len(PairTable.concat([])) == 0


def test_from_rows_defaults() -> None:
    t = PairTable.from_rows(
        [
            {"attribute": "smile", "a": "x", "b": "y", "label": 1},
            {"id": "mine", "attribute": "age", "a": "y", "b": "x", "label": -1, "confidence": 0.5},
        ]
    )
    assert t.ids.tolist() == ["p000000", "mine"]
    assert t.confidence.tolist() == [1.0, 0.5]
    assert t.source.tolist() == ["real", "real"] and t.round.tolist() == [0, 0]
    with pytest.raises(DataError, match=r"missing \['label'\], unknown \['lable'\]"):
        PairTable.from_rows([{"attribute": "smile", "a": "x", "b": "y", "lable": 1}])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"label": 2}, r"label 2 must be one of \(1, -1, 0\)"),
        ({"label": 257}, "label 257"),  # would wrap to 1 in int8
        ({"confidence": 1.5}, "field 'confidence': pair 'p000000': 1.5 must be in"),
        ({"confidence": float("nan")}, "confidence"),
        ({"source": "crowd"}, "'crowd' must be one of real, synthetic, pseudo"),
        ({"round": -1}, "round must be an integer"),
        ({"b": ["x"]}, "field 'b': pair 'p000000': 'x' must differ from a"),
        ({"ids": [""]}, "pair ids must be non-empty"),
        ({"b": ["y", "z"]}, "pair column 'b' has 2 rows, not 1"),
    ],
)
def test_constructor_rejects(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"attribute": "smile", "a": ["x"], "b": ["y"], "label": 1, **kwargs}
    with pytest.raises(DataError, match=match):
        PairTable.build(**args)


def test_csv_round_trip(tmp_path: Path) -> None:
    t = table()
    t.save(tmp_path / "p.csv")
    text = (tmp_path / "p.csv").read_text()
    assert text.splitlines() == [
        HEADER,
        "p000000,smile,x,y,1,1.0,real,0",
        "p000001,smile,y,z,-1,0.25,synthetic,1",
        "p000002,age,z,x,0,0.1,pseudo,2",
    ]
    assert_pairs_equal(t, PairTable.load(tmp_path / "p.csv"))


def test_header_only_is_empty(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text(HEADER + "\n")
    assert len(PairTable.load(tmp_path / "p.csv")) == 0
    PairTable.empty().save(tmp_path / "e.csv")
    assert_pairs_equal(PairTable.empty(), PairTable.load(tmp_path / "e.csv"))


def test_user_csv_with_optional_columns_absent(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    # reordered columns, a BOM and a blank line, as a spreadsheet might write it
    path.write_text(
        "\ufeffa,b,attribute,label\r\nx,y,smile,+1\r\n\r\ny,x,age,-1\r\n", encoding="utf-8"
    )
    t = PairTable.load(path, attributes=["smile", "age"], image_ids={"x", "y"})
    assert t.ids.tolist() == ["p000000", "p000001"]
    assert t.label.tolist() == [1, -1]
    assert t.confidence.tolist() == [1.0, 1.0] and t.source.tolist() == ["real", "real"]


def write(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "pairs.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


GOOD = "p1,smile,x,y,1,0.5,real,0"


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (
            "p2,smile,x,y,2,0.5,real,0",
            r"line 3, field 'label': label '2' must be 1 \(or \+1\), -1 or 0",
        ),
        ("p2,smile,x,y,yes,0.5,real,0", "field 'label'"),
        ("p2,smile,x,y,1,high,real,0", r"line 3, field 'confidence': not a number: 'high'"),
        ("p2,smile,x,y,1,nan,real,0", r"field 'confidence': 'nan' is not a finite number"),
        ("p2,smile,x,y,1,1.5,real,0", r"field 'confidence': confidence '1.5' must be in \[0, 1\]"),
        (
            "p2,smile,x,y,1,0.5,crowd,0",
            "field 'source': unknown source 'crowd'; valid: real, synthetic",
        ),
        ("p2,smile,x,y,1,0.5,real,1.5", "field 'round': round '1.5' is not an integer"),
        ("p2,smile,x,y,1,0.5,real,-1", "field 'round': round -1 must be >= 0"),
        (",smile,x,y,1,0.5,real,0", "line 3, field 'id': empty pair id"),
        ("p1,smile,x,y,1,0.5,real,0", r"field 'id': duplicate pair id 'p1' \(first on line 2\)"),
        ("p2,smile,x,x,1,0.5,real,0", "field 'b': a and b are the same image 'x'"),
        ("p2,smile,x,y,1,0.5,real", "line 3: 7 fields, expected 8"),
        ("p2,smile,x,y,1,0.5,real,0,extra", "line 3: 9 fields, expected 8"),
        ('p2,smile,"x,y,1,0.5,real,0', "line 3: malformed CSV"),
    ],
)
def test_bad_rows_name_line_and_field(tmp_path: Path, row: str, match: str) -> None:
    path = write(tmp_path, GOOD, row)
    with pytest.raises(DataError, match=match) as info:
        PairTable.load(path)
    assert str(info.value).startswith(str(path))


def test_line_numbers_count_blank_and_multiline_records(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, "", '"p\n2",smile,x,y,1,0.5,real,0', "p3,smile,x,y,7,0.5,real,0")
    with pytest.raises(DataError, match="line 6, field 'label'"):
        PairTable.load(path)


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (
            "id,attribute,a,label",
            r"missing column.s. b; expected attribute,a,b,label\[,id,confidence,source,round\]",
        ),
        ("id,attribute,a,b,label,conf", "unknown column.s. conf"),
        ("attribute,a,b,label,a", "repeated column.s. a"),
    ],
)
def test_bad_header(tmp_path: Path, header: str, match: str) -> None:
    path = write(tmp_path, header=header)
    with pytest.raises(DataError, match=f"line 1: {match}"):
        PairTable.load(path)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: empty file; expected a header"):
        PairTable.load(tmp_path / "empty.csv")
    with pytest.raises(DataError, match=r"nope\.csv: file does not exist"):
        PairTable.load(tmp_path / "nope.csv")


def test_validates_against_attributes_and_images(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, "p2,height,x,y,1,0.5,real,0")
    with pytest.raises(
        DataError, match="line 3, field 'attribute': unknown attribute 'height'; valid: age, smile"
    ):
        PairTable.load(path, attributes=["smile", "age"])
    path = write(tmp_path, GOOD, "p2,smile,x,xyz,1,0.5,real,0")
    with pytest.raises(
        DataError, match=r"pairs\.csv, line 3, field 'b': pair names a missing image 'xyz'"
    ):
        PairTable.load(path, image_ids=["x", "y"])


# ---- property: any valid table round-trips through CSV exactly ----------------------------------

# string fields are kept verbatim: spaces, commas, quotes and unicode included
names = st.text(alphabet=string.ascii_letters + string.digits + ",\"' _-é", min_size=1, max_size=8)


@st.composite
def pair_tables(draw: st.DrawFn) -> PairTable:
    n = draw(st.integers(0, 12))
    images = draw(st.lists(names, min_size=2, max_size=6, unique=True))
    a = draw(st.lists(st.sampled_from(images), min_size=n, max_size=n))
    b = [draw(st.sampled_from([i for i in images if i != x])) for x in a]
    return PairTable.build(
        ids=draw(st.lists(names, min_size=n, max_size=n, unique=True)),
        attribute=draw(st.lists(names, min_size=n, max_size=n)),
        a=a,
        b=b,
        label=draw(st.lists(st.sampled_from(LABELS), min_size=n, max_size=n)),
        confidence=np.asarray(
            draw(st.lists(st.floats(0, 1, width=32), min_size=n, max_size=n)), dtype=np.float32
        ),
        source=draw(st.lists(st.sampled_from(PAIR_SOURCES), min_size=n, max_size=n)),
        round=draw(st.lists(st.integers(0, 2**31 - 1), min_size=n, max_size=n)),
    )


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(pair_tables())
def test_property_csv_round_trip(tmp_path_factory: pytest.TempPathFactory, t: PairTable) -> None:
    path = tmp_path_factory.mktemp("prop") / "p.csv"
    t.save(path)
    assert_pairs_equal(t, PairTable.load(path))
