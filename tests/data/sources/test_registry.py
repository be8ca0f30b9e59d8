"""The data-source registry: names used in configs, and an unknown name lists the valid ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from outpool.data.sources import LOADERS, load_source
from outpool.errors import UnknownNameError

from .conftest import write_image


def test_names() -> None:
    assert set(LOADERS) == {"pubfig", "lfw", "zappos", "folder"}


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(UnknownNameError) as err:
        load_source("imagenet")
    assert str(err.value) == "unknown data source 'imagenet'; valid: folder, lfw, pubfig, zappos"
    assert isinstance(err.value, KeyError)


def test_load_source_calls_the_loader(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.jpg")
    (tmp_path / "p.csv").write_text("attribute,a,b,label\nx,a.png,b.jpg,1\n")
    ds = load_source("folder", images_root=tmp_path, pairs_csv=tmp_path / "p.csv", cache=tmp_path)
    assert len(ds.pairs["train"]) == 1
