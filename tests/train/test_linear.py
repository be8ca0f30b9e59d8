"""The linear ranker: its features, the RankSVM fit and the lambda chosen on val, its file, and
the train-ranker choice among it, DeepSTN and their blends (``--model linear|auto``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from outpool.data import Dataset, PairTable
from outpool.data.dataset import AttributeInfo
from outpool.data.images import ImageTable
from outpool.errors import ConfigError, DataError, UnknownNameError
from outpool.models import BlendConfig, BlendRanker, DeepSTN
from outpool.models.linear import LinearRanker, LinearRankerConfig, image_features
from outpool.models.ranker import RankerConfig
from outpool.train.evaluate import accuracy_on, score_images
from outpool.train.linear import LinearTrainConfig, fit_weights, train_linear_ranker
from outpool.train.ranker import RankerTrainConfig, load_deepstn, load_ranker, save_ranker
from outpool.workflows import ranker_runs
from outpool.workflows.ranker_runs import (
    Candidate,
    auto_choice,
    evaluate_run,
    scores_from_parts,
    train_run,
)

TINY_DEEPSTN = RankerTrainConfig(
    model=RankerConfig(width=4), epochs_crop=1, epochs_full=1, device="cpu"
)


def brightness_dataset(n_images: int = 60, n_pairs: int = 150, seed: int = 0) -> Dataset:
    """Noise images whose attribute 'bright' is their mean brightness; train/val/test pairs."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(0.2, 0.8, n_images)
    pixels = rng.normal(level[:, None, None, None] * 255, 40, (n_images, 64, 64, 3))
    ids = np.asarray([f"im{i:03d}" for i in range(n_images)])
    images = ImageTable(ids=ids, pixels=np.clip(pixels, 0, 255).astype(np.uint8))

    def pairs(count: int, prefix: str) -> PairTable:
        a, b = rng.integers(0, n_images, (2, count))
        keep = a != b
        a, b = a[keep], b[keep]
        label = np.where(level[a] > level[b], 1, -1)
        return PairTable.build(
            attribute="bright", a=ids[a], b=ids[b], label=label, id_prefix=prefix
        )

    return Dataset(
        name="bright",
        attributes=(AttributeInfo("bright"),),
        images={"images": images},
        pairs={"train": pairs(n_pairs, "t"), "val": pairs(60, "v"), "test": pairs(100, "s")},
    )


def test_features_have_the_documented_size_and_carry_gradients() -> None:
    cfg = LinearRankerConfig(pixels=8, orientations=6, cells=2)
    x = torch.rand(3, 3, 64, 64, requires_grad=True)
    f = image_features(x, cfg)
    assert f.shape == (3, cfg.features) == (3, 3 * 64 + 6 * 4)
    assert torch.isfinite(f).all()
    f.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # a flat image has no gradient to histogram
    flat = image_features(torch.full((1, 3, 64, 64), 0.5), cfg)
    assert flat[0, 3 * 64 :].abs().max() < 1e-3


def test_histograms_tell_vertical_from_horizontal_edges() -> None:
    cfg = LinearRankerConfig(pixels=1, orientations=4, cells=1)
    vertical = torch.zeros(1, 3, 64, 64)
    vertical[..., :, 32:] = 1.0  # an edge along x = 32: gradient along x (angle 0)
    horizontal = vertical.transpose(-1, -2)
    hv = image_features(vertical, cfg)[0, 3:]
    hh = image_features(horizontal, cfg)[0, 3:]
    assert hv.argmax() == 0 and hh.argmax() == 2  # bins at 0 and 90 degrees


def test_fit_orders_separable_pairs_and_equal_pairs_pull_together() -> None:
    torch.manual_seed(0)
    x = torch.randn(40, 5, dtype=torch.float64)
    truth = torch.tensor([1.0, -2.0, 0.0, 0.5, 0.0], dtype=torch.float64)
    a, b = torch.randint(0, 40, (2, 300))
    d = x[a] - x[b]
    label = torch.sign(d @ truth).long()
    w = fit_weights(d, label, torch.ones(300), 1e-3, max_iter=200)
    assert ((d @ w).sign() == label).double().mean() > 0.97
    # equal pairs along the first feature remove its weight
    equal = torch.zeros(200, 5, dtype=torch.float64)
    equal[:, 0] = torch.randn(200, dtype=torch.float64)
    d2 = torch.cat([d, equal])
    label2 = torch.cat([label, torch.zeros(200, dtype=torch.long)])
    w2 = fit_weights(d2, label2, torch.ones(500), 1e-3, max_iter=200)
    assert abs(w2[0]) < 0.25 * abs(w[0])


