"""`open_dataset` specs, `outpool score`, `outpool data import`, `eval` on an image table with
strengths (the all-pairs protocol; `ordering_accuracy` itself: tests/data/test_metrics.py),
`train-ranker` without a 'val' table.

One tiny dataset (no 'val' pair table; a "test" IMAGE table with groups and strengths, no "test"
pair table) and one tiny ranker trained on it are shared by the whole module.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import outpool.cli.commands
import outpool.train.evaluate
from outpool.cli import main
from outpool.data import Dataset
from outpool.data.dataset import AttributeInfo
from outpool.data.images import ImageTable
from outpool.data.metrics import ordering_accuracy
from outpool.data.open import open_dataset
from outpool.data.pairs import PairTable
from outpool.data.sources.images import decode_image
from outpool.errors import DataError
from outpool.train.evaluate import accuracy_on, score_images
from outpool.train.ranker import load_ranker
from outpool.workflows.ranker_runs import SHEET_PAGE

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ATTR = "bright"
TINY = ("--set", "model.width=4", "--set", "epochs_crop=1", "--set", "epochs_full=1")
NO_VAL_MESSAGE = "no 'val' pair table: training without early stopping"
PUBFIG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pubfig"
PHOTOS = ("a.jpg", "b.png", "clear.png", "d.PNG", "half.png", "sub/c.jpeg")  # what score finds


# ---- module fixtures ---------------------------------------------------------------------------


@pytest.fixture(autouse=True, scope="module")
def _tmp_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Decoded images go to a temporary cache, never the user's ~/.cache/outpool."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OUTPOOL_CACHE", str(cache))
        yield cache


def _levels_to_pixels(levels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.integers(-8, 9, (len(levels), 64, 64, 3))
    return np.clip(levels[:, None, None, None] + noise, 0, 255).astype(np.uint8)


def _ids(prefix: str, n: int) -> np.ndarray:
    return np.asarray([f"{prefix}{i:02d}" for i in range(n)], dtype=np.str_)


def tiny_dataset() -> Dataset:
    """'pool' (no strengths) with 'train' pairs on brightness; 'test' an image table with four
    groups and integer strengths (ties across and within groups); no 'val', no 'test' pairs."""
    rng = np.random.default_rng(7)
    levels = np.linspace(20, 235, 30)
    pool = ImageTable(ids=_ids("p", 30), pixels=_levels_to_pixels(levels, rng))
    a, b = rng.integers(0, 30, 60), rng.integers(0, 30, 60)
    keep = a != b
    a, b = a[keep], b[keep]
    train = PairTable.build(
        attribute=ATTR,
        a=[f"p{i:02d}" for i in a],
        b=[f"p{i:02d}" for i in b],
        label=np.sign(levels[a] - levels[b]).astype(int),
    )
    strengths = rng.integers(1, 5, 24).astype(np.float32)
    group = np.arange(24) % 4
    # group g0 is shown the wrong way round: its own pairs are all misordered, so counting
    # same-group pairs (or ignoring groups) would change the number
    shown = np.where(group == 0, 5 - strengths, strengths) * 50.0
    test = ImageTable(
        ids=_ids("t", 24),
        pixels=_levels_to_pixels(shown, rng),
        groups=np.asarray([f"g{g}" for g in group], dtype=np.str_),
        attributes=(ATTR,),
        strengths=strengths[:, None],
    )
    return Dataset(
        name="tiny",
        attributes=(AttributeInfo(ATTR),),
        images={"pool": pool, "test": test},
        pairs={"train": train},
    )


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ds") / "tiny"
    tiny_dataset().save(folder)
    return folder


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def trained(dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A run trained with the default --val on a dataset without a 'val' table."""
    run = tmp_path_factory.mktemp("runs") / "r"
    code, out, err = run_cli(["train-ranker", str(dataset_dir), "--out", str(run), *TINY])
    assert code == 0, err
    return run, out, err


@pytest.fixture(scope="module")
def ranker(trained: tuple[Path, str, str]) -> Path:
    return trained[0] / ATTR / "ranker.pt"


