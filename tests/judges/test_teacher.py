"""The teacher judge: values in [0, 1] and monotone, legibility from face space, saved and
loaded with its attribute names, trained on non-test tables only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from face_images import fake_faces
from outpool.annotate.protocol import Judge
from outpool.data import AttributeInfo, Dataset, ImageTable
from outpool.data.dataset import Truth
from outpool.errors import DataError
from outpool.judges.face_space import FaceSpace, FaceSpaceConfig
from outpool.judges.teacher import TeacherConfig, TeacherJudge, fit_teacher, to_unit
from outpool.models.attribute_net import AttributeNet, AttributeNetConfig
from outpool.train.attribute_net import AttributeNetTrainConfig, score_quantiles

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAMES = ("tone", "mouth")


def test_to_unit_is_the_empirical_cdf() -> None:
    rng = np.random.default_rng(0)
    train = np.stack([rng.normal(0, 1, 500), rng.integers(0, 3, 500).astype(float)], 1)
    q = score_quantiles(train)
    probe = np.linspace(-5, 5, 401)
    v = to_unit(np.stack([probe, probe], 1), q)
    assert v.min() == 0.0 and v.max() == 1.0  # beyond the training range: 0 or 1
    assert (np.diff(v, axis=0) >= 0).all()  # monotone in the score
    inside = (probe > train[:, 0].min()) & (probe < train[:, 0].max())
    assert (np.diff(v[inside, 0]) > 0).all()  # strictly, inside the range
    # the value is the share of training scores below: the median maps to 0.5
    np.testing.assert_allclose(to_unit(np.median(train, 0, keepdims=True), q)[0, 0], 0.5, atol=0.01)
    for s in (-1.0, 0.3, 1.2):
        share = (train[:, 0] <= s).mean()
        assert to_unit(np.array([[s, 0.0]]), q)[0, 0] == pytest.approx(share, abs=0.01)


def tiny_teacher(seed: int = 0) -> TeacherJudge:
    torch.manual_seed(seed)
    net = AttributeNet(
        AttributeNetConfig(width=4),
        attributes=NAMES,
        score_mean=torch.zeros(2),
        score_std=torch.ones(2),
    )
    pixels, _ = fake_faces(60, seed)
    space = FaceSpace.fit(pixels, np.array([f"p{i // 2}" for i in range(60)]))
    q = score_quantiles(np.random.default_rng(seed).normal(0, 1, (300, 2)))
    return TeacherJudge(net, q, space, record={"note": "tiny"})


def test_teacher_is_a_judge_with_unit_values() -> None:
    teacher = tiny_teacher()
    assert isinstance(teacher, Judge) and teacher.attributes == NAMES
    faces, _ = fake_faces(10, seed=5)
    values, legible = teacher.assess(faces)
    assert values.shape == (10, 2) and values.dtype == np.float32
    assert legible.shape == (10,) and ((legible >= 0) & (legible <= 1)).all()
    assert ((values >= 0) & (values <= 1)).all()
    noise = np.random.default_rng(0).integers(0, 256, (10, 64, 64, 3), dtype=np.uint8)
    assert (teacher.assess(noise)[1] < 0.5).all() and (legible >= 0.5).mean() >= 0.8
    with pytest.raises(DataError, match="uint8"):
        teacher.assess(faces.astype(np.float32))


@pytest.mark.slow
def test_values_are_monotone_in_the_predicted_score() -> None:
    teacher = tiny_teacher()
    faces, _ = fake_faces(40, seed=6)
    with torch.no_grad():
        head = teacher.net.head
        head.weight.zero_()
        head.bias.zero_()
        head.weight[0, 0] = 1.0  # score 0 = one backbone feature: a ramp across the faces
    scores = teacher.net.scores(torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255)
    values = teacher.values(faces)
    order = np.argsort(scores[:, 0].detach().numpy())
    assert (np.diff(values[order, 0]) >= 0).all()
    assert values[order[-1], 0] > values[order[0], 0]


@pytest.mark.slow
def test_save_and_load(tmp_path: Path) -> None:
    teacher = tiny_teacher()
    teacher.save(tmp_path / "teacher.pt")
    again = TeacherJudge.load(tmp_path / "teacher.pt", attributes=NAMES)
    faces, _ = fake_faces(8, seed=7)
    for a, b in zip(teacher.assess(faces), again.assess(faces), strict=True):
        np.testing.assert_array_equal(a, b)
    assert again.record == {"note": "tiny"}


def test_load_with_other_attribute_names_names_the_file(tmp_path: Path) -> None:
    tiny_teacher().save(tmp_path / "teacher.pt")
    with pytest.raises(DataError, match=r"\['tone', 'mouth'\] do not match") as err:
        TeacherJudge.load(tmp_path / "teacher.pt", attributes=("smiling", "young"))
    assert err.value.path == tmp_path / "teacher.pt" and err.value.field == "attributes"
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="not a readable checkpoint"):
        TeacherJudge.load(tmp_path / "junk.pt")


# -- training it on a dataset's non-test tables ---------------------------------------------
def face_dataset() -> tuple[Dataset, dict[str, Truth]]:
    """train / val / test tables of fake faces; their planted scores kept apart as truth."""
    tables, truth = {}, {}
    for k, (name, n) in enumerate({"train": 90, "val": 30, "test": 40}.items()):
        pixels, attrs = fake_faces(n, seed=10 + k)
        ids = np.array([f"{name}{i}" for i in range(n)])
        tables[name] = ImageTable(
            ids=ids, pixels=pixels, groups=[f"{name}p{i // 3}" for i in range(n)]
        )
        truth[name] = (ids, attrs * 3 - 1)
    ds = Dataset(
        name="faces", attributes=(AttributeInfo("tone"), AttributeInfo("mouth")), images=tables
    )
    return ds, truth


def tiny_cfg() -> TeacherConfig:
    net = AttributeNetTrainConfig(
        model=AttributeNetConfig(width=8), epochs=5, batch_size=16, lr=3e-3, device="cpu"
    )
    return TeacherConfig(net=net, face_space=FaceSpaceConfig(components=8))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TeacherJudge]:
    work = tmp_path_factory.mktemp("teacher")
    ds, truth = face_dataset()
    return work, fit_teacher(ds, truth, work, tiny_cfg(), progress=False)


@pytest.mark.slow
def test_fit_teacher_records_held_out_quality(fitted: tuple[Path, TeacherJudge]) -> None:
    work, teacher = fitted
    rec: dict[str, Any] = teacher.record
    assert rec["images"] == 120 and "['train', 'val']" in rec["trained_on"]
    assert rec["test"]["table"] == "test" and rec["test"]["images"] == 40
    assert rec["test"]["spearman"]["tone"] > 0.8  # learnt from train+val, measured on test
    leg = rec["legibility"]
    assert leg["real_faces"] == 40 and leg["real_accepted_pct"] >= 90
    assert leg["noise_rejected_pct"] == 100 and leg["blank_rejected_pct"] == 100
    assert (work / "teacher.pt").is_file() and (work / "teacher.json").is_file()
    assert (work / "net" / "metrics.jsonl").is_file()
    # the test faces' measured tone follows their true tone
    ds, truth = face_dataset()
    values = teacher.values(np.asarray(ds.images["test"].pixels))
    assert np.corrcoef(values[:, 0], truth["test"][1][:, 0])[0, 1] > 0.8


@pytest.mark.slow
def test_fit_teacher_loads_what_is_there(fitted: tuple[Path, TeacherJudge]) -> None:
    work, teacher = fitted
    ds, truth = face_dataset()
    again = fit_teacher(ds, {}, work, tiny_cfg(), progress=False)  # no training: no truth needed
    assert again.record == teacher.record
    other = TeacherConfig(net=tiny_cfg().net, face_space=FaceSpaceConfig(components=4))
    with pytest.raises(DataError, match="another config") as err:
        fit_teacher(ds, truth, work, other, progress=False)
    assert err.value.path == work / "teacher.pt"


def test_fit_teacher_needs_true_scores_of_non_test_tables(tmp_path: Path) -> None:
    ds, truth = face_dataset()
    with pytest.raises(DataError, match=r"no true scores for table\(s\) \['val'\]"):
        fit_teacher(ds, {"train": truth["train"]}, tmp_path / "a", tiny_cfg(), progress=False)
    bad = TeacherConfig(net=tiny_cfg().net, train_tables=("train", "test"))
    with pytest.raises(DataError, match="must not train on its test table"):
        fit_teacher(ds, truth, tmp_path / "b", bad, progress=False)
    ids, values = truth["val"]
    values = values.copy()
    values[3, 1] = np.nan
    with pytest.raises(DataError, match="val3") as err:
        fit_teacher(ds, {**truth, "val": (ids, values)}, tmp_path / "c", tiny_cfg(), progress=False)
    assert err.value.field == "mouth"
