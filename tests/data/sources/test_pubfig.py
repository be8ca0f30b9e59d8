"""PubFig: the real data.mat (when present), the uint8 trap, the test protocol, bad files."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from outpool.data import Dataset
from outpool.data.sources.pubfig import load_pubfig, ordering_accuracy, ranksvm_baseline
from outpool.errors import DataError

from .conftest import SHARED, require, write_image

NAMES = [
    "Male", "White", "Young", "Smiling", "Chubby", "VisibleForehead", "BushyEyebrows",
    "NarrowEyes", "PointyNose", "BigLips", "RoundFace",
]  # fmt: skip


@pytest.fixture(scope="session")
def pubfig(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    root = require(SHARED / "pubfig")
    return load_pubfig(root, cache=tmp_path_factory.mktemp("pubfig-cache"))


def _cell(strings: list[str]) -> np.ndarray:
    out = np.empty((1, len(strings)), dtype=object)
    for i, s in enumerate(strings):
        out[0, i] = np.array([s])
    return out


def _tiny_mat(root: Path, **override: object) -> Path:
    """2 people x 3 images (2 train, 1 test each), 2 attributes; ranks uint8 as in the original."""
    names = [f"{p}_{k}.jpg" for p in ("Ann", "Bob") for k in range(3)]
    for n in names:
        write_image(root / "images" / n, (40, 40))
    data: dict[str, object] = {
        "im_names": _cell(names),
        "class_labels": np.array([[1], [1], [1], [2], [2], [2]], dtype=np.uint8),
        "class_names": _cell(["Ann", "Bob"]),
        "used_for_training": np.array([[1], [1], [0], [1], [1], [0]], dtype=np.uint8),
        "attribute_names": _cell(["Tall", "Calm"]),
        # Tall: Ann 1, Bob 8 (uint8: 1 - 8 wraps to 249); Calm: equal ranks -> no pairs
        "relative_ordering": np.array([[1, 8], [3, 3]], dtype=np.uint8),
    }
    data.update(override)
    data = {k: v for k, v in data.items() if v is not None}
    scipy.io.savemat(root / "data.mat", data)
    return root


@pytest.mark.slow
def test_real_tables(pubfig: Dataset) -> None:
    assert pubfig.attribute_names == tuple(NAMES)
    train, test = pubfig.images["train"], pubfig.images["test"]
    assert (len(train), len(test)) == (241, 531)
    assert isinstance(train.pixels, np.memmap) and train.pixels.shape == (241, 64, 64, 3)
    assert len(set(train.groups.tolist())) == 8 and set(train.groups) == set(test.groups)
    assert train.attributes == tuple(NAMES)
    assert "human ordering" in pubfig.attribute("Male").description
    # ranks of one person are one row of relative_ordering: Male is 6 8 7 5 2 1 4 3
    male = dict(zip(train.groups.tolist(), train.strength("Male").tolist(), strict=True))
    assert male["ScarlettJohansson"] == 1 and male["CliveOwen"] == 8


@pytest.mark.slow
def test_real_train_pairs_follow_int_rank_order(pubfig: Dataset) -> None:
    pairs = pubfig.pairs["train"]
    counts = pubfig.meta["train_pairs"]
    assert len(pairs) == sum(counts.values()) == 269_550
    assert counts["Male"] == 25_410 and counts["VisibleForehead"] == 20_010
    train = pubfig.images["train"]
    ia, ib = train.index_of(pairs.a), train.index_of(pairs.b)
    assert (train.groups[ia] != train.groups[ib]).all()
    for k, name in enumerate(NAMES):
        sel = pairs.attribute == name
        ra = train.strengths[ia[sel], k].astype(int)
        rb = train.strengths[ib[sel], k].astype(int)
        assert (ra != rb).all()
        np.testing.assert_array_equal(pairs.label[sel], np.sign(ra - rb))
        wrapped = np.sign((ra.astype(np.uint8) - rb.astype(np.uint8)).astype(int))
        if name == "Male":  # the trap would turn every "b ranks higher" pair around
            assert (pairs.label[sel] == -1).any() and (wrapped != pairs.label[sel]).any()


def test_real_ranksvm_baseline() -> None:
    result = ranksvm_baseline(require(SHARED / "pubfig"))
    assert list(result) == [*NAMES, "mean"]
    assert result["mean"] == pytest.approx(81.48, abs=0.05)
    assert result["VisibleForehead"] == pytest.approx(88.75, abs=0.01)


@pytest.mark.slow
def test_real_test_protocol_bounds(pubfig: Dataset) -> None:
    test = pubfig.images["test"]
    ranks, groups = test.strength("Smiling"), test.groups
    assert ordering_accuracy(ranks, ranks, groups) == 100.0
    assert ordering_accuracy(-ranks, ranks, groups) == 0.0
    assert ordering_accuracy(np.zeros(len(ranks)), ranks, groups) == 0.0  # ties are wrong


def test_ordering_accuracy_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(2, 30))
        scores = rng.integers(0, 4, size=n).astype(float)  # many ties
        ranks = rng.integers(1, 5, size=n).astype(np.uint8)  # uint8 on purpose
        groups = rng.integers(0, 4, size=n)
        good = total = 0
        for i, j in itertools.combinations(range(n), 2):
            ri, rj = int(ranks[i]), int(ranks[j])
            if groups[i] == groups[j] or ri == rj:
                continue
            total += 1
            good += (scores[i] - scores[j]) * (ri - rj) > 0
        if total == 0:
            with pytest.raises(ValueError):
                ordering_accuracy(scores, ranks, groups)
        else:
            assert ordering_accuracy(scores, ranks, groups) == pytest.approx(100 * good / total)


def test_ordering_accuracy_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="lengths"):
        ordering_accuracy([1.0, 2.0], [1, 2, 3], [0, 1])
    with pytest.raises(ValueError, match="finite"):
        ordering_accuracy([np.nan, 2.0], [1, 2], [0, 1])


def test_tiny_file_uint8_trap(tmp_path: Path) -> None:
    ds = load_pubfig(_tiny_mat(tmp_path), cache=tmp_path / "cache")
    assert [len(t) for t in ds.images.values()] == [4, 2]
    pairs = ds.pairs["train"]
    # Tall: each of Ann's 2 training images against each of Bob's; Calm: all ranks equal
    assert len(pairs) == 4 and set(pairs.attribute) == {"Tall"}
    assert set(pairs.a) == {"Ann_0", "Ann_1"} and (pairs.label == -1).all()  # Ann 1 < Bob 8
    assert ds.meta["train_pairs"] == {"Tall": 4, "Calm": 0}


@pytest.mark.parametrize("key", ["relative_ordering", "im_names", "class_labels"])
def test_missing_key_names_file_and_field(tmp_path: Path, key: str) -> None:
    root = _tiny_mat(tmp_path, **{key: None})
    with pytest.raises(DataError, match=key) as err:
        load_pubfig(root, cache=tmp_path / "cache")
    assert err.value.path == root / "data.mat" and err.value.field == key


def test_shape_mismatch_names_field(tmp_path: Path) -> None:
    root = _tiny_mat(tmp_path, class_labels=np.array([[1], [2]], dtype=np.uint8))
    with pytest.raises(DataError, match="expected 6 values") as err:
        load_pubfig(root, cache=tmp_path / "cache")
    assert err.value.field == "class_labels"
    root = _tiny_mat(tmp_path, relative_ordering=np.ones((3, 2), dtype=np.uint8))
    with pytest.raises(DataError) as err:
        load_pubfig(root, cache=tmp_path / "cache")
    assert err.value.field == "relative_ordering"


def test_not_a_mat_file(tmp_path: Path) -> None:
    (tmp_path / "data.mat").write_text("hello")
    with pytest.raises(DataError, match="MATLAB") as err:
        load_pubfig(tmp_path)
    assert err.value.path == tmp_path / "data.mat"
    with pytest.raises(DataError, match="does not exist"):
        load_pubfig(tmp_path / "nowhere")
