"""The ResNet-18 backbone takes a standard ResNet-18 state dict from a local file (tested with
random weights in that format), and every mismatch is named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from outpool.data import Dataset, PairTable
from outpool.data.dataset import AttributeInfo
from outpool.data.images import ImageTable
from outpool.errors import DataError
from outpool.models.ranker import RankerConfig
from outpool.models.resnet import ResNet18, load_backbone_weights
from outpool.train.ranker import RankerTrainConfig, train_ranker


def standard_file(path: Path, *, wrap: str = "", prefix: str = "") -> dict[str, torch.Tensor]:
    """Random weights under the standard ResNet-18 names, with its 1000-way ``fc`` head."""
    torch.manual_seed(1)
    state = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in ResNet18().state_dict().items()}
    state = {k: v for k, v in state.items() if k not in ("mean", "std")}
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    saved = {f"{prefix}{k}": v for k, v in state.items()}
    torch.save({wrap: saved} if wrap else saved, path)
    return state


def test_names_are_the_standard_resnet18_names() -> None:
    names = [k for k in ResNet18().state_dict() if k not in ("mean", "std")]
    assert len(names) == 120  # the standard 122 less fc.weight and fc.bias
    for key in ("conv1.weight", "bn1.running_var", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.num_batches_tracked", "layer4.1.bn2.bias"):  # fmt: skip
        assert key in names
    assert ResNet18()(torch.rand(2, 3, 64, 64)).shape == (2, 512)


@pytest.mark.parametrize(("wrap", "prefix"), [("", ""), ("state_dict", "module."), ("model", "")])
def test_a_standard_file_loads(tmp_path: Path, wrap: str, prefix: str) -> None:
    state = standard_file(tmp_path / "r18.pth", wrap=wrap, prefix=prefix)
    net = ResNet18()
    load_backbone_weights(net, tmp_path / "r18.pth")
    torch.testing.assert_close(net.conv1.weight, state["conv1.weight"])
    torch.testing.assert_close(net.layer3[0].downsample[1].running_mean,
                               state["layer3.0.downsample.1.running_mean"])  # fmt: skip


def test_mismatches_are_named(tmp_path: Path) -> None:
    state = standard_file(tmp_path / "ok.pth")
    broken = dict(state)
    del broken["layer1.0.conv1.weight"]
    broken["extra.weight"] = torch.zeros(1)
    broken["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(broken, tmp_path / "bad.pth")
    with pytest.raises(DataError) as err:
        load_backbone_weights(ResNet18(), tmp_path / "bad.pth")
    text = str(err.value)
    assert "missing: layer1.0.conv1.weight" in text and "unexpected: extra.weight" in text
    assert "shape: conv1.weight" in text and str(tmp_path / "bad.pth") in text
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(DataError, match="not a state dict"):
        load_backbone_weights(ResNet18(), tmp_path / "list.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(DataError, match="not a readable state dict"):
        load_backbone_weights(ResNet18(), tmp_path / "junk.pth")
    with pytest.raises(DataError, match="not found"):
        load_backbone_weights(ResNet18(), tmp_path / "none.pth")


@pytest.mark.slow
def test_train_ranker_starts_from_the_weights_file(tmp_path: Path) -> None:
    state = standard_file(tmp_path / "r18.pth")
    rng = np.random.default_rng(0)
    ids = np.asarray([f"i{k}" for k in range(12)])
    images = ImageTable(ids=ids, pixels=rng.integers(0, 256, (12, 64, 64, 3), dtype=np.uint8))
    a, b = rng.integers(0, 12, (2, 30))
    keep = a != b
    pairs = PairTable.build(attribute="x", a=ids[a[keep]], b=ids[b[keep]], label=1)
    ds = Dataset("r", (AttributeInfo("x"),), {"images": images}, {"train": pairs})
    cfg = RankerTrainConfig(
        model=RankerConfig(backbone="resnet18", width=4),
        backbone_weights=str(tmp_path / "r18.pth"),
        epochs_crop=1, epochs_full=0, lr=1e-12, weight_decay=0.0, device="cpu",
    )  # fmt: skip
    model, _ = train_ranker(ds, "x", cfg, tmp_path / "run", val=None, progress=False)
    torch.testing.assert_close(model.cnn.conv1.weight, state["conv1.weight"])  # lr ~ 0
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert len(record["backbone_weights_sha256"]) == 64
