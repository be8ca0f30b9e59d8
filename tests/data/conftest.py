"""Small random tables shared by the data tests."""

from __future__ import annotations

import numpy as np
import pytest

from outpool.data import AttributeInfo, Dataset, ImageTable, PairTable


def make_images(
    n: int = 5, *, prefix: str = "img", seed: int = 0, provenance: bool = True
) -> ImageTable:
    rng = np.random.default_rng(seed)
    return ImageTable(
        ids=np.array([f"{prefix}{i}" for i in range(n)]),
        pixels=rng.integers(0, 256, size=(n, 64, 64, 3), dtype=np.uint8),
        groups=np.array([f"g{i % 2}" for i in range(n)]),
        attributes=("smile", "age"),
        strengths=rng.normal(size=(n, 2)).astype(np.float32),
        provenance=tuple({"y": [0.1 * i, 0.2], "round": i} for i in range(n))
        if provenance
        else None,
    )


def make_pairs(ids: list[str], n: int = 4, *, seed: int = 0) -> PairTable:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, len(ids), size=n)
    b = (a + 1 + rng.integers(0, len(ids) - 1, size=n)) % len(ids)
    return PairTable.build(
        attribute=rng.choice(["smile", "age"], size=n),
        a=[ids[i] for i in a],
        b=[ids[i] for i in b],
        label=rng.choice([1, -1, 0], size=n),
        confidence=rng.uniform(size=n).astype(np.float32),
        source="real",
        round=0,
    )


@pytest.fixture
def images() -> ImageTable:
    return make_images()


@pytest.fixture
def dataset() -> Dataset:
    train = make_images(5, prefix="tr", seed=1)
    test = make_images(3, prefix="te", seed=2, provenance=False)
    return Dataset(
        name="toy",
        attributes=(AttributeInfo("smile", "how much the person smiles"), AttributeInfo("age")),
        images={"train": train, "test": test},
        pairs={
            "train": make_pairs(train.ids.tolist(), 6, seed=3),
            "test": make_pairs(test.ids.tolist(), 3, seed=4),
        },
        meta={"seed": 7, "config": {"lr": 0.1}},
    )
