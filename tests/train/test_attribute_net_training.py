"""Training the attribute regressor: it learns a planted signal, splits by person, checkpoints
round-trip, bad inputs fail clearly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from face_images import fake_faces
from outpool.errors import DataError
from outpool.models.attribute_net import AttributeNet, AttributeNetConfig
from outpool.train.attribute_net import (
    QUANTILES,
    AttributeNetTrainConfig,
    ScoredImages,
    group_split,
    load_attribute_net,
    predict_scores,
    quality,
    regression_loss,
    train_attribute_net,
)

NAMES = ("tone", "mouth")


def tiny_cfg(**changes: Any) -> AttributeNetTrainConfig:
    base: dict[str, Any] = {
        "model": AttributeNetConfig(width=8),
        "epochs": 6,
        "batch_size": 16,
        "lr": 3e-3,
        "val_share": 0.25,
        "device": "cpu",
    }
    return AttributeNetTrainConfig(**{**base, **changes})


def planted(n: int = 160, seed: int = 0) -> ScoredImages:
    """Fake faces whose two scores are the planted tone and mouth (in arbitrary units)."""
    pixels, attrs = fake_faces(n, seed)
    return ScoredImages(
        ids=np.array([f"img{i}" for i in range(n)]),
        pixels=pixels,
        scores=attrs * np.array([4.0, 2.0]) - 1.0,
        groups=np.array([f"p{i // 4}" for i in range(n)]),
        attributes=NAMES,
        source="fake faces (test)",
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, dict[str, Any]]:
    run = tmp_path_factory.mktemp("net") / "run"
    model, summary = train_attribute_net(planted(), tiny_cfg(), run, progress=False)
    return run, model, summary


@pytest.mark.slow
def test_learns_a_planted_signal_on_held_out_people(
    trained: tuple[Path, Any, dict[str, Any]],
) -> None:
    run, model, summary = trained
    held = summary["held_out"]
    assert summary["held_out_people"] == 10 and held["images"] == 40
    assert held["r2"]["tone"] > 0.75 and held["spearman"]["tone"] > 0.85  # brightness: easy
    assert held["spearman"]["mouth"] > 0.6  # a few pixels: harder, still learnt
    # and on fresh faces (another seed), in the file's units
    fresh = planted(60, seed=9)
    got = quality(predict_scores(model, fresh.pixels), fresh.scores, NAMES)
    assert got["r2"]["tone"] > 0.6
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == summary["epochs"] and all("val_r2" in r for r in rows)
    assert json.loads((run / "config.json").read_text())["trained_on"] == "fake faces (test)"


@pytest.mark.slow
def test_an_untrained_net_does_not_pass_that_bar(tmp_path: Path) -> None:
    _, summary = train_attribute_net(
        planted(), tiny_cfg(epochs=1, lr=1e-6), tmp_path / "run", progress=False
    )
    assert summary["held_out"]["r2"]["tone"] < 0.6  # the test above can fail


@pytest.mark.slow
def test_checkpoint_round_trip(trained: tuple[Path, Any, dict[str, Any]]) -> None:
    run, model, summary = trained
    loaded, payload = load_attribute_net(run / "attribute_net.pt", attributes=NAMES)
    x = torch.rand(3, 3, 64, 64)
    assert torch.equal(loaded(x), model(x))
    assert loaded.attributes == NAMES and loaded.config == model.config
    assert torch.equal(loaded.score_mean, model.score_mean)
    q = np.asarray(payload["quantiles"])
    assert q.shape == (QUANTILES, 2) and (np.diff(q, axis=0) >= 0).all()
    assert payload["record"]["held_out"] == summary["held_out"]


@pytest.mark.slow
def test_checkpoint_with_other_attribute_names(trained: tuple[Path, Any, dict[str, Any]]) -> None:
    run = trained[0]
    with pytest.raises(DataError, match=r"\['tone', 'mouth'\] do not match") as err:
        load_attribute_net(run / "attribute_net.pt", attributes=("mouth", "tone"))
    assert err.value.path == run / "attribute_net.pt" and err.value.field == "attributes"
    with pytest.raises(DataError, match="not an outpool attribute-net checkpoint"):
        load_attribute_net(run / "best.pt")


@pytest.mark.slow
def test_running_again_resumes(trained: tuple[Path, Any, dict[str, Any]]) -> None:
    run, model, summary = trained
    lines = (run / "metrics.jsonl").read_text()
    again, summary2 = train_attribute_net(planted(), tiny_cfg(), run, progress=False)
    assert (run / "metrics.jsonl").read_text() == lines  # nothing trained again
    assert summary2 == summary
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(again(x), model(x))


def test_group_split_keeps_people_whole() -> None:
    groups = np.array([f"p{i % 7}" for i in range(50)])
    held, train = group_split(groups, 0.3, seed=1)
    assert len(held) + len(train) == 50 and not set(held) & set(train)
    assert not set(groups[held]) & set(groups[train])
    assert 0.2 <= len(held) / 50 <= 0.45
    assert np.array_equal(held, group_split(groups, 0.3, seed=1)[0])
    one = np.array(["a"] * 5)
    assert len(group_split(one, 0.3, seed=0)[0]) == 0  # never every group
    assert len(group_split(groups, 0.0, seed=0)[0]) == 0


def test_nan_score_names_the_image_and_attribute() -> None:
    data = planted(8)
    scores = data.scores.copy()
    scores[5, 1] = np.nan
    with pytest.raises(DataError, match="img5") as err:
        ScoredImages(
            ids=data.ids,
            pixels=data.pixels,
            scores=scores,
            groups=data.groups,
            attributes=NAMES,
            source="x",
        )
    assert err.value.field == "mouth"


def test_bad_shapes() -> None:
    data = planted(8)
    with pytest.raises(DataError, match=r"scores must be \(8, 3\)"):
        ScoredImages(
            ids=data.ids,
            pixels=data.pixels,
            scores=data.scores,
            groups=data.groups,
            attributes=("a", "b", "c"),
            source="x",
        )
    with pytest.raises(DataError, match="at least 2"):
        ScoredImages(
            ids=data.ids[:1],
            pixels=data.pixels[:1],
            scores=data.scores[:1],
            groups=data.groups[:1],
            attributes=NAMES,
            source="one face",
        )


def test_regression_loss_is_the_mse_of_standardised_scores() -> None:
    torch.manual_seed(0)
    net = AttributeNet(
        AttributeNetConfig(width=4),
        attributes=("a", "b"),
        score_mean=torch.tensor([1.0, 2.0]),
        score_std=torch.tensor([1.0, 1.0]),
    ).eval()  # no dropout: two passes give the same scores
    x, target = torch.rand(3, 3, 64, 64), torch.randn(3, 2)
    loss, metrics = regression_loss(net, (x, target))
    assert loss.item() == pytest.approx(((net(x) - target) ** 2).mean().item(), rel=1e-5)
    assert metrics == {"loss": pytest.approx(loss.item())}
    loss.backward()
    assert all(p.grad is not None for p in net.head.parameters())
