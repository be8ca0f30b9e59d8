"""The judge registry (``outpool.judges``): which judge measures a dataset, what it returns, and
the errors for datasets without one and for settings a judge does not take."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from face_images import fake_faces
from outpool.annotate.protocol import Judge
from outpool.data import AttributeInfo, Dataset, ImageTable
from outpool.data.dataset import Truth
from outpool.errors import ConfigError, OutpoolError
from outpool.judges import JUDGES, JudgeEntry, make_judge, require_judge
from outpool.judges.face_space import FaceSpaceConfig
from outpool.judges.teacher import TeacherConfig, TeacherJudge
from outpool.models.attribute_net import AttributeNetConfig
from outpool.synth import PixelOracle
from outpool.train.attribute_net import AttributeNetTrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def named(name: str) -> Dataset:
    """A dataset with no tables: the registry looks at the name only (until a judge trains)."""
    return Dataset(name=name, attributes=(AttributeInfo("tone"),))


def test_the_registry_lists_the_two_datasets_with_a_judge() -> None:
    assert set(JUDGES) == {"synthetic-shoes", "lfw"}
    assert all(isinstance(entry, JudgeEntry) for entry in JUDGES.values())
    assert JUDGES["synthetic-shoes"].config is None  # the pixel oracle has no settings
    assert JUDGES["lfw"].config is TeacherConfig


def test_the_built_in_world_is_judged_by_its_pixel_oracle(tmp_path: Path) -> None:
    made = make_judge(named("synthetic-shoes"), None, truth={}, work_dir=tmp_path, progress=False)
    assert made is not None
    judge, record = made
    assert isinstance(judge, PixelOracle) and isinstance(judge, Judge)
    assert judge.progress is False
    assert record == {"judge": "pixel oracle of the built-in world"}
    assert list(tmp_path.iterdir()) == []  # it learns nothing, so it writes nothing
    # progress is passed through (the default is on)
    default = make_judge(named("synthetic-shoes"), None, truth={}, work_dir=tmp_path)
    assert default is not None and isinstance(default[0], PixelOracle) and default[0].progress


def test_a_dataset_without_a_judge_gives_none(tmp_path: Path) -> None:
    assert make_judge(named("toy"), None, truth={}, work_dir=tmp_path) is None
    # settings are not looked at when there is no judge to take them
    assert make_judge(named("toy"), TeacherConfig(), truth={}, work_dir=tmp_path) is None


def test_require_judge_returns_the_entry_or_names_the_datasets_that_have_one() -> None:
    assert require_judge(named("synthetic-shoes")) is JUDGES["synthetic-shoes"]
    assert require_judge(named("lfw")) is JUDGES["lfw"]
    with pytest.raises(OutpoolError) as err:
        require_judge(named("toy"))
    message = str(err.value)
    assert "no judge for dataset 'toy'" in message
    assert "(it has: synthetic-shoes, lfw)" in message


def test_settings_for_a_judge_without_settings_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="judge of dataset 'synthetic-shoes' has no settings"):
        make_judge(named("synthetic-shoes"), TeacherConfig(), truth={}, work_dir=tmp_path)


# -- the teacher entry: trains on the dataset's non-test true scores ------------------------------
def tiny_faces() -> tuple[Dataset, dict[str, Truth]]:
    """An "lfw" dataset of a few fake faces, with their planted scores as truth."""
    tables, truth = {}, {}
    for k, (name, n) in enumerate({"train": 24, "val": 8, "test": 12}.items()):
        pixels, attrs = fake_faces(n, seed=20 + k)
        ids = np.array([f"{name}{i}" for i in range(n)])
        groups = [f"{name}p{i // 2}" for i in range(n)]
        tables[name] = ImageTable(ids=ids, pixels=pixels, groups=groups)
        truth[name] = (ids, attrs)
    attributes = (AttributeInfo("tone"), AttributeInfo("mouth"))
    return Dataset(name="lfw", attributes=attributes, images=tables), truth


@pytest.mark.slow
def test_lfw_is_judged_by_a_teacher_trained_into_the_work_folder(tmp_path: Path) -> None:
    net = AttributeNetTrainConfig(
        model=AttributeNetConfig(width=4), epochs=1, batch_size=16, device="cpu"
    )
    cfg = TeacherConfig(net=net, face_space=FaceSpaceConfig(components=4))
    ds, truth = tiny_faces()
    made = make_judge(ds, cfg, truth=truth, work_dir=tmp_path, progress=False)
    assert made is not None
    judge, record = made
    assert isinstance(judge, TeacherJudge) and isinstance(judge, Judge)
    assert judge.attributes == ("tone", "mouth")
    assert (tmp_path / "teacher" / "teacher.pt").is_file()
    # the run summary's record: which judge, then the teacher's own record
    assert record["judge"] == "teacher (outpool.judges.teacher)"
    assert {k: v for k, v in record.items() if k != "judge"} == judge.record
    assert record["images"] == 24 + 8  # train and val: never the test table
    assert record["attributes"] == ["tone", "mouth"]
    values, legible = judge.assess(ds.images["test"].pixels)
    assert values.shape == (12, 2) and legible.shape == (12,)
    assert ((values >= 0) & (values <= 1)).all()
