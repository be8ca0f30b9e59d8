"""The built-in world as a dataset: who is photographed, in which splits, compared in which pairs.

The real pool is a CATALOGUE: a few style clusters (sneakers, pumps, boots, sandals, loafers) with
a thin spread of in-between shoes, so large parts of attribute space are never photographed. The
test set covers the whole space and its pairs favour fine-grained differences. That gap between
what the pool holds and what the test asks is what ATTIC exists to close (seed paper, Fig. 2).

Attributes are correlated as in real catalogues (high heels tend to be pointed and thin-soled,
boots are closed). True values never enter the ranker's image tables: they are written to
``truth/`` beside the dataset, where only evaluation and the simulated crowd's checks read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm

from outpool import __version__
from outpool.config import to_dict
from outpool.data import AttributeInfo, Dataset, ImageTable, PairTable
from outpool.errors import ConfigError
from outpool.synth import shoe
from outpool.synth.renderer import Nuisance, render

# Correlations between attributes (order of shoe.ATTRIBUTE_NAMES) of the broad distribution.
#                open  pointy heel  tall  color chunky
CORRELATION = np.array(
    [
        [1.00, 0.10, 0.20, -0.55, 0.10, -0.30],  # open
        [0.10, 1.00, 0.50, 0.00, 0.00, -0.35],  # pointy
        [0.20, 0.50, 1.00, 0.00, 0.00, -0.40],  # heel
        [-0.55, 0.00, 0.00, 1.00, -0.15, 0.10],  # tall
        [0.10, 0.00, 0.00, -0.15, 1.00, 0.25],  # colorful
        [-0.30, -0.35, -0.40, 0.10, 0.25, 1.00],  # chunky
    ]
)

# Style clusters of the catalogue: centre in attribute space and share of the catalogue.
STYLES: dict[str, tuple[tuple[float, ...], float]] = {
    #           open  pointy heel  tall  color chunky
    "sneaker": ((0.20, 0.15, 0.05, 0.15, 0.70, 0.80), 0.30),
    "pump": ((0.78, 0.80, 0.80, 0.05, 0.45, 0.10), 0.20),
    "boot": ((0.08, 0.35, 0.30, 0.85, 0.20, 0.45), 0.20),
    "sandal": ((0.92, 0.20, 0.35, 0.10, 0.55, 0.30), 0.15),
    "loafer": ((0.45, 0.45, 0.12, 0.08, 0.15, 0.25), 0.15),
}
BROAD = "other"  # group of images drawn from the broad distribution


@dataclass(frozen=True)
class SplitConfig:
    """How one image table is drawn: count and share of in-between (non-catalogue) shoes."""

    images: int
    broad_share: float

    def check(self, name: str) -> None:
        if self.images < 2:
            raise ConfigError(f"{name}.images must be at least 2, got {self.images}")
        if not 0.0 <= self.broad_share <= 1.0:
            raise ConfigError(f"{name}.broad_share must be in [0, 1], got {self.broad_share}")


@dataclass(frozen=True)
class SynthConfig:
    """Sizes and sampling of the built-in dataset (defaults in the spirit of the paper)."""

    seed: int = 0
    style_spread: float = 0.07  # std of a style cluster, attribute units
    generator: SplitConfig = field(default_factory=lambda: SplitConfig(4000, 0.3))
    train: SplitConfig = field(default_factory=lambda: SplitConfig(600, 0.05))
    val: SplitConfig = field(default_factory=lambda: SplitConfig(200, 0.05))
    test: SplitConfig = field(default_factory=lambda: SplitConfig(800, 0.5))
    train_pairs: int = 300  # per attribute
    val_pairs: int = 100  # per attribute
    test_pairs: int = 1000  # per attribute
    fine_share: float = 0.5  # share of test pairs that are fine-grained
    fine_max: float = 0.12  # a fine-grained pair differs by at most this much
    equal_band: float = 0.03  # |difference| below this is "equal" (train/val; not tested)

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        for name in ("generator", "train", "val", "test"):
            getattr(self, name).check(name)
        for name in ("train_pairs", "val_pairs", "test_pairs"):
            n = getattr(self, name)
            split = getattr(self, name.removesuffix("_pairs"))
            if not 0 <= n <= split.images * (split.images - 1) // 4:
                raise ConfigError(
                    f"{name} must be between 0 and a quarter of the possible pairs of "
                    f"{split.images} images ({split.images * (split.images - 1) // 4}), got {n}"
                )
        checks = (
            ("style_spread", self.style_spread, 0.0, 1.0),
            ("fine_share", self.fine_share, 0.0, 1.0),
            ("fine_max", self.fine_max, 0.01, 1.0),
            ("equal_band", self.equal_band, 0.0, 0.5),
        )
        for name, value, lo, hi in checks:
            if not lo <= value <= hi:
                raise ConfigError(f"{name} must be in [{lo}, {hi}], got {value}")


def sample_broad(rng: np.random.Generator, n: int) -> np.ndarray:
    """Attributes (n, 6) with uniform marginals and the correlations of ``CORRELATION``."""
    z = rng.multivariate_normal(np.zeros(len(CORRELATION)), CORRELATION, size=n)
    return norm.cdf(z).astype(np.float32)


def sample_catalogue(
    rng: np.random.Generator, n: int, *, broad_share: float, spread: float
) -> tuple[np.ndarray, np.ndarray]:
    """Attributes (n, 6) and group names (n,): style clusters plus some in-between shoes."""
    names = list(STYLES)
    weights = np.array([STYLES[s][1] for s in names])
    centres = np.array([STYLES[s][0] for s in names], np.float32)
    broad = rng.random(n) < broad_share
    style = rng.choice(len(names), size=n, p=weights / weights.sum())
    attrs = centres[style] + rng.normal(0.0, spread, (n, centres.shape[1])).astype(np.float32)
    attrs = np.clip(attrs, 0.0, 1.0)
    attrs[broad] = sample_broad(rng, int(broad.sum()))
    groups = np.where(broad, BROAD, np.array(names)[style])
    return attrs.astype(np.float32), groups


def random_pairs(
    rng: np.random.Generator, values: np.ndarray, n: int, *, fine_max: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct unordered pairs of indices; with ``fine_max``, only pairs closer than it."""
    m = len(values)
    seen: set[tuple[int, int]] = set()
    a_out, b_out = [], []
    for _ in range(200):  # draw in rounds; a finite number of rounds keeps it bounded
        i, j = rng.integers(0, m, 4 * n), rng.integers(0, m, 4 * n)
        for x, y in zip(i.tolist(), j.tolist(), strict=True):
            key = (min(x, y), max(x, y))
            if x == y or key in seen:
                continue
            if fine_max is not None and abs(values[x] - values[y]) > fine_max:
                continue
            seen.add(key)
            a_out.append(x)
            b_out.append(y)
            if len(a_out) == n:
                return np.array(a_out), np.array(b_out)
    raise ValueError(f"could not draw {n} distinct pairs from {m} images")


