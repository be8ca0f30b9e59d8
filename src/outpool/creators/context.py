"""What a pair creator may use: the dataset and its real pairs, the current ranker and how it
trains, the frozen generator (for creators that generate) and the dataset's "equal" band."""

from __future__ import annotations

from dataclasses import dataclass, field

from outpool.data import Dataset, PairTable
from outpool.errors import DataError, UnknownNameError
from outpool.models.generator import ConditionalVAE
from outpool.models.ranker import DeepSTN
from outpool.train.ranker import RankerTrainConfig


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
