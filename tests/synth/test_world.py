"""The built-in world as a dataset: splits, pairs, truth, clustering, correlations, files."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from outpool.data import Dataset
from outpool.errors import ConfigError
from outpool.synth import ATTRIBUTE_NAMES, SynthConfig, World, build
from outpool.synth.world import CORRELATION, STYLES, sample_broad, sample_catalogue

SPLITS = ("generator", "train", "val", "test")


def _values(world: World, table: str) -> dict[str, np.ndarray]:
    """Image id -> true attribute values (6,)."""
    ids, values = world.truth[table]
    return dict(zip(ids.tolist(), values, strict=True))


def _diffs(world: World, pairs: str, table: str) -> np.ndarray:
    """True value of a minus true value of b, per pair, for the pair's attribute."""
    p = world.dataset.pairs[pairs]
    v = _values(world, table)
    k = np.array([ATTRIBUTE_NAMES.index(a) for a in p.attribute.tolist()])
    va = np.stack([v[i] for i in p.a.tolist()])
    vb = np.stack([v[i] for i in p.b.tolist()])
    return va[np.arange(len(p)), k] - vb[np.arange(len(p)), k]


# ---- determinism ---------------------------------------------------------------------------


def _same_world(w1: World, w2: World) -> bool:
    d1, d2 = w1.dataset, w2.dataset
    if list(d1.images) != list(d2.images) or list(d1.pairs) != list(d2.pairs):
        return False
    for t in d1.images:
        a, b = d1.images[t], d2.images[t]
        if not (np.array_equal(a.ids, b.ids) and np.array_equal(a.pixels, b.pixels)):
            return False
        if not np.array_equal(w1.truth[t][1], w2.truth[t][1]):
            return False
    for t in d1.pairs:
        a, b = d1.pairs[t], d2.pairs[t]
        for col in ("ids", "attribute", "a", "b", "label"):
            if not np.array_equal(getattr(a, col), getattr(b, col)):
                return False
    return True


@pytest.mark.slow
def test_build_is_deterministic(small_config: SynthConfig, small_world: World) -> None:
    assert _same_world(small_world, build(small_config))


def test_different_seed_gives_a_different_world(
    small_world: World, make_small_config: Callable[..., SynthConfig]
) -> None:
    other = build(make_small_config(seed=1))
    assert not _same_world(small_world, other)
    for t in SPLITS:  # every table differs, not just one of them
        assert not np.array_equal(small_world.truth[t][1], other.truth[t][1])
        assert not np.array_equal(
            small_world.dataset.images[t].pixels, other.dataset.images[t].pixels
        )


def test_sizes_follow_the_config(small_config: SynthConfig, small_world: World) -> None:
    d = small_world.dataset
    assert d.name == "synthetic-shoes"
    assert d.attribute_names == ATTRIBUTE_NAMES
    for t in SPLITS:
        n = getattr(small_config, t).images
        assert len(d.images[t]) == n
        assert d.images[t].pixels.shape == (n, 64, 64, 3)
        assert small_world.truth[t][1].shape == (n, len(ATTRIBUTE_NAMES))
        assert small_world.nuisance[t].shape[0] == n
    n_attr = len(ATTRIBUTE_NAMES)
    assert len(d.pairs["train"]) == n_attr * small_config.train_pairs
    assert len(d.pairs["val"]) == n_attr * small_config.val_pairs
    assert len(d.pairs["test"]) == n_attr * small_config.test_pairs
    n_fine = round(small_config.test_pairs * small_config.fine_share)
    assert len(d.pairs["test_fine"]) == n_attr * n_fine
    for t in ("train", "val", "test", "test_fine"):  # every attribute is asked about equally
        _, counts = np.unique(d.pairs[t].attribute, return_counts=True)
        assert len(counts) == n_attr and len(set(counts.tolist())) == 1


# ---- disjoint splits, no truth leak --------------------------------------------------------


