"""Training one DeepSTN ranker: data, augmentation, optimiser groups, checkpoints, resume."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from interruption import interrupted_after
from outpool.data import Dataset, PairTable
from outpool.errors import ConfigError, DataError, OutpoolError, UnknownNameError
from outpool.models.ranker import DeepSTN, RankerConfig, crop_penalty
from outpool.models.tensors import pick_device, to_tensor
from outpool.synth import World
from outpool.train.evaluate import score_images
from outpool.train.losses import ranknet_loss
from outpool.train.ranker import (
    PairData,
    RankBatch,
    RankerTrainConfig,
    load_ranker,
    make_optimizer,
    rank_batch,
    ranker_loss,
    save_ranker,
    train_ranker,
)

ATTR = "heel"


def tiny_cfg(**changes: object) -> RankerTrainConfig:
    base = RankerTrainConfig(
        model=RankerConfig(width=4), epochs_crop=1, epochs_full=1, batch_size=10, device="cpu"
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def dataset(small_world: World) -> Dataset:
    return small_world.dataset


def ranker_weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=False)["state"]


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- data ----------------------------------------------------------------------------------


def test_pair_data_gathers_the_right_images(dataset: Dataset) -> None:
    pairs = dataset.pairs["train"].for_attribute(ATTR)
    data = PairData.build(dataset, pairs, use_confidence=True)
    assert len(data.a) == len(data.b) == len(pairs)
    assert np.array_equal(data.pixels[data.a], dataset.lookup(pairs.a))
    assert np.array_equal(data.pixels[data.b], dataset.lookup(pairs.b))
    assert len(data.pixels) == len(np.unique(np.concatenate([pairs.a, pairs.b])))
    expected = np.select([pairs.label == 1, pairs.label == -1], [1.0, 0.0], 0.5)
    assert np.array_equal(data.target, expected.astype(np.float32))


def test_pair_data_weights(dataset: Dataset) -> None:
    base = dataset.pairs["train"].for_attribute(ATTR)
    conf = np.linspace(0.0, 1.0, len(base)).astype(np.float32)
    pairs = dataclasses.replace(base, confidence=conf)
    weighted = PairData.build(dataset, pairs, use_confidence=True)
    assert np.allclose(weighted.weight, np.maximum(conf, 1e-3))
    assert weighted.weight.min() > 0  # a zero-confidence pair keeps a tiny weight
    plain = PairData.build(dataset, pairs, use_confidence=False)
    assert np.array_equal(plain.weight, np.ones(len(pairs), np.float32))


def pairs_of(batch: tuple[np.ndarray, ...]) -> list[tuple[bytes, bytes]]:
    """A batch's pairs as (image a, image b) bytes."""
    pixels, a, b = batch[:3]
    return [(pixels[i].tobytes(), pixels[j].tobytes()) for i, j in zip(a, b, strict=True)]