def _labels(diff: np.ndarray, band: float) -> np.ndarray:
    return np.where(diff > band, 1, np.where(diff < -band, -1, 0)).astype(np.int8)


@dataclass(frozen=True)
class World:
    """A rendered dataset and the true values of its images (kept apart from the dataset)."""

    dataset: Dataset
    truth: dict[str, tuple[np.ndarray, np.ndarray]]  # table -> (ids, values (N, 6))
    nuisance: dict[str, np.ndarray]  # table -> (N, F) nuisance factors, for the record


def build(config: SynthConfig) -> World:
    """Render the whole built-in dataset from ``config`` (deterministic given its seed)."""
    rng = np.random.default_rng(config.seed)
    names = shoe.ATTRIBUTE_NAMES
    images: dict[str, ImageTable] = {}
    truth: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    nuisance: dict[str, np.ndarray] = {}
    for split in ("generator", "train", "val", "test"):
        sc: SplitConfig = getattr(config, split)
        attrs, groups = sample_catalogue(
            rng, sc.images, broad_share=sc.broad_share, spread=config.style_spread
        )
        nu = Nuisance.sample(rng, sc.images)
        pixels = render(attrs, nu, seed=int(rng.integers(1 << 31)))
        ids = np.array([f"{split}-{i:05d}" for i in range(sc.images)])
        # Only the generator's training set carries strengths, as in the paper.
        images[split] = ImageTable(
            ids=ids,
            pixels=pixels,
            groups=groups,
            attributes=names if split == "generator" else (),
            strengths=attrs if split == "generator" else None,
        )
        truth[split] = (ids, attrs)
        nuisance[split] = nu.as_array()

    pairs: dict[str, PairTable] = {}
    for split, count in (("train", config.train_pairs), ("val", config.val_pairs)):
        ids, values = truth[split]
        tables = []
        for k, name in enumerate(names):
            a, b = random_pairs(rng, values[:, k], count)
            diff = values[a, k] - values[b, k]
            tables.append(
                PairTable.build(
                    attribute=name,
                    a=ids[a],
                    b=ids[b],
                    label=_labels(diff, config.equal_band),
                    id_prefix=f"{split}-{name}-",
                )
            )
        pairs[split] = PairTable.concat(tables)
    try:
        test, fine = _test_pairs(rng, truth["test"], config)
    except ValueError as exc:  # too few test images for the pairs asked for
        raise ConfigError(f"test pairs: {exc}; use more test.images or fewer test_pairs") from None
    pairs["test"], pairs["test_fine"] = test, fine

    meta = {
        "source": "synthetic-shoes",
        "seed": config.seed,
        "config": to_dict(config),
        "code_version": __version__,
        "nuisance_factors": list(Nuisance.names()),
        "splits": {
            "generator": "trains the image generator (has attribute strengths)",
            "train": "real pool: ranker training pairs",
            "val": "real pool: validation pairs (model selection)",
            "test": "test pairs across the whole attribute space",
            "test_fine": "the fine-grained subset of the test pairs",
        },
    }
    dataset = Dataset(
        name="synthetic-shoes",
        attributes=tuple(AttributeInfo(n, shoe.ATTRIBUTES[n]) for n in names),
        images=images,
        pairs=pairs,
        meta=meta,
    )
    return World(dataset=dataset, truth=truth, nuisance=nuisance)


