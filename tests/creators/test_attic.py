"""ATTIC's creator on a smoke config: the control step raises the ranker's loss on its pairs, the
frozen generator never learns, the pairs are well formed, and a run repeats and resumes."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from outpool.creators import CREATORS, CreationContext
from outpool.creators import creator as creator_entry
from outpool.creators.attic import AtticConfig, AtticCreator, control_net, flipped, more_attic
from outpool.creators.pairs import CreatedPairs, inferred_labels, top_up_seed
from outpool.data import Dataset
from outpool.errors import DataError, UnknownNameError
from outpool.models.control import ControlConfig, control_seeds
from outpool.models.generator import ConditionalVAE
from outpool.models.ranker import DeepSTN, RankerConfig
from outpool.synth import World
from outpool.train.loop import optimise
from outpool.train.ranker import RankerTrainConfig
from tiny_models import tiny_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ATTR = "heel"
RANKER_CFG = RankerTrainConfig(model=RankerConfig(width=4), batch_size=10, device="cpu")
SMOKE = AtticConfig(control=ControlConfig(hidden=16, side_hidden=8), epochs=2, snapshot_pairs=3)


@pytest.fixture(scope="module")
def dataset(small_world: World) -> Dataset:
    return small_world.dataset


def context(dataset: Dataset) -> CreationContext:
    torch.manual_seed(1)
    return CreationContext(
        dataset=dataset,
        attribute=ATTR,
        ranker=DeepSTN(RANKER_CFG.model),
        ranker_cfg=RANKER_CFG,
        generator=tiny_generator(dataset),
        equal_band=0.03,
    )


def creator(dataset: Dataset, cfg: AtticConfig = SMOKE) -> AtticCreator:
    return AtticCreator(context(dataset), cfg)


@pytest.mark.slow
def test_the_control_step_raises_the_ranker_s_loss_on_its_pairs(dataset: Dataset) -> None:
    made = creator(dataset)
    made.ranker.eval()  # fixed BatchNorm and dropout: the change comes from the step alone
    with torch.no_grad():  # trained-looking weights: images that vary, scores that follow them
        made.generator.dec_mean.weight.mul_(20.0)
        made.ranker.head_crop.weight.mul_(100.0)
    torch.manual_seed(0)
    control = control_net(SMOKE, made.generator, made.y_range)
    q = control_seeds(32, control.q_dim, seed=0)
    optimizer = torch.optim.SGD(control.parameters(), lr=0.05)

    def ranker_loss_on_pairs() -> float:
        with torch.no_grad():
            return made.ranker_step_loss(control, q)[0].item()

    before = ranker_loss_on_pairs()
    for _ in range(5):
        optimise(optimizer, lambda _: made.control_step_loss(control, q), None)
    assert ranker_loss_on_pairs() > before


def test_the_control_objective_is_ranknet_with_flipped_targets(dataset: Dataset) -> None:
    made = creator(dataset)
    torch.manual_seed(0)
    control = control_net(SMOKE, made.generator, made.y_range)
    pair = control(control_seeds(16, control.q_dim, seed=2))
    batch = made.created_batch(pair)
    assert batch.x.shape == (32, 3, 64, 64)
    assert torch.equal(batch.b - batch.a, torch.full((16,), 16))
    labels = inferred_labels(pair.y_a[:, made.k] - pair.y_b[:, made.k], 0.03)
    assert torch.equal(batch.target, torch.from_numpy((labels + 1) / 2).float())
    assert torch.equal(flipped(batch).target, 1 - batch.target)


def test_inferred_labels_use_the_equal_band() -> None:
    diff = np.array([0.5, -0.2, 0.01, -0.029, 0.03])
    assert inferred_labels(diff, 0.03).tolist() == [1, -1, 0, 0, 1]


@pytest.mark.slow
def test_create_trains_the_control_network_and_draws_the_seeds_pairs(
    dataset: Dataset, tmp_path: Path
) -> None:
    made = creator(dataset)
    ranker_before = copy.deepcopy(made.ranker.state_dict())
    gen_before = {k: v.clone() for k, v in made.generator.state_dict().items()}
    pairs = made.create(12, tmp_path / "attic", progress=False)
    assert isinstance(pairs, CreatedPairs) and len(pairs) == 12 and pairs.creator == "attic"
    assert pairs.y_a is not None and pairs.y_b is not None and pairs.u_a is not None
    k = made.k
    assert np.array_equal(pairs.label, inferred_labels(pairs.y_a[:, k] - pairs.y_b[:, k], 0.03))
    q = control_seeds(12, 16, SMOKE.seed).numpy()
    assert np.allclose(pairs.u_a, q[:, :8]) and np.allclose(pairs.u_b, q[:, 8:])
    # the generator is frozen: same weights, no gradient
    for name, value in made.generator.state_dict().items():
        assert torch.equal(value, gen_before[name]), name
    assert all(p.grad is None for p in made.generator.parameters())
    # the creator trained its own copy of the ranker
    assert any(not torch.equal(v, made.ranker.state_dict()[k2]) for k2, v in ranker_before.items())
    rows = [json.loads(line) for line in (tmp_path / "attic" / "metrics.jsonl").open()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("train_real_loss", "train_created_loss", "train_control_loss", "val_acc"):
        assert all(key in r for r in rows), key
    snapshots = tmp_path / "attic" / "snapshots"
    losses = [json.loads(line) for line in (snapshots / "losses.jsonl").open()]
    assert [r["epoch"] for r in losses] == [1, 2]
    snap = np.load(snapshots / "epoch_002.npz")
    assert snap["images_a"].shape == (3, 64, 64, 3)
    # the pairs as tables: every image carries its control parameters
    images, table = pairs.tables("attic_r1")
    assert len(images) == 24 and len(table) == 12
    assert images.provenance is not None and images.provenance[0]["creator"] == "attic"
    assert len(images.provenance[0]["y"]) == len(made.generator.attributes)
    # the same command again: finished, the same pairs
    again = creator(dataset).create(12, tmp_path / "attic", progress=False)
    assert np.array_equal(again.images_a, pairs.images_a)
    assert np.array_equal(again.label, pairs.label)


@pytest.mark.slow
def test_a_top_up_draws_new_seeds_through_the_trained_control_network(
    dataset: Dataset, tmp_path: Path
) -> None:
    folder = tmp_path / "attic"
    with pytest.raises(DataError, match="no trained control network"):
        more_attic(context(dataset), 5, folder, SMOKE, 1)
    first = creator(dataset).create(12, folder, progress=False)
    metrics = (folder / "metrics.jsonl").read_text()
    more = more_attic(context(dataset), 5, folder, SMOKE, 1)
    assert len(more) == 5 and more.creator == "attic"
    assert (folder / "metrics.jsonl").read_text() == metrics  # nothing trained again
    q = control_seeds(5, 16, top_up_seed(SMOKE.seed, 1)).numpy()
    assert np.allclose(more.u_a, q[:, :8]) and np.allclose(more.u_b, q[:, 8:])
    assert not np.allclose(more.u_a, first.u_a[:5])  # new seeds, not the batch's
    again = more_attic(context(dataset), 5, folder, SMOKE, 1)
    assert np.array_equal(again.images_a, more.images_a)  # repeatable
    # drawn by the network in control.pt: other weights there, other strengths
    weights = torch.load(folder / "control.pt")
    torch.save(
        {k: v * 0.5 if v.is_floating_point() else v for k, v in weights.items()},
        folder / "control.pt",
    )
    other = more_attic(context(dataset), 5, folder, SMOKE, 1)
    assert not np.allclose(other.y_a, more.y_a)
    assert CREATORS["attic"].more is more_attic and CREATORS["random"].more is None


def test_an_attribute_the_generator_lacks_is_refused(dataset: Dataset) -> None:
    gen = tiny_generator(dataset)
    blind = ConditionalVAE(
        gen.config, attributes=("open", "pointy"), y_mean=gen.y_mean[:2], y_std=gen.y_std[:2]
    )
    ctx = dataclasses.replace(context(dataset), generator=blind)
    with pytest.raises(DataError, match=r"no attribute 'heel'.*open, pointy"):
        AtticCreator(ctx, SMOKE)
    with pytest.raises(DataError, match="needs a generator"):
        AtticCreator(dataclasses.replace(ctx, generator=None), SMOKE)


def test_a_context_names_an_unknown_attribute_or_table(dataset: Dataset) -> None:
    with pytest.raises(UnknownNameError, match="sparkly"):
        dataclasses.replace(context(dataset), attribute="sparkly")
    with pytest.raises(UnknownNameError, match="nosuch"):
        dataclasses.replace(context(dataset), val="nosuch")


def test_the_registry_names_its_creators() -> None:
    assert {"attic", "random"} <= set(CREATORS)
    assert creator_entry("attic").config is AtticConfig
    with pytest.raises(UnknownNameError, match=r"creator 'magic'.*attic"):
        creator_entry("magic")


def test_random_draws_the_untrained_network_s_pairs(dataset: Dataset, tmp_path: Path) -> None:
    ctx = context(dataset)
    pairs = CREATORS["random"].create(ctx, 40, tmp_path, SMOKE, progress=False)
    again = CREATORS["random"].create(ctx, 40, tmp_path, SMOKE, progress=False)
    assert pairs.creator == "random" and len(pairs) == 40
    assert np.array_equal(pairs.images_a, again.images_a)  # repeatable from the seed
    assert pairs.y_a is not None and pairs.y_b is not None
    gen = ctx.require_generator()
    k = gen.attributes.index(ATTR)
    # strengths spread as the generator's training strengths do, within their range
    low, high = ctx.strength_range(gen)
    assert (pairs.y_a >= low - 1e-6).all() and (pairs.y_a <= high + 1e-6).all()
    assert pairs.y_a[:, k].mean() == pytest.approx(gen.y_mean[k].item(), abs=0.03)
    assert pairs.y_a[:, k].std() == pytest.approx(gen.y_std[k].item(), rel=0.15)
    assert set(np.unique(pairs.label)) <= {-1, 0, 1} and (pairs.label != 0).mean() > 0.5
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written
