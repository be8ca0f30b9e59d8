"""The blend of DeepSTN and the linear ranker: standardised scores mixed by weight, its file,
and that it is refused where a DeepSTN itself is needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from outpool.errors import ConfigError, DataError
from outpool.models import BlendConfig, BlendRanker, DeepSTN, LinearRanker, RankerConfig
from outpool.models.linear import LinearRankerConfig
from outpool.train.ranker import load_deepstn, load_ranker, save_ranker


def parts(seed: int = 0) -> tuple[DeepSTN, LinearRanker]:
    torch.manual_seed(seed)
    deep = DeepSTN(RankerConfig(width=4)).eval()
    lin = LinearRanker(LinearRankerConfig(pixels=4, orientations=4, cells=2)).eval()
    lin.weight.data.normal_()
    return deep, lin


@torch.no_grad()
def test_blend_mixes_each_part_standardised_on_the_training_images() -> None:
    deep, lin = parts()
    train, x = torch.rand(40, 3, 64, 64), torch.rand(6, 3, 64, 64)
    blend = BlendRanker(deep, lin, BlendConfig(0.75))
    blend.standardise_on(deep.score_views(train), lin(train))
    d, s = deep.score_views(train), lin(train)
    expected = (
        0.75 * (deep.score_views(x) - d.mean()) / d.std() + 0.25 * (lin(x) - s.mean()) / s.std()
    )
    torch.testing.assert_close(blend.score_views(x), expected)
    # the standardised blend does not depend on the scale of a part's scores
    before = blend.score_views(x)
    lin.weight.data.mul_(10.0)
    rescaled = BlendRanker(deep, lin, BlendConfig(0.75))
    rescaled.standardise_on(deep.score_views(train), lin(train))
    torch.testing.assert_close(rescaled.score_views(x), before)
    # the weight moves the order from one part's towards the other's
    near_deep = BlendRanker(deep, lin, BlendConfig(0.999))
    near_deep.standardise_on(deep.score_views(train), lin(train))
    assert torch.equal(near_deep.score_views(x).argsort(), deep.score_views(x).argsort())


def test_blend_file_round_trips_and_is_no_deepstn(tmp_path: Path) -> None:
    deep, lin = parts()
    deep.set_stage("full")
    blend = BlendRanker(deep, lin, BlendConfig(0.25))
    train = torch.rand(20, 3, 64, 64)
    with torch.no_grad():
        blend.standardise_on(deep.score_views(train), lin(train))
    save_ranker(blend, tmp_path / "ranker.pt", attribute="smile", record={"model": "blend"})
    loaded, payload = load_ranker(tmp_path / "ranker.pt")
    assert isinstance(loaded, BlendRanker) and payload["model"] == "blend"
    assert loaded.config.weight == 0.25 and loaded.deepstn.stage == "full"
    x = torch.rand(5, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.score_views(x), blend.score_views(x))
    with pytest.raises(DataError, match=r"holds a blend ranker.*--model deepstn"):
        load_deepstn(tmp_path / "ranker.pt")
    save_ranker(deep, tmp_path / "deepstn.pt", attribute="smile", record={})
    with pytest.raises(DataError, match=r"need a DeepSTN ranker .*deepstn\.pt beside it"):
        load_deepstn(tmp_path / "ranker.pt")  # auto's run folder keeps its DeepSTN


@pytest.mark.parametrize("weight", [0.0, 1.0, -0.5, 1.5])
def test_a_blend_weight_outside_0_1_is_refused(weight: float) -> None:
    with pytest.raises(ConfigError, match="weight must be in"):
        BlendConfig(weight)


def test_a_blend_file_without_its_parts_is_a_clear_error(tmp_path: Path) -> None:
    deep, lin = parts()
    save_ranker(
        BlendRanker(deep, lin, BlendConfig(0.5)), tmp_path / "r.pt", attribute="s", record={}
    )
    payload = torch.load(tmp_path / "r.pt", weights_only=False)
    del payload["model_config"]["linear"]
    torch.save(payload, tmp_path / "r.pt")
    with pytest.raises(DataError, match="lacks its parts' configs"):
        load_ranker(tmp_path / "r.pt")