def _test_pairs(
    rng: np.random.Generator, truth: tuple[np.ndarray, np.ndarray], config: SynthConfig
) -> tuple[PairTable, PairTable]:
    """Test pairs per attribute (never "equal"), and their fine-grained subset."""
    ids, values = truth
    tables, fine_tables = [], []
    n_fine = round(config.test_pairs * config.fine_share)
    for k, name in enumerate(shoe.ATTRIBUTE_NAMES):
        v = values[:, k]
        fa, fb = random_pairs(rng, v, 3 * n_fine, fine_max=config.fine_max)
        keep = np.abs(v[fa] - v[fb]) >= config.equal_band
        fa, fb = fa[keep][:n_fine], fb[keep][:n_fine]
        ca, cb = random_pairs(rng, v, 3 * config.test_pairs)
        taken = {(min(x, y), max(x, y)) for x, y in zip(fa, fb, strict=True)}
        keep = np.array(
            [
                abs(v[x] - v[y]) >= config.equal_band and (min(x, y), max(x, y)) not in taken
                for x, y in zip(ca, cb, strict=True)
            ]
        )
        ca, cb = ca[keep][: config.test_pairs - len(fa)], cb[keep][: config.test_pairs - len(fa)]
        a, b = np.concatenate([fa, ca]), np.concatenate([fb, cb])
        table = PairTable.build(
            attribute=name,
            a=ids[a],
            b=ids[b],
            label=_labels(v[a] - v[b], 0.0),
            id_prefix=f"test-{name}-",
        )
        tables.append(table)
        fine_tables.append(table.subset(np.arange(len(fa))))
    return PairTable.concat(tables), PairTable.concat(fine_tables)