def test_lambda_is_chosen_on_val_and_the_file_round_trips(tmp_path: Path) -> None:
    ds = brightness_dataset()
    cfg = LinearTrainConfig(lambdas=(1e-3, 1e-1, 1e6))
    model, summary = train_linear_ranker(ds, "bright", cfg, train="train", val="val")
    assert set(summary["val_acc_by_lambda"]) == {"0.001", "0.1", "1e+06"}
    assert summary["best_val_acc"] == max(summary["val_acc_by_lambda"].values()) > 95
    ties = [k for k, v in summary["val_acc_by_lambda"].items() if v == summary["best_val_acc"]]
    assert summary["lambda"] == max(float(k) for k in ties)  # ties go to the stronger
    assert accuracy_on(model, ds, ds.pairs["test"]) > 95
    save_ranker(model, tmp_path / "linear.pt", attribute="bright", record=summary)
    loaded, payload = load_ranker(tmp_path / "linear.pt")
    assert isinstance(loaded, LinearRanker) and payload["model"] == "linear"
    x = torch.rand(4, 3, 64, 64)
    torch.testing.assert_close(loaded(x), model(x))
    with pytest.raises(DataError, match="holds a linear ranker"):
        load_deepstn(tmp_path / "linear.pt")
    # no validation pairs: the default lambda, said so by a missing accuracy
    _, plain = train_linear_ranker(ds, "bright", cfg, train="train", val=None)
    assert plain["lambda"] == cfg.default_lambda and plain["best_val_acc"] is None


@pytest.mark.slow
def test_train_run_auto_keeps_the_better_model(tmp_path: Path) -> None:
    ds = brightness_dataset()
    run = tmp_path / "auto"
    results = train_run(ds, "bright", TINY_DEEPSTN, run, model="auto", progress=False)
    r = results["bright"]
    # a width-4 DeepSTN after two epochs does not reach a linear fit of brightness
    assert r["model"] == "linear" and r["linear_val_acc"] > r["deepstn_val_acc"]
    assert r["best_val_acc"] == r["linear_val_acc"]
    assert isinstance(load_ranker(run / "bright" / "ranker.pt")[0], LinearRanker)
    assert load_deepstn(run / "bright" / "deepstn.pt")[1]["attribute"] == "bright"
    assert json.loads((run / "summary.json").read_text())["bright"]["model"] == "linear"
    tables = evaluate_run(run, ds, ("test",))
    assert tables["test"]["accuracy_pct"]["bright"] > 95  # eval and score read either model

    deep = train_run(ds, "bright", TINY_DEEPSTN, tmp_path / "d", progress=False)["bright"]
    assert deep["model"] == "deepstn" and deep["linear_val_acc"] == r["linear_val_acc"]
    assert deep["val_pairs"] == r["val_pairs"] > 50  # every summary says what val measured
    assert (tmp_path / "d" / "bright" / "linear.pt").is_file()  # the reference, always
    assert not (tmp_path / "d" / "bright" / "deepstn.pt").exists()

    lin = train_run(ds, "bright", TINY_DEEPSTN, tmp_path / "l", model="linear")["bright"]
    assert lin["model"] == "linear"
    assert sorted(p.name for p in (tmp_path / "l" / "bright").iterdir()) == ["ranker.pt"]


def test_auto_needs_val_and_unknown_models_are_named(tmp_path: Path) -> None:
    ds = brightness_dataset()
    with pytest.raises(ConfigError, match="needs a val table"):
        train_run(ds, "bright", TINY_DEEPSTN, tmp_path / "r", model="auto", val=None)
    with pytest.raises(UnknownNameError, match="valid: auto, deepstn, linear"):
        train_run(ds, "bright", TINY_DEEPSTN, tmp_path / "r", model="svm")


def right(n_right: int, n: int = 100, start: int = 0) -> np.ndarray:
    """Per-pair results: pairs ``start`` .. ``start + n_right - 1`` (mod n) right."""
    out = np.zeros(n, dtype=bool)
    out[(start + np.arange(n_right)) % n] = True
    return out


def pick(linear: np.ndarray, deepstn: np.ndarray, *blends: np.ndarray) -> tuple[str, float]:
    models = [Candidate("linear", LinearRanker(LinearRankerConfig()), linear, 0.0)]
    models.append(Candidate("deepstn", LinearRanker(LinearRankerConfig()), deepstn))
    for w, correct in zip((0.25, 0.5, 0.75), blends, strict=False):
        models.append(Candidate("blend", LinearRanker(LinearRankerConfig()), correct, w))
    chosen = auto_choice(models)
    return chosen.kind, chosen.weight