def _save_rgb(path: Path, size: tuple[int, int], seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Images of several sizes and formats, one in a sub-folder, two RGBA with alpha; plus a
    hidden image and a text file that score must skip."""
    root = tmp_path_factory.mktemp("photos")
    _save_rgb(root / "a.jpg", (80, 60), 1)
    _save_rgb(root / "b.png", (50, 90), 2)
    _save_rgb(root / "d.PNG", (64, 64), 3)
    _save_rgb(root / "sub" / "c.jpeg", (120, 70), 4)
    _save_rgb(root / ".hidden.png", (64, 64), 5)
    (root / "notes.txt").write_text("not an image\n")
    Image.new("RGBA", (70, 70), (0, 0, 0, 0)).save(root / "clear.png")
    Image.new("RGBA", (64, 64), (255, 0, 0, 128)).save(root / "half.png")
    return root


def siblings(folder: Path) -> list[str]:
    """Leftover temporary siblings of ``folder`` (``.NAME.new-*`` / ``.NAME.old-*``)."""
    return [p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.")]


# ---- open_dataset ------------------------------------------------------------------------------


def test_open_plain_folder(dataset_dir: Path) -> None:
    for spec in (dataset_dir, str(dataset_dir)):
        ds = open_dataset(spec)
        assert ds.name == "tiny" and ds.attribute_names == (ATTR,)
        assert list(ds.images) == ["pool", "test"] and list(ds.pairs) == ["train"]
        assert len(ds.pairs["train"]) == len(tiny_dataset().pairs["train"])
        assert np.array_equal(ds.images["test"].pixels, tiny_dataset().images["test"].pixels)


@pytest.mark.slow
def test_open_pubfig_uses_the_cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not PUBFIG.exists():
        pytest.skip(f"PubFig not found at {PUBFIG}")
    cache = tmp_path / "cache"
    monkeypatch.setenv("OUTPOOL_CACHE", str(cache))
    ds = open_dataset(f"pubfig:{PUBFIG}")
    train, test = ds.images["train"], ds.images["test"]
    assert (len(train), len(test)) == (241, 531)
    assert test.strengths is not None and test.groups is not None
    assert test.attributes == ds.attribute_names and len(ds.attribute_names) == 11
    assert list(ds.pairs) == ["train"] and len(ds.pairs["train"]) > 0
    assert [p.name.startswith("pubfig-") for p in cache.iterdir()] == [True]


def write_folder_source(root: Path) -> tuple[Path, Path]:
    images = root / "imgs"
    for i in range(6):
        _save_rgb(images / f"im{i}.png", (40 + 10 * i, 50), 10 + i)
    rows = [
        "attribute,a,b,label,split",
        f"{ATTR},im0.png,im1.png,1,train",
        f"{ATTR},im1.png,im2.png,-1,train",
        f"{ATTR},im2.png,im3.png,0,train",
        f"{ATTR},im3.png,im4.png,1,test",
        f"{ATTR},im4.png,im5.png,-1,test",
    ]
    pairs = root / "pairs.csv"
    pairs.write_text("\n".join(rows) + "\n")
    return images, pairs


def test_open_folder_spec(tmp_path: Path) -> None:
    images, pairs = write_folder_source(tmp_path)
    ds = open_dataset(f"folder:{images},{pairs}")
    assert ds.attribute_names == (ATTR,)
    assert {k: len(v) for k, v in ds.pairs.items()} == {"train": 3, "test": 2}
    table = ds.images["images"]
    assert table.ids.tolist() == [f"im{i}.png" for i in range(6)]
    assert np.array_equal(table.pixels[2], decode_image(images / "im2.png"))


@pytest.mark.parametrize(
    ("spec", "wanted"),
    [
        ("folder:only_one", 2),
        ("folder:a,b,c", 2),
        ("zappos:images_only", 2),
        ("pubfig:", 1),
        ("pubfig:a,b", 1),
        ("lfw:", 1),
    ],
)
def test_open_wrong_number_of_paths_names_the_spec(spec: str, wanted: int) -> None:
    with pytest.raises(DataError) as info:
        open_dataset(spec)
    assert f"'{spec}'" in str(info.value) and f"needs {wanted} path(s)" in str(info.value)


def test_open_unknown_prefix_is_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="not an outpool dataset") as info:
        open_dataset("nope:whatever")
    assert "nope:whatever" in str(info.value)


# ---- outpool score -----------------------------------------------------------------------------


def read_scores(out: Path) -> list[dict[str, str]]:
    with open(out / "scores.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["rank", "image", "score"]
        return list(reader)


def test_decode_image_composites_alpha_on_white(photos: Path) -> None:
    assert (decode_image(photos / "clear.png") == 255).all()
    half = decode_image(photos / "half.png").astype(int)
    # red at alpha 128 over white: (255, 127, 127) give or take rounding
    assert (half[..., 0] == 255).all()
    assert (np.abs(half[..., 1:] - 127) <= 1).all()


@pytest.mark.slow
def test_score_writes_sorted_scores_and_a_contact_sheet(
    ranker: Path, photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scored"
    code, stdout, err = run_cli(["score", str(ranker), str(photos), "--out", str(out)])
    assert code == 0, err
    assert json.loads(stdout) == {"scored": len(PHOTOS), "out": str(out)}
    rows = read_scores(out)
    assert [int(r["rank"]) for r in rows] == list(range(1, len(PHOTOS) + 1))
    assert sorted(r["image"] for r in rows) == sorted(PHOTOS)  # each once, hidden/txt skipped
    got = np.array([float(r["score"]) for r in rows])
    assert (np.diff(got) <= 0).all()
    assert (out / "contact_sheet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == ["contact_sheet.png", "scores.csv"]
    assert siblings(out) == []

    # the numbers are the ranker's scores of the decoded images
    model, _ = load_ranker(ranker)
    names = [r["image"] for r in rows]
    pixels = np.stack([decode_image(photos / n) for n in names])
    expected = score_images(model, pixels)
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # the fully transparent image is scored as plain white
    white = score_images(model, np.full((1, 64, 64, 3), 255, np.uint8))[0]
    assert got[names.index("clear.png")] == pytest.approx(white, rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_score_contact_sheets_show_every_image(ranker: Path, tmp_path: Path) -> None:
    images = tmp_path / "many"
    for i in range(SHEET_PAGE + 6):
        _save_rgb(images / f"im{i:03d}.png", (32, 48), i)
    out = tmp_path / "scored"
    code, _, err = run_cli(["score", str(ranker), str(images), "--out", str(out), "--fit", "top"])
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        "contact_sheet.png", "contact_sheet_002.png", "scores.csv"
    ]  # fmt: skip
    with (
        Image.open(out / "contact_sheet.png") as first,
        Image.open(out / "contact_sheet_002.png") as second,
    ):
        assert second.size[1] < first.size[1]  # 6 images: one row against eight


def test_score_leaves_out_a_file_it_cannot_decode_and_names_it(
    ranker: Path, tmp_path: Path
) -> None:
    images = tmp_path / "photos"
    for i in range(3):
        _save_rgb(images / f"im{i}.png", (32, 48), i)
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "scored"
    code, stdout, err = run_cli(["score", str(ranker), str(images), "--out", str(out)])
    assert code == 0, err
    assert "1 image file(s) could not be decoded and were left out: broken.jpg" in err
    assert json.loads(stdout)["scored"] == 3
    assert sorted(r["image"] for r in read_scores(out)) == ["im0.png", "im1.png", "im2.png"]
    for i in range(3):
        (images / f"im{i}.png").write_bytes(b"")
    code, _, err = run_cli(["score", str(ranker), str(images), "--out", str(tmp_path / "o2")])
    assert code == 2 and "none of the 4 image files could be decoded" in err


@pytest.mark.slow
def test_score_empty_folder_is_an_error(ranker: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here\n")
    out = tmp_path / "out"
    code, _, err = run_cli(["score", str(ranker), str(empty), "--out", str(out)])
    assert code == 2
    assert "no .jpg/.jpeg/.png images found" in err and str(empty) in err
    assert "Traceback" not in err and not out.exists()


def test_score_missing_ranker_names_it(photos: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nothing" / "ranker.pt"
    out = tmp_path / "out"
    code, _, err = run_cli(["score", str(missing), str(photos), "--out", str(out)])
    assert code == 2 and str(missing) in err and "not found" in err
    assert not out.exists()


@pytest.mark.slow
def test_score_refuses_existing_out_and_force_replaces(
    ranker: Path, photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scored"
    out.mkdir()
    (out / "keep.txt").write_text("old\n")
    code, _, err = run_cli(["score", str(ranker), str(photos), "--out", str(out)])
    assert code == 2 and "--force" in err and str(out) in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "old\n"

    code, _, err = run_cli(["score", str(ranker), str(photos), "--out", str(out), "--force"])
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["contact_sheet.png", "scores.csv"]
    assert len(read_scores(out)) == len(PHOTOS)
    assert siblings(out) == []


# ---- outpool data import -----------------------------------------------------------------------


def test_import_folder_spec_round_trip(tmp_path: Path) -> None:
    images, pairs = write_folder_source(tmp_path)
    spec = f"folder:{images},{pairs}"
    out = tmp_path / "ds"
    code, stdout, err = run_cli(["data", "import", spec, "--out", str(out)])
    assert code == 0, err
    assert "warning: 1 images appear in pairs of two splits (e.g. im3.png)" in err
    assert json.loads(stdout) == {
        "dataset": str(out),
        "images": 6,
        "pairs": {"train": 3, "test": 2},
    }
    direct, saved = open_dataset(spec), Dataset.load(out)
    assert saved.attribute_names == direct.attribute_names == (ATTR,)
    counts = {k: len(v) for k, v in direct.pairs.items()}
    assert {k: len(v) for k, v in saved.pairs.items()} == counts == {"train": 3, "test": 2}
    for name, table in direct.pairs.items():
        for col in ("a", "b", "label"):
            assert getattr(saved.pairs[name], col).tolist() == getattr(table, col).tolist()
    ids = direct.image_ids()
    assert saved.image_ids().tolist() == ids.tolist()
    assert np.array_equal(saved.lookup(ids), direct.lookup(ids))
    assert siblings(out) == []


def test_import_folder_spec_with_a_crop(dataset_dir: Path, tmp_path: Path) -> None:
    images, pairs = write_folder_source(tmp_path)
    spec = f"folder:{images},{pairs}"
    out = tmp_path / "ds"
    code, _, err = run_cli(["data", "import", spec, "--out", str(out), "--crop", "0.5"])
    assert code == 0, err
    ids = Dataset.load(out).image_ids()
    saved = Dataset.load(out).lookup(ids)
    np.testing.assert_array_equal(saved, open_dataset(spec, crop=0.5).lookup(ids))
    assert not np.array_equal(saved, open_dataset(spec).lookup(ids))
    # a dataset folder keeps the crop it was imported with: asking for another is refused
    with pytest.raises(DataError, match="a crop applies only to the lfw and folder sources"):
        open_dataset(dataset_dir, crop=0.5)


def test_import_folder_fit_and_pair_policies(tmp_path: Path) -> None:
    images, pairs = write_folder_source(tmp_path)
    with open(pairs, "a") as fh:  # a reversed repeat and a contradiction
        fh.write(f"{ATTR},im1.png,im0.png,-1,train\n{ATTR},im4.png,im3.png,1,test\n")
    (images / "stray.png").write_bytes(b"not a png")  # no pair names it
    spec, out = f"folder:{images},{pairs}", tmp_path / "ds"
    argv = ["data", "import", spec, "--out", str(out), "--fit", "top"]
    code, stdout, err = run_cli(argv)
    assert code == 0, err
    assert "outpool: warning: pairs of split 'train': 1 row repeats an earlier pair" in err
    assert "line 7 repeats line 2" in err
    assert "1 pair has contradicting labels (2 rows), kept out of training in table " in err
    assert "could not be read and were skipped: stray.png" in err
    assert json.loads(stdout)["pairs"] == {"train": 3, "test": 1, "test_conflicts": 2}
    saved = Dataset.load(out)
    assert saved.meta["fit"] == "top" and saved.meta["skipped_images"] == ["stray.png"]
    ids = saved.image_ids()
    np.testing.assert_array_equal(saved.lookup(ids), open_dataset(spec, fit="top").lookup(ids))
    # the policies are options of the folder source only
    for source in (f"lfw:{tmp_path}", f"pubfig:{tmp_path}"):
        argv = ["data", "import", source, "--out", str(tmp_path / "x"), "--fit", "top"]
        code, _, err = run_cli(argv)
        assert code == 2 and "fit apply only to the folder source" in err, err
    argv = ["data", "import", spec, "--out", str(tmp_path / "k"), "--conflicts", "keep"]
    code, stdout, err = run_cli(argv)
    assert code == 0 and json.loads(stdout)["pairs"] == {"train": 3, "test": 3}


def test_import_plain_folder_lists_the_sources(dataset_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, _, err = run_cli(["data", "import", str(dataset_dir), "--out", str(out)])
    assert code == 2
    assert "unknown data source" in err and "valid: folder, lfw, pubfig, zappos" in err
    assert not out.exists()


def test_import_refuses_existing_out_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, pairs = write_folder_source(tmp_path)
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("old\n")

    def no_work(spec: object) -> None:
        raise AssertionError("the source was read before the --out check")

    monkeypatch.setattr(outpool.cli.commands, "open_dataset", no_work)
    code, _, err = run_cli(["data", "import", f"folder:{images},{pairs}", "--out", str(out)])
    assert code == 2 and "--force" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


# ---- train-ranker without 'val' ----------------------------------------------------------------


@pytest.mark.slow
def test_train_ranker_without_val_table(trained: tuple[Path, str, str]) -> None:
    run, stdout, stderr = trained
    assert NO_VAL_MESSAGE in stderr
    summary = json.loads(stdout)
    assert set(summary) == {ATTR}
    assert summary[ATTR]["epochs_run"] == 1 and summary[ATTR]["best_val_acc"] is None
    record = json.loads((run / ATTR / "config.json").read_text())
    assert record["val_pairs"] is None and record["train_pairs"] == "train"
    assert (run / ATTR / "ranker.pt").is_file() and (run / "summary.json").is_file()
    for stage in ("crop", "full"):
        lines = (run / ATTR / f"stage_{stage}" / "metrics.jsonl").read_text().splitlines()
        assert len(lines) == 1 and "val_acc" not in json.loads(lines[0])


@pytest.mark.slow
def test_train_ranker_val_none(dataset_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "r"
    argv = ["train-ranker", str(dataset_dir), "--out", str(run), "--val", "none", *TINY]
    code, stdout, stderr = run_cli(argv)
    assert code == 0, stderr
    assert NO_VAL_MESSAGE not in stderr  # asked for explicitly: nothing to warn about
    assert json.loads(stdout)[ATTR]["epochs_run"] == 1
    assert json.loads((run / ATTR / "config.json").read_text())["val_pairs"] is None


def test_train_ranker_unknown_val(dataset_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "r"
    argv = ["train-ranker", str(dataset_dir), "--out", str(run), "--val", "nope", *TINY]
    code, _, stderr = run_cli(argv)
    assert code == 2
    assert "unknown pair table 'nope'; valid: train" in stderr
    assert not run.exists()


# ---- eval: the all-pairs protocol on an image table with strengths ------------------------------


@pytest.mark.slow
def test_eval_image_table_uses_ordering_accuracy(
    trained: tuple[Path, str, str], dataset_dir: Path
) -> None:
    run = trained[0]
    code, stdout, err = run_cli(["eval", str(run), str(dataset_dir), "--pairs", "test"])
    assert code == 0, err
    result = json.loads(stdout)
    stored = json.loads((run / "eval.json").read_text())["evaluations"]
    name, source = Dataset.load(dataset_dir).name, str(dataset_dir.resolve())
    assert stored[f"test of {source}"] == {
        "dataset": name,
        "source": source,
        "table": "test",
        **result["test"],
    }

    ds = Dataset.load(dataset_dir)
    test = ds.images["test"]
    assert test.groups is not None
    model, _ = load_ranker(run / ATTR / "ranker.pt")
    scores = score_images(model, np.asarray(test.pixels))
    expected = ordering_accuracy(scores, test.strength(ATTR), test.groups)
    accuracy = result["test"]["accuracy_pct"]
    assert accuracy == {ATTR: round(expected, 2), "mean": round(expected, 2)}
    assert result["test"]["pairs"][ATTR] > 0
    assert result["test"]["interval95_pct"][ATTR] is None  # the pairs share their images
    # the groups matter here: every image its own group (or all pairs) gives another number
    assert round(ordering_accuracy(scores, test.strength(ATTR), test.ids), 2) != accuracy[ATTR]
    assert 0.0 < expected < 100.0

    # the default table is "test" too; a pair table still uses pair accuracy
    code, stdout, _ = run_cli(["eval", str(run), str(dataset_dir), "--pairs", "train"])
    assert code == 0
    pair_acc = accuracy_on(model, ds, ds.pairs["train"].for_attribute(ATTR))
    assert json.loads(stdout)["train"]["accuracy_pct"][ATTR] == round(pair_acc, 2)
    code, stdout, _ = run_cli(["eval", str(run), str(dataset_dir)])
    assert code == 0 and json.loads(stdout) == result
    # both tables' evaluations are kept in eval.json, neither overwrites the other
    assert set(json.loads((run / "eval.json").read_text())["evaluations"]) >= {
        f"test of {source}",
        f"train of {source}",
    }


@pytest.mark.slow
def test_eval_unknown_table_lists_pair_and_image_tables(
    trained: tuple[Path, str, str], dataset_dir: Path
) -> None:
    code, _, err = run_cli(["eval", str(trained[0]), str(dataset_dir), "--pairs", "nope"])
    assert code == 2
    # pair table 'train' and image table with strengths 'test'; 'pool' has no strengths
    assert "unknown pair table (or image table with strengths) 'nope'; valid: test, train" in err


def test_training_into_a_run_of_other_settings_is_refused_and_changes_nothing(
    dataset_dir: Path, trained: tuple[Path, str, str]
) -> None:
    run = trained[0]
    before = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    other = [*TINY, "--set", "model.width=8"]
    code, _, err = run_cli(["train-ranker", str(dataset_dir), "--out", str(run), *other])
    assert code == 2
    assert "other settings (model.width: 4 -> 8)" in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()} == before


def test_train_ranker_on_a_folder_spec_warns_of_images_in_two_splits(tmp_path: Path) -> None:
    images, pairs = write_folder_source(tmp_path)  # im3 is in a train pair and a test pair
    argv = ["train-ranker", f"folder:{images},{pairs}", "--out", str(tmp_path / "r")]
    code, _, err = run_cli([*argv, "--model", "linear", "--val", "none"])
    assert code == 0, err
    assert "outpool: warning: 1 images appear in pairs of two splits (e.g. im3.png)" in err
    assert "'outpool data split'" in err


def test_eval_keeps_the_same_table_of_two_sources_that_share_a_dataset_name(
    tmp_path: Path,
) -> None:
    images, pairs = write_folder_source(tmp_path)
    spec, out = f"folder:{images},{pairs}", tmp_path / "mine"
    assert run_cli(["data", "import", spec, "--out", str(out)])[0] == 0
    assert (
        run_cli(["data", "split", str(out), "--test", "0.5", "--val", "0", "--seed", "2"])[0] == 0
    )
    run = tmp_path / "r"
    code, _, err = run_cli(
        ["train-ranker", spec, "--out", str(run), "--model", "linear", "--val", "none"]
    )
    assert code == 0, err
    results = {}
    for source in (out, spec):  # both datasets are named after the image folder, "imgs"
        code, stdout, err = run_cli(["eval", str(run), str(source), "--pairs", "test"])
        assert code == 0, err
        results[source] = json.loads(stdout)["test"]
    stored = json.loads((run / "eval.json").read_text())["evaluations"]
    imported, folder = (
        f"test of {out.resolve()}",
        f"test of folder:{images.resolve()},{pairs.resolve()}",
    )
    assert set(stored) == {imported, folder}
    assert {r["dataset"] for r in stored.values()} == {"imgs"}
    assert stored[imported]["pairs"] == results[out]["pairs"]
    assert stored[folder]["pairs"] == results[spec]["pairs"] == {ATTR: 2}


def test_train_ranker_on_an_imported_folder_with_leaks_names_the_split_command(
    tmp_path: Path,
) -> None:
    images, pairs = write_folder_source(tmp_path)  # im3 is in a train pair and a test pair
    out = tmp_path / "mine"
    assert run_cli(["data", "import", f"folder:{images},{pairs}", "--out", str(out)])[0] == 0
    argv = ["train-ranker", str(out), "--out", str(tmp_path / "r"), "--model", "linear"]
    code, _, err = run_cli([*argv, "--val", "none"])
    assert code == 0, err
    assert f"'outpool data split {out}' makes image-disjoint splits" in err
    assert "import it" not in err


def test_split_your_own_images_by_folder_or_by_a_groups_csv(tmp_path: Path) -> None:
    images = tmp_path / "imgs"
    names = [f"person{k}/{i}.png" for k in range(8) for i in range(3)]
    for n, name in enumerate(names):
        _save_rgb(images / name, (40, 50), n)
    rng = np.random.default_rng(0)
    rows = ["attribute,a,b,label"]
    rows += [f"{ATTR},{names[a]},{names[b]},1" for a, b in rng.integers(0, 24, (120, 2)) if a != b]
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "mine"
    spec = f"folder:{images},{tmp_path / 'pairs.csv'}"
    assert run_cli(["data", "import", spec, "--out", str(out)])[0] == 0

    def people_in(table: str) -> set[str]:
        pairs = Dataset.load(out).pairs[table]
        return {i.split("/")[0] for i in (*pairs.a.tolist(), *pairs.b.tolist())}

    code, stdout, err = run_cli(["data", "split", str(out), "--by", "folder", "--seed", "1"])
    assert code == 0, err
    assert json.loads(stdout)["by"] == "folder" and "straddled two splits" in err
    assert not people_in("train") & people_in("test")
    # a groups file: two people per group, so the pairs within a group stay
    groups = tmp_path / "groups.csv"
    lines = [f"{name},g{int(name[6]) // 2}" for name in names]
    groups.write_text("image,group\n" + "\n".join(lines) + "\n")
    code, stdout, err = run_cli(["data", "split", str(out), "--groups", str(groups)])
    assert code == 0, err
    assert json.loads(stdout)["by"] == "group" and sum(json.loads(stdout)["units"].values()) == 4
    assert not {int(p[6]) // 2 for p in people_in("train")} & {
        int(p[6]) // 2 for p in people_in("test")
    }
    groups.write_text("image,group\n" + "\n".join(lines[3:]) + "\n")  # person0 has none
    before = {n: p.ids.tolist() for n, p in Dataset.load(out).pairs.items()}
    code, _, err = run_cli(["data", "split", str(out), "--groups", str(groups)])
    assert code != 0 and "have no group: person0/0.png" in err
    assert {n: p.ids.tolist() for n, p in Dataset.load(out).pairs.items()} == before


def test_data_label_with_nothing_accepted_says_so_instead_of_a_next_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import outpool.workflows.labelling as labelling

    def none_accepted(*args: object, **kwargs: object) -> dict[str, object]:
        return {"pairs": "random_crowd", "votes": 100, "accepted": 0, "rejected": 20, "pruned": 0}

    monkeypatch.setattr(labelling, "crowd_label", none_accepted)
    code, out, err = run_cli(["data", "label", str(tmp_path), "--pairs", "random"])
    assert code == 0 and json.loads(out)["accepted"] == 0
    assert "next:" not in err and "accepted none of the random pairs" in err


@pytest.mark.parametrize(("deep", "warned"), [(70.0, True), (70.5, False)])
def test_train_ranker_says_when_auto_would_keep_the_linear_ranker(
    dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deep: float, warned: bool
) -> None:
    import outpool.workflows.ranker_runs as ranker_runs

    def fake_train_run(*args: object, **kwargs: object) -> dict[str, object]:
        record = {"model": "deepstn", "deepstn_val_acc": deep, "linear_val_acc": 70.0}
        return {ATTR: {**record, "val_pairs": 40}}

    monkeypatch.setattr(ranker_runs, "train_run", fake_train_run)
    argv = ["train-ranker", str(dataset_dir), "--out", str(tmp_path / "r"), "--val", "train"]
    code, _, err = run_cli([*argv, "--train", "other"])
    assert code == 0, err
    assert f"val accuracy DeepSTN {deep:.1f}%, linear reference 70.0% (40 val pairs)" in err
    assert ("--model auto would keep it" in err) is warned


def test_train_ranker_names_the_blend_auto_kept_and_every_blend_figure(
    dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import outpool.workflows.ranker_runs as ranker_runs

    def fake_train_run(*args: object, **kwargs: object) -> dict[str, object]:
        blends = {"0.25": 71.0, "0.5": 74.5, "0.75": 73.0}
        record = {"model": "blend", "blend_weight": 0.5, "blend_val_acc": blends}
        return {ATTR: {**record, "deepstn_val_acc": 72.0, "linear_val_acc": 70.0, "val_pairs": 40}}

    monkeypatch.setattr(ranker_runs, "train_run", fake_train_run)
    argv = ["train-ranker", str(dataset_dir), "--out", str(tmp_path / "r"), "--val", "train"]
    code, _, err = run_cli([*argv, "--train", "other", "--model", "auto"])
    assert code == 0, err
    assert (
        f"{ATTR}: ranker.pt is blend (0.5 DeepSTN); val accuracy DeepSTN 72.0%, linear reference "
        "70.0%, blend 0.25 DeepSTN 71.0%, blend 0.5 DeepSTN 74.5%, blend 0.75 DeepSTN 73.0% "
        "(40 val pairs)"
    ) in err