def test_image_tables_are_disjoint(small_world: World) -> None:
    seen: set[str] = set()
    for t in SPLITS:
        ids = set(small_world.dataset.images[t].ids.tolist())
        assert not ids & seen
        seen |= ids
    # and pairs stay inside their own table
    for pairs, table in (("train", "train"), ("val", "val"), ("test", "test")):
        p = small_world.dataset.pairs[pairs]
        own = set(small_world.dataset.images[table].ids.tolist())
        assert set(p.a.tolist()) <= own and set(p.b.tolist()) <= own


def test_only_the_generator_table_carries_strengths(small_world: World) -> None:
    gen = small_world.dataset.images["generator"]
    assert gen.attributes == ATTRIBUTE_NAMES
    assert gen.strengths is not None
    np.testing.assert_array_equal(gen.strengths, small_world.truth["generator"][1])
    for t in ("train", "val", "test"):
        table = small_world.dataset.images[t]
        assert table.strengths is None and table.attributes == ()
        assert table.provenance is None


def test_truth_is_saved_under_truth_only(small_world: World, tmp_path: Path) -> None:
    small_world.dataset.save(tmp_path / "ds", truth=small_world.truth)
    for t in ("train", "val", "test"):
        header = (tmp_path / "ds" / "images" / f"{t}.csv").read_text().splitlines()[0]
        assert header == "id,group"  # no attribute columns beside the ranker's images
        ids, values, names = Dataset.load_truth(tmp_path / "ds", t)
        assert names == ATTRIBUTE_NAMES
        np.testing.assert_array_equal(ids, small_world.truth[t][0])
        np.testing.assert_array_equal(values.astype(np.float32), small_world.truth[t][1])
    # the manifest and pair tables never mention true values
    manifest = (tmp_path / "ds" / "dataset.json").read_text()
    assert "truth" not in manifest
    assert sorted(p.name for p in (tmp_path / "ds" / "truth").iterdir()) == sorted(
        f"{t}.csv" for t in SPLITS
    )


# ---- labels agree with the truth -----------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "val"])
def test_train_val_labels_follow_truth_with_equal_band(
    split: str, small_config: SynthConfig, small_world: World
) -> None:
    d = _diffs(small_world, split, split)
    label = small_world.dataset.pairs[split].label
    band = small_config.equal_band
    expected = np.where(d > band, 1, np.where(d < -band, -1, 0))
    np.testing.assert_array_equal(label, expected)
    assert (label == 1).any() and (label == -1).any()


def test_test_labels_follow_truth_and_are_never_equal(
    small_config: SynthConfig, small_world: World
) -> None:
    d = _diffs(small_world, "test", "test")
    label = small_world.dataset.pairs["test"].label
    assert (label != 0).all()
    np.testing.assert_array_equal(label, np.sign(d).astype(np.int8))
    assert (np.abs(d) >= small_config.equal_band).all()
    # no pair is asked twice
    p = small_world.dataset.pairs["test"]
    keys = {(a, min(x, y), max(x, y)) for a, x, y in zip(p.attribute, p.a, p.b, strict=True)}
    assert len(keys) == len(p)


def test_fine_pairs_are_close_and_a_subset_of_test(
    small_config: SynthConfig, small_world: World
) -> None:
    test, fine = small_world.dataset.pairs["test"], small_world.dataset.pairs["test_fine"]
    d = _diffs(small_world, "test_fine", "test")
    assert (np.abs(d) <= small_config.fine_max).all()
    assert (fine.label != 0).all()
    assert set(fine.ids.tolist()) <= set(test.ids.tolist())
    rows = {i: k for k, i in enumerate(test.ids.tolist())}
    at = np.array([rows[i] for i in fine.ids.tolist()])
    for col in ("attribute", "a", "b", "label"):
        np.testing.assert_array_equal(getattr(fine, col), getattr(test, col)[at])
    # the rest of the test set is NOT restricted to fine differences
    rest = np.abs(_diffs(small_world, "test", "test"))
    assert (rest > small_config.fine_max).mean() > 0.3


# ---- the catalogue covers attribute space unevenly -----------------------------------------


