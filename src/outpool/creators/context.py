"""What a pair creator may use: the dataset and its real pairs, the current ranker and how it
trains, the frozen generator (for creators that generate), the dataset's "equal" band and, in
active rounds, the previous round's creator folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from outpool.data import Dataset, PairTable
from outpool.errors import DataError, UnknownNameError
from outpool.models.generator import ConditionalVAE
from outpool.models.ranker import DeepSTN
from outpool.train.ranker import RankerTrainConfig

PRIOR_SPREAD = 2.0  # without the generator's table: the strengths' range is mean +- this many std


@dataclass(frozen=True, eq=False)
class CreationContext:
    """Everything a creator reads; it changes none of it (a creator that trains a ranker trains
    a copy). ``equal_band``: strengths closer than this are "equal", in the dataset's units."""

    dataset: Dataset
    attribute: str
    ranker: DeepSTN | None = None
    ranker_cfg: RankerTrainConfig = field(default_factory=RankerTrainConfig)
    generator: ConditionalVAE | None = None
    equal_band: float = 0.0
    train: str = "train"
    val: str = "val"
    device: str = "cpu"
    # the previous active round's creator folder: what a creator carries over from round to
    # round (ATTIC: the control network's weights); None in a single batch
    previous: Path | None = None

    def __post_init__(self) -> None:
        self.dataset.attribute(self.attribute)  # unknown -> UnknownNameError naming the valid
        for table in (self.train, self.val):
            if table not in self.dataset.pairs:
                raise UnknownNameError("pair table", table, self.dataset.pairs)
        if not self.equal_band >= 0:  # NaN fails too
            raise DataError(f"equal_band must be >= 0, got {self.equal_band}")

    def pairs(self, table: str) -> PairTable:
        """The real pairs of ``table`` for the attribute."""
        return self.dataset.pairs[table].for_attribute(self.attribute)

    def require_ranker(self) -> DeepSTN:
        """The current ranker, for a creator that reads it."""
        if self.ranker is None:
            raise DataError("this creator reads the current ranker: it needs one")
        return self.ranker

    def require_generator(self) -> ConditionalVAE:
        """The generator, which must know the attribute."""
        if self.generator is None:
            raise DataError("this creator draws images: it needs a generator")
        if self.attribute not in self.generator.attributes:
            raise DataError(
                f"the generator has no attribute '{self.attribute}' (it has: "
                f"{', '.join(self.generator.attributes)})"
            )
        return self.generator

    def strength_range(
        self, generator: ConditionalVAE, table: str = "generator"
    ) -> tuple[np.ndarray, np.ndarray]:
        """(low, high), each (N,) in the generator's attribute order: the range of ``table``'s
        strengths (the pictures the generator learned from) where the dataset has them for
        every attribute, else the generator's training mean +- ``PRIOR_SPREAD`` std."""
        names = generator.attributes
        images = self.dataset.images.get(table)
        known = images is not None and images.strengths is not None and len(images) > 0
        if images is not None and known and all(n in images.attributes for n in names):
            cols = [images.attributes.index(name) for name in names]
            strengths = np.asarray(images.strengths, np.float64)[:, cols]
            return strengths.min(0), strengths.max(0)
        mean = generator.y_mean.cpu().numpy().astype(np.float64)
        std = generator.y_std.cpu().numpy().astype(np.float64)
        return mean - PRIOR_SPREAD * std, mean + PRIOR_SPREAD * std