def test_auto_keeps_the_linear_ranker_unless_another_leads_beyond_the_noise() -> None:
    assert pick(right(70), right(80)) == ("deepstn", 1.0)  # 10 pairs ahead, none lost
    assert pick(right(80), right(79)) == ("linear", 0.0)
    assert pick(right(75), right(75, start=10)) == ("linear", 0.0)  # a tie: the fewest parameters
    assert pick(right(79), right(80, start=98)) == ("linear", 0.0)  # 2 won, 1 lost
    # 2 pairs ahead but 12 won and 10 lost against the linear ranker: within the noise
    lin = right(70)
    noisy = lin.copy()
    noisy[:10] = False  # 10 the linear ranker had right, wrong
    noisy[70:82] = True  # 12 it had wrong, right
    assert noisy.sum() == 72 and pick(lin, noisy) == ("linear", 0.0)
    assert pick(lin, right(50), noisy) == ("linear", 0.0)  # a blend, the same
    # the same 2-pair lead without a pair lost is beyond it
    assert pick(lin, right(72)) == ("deepstn", 1.0)
    # ten val pairs: DeepSTN one ahead is noise
    assert pick(right(8, n=10), right(9, n=10)) == ("linear", 0.0)


def test_auto_keeps_the_best_of_deepstn_and_the_blends_that_leads() -> None:
    assert pick(right(60), right(70), right(80), right(78), right(75)) == ("blend", 0.25)
    # equals: the larger DeepSTN share
    assert pick(right(60), right(70), right(80), right(80), right(75)) == ("blend", 0.5)
    assert pick(right(60), right(80), right(75), right(80), right(80)) == ("deepstn", 1.0)


def test_a_blends_scores_mixed_from_its_parts_scores_are_its_own() -> None:
    torch.manual_seed(0)
    deep = DeepSTN(RankerConfig(width=4))
    lin = LinearRanker(LinearRankerConfig())
    torch.nn.init.normal_(lin.weight)
    pixels = np.random.default_rng(0).integers(0, 256, (12, 64, 64, 3), dtype=np.uint8)
    d, li = score_images(deep, pixels), score_images(lin, pixels)
    blend = BlendRanker(deep, lin, BlendConfig(0.25))
    blend.standardise_on(torch.from_numpy(d[:6]), torch.from_numpy(li[:6]))
    mixed = scores_from_parts(blend, d, li)
    assert np.allclose(mixed, score_images(blend, pixels), atol=1e-5)
    assert not np.allclose(mixed, d) and not np.allclose(mixed, li)
    assert scores_from_parts(deep, d, li) is d and scores_from_parts(lin, d, li) is li
    with pytest.raises(TypeError, match="not an --model auto candidate"):
        scores_from_parts(torch.nn.Identity(), d, li)  # type: ignore[arg-type]


@pytest.mark.slow
def test_auto_candidates_score_each_model_and_a_blend_it_keeps_is_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = brightness_dataset()
    run = tmp_path / "auto"
    monkeypatch.setattr(ranker_runs, "auto_choice", lambda c: c[-1])  # the 0.75 blend
    r = train_run(ds, "bright", TINY_DEEPSTN, run, model="auto", progress=False)["bright"]
    assert r["model"] == "blend" and r["blend_weight"] == 0.75
    assert sorted(r["blend_val_acc"]) == ["0.25", "0.5", "0.75"]
    assert r["best_val_acc"] == r["blend_val_acc"]["0.75"]
    blend, payload = load_ranker(run / "bright" / "ranker.pt")
    assert isinstance(blend, BlendRanker) and payload["record"]["blend_weight"] == 0.75
    deep = load_deepstn(run / "bright" / "deepstn.pt")[0]
    lin = load_ranker(run / "bright" / "linear.pt")[0]
    val = ds.pairs["val"]
    # the candidates' figures are what each saved model scores on val
    assert accuracy_on(blend, ds, val) == pytest.approx(r["best_val_acc"], abs=0.01)
    assert accuracy_on(deep, ds, val) == pytest.approx(r["deepstn_val_acc"], abs=0.01)
    assert accuracy_on(lin, ds, val) == pytest.approx(r["linear_val_acc"], abs=0.01)
    assert evaluate_run(run, ds, ("test",))["test"]["accuracy_pct"]["bright"] > 80


@pytest.mark.slow
def test_a_later_run_of_another_model_leaves_no_deepstn_file_of_an_earlier_auto_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = brightness_dataset()
    run = tmp_path / "r"
    with monkeypatch.context() as m:
        m.setattr(ranker_runs, "auto_choice", lambda c: c[0])  # the linear ranker
        train_run(ds, "bright", TINY_DEEPSTN, run, model="auto", progress=False)
    folder = run / "bright"
    assert (folder / "deepstn.pt").exists()
    assert load_ranker(folder / "ranker.pt")[1]["model"] == "linear"
    train_run(ds, "bright", TINY_DEEPSTN, run, model="deepstn", progress=False)
    assert load_ranker(folder / "ranker.pt")[1]["model"] == "deepstn"
    assert not (folder / "deepstn.pt").exists()
    train_run(ds, "bright", TINY_DEEPSTN, run, model="linear", progress=False)
    assert load_ranker(folder / "ranker.pt")[1]["model"] == "linear"
    assert sorted(p.name for p in folder.glob("*.pt")) == ["linear.pt", "ranker.pt"]