def _mean_nn(x: np.ndarray) -> float:
    d, _ = cKDTree(x).query(x, k=2)
    return float(d[:, 1].mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pool_is_clustered_compared_with_test(
    seed: int, make_small_config: Callable[..., SynthConfig]
) -> None:
    """Equal-size train pool and test set: the pool's shoes crowd together in style clusters."""
    world = build(make_small_config(seed=seed))
    pool, test = world.truth["train"][1], world.truth["test"][1]
    assert len(pool) == len(test)
    assert _mean_nn(pool) < 0.75 * _mean_nn(test)
    groups = world.dataset.images["train"].groups
    assert groups is not None
    assert (groups != "other").mean() > 0.85  # mostly catalogue styles


def test_catalogue_clusters_sit_at_the_style_centres() -> None:
    attrs, groups = sample_catalogue(np.random.default_rng(0), 4000, broad_share=0.0, spread=0.05)
    assert attrs.min() >= 0 and attrs.max() <= 1
    assert "other" not in set(groups.tolist())
    for style, (centre, _) in STYLES.items():
        member = attrs[groups == style]
        assert len(member) > 100
        assert np.abs(np.median(member, axis=0) - np.array(centre)).max() < 0.03


# ---- correlations --------------------------------------------------------------------------


def test_broad_sample_correlations() -> None:
    x = sample_broad(np.random.default_rng(0), 20000)
    assert x.shape == (20000, len(ATTRIBUTE_NAMES))
    assert x.min() >= 0 and x.max() <= 1
    assert np.abs(x.mean(axis=0) - 0.5).max() < 0.02  # uniform marginals
    c = np.corrcoef(x.T)
    k = {n: i for i, n in enumerate(ATTRIBUTE_NAMES)}
    assert c[k["heel"], k["pointy"]] > 0.3
    assert c[k["tall"], k["open"]] < -0.3
    # every pair's sign follows the table where the table is clearly non-zero
    strong = np.abs(CORRELATION) >= 0.1
    np.fill_diagonal(strong, False)
    assert (np.sign(c[strong]) == np.sign(CORRELATION[strong])).all()


# ---- files ---------------------------------------------------------------------------------


def test_save_load_round_trip(small_world: World, tmp_path: Path) -> None:
    small_world.dataset.save(tmp_path / "ds", truth=small_world.truth)
    loaded = Dataset.load(tmp_path / "ds")
    src = small_world.dataset
    assert loaded.name == src.name
    assert loaded.attributes == src.attributes
    assert loaded.meta == src.meta
    assert loaded.meta["seed"] == 0 and loaded.meta["config"]["train"]["images"] == 120
    assert list(loaded.images) == list(src.images)
    for t in src.images:
        a, b = src.images[t], loaded.images[t]
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.pixels, b.pixels)
        np.testing.assert_array_equal(a.groups, b.groups)
        assert a.attributes == b.attributes
        if a.strengths is not None:
            np.testing.assert_array_equal(a.strengths, b.strengths)
    assert list(loaded.pairs) == list(src.pairs)
    for t in src.pairs:
        for col in ("ids", "attribute", "a", "b", "label", "confidence", "source", "round"):
            np.testing.assert_array_equal(getattr(src.pairs[t], col), getattr(loaded.pairs[t], col))


# ---- config validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"fine_share": 1.5},
        {"train": {"images": 10, "broad_share": 2.0}},
        {"test": {"images": -5, "broad_share": 0.5}},
        {"fine_max": -0.1},
    ],
    ids=["fine_share", "broad_share", "negative-images", "fine_max"],
)
def test_synth_config_rejects_out_of_range_values(data: dict[str, object]) -> None:
    from outpool.config import from_dict

    with pytest.raises(ConfigError):
        from_dict(SynthConfig, data)


def test_synth_config_is_frozen(small_config: SynthConfig) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        small_config.seed = 3  # type: ignore[misc]
    assert dataclasses.replace(small_config, seed=9).train == small_config.train