def test_batches_cover_every_pair_once(dataset: Dataset) -> None:
    data = PairData.build(dataset, dataset.pairs["train"].for_attribute(ATTR), use_confidence=True)
    n = len(data.a)
    batches = list(data.batches(0, size=7, seed=0))
    assert [len(b[1]) for b in batches] == [7] * (n // 7) + ([n % 7] if n % 7 else [])
    for pixels, a, b, target, weight in batches:
        assert len(a) == len(b) == len(target) == len(weight)
        # each image once per batch, and every image is used
        assert len({p.tobytes() for p in pixels}) == len(pixels)
        assert sorted(set(a) | set(b)) == list(range(len(pixels)))
    # every pair exactly once: match (image a, image b) rows back to the pair list
    keys = sorted(k for batch in batches for k in pairs_of(batch))
    expected = sorted(
        (data.pixels[i].tobytes(), data.pixels[j].tobytes())
        for i, j in zip(data.a, data.b, strict=True)
    )
    assert keys == expected


def test_pairs_among_finds_exactly_the_pairs_inside_a_set(dataset: Dataset) -> None:
    data = PairData.build(dataset, dataset.pairs["train"].for_attribute(ATTR), use_confidence=True)
    rng = np.random.default_rng(0)
    for size in (0, 1, 5, 40, len(data.pixels)):
        images = rng.choice(len(data.pixels), size=size, replace=False)
        inside = np.isin(data.a, images) & np.isin(data.b, images)
        assert np.array_equal(data.pairs_among(images), np.flatnonzero(inside))


def test_all_pairs_batches_add_every_pair_among_their_images(dataset: Dataset) -> None:
    base = dataset.pairs["train"].for_attribute(ATTR)
    pairs = dataclasses.replace(base, confidence=np.linspace(0.1, 1.0, len(base)))
    data = PairData.build(dataset, pairs, use_confidence=True)
    sampled = list(data.batches(2, size=20, seed=1))
    dense = list(data.batches(2, size=20, seed=1, all_pairs=True))
    assert len(sampled) == len(dense)
    for few, many in zip(sampled, dense, strict=True):
        assert len(many[0]) == len(few[0])  # the same images: the sampled pairs' images
        assert set(pairs_of(few)) <= set(pairs_of(many))
        index = {p.tobytes(): i for i, p in enumerate(data.pixels)}
        images = np.array([index[p.tobytes()] for p in many[0]])
        inside = np.isin(data.a, images) & np.isin(data.b, images)
        assert sorted(many[4].tolist()) == sorted(data.weight[inside].tolist())
    assert sum(len(b[1]) for b in dense) > sum(len(b[1]) for b in sampled)


def order_of(data: PairData, epoch: int, seed: int, limit: int = 0) -> list[float]:
    """The epoch's pair order as the sequence of weights (distinct per pair here)."""
    return [w for b in data.batches(epoch, size=4, seed=seed, limit=limit) for w in b[4]]


def test_batches_order_depends_on_seed_and_epoch(dataset: Dataset) -> None:
    base = dataset.pairs["train"].for_attribute(ATTR)
    pairs = dataclasses.replace(base, confidence=np.linspace(0.1, 1.0, len(base)))
    data = PairData.build(dataset, pairs, use_confidence=True)
    assert len(set(data.weight.tolist())) == len(base)  # weights identify the pairs
    assert order_of(data, 0, 0) == order_of(data, 0, 0)
    assert order_of(data, 0, 0) != order_of(data, 1, 0)
    assert order_of(data, 0, 0) != order_of(data, 0, 1)
    assert sorted(order_of(data, 3, 5)) == sorted(data.weight.tolist())


def test_batches_limit_keeps_exactly_limit_pairs(dataset: Dataset) -> None:
    base = dataset.pairs["train"].for_attribute(ATTR)
    pairs = dataclasses.replace(base, confidence=np.linspace(0.1, 1.0, len(base)))
    data = PairData.build(dataset, pairs, use_confidence=True)
    for limit in (1, 9, 25):
        got = order_of(data, 0, 0, limit=limit)
        assert len(got) == limit == len(set(got))
    assert order_of(data, 0, 0, limit=9) != order_of(data, 1, 0, limit=9)


def test_batches_limit_beyond_the_table_passes_over_it_again(dataset: Dataset) -> None:
    base = dataset.pairs["train"].for_attribute(ATTR)
    pairs = dataclasses.replace(base, confidence=np.linspace(0.1, 1.0, len(base)))
    data = PairData.build(dataset, pairs, use_confidence=True)
    n = len(base)
    got = order_of(data, 0, 0, limit=2 * n + 3)
    assert len(got) == 2 * n + 3
    # two whole passes, each every pair once and shuffled afresh, then the start of a third
    assert sorted(got[:n]) == sorted(got[n : 2 * n]) == sorted(data.weight.tolist())
    assert got[:n] != got[n : 2 * n]
    assert got[:n] == order_of(data, 0, 0)  # the first pass is the epoch's usual order


# -- optimiser -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_make_optimizer_gives_the_localisation_net_its_own_learning_rates(name: str) -> None:
    model = DeepSTN(RankerConfig(width=4))
    cfg = tiny_cfg(optimizer=name, lr=0.02, scale_lr_factor=0.25, loc_lr_factor=0.1)
    opt = make_optimizer(model, cfg)
    assert len(opt.param_groups) == 3
    rest, loc, scale = opt.param_groups
    assert rest["lr"] == pytest.approx(0.02)
    assert loc["lr"] == pytest.approx(0.02 * 0.1)
    assert scale["lr"] == pytest.approx(0.02 * 0.25)
    assert {id(p) for p in scale["params"]} == {id(p) for p in model.loc_scale.parameters()}
    loc_names = {n for n, p in model.named_parameters() if any(p is q for q in loc["params"])}
    assert loc_names and all(
        n.startswith(("loc_features", "loc_fc", "loc_shift")) for n in loc_names
    )
    rest_names = {n for n, p in model.named_parameters() if any(p is q for q in rest["params"])}
    assert not any(n.startswith("loc_") for n in rest_names)
    all_ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(all_ids) == len(set(all_ids))  # no parameter twice
    assert set(all_ids) == {id(p) for p in model.parameters()}  # none forgotten
    assert scale["weight_decay"] == 0.0
    assert rest["weight_decay"] == loc["weight_decay"] == pytest.approx(cfg.weight_decay)
    if name == "sgd":
        assert rest["momentum"] == pytest.approx(0.9)


def test_make_optimizer_unknown_name() -> None:
    model = DeepSTN(RankerConfig(width=4))
    with pytest.raises(UnknownNameError, match=r"adam.*sgd"):
        make_optimizer(model, tiny_cfg(optimizer="lbfgs"))


def test_pick_device() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(UnknownNameError, match="tpu"):
        pick_device("tpu")


# -- checkpoints ---------------------------------------------------------------------------


def test_save_then_load_reproduces_scores_exactly(tmp_path: Path, dataset: Dataset) -> None:
    torch.manual_seed(0)
    model = DeepSTN(RankerConfig(width=4, scale_init=0.4))
    model.set_stage("full")
    with torch.no_grad():  # move away from the init so a fresh model would differ
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    pixels = np.asarray(dataset.lookup(dataset.pairs["test"].a[:12]))
    expected = score_images(model, pixels)
    save_ranker(model, tmp_path / "r.pt", attribute=ATTR, record={"note": "x"})
    loaded, payload = load_ranker(tmp_path / "r.pt")
    assert payload["attribute"] == ATTR and payload["record"] == {"note": "x"}
    assert loaded.stage == "full" and not loaded.training
    assert loaded.config == model.config
    assert np.array_equal(score_images(loaded, pixels), expected)


def test_load_ranker_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pt"
    with pytest.raises(DataError, match=r"nope\.pt") as err:
        load_ranker(path)
    assert err.value.path == path


def test_load_ranker_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"this is not a checkpoint \x00\x01\x02" * 10)
    with pytest.raises(DataError, match=r"garbage\.pt"):
        load_ranker(path)


