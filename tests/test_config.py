"""Config loading: TOML files, dotted overrides, and the errors a typo must cause."""

from __future__ import annotations

from pathlib import Path

import pytest

from outpool import config
from outpool.annotate import CrowdConfig
from outpool.config import from_dict, load, parse_override, to_dict
from outpool.creators.screen import ScreenConfig
from outpool.errors import ConfigError, OutpoolError
from outpool.synth import SynthConfig
from outpool.synth.world import SplitConfig
from outpool.train.attribute_net import AttributeNetTrainConfig


def _toml(tmp_path: Path, text: str, name: str = "cfg.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_defaults_without_file() -> None:
    assert load(SynthConfig) == SynthConfig()
    assert load(CrowdConfig) == CrowdConfig()


def test_load_file_then_overrides(tmp_path: Path) -> None:
    path = _toml(
        tmp_path,
        """
seed = 3
train_pairs = 50
fine_max = 0.2

[train]
images = 100
broad_share = 0.1
""",
    )
    cfg = load(SynthConfig, path, ["test.images=222", "seed=7", "style_spread=0.05"])
    assert cfg.seed == 7  # the override wins over the file
    assert cfg.train_pairs == 50  # the file wins over the default
    assert cfg.fine_max == 0.2
    assert cfg.style_spread == 0.05
    assert cfg.train == SplitConfig(100, 0.1)
    assert isinstance(cfg.train, SplitConfig)
    # a partial override of a table keeps the table's other values
    assert cfg.test == SplitConfig(222, SynthConfig().test.broad_share)
    assert cfg.generator == SynthConfig().generator
    assert cfg.val_pairs == SynthConfig().val_pairs


def test_override_on_a_table_from_the_file(tmp_path: Path) -> None:
    path = _toml(tmp_path, "[train]\nimages = 100\nbroad_share = 0.1\n")
    cfg = load(SynthConfig, path, ["train.broad_share=0.25"])
    assert cfg.train == SplitConfig(100, 0.25)


def test_int_is_accepted_for_a_float_and_becomes_float() -> None:
    cfg = load(SynthConfig, None, ["fine_max=1"])
    assert cfg.fine_max == 1.0 and isinstance(cfg.fine_max, float)


def test_round_trip_through_to_dict() -> None:
    cfg = load(SynthConfig, None, ["train.images=100", "seed=5"])
    data = to_dict(cfg)
    assert data["train"] == {"images": 100, "broad_share": SynthConfig().train.broad_share}
    assert from_dict(SynthConfig, data) == cfg


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    path = _toml(tmp_path, "seed = 1\ntrian_pairs = 5\n")
    with pytest.raises(ConfigError, match="trian_pairs") as err:
        load(SynthConfig, path)
    assert "train_pairs" in str(err.value)  # lists the valid keys


def test_unknown_nested_key_in_file_is_named_with_its_table(tmp_path: Path) -> None:
    path = _toml(tmp_path, "[train]\nimages = 10\nbroad = 0.1\n")
    with pytest.raises(ConfigError, match=r"train\.broad\b"):
        load(SynthConfig, path)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("bogus=1", "bogus"),
        ("train.bogus=1", "bogus"),
        ("nosuch.images=1", "nosuch"),
        ("seed.x=1", "seed"),
    ],
)
def test_unknown_override_key(override: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load(SynthConfig, None, [override])


def test_override_needs_an_equals_sign() -> None:
    with pytest.raises(ConfigError, match=r"key\.path=value"):
        load(SynthConfig, None, ["seed"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=abc", "seed must be an integer"),
        ("seed=1.5", "seed must be an integer"),
        ("seed=true", "seed must be an integer"),
        ("fine_max=abc", "fine_max must be a number"),
        ("fine_max=false", "fine_max must be a number"),
        ("train=5", "train must be a table"),
        ("train.images=[1, 2]", "train.images must be an integer"),
    ],
)
def test_wrong_type_in_override(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(SynthConfig, None, [override])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('seed = "zero"\n', "seed must be an integer"),
        ("fine_max = [0.1]\n", "fine_max must be a number"),
        ("train = 3\n", "train must be a table"),
        ('[train]\nimages = "many"\n', "train.images must be an integer"),
    ],
)
def test_wrong_type_in_file(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(SynthConfig, _toml(tmp_path, text))


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    path = _toml(tmp_path, "seed = = 3\n[train\n", name="broken.toml")
    with pytest.raises(ConfigError) as err:
        load(SynthConfig, path)
    assert str(path) in str(err.value)
    assert "TOML" in str(err.value)
    assert "line 1" in str(err.value)  # tomllib's position survives in the message


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothere\.toml"):
        load(SynthConfig, tmp_path / "nothere.toml")


def test_config_errors_are_outpool_errors() -> None:
    """The CLI turns every ``OutpoolError`` into one line and exit 2; configs must be one."""
    assert issubclass(ConfigError, OutpoolError)


def test_component_validation_surfaces_as_config_error() -> None:
    with pytest.raises(ConfigError, match="votes_per_pair"):
        load(CrowdConfig, None, ["votes_per_pair=0"])
    with pytest.raises(ConfigError, match="spammer_share"):
        load(CrowdConfig, None, ["spammer_share=1.5"])


@pytest.mark.parametrize(
    ("text", "keys", "value"),
    [
        ("a.b=3", ["a", "b"], 3),
        ("x=0.5", ["x"], 0.5),
        ("x=true", ["x"], True),
        ("name=hello", ["name"], "hello"),  # bare words are strings
        ('name="a=b"', ["name"], "a=b"),  # only the first "=" splits
        ("xs=[1, 2]", ["xs"], [1, 2]),
    ],
)
def test_parse_override(text: str, keys: list[str], value: object) -> None:
    assert parse_override(text) == (keys, value)


def test_from_dict_requires_a_dataclass() -> None:
    with pytest.raises(TypeError):
        config.from_dict(dict, {})


def test_a_table_sets_its_keys_on_the_fields_own_default(tmp_path: Path) -> None:
    # the screen's net defaults to the whole picture without flips, unlike the class default
    path = tmp_path / "screen.toml"
    path.write_text("[net]\nepochs = 3\n")
    cfg = load(ScreenConfig, path)
    assert cfg.net.epochs == 3
    assert cfg.net.model.crop == 1.0 and cfg.net.flip is False
    assert cfg.net.model.crop != AttributeNetTrainConfig().model.crop