def test_load_ranker_other_kind_of_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "trainer.pt"
    torch.save({"modules": {}, "trainer": {"epoch": 1}}, path)
    with pytest.raises(DataError, match=r"trainer\.pt.*not an outpool ranker"):
        load_ranker(path)
    listing = tmp_path / "list.pt"
    torch.save([1, 2, 3], listing)
    with pytest.raises(DataError, match=r"list\.pt"):
        load_ranker(listing)


def test_load_ranker_mismatched_weights(tmp_path: Path) -> None:
    model = DeepSTN(RankerConfig(width=4))
    save_ranker(model, tmp_path / "r.pt", attribute=ATTR, record={})
    payload = torch.load(tmp_path / "r.pt", weights_only=False)
    payload["model_config"]["width"] = 8
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(DataError, match=r"bad\.pt"):
        load_ranker(tmp_path / "bad.pt")


# -- train_ranker --------------------------------------------------------------------------


def test_the_training_bars_say_which_of_the_two_stages_runs(
    tmp_path: Path, dataset: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    train_ranker(dataset, ATTR, tiny_cfg(), tmp_path / "two", progress=True)
    err = capsys.readouterr().err
    assert "heel crop (stage 1 of 2) epoch 1/1" in err and "heel full (stage 2 of 2) epoch" in err
    train_ranker(dataset, ATTR, tiny_cfg(epochs_crop=0), tmp_path / "one", progress=True)
    err = capsys.readouterr().err
    assert "heel full epoch 1/1" in err and "stage" not in err


@pytest.mark.slow
def test_train_ranker_writes_its_run_folder(tmp_path: Path, dataset: Dataset) -> None:
    run = tmp_path / "run"
    model, summary = train_ranker(dataset, ATTR, tiny_cfg(epochs_full=2), run, progress=False)
    record = json.loads((run / "config.json").read_text())
    assert record["attribute"] == ATTR and record["seed"] == 0
    assert record["config"]["model"]["width"] == 4 and record["code_version"]
    assert len(jsonl(run / "stage_crop" / "metrics.jsonl")) == 1
    rows = jsonl(run / "stage_full" / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all("val_acc" in r and "train_rank_loss" in r for r in rows)
    assert summary["epochs_run"] == 2 and summary["attribute"] == ATTR
    assert summary["best_val_acc"] == pytest.approx(max(r["val_acc"] for r in rows), abs=1e-5)
    assert model.stage == "full"
    _, payload = load_ranker(run / "ranker.pt")
    assert payload["record"]["best_epoch"] == summary["best_epoch"]
    # ranker.pt holds stage full's best epoch
    best = torch.load(run / "stage_full" / "best.pt", weights_only=False)["modules"]["ranker"]
    assert same(ranker_weights(run / "ranker.pt"), best)


RECIPES = {
    "plain": {},
    # every per-step and random part at once: the schedule, the extra pairs, all jitter
    "pubfig recipe": {
        "lr_schedule": "cosine",
        "loc_lr_factor": 0.05,
        "all_pairs_in_batch": True,
        "flip": True,
        "shift": 0.05,
        "zoom": 0.2,
        "rotate": 10.0,
        "color": 0.3,
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_train_ranker_resumes_after_an_interruption(
    tmp_path: Path, dataset: Dataset, recipe: str
) -> None:
    cfg = tiny_cfg(epochs_full=2, **RECIPES[recipe])
    train_ranker(dataset, ATTR, cfg, tmp_path / "whole", progress=False)

    cut = tmp_path / "cut"
    with interrupted_after(epoch=1, folder="stage_full"):
        train_ranker(dataset, ATTR, cfg, cut, progress=False)
    assert not (cut / "ranker.pt").exists()
    crop_after_first = (cut / "stage_crop" / "last.pt").read_bytes()
    train_ranker(dataset, ATTR, cfg, cut, progress=False)

    # resumed, not restarted: the crop stage was not rerun, stage full went on from epoch 1
    assert (cut / "stage_crop" / "last.pt").read_bytes() == crop_after_first
    assert len(jsonl(cut / "stage_crop" / "metrics.jsonl")) == 1
    assert [r["epoch"] for r in jsonl(cut / "stage_full" / "metrics.jsonl")] == [1, 2]
    assert jsonl(cut / "stage_full" / "metrics.jsonl")[1]["step"] == 2 * 4  # 40 pairs / 10

    assert same(ranker_weights(cut / "ranker.pt"), ranker_weights(tmp_path / "whole" / "ranker.pt"))
    last = [
        torch.load(d / "stage_full" / "last.pt", weights_only=False)["modules"]["ranker"]
        for d in (cut, tmp_path / "whole")
    ]
    assert same(*last)


@pytest.mark.slow
def test_train_ranker_resumes_mid_crop_stage(tmp_path: Path, dataset: Dataset) -> None:
    cfg = tiny_cfg(epochs_crop=2, epochs_full=1)
    train_ranker(dataset, ATTR, cfg, tmp_path / "whole", progress=False)
    cut = tmp_path / "cut"
    with interrupted_after(epoch=1, folder="stage_crop"):
        train_ranker(dataset, ATTR, cfg, cut, progress=False)
    assert not (cut / "stage_full").exists()
    train_ranker(dataset, ATTR, cfg, cut, progress=False)
    assert [r["epoch"] for r in jsonl(cut / "stage_crop" / "metrics.jsonl")] == [1, 2]
    assert same(ranker_weights(cut / "ranker.pt"), ranker_weights(tmp_path / "whole" / "ranker.pt"))


@pytest.mark.slow
def test_train_ranker_is_repeatable(tmp_path: Path, dataset: Dataset) -> None:
    cfg = tiny_cfg(flip=True, shift=0.05)  # the augmentation RNG must be seeded too
    train_ranker(dataset, ATTR, cfg, tmp_path / "a", progress=False)
    train_ranker(dataset, ATTR, cfg, tmp_path / "b", progress=False)
    train_ranker(dataset, ATTR, dataclasses.replace(cfg, seed=1), tmp_path / "c", progress=False)
    a, b, c = (ranker_weights(tmp_path / n / "ranker.pt") for n in "abc")
    assert same(a, b)
    assert not same(a, c)


@pytest.mark.slow
def test_cosine_schedule_decays_the_rate_within_each_stage(
    tmp_path: Path, dataset: Dataset
) -> None:
    cfg = tiny_cfg(epochs_crop=2, epochs_full=2, lr=0.05, lr_schedule="cosine")
    train_ranker(dataset, ATTR, cfg, tmp_path / "r", progress=False)
    for stage in ("crop", "full"):
        opt = torch.load(tmp_path / "r" / f"stage_{stage}" / "last.pt", weights_only=False)
        rest, loc, scale = opt["optimizers"]["ranker"]["param_groups"]
        assert rest["initial_lr"] == pytest.approx(0.05)
        assert loc["initial_lr"] == pytest.approx(0.05 * cfg.loc_lr_factor)
        assert scale["initial_lr"] == pytest.approx(0.05 * cfg.scale_lr_factor)
        assert rest["lr"] == loc["lr"] == scale["lr"] == pytest.approx(0.0)  # end of the cosine


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lr_schedule": "step"}, "constant.*cosine"),
        ({"color": 1.5}, "color must be <= 1"),
        ({"zoom": -0.1}, "zoom must be >= 0"),
        ({"rotate": -1.0}, "rotate must be >= 0"),
        ({"loc_lr_factor": -0.5}, "loc_lr_factor must be >= 0"),
    ],
)
def test_bad_training_config(change: dict[str, object], message: str) -> None:
    with pytest.raises(OutpoolError, match=message):
        tiny_cfg(**change)


@pytest.mark.slow
def test_train_ranker_without_validation(tmp_path: Path, dataset: Dataset) -> None:
    _, summary = train_ranker(dataset, ATTR, tiny_cfg(), tmp_path / "r", val=None, progress=False)
    assert summary["best_val_acc"] is None and summary["epochs_run"] == 1
    assert "val_acc" not in jsonl(tmp_path / "r" / "stage_full" / "metrics.jsonl")[0]
    load_ranker(tmp_path / "r" / "ranker.pt")


def test_train_ranker_no_pairs_for_the_attribute(tmp_path: Path, dataset: Dataset) -> None:
    train = dataset.pairs["train"]
    other = dataclasses.replace(
        dataset, pairs={**dataset.pairs, "train": train.subset(train.attribute != ATTR)}
    )
    with pytest.raises(DataError, match=f"'train'.*'{ATTR}'"):
        train_ranker(other, ATTR, tiny_cfg(), tmp_path / "r", progress=False)


def test_train_ranker_unknown_attribute(tmp_path: Path, dataset: Dataset) -> None:
    with pytest.raises(UnknownNameError, match="sparkly") as err:
        train_ranker(dataset, "sparkly", tiny_cfg(), tmp_path / "r", progress=False)
    assert ATTR in err.value.valid
    assert not (tmp_path / "r").exists()


def test_train_ranker_unknown_pair_table(tmp_path: Path, dataset: Dataset) -> None:
    with pytest.raises(UnknownNameError, match="nosuch"):
        train_ranker(dataset, ATTR, tiny_cfg(), tmp_path / "r", val="nosuch", progress=False)


def test_train_ranker_val_table_without_the_attribute(tmp_path: Path, dataset: Dataset) -> None:
    val = dataset.pairs["val"]
    other = dataclasses.replace(
        dataset, pairs={**dataset.pairs, "val": val.subset(val.attribute != ATTR)}
    )
    # refused before any work, naming the table, the attribute and the way out
    with pytest.raises(
        DataError, match=f"'val' has no non-equal pairs for attribute '{ATTR}'.*--val none"
    ):
        train_ranker(other, ATTR, tiny_cfg(), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stage", "skipped", "ran"), [("epochs_crop", "crop", "full"), ("epochs_full", "full", "crop")]
)
def test_train_ranker_zero_epoch_stage_is_skipped(
    tmp_path: Path, dataset: Dataset, stage: str, skipped: str, ran: str
) -> None:
    model, summary = train_ranker(
        dataset, ATTR, tiny_cfg(**{stage: 0}), tmp_path / "r", progress=False
    )
    assert not (tmp_path / "r" / f"stage_{skipped}").exists()
    assert len(jsonl(tmp_path / "r" / f"stage_{ran}" / "metrics.jsonl")) == 1
    assert model.stage == ran and summary["epochs_run"] == 1
    _, payload = load_ranker(tmp_path / "r" / "ranker.pt")
    assert payload["stage"] == ran


def test_both_stages_at_zero_epochs_are_refused() -> None:
    with pytest.raises(ConfigError, match="not both 0"):
        tiny_cfg(epochs_crop=0, epochs_full=0)


# -- the loss, as a piece --------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["crop", "full"])
def test_ranker_loss_sends_gradient_to_generated_images(stage: str) -> None:
    # what ATTIC's control step needs: the ranker's loss on images that carry gradient (a
    # generator's output) reaches those images, through both streams and the crop
    torch.manual_seed(0)
    model = DeepSTN(RankerConfig(width=4))
    model.set_stage(stage)
    made = torch.rand(6, 3, 64, 64, requires_grad=True)
    x = made * 0.9 + 0.05  # a function of the leaf, as a generator's output would be
    batch = RankBatch(
        x=x,
        a=torch.tensor([0, 1, 2]),
        b=torch.tensor([3, 4, 5]),
        target=torch.tensor([1.0, 0.0, 0.5]),
        weight=torch.ones(3),
    )
    loss, metrics = ranker_loss(model, batch, crop_weight=1.0)
    assert loss.requires_grad and metrics["loss"] == pytest.approx(loss.item())
    loss.backward()
    assert made.grad is not None
    per_image = made.grad.abs().flatten(1).sum(1)
    assert (per_image > 0).all()  # every image of a pair gets a gradient
    flipped = dataclasses.replace(batch, x=made * 0.9 + 0.05, target=1.0 - batch.target)
    made.grad = None
    ranker_loss(model, flipped, crop_weight=0.0)[0].backward()
    assert made.grad is not None and (made.grad.abs().flatten(1).sum(1) > 0).all()


def test_ranker_loss_is_ranknet_plus_the_crop_penalty() -> None:
    torch.manual_seed(0)
    model = DeepSTN(RankerConfig(width=4)).eval()
    x = torch.rand(4, 3, 64, 64)
    batch = RankBatch(
        x=x,
        a=torch.tensor([0, 2]),
        b=torch.tensor([1, 3]),
        target=torch.tensor([1.0, 0.0]),
        weight=torch.tensor([1.0, 3.0]),
    )
    scores, params = model(x, with_transform=True)
    rank = ranknet_loss(scores[[0, 2]], scores[[1, 3]], batch.target, batch.weight)
    penalty = crop_penalty(params)
    loss, metrics = ranker_loss(model, batch, crop_weight=2.0)
    assert loss.item() == pytest.approx((rank + 2.0 * penalty).item(), rel=1e-6)
    assert metrics["rank_loss"] == pytest.approx(rank.item(), rel=1e-6)
    assert metrics["scale"] == pytest.approx(params[:, 0].mean().item(), rel=1e-6)


def test_rank_batch_moves_a_batch_to_tensors_and_jitters_only_when_asked(
    dataset: Dataset,
) -> None:
    pairs = dataset.pairs["train"].for_attribute(ATTR)
    data = PairData.build(dataset, pairs, use_confidence=True)
    raw = next(data.batches(0, size=10, seed=0))
    plain = rank_batch(raw, torch.device("cpu"), tiny_cfg())
    assert plain.x.shape == (len(raw[0]), 3, 64, 64) and plain.x.dtype == torch.float32
    assert torch.equal(plain.x, to_tensor(raw[0]))
    assert plain.a.dtype == torch.int64 and torch.equal(plain.a, torch.from_numpy(raw[1]))
    assert torch.equal(plain.target, torch.from_numpy(raw[3]))
    torch.manual_seed(0)
    jittered = rank_batch(raw, torch.device("cpu"), tiny_cfg(shift=0.1, color=0.3))
    assert not torch.equal(jittered.x, plain.x)


def test_pair_table_helper_sanity(dataset: Dataset) -> None:
    # the fixture really has pairs of every kind this file relies on
    train = dataset.pairs["train"].for_attribute(ATTR)
    assert isinstance(train, PairTable) and len(train) == 40
    assert set(np.unique(train.label).tolist()) <= {-1, 0, 1}
