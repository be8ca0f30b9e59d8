"""An experiment: a grid of (attribute, method, protocol, seed) cells on one dataset, with every
setting the cells share. Loaded from TOML (``configs/``), overridable key by key.

    [experiment]                  the grid (``GridConfig``)
    [world]                       the built-in world (``SynthConfig``)
    [generator]                   how the generator trains, when none is given
    [ranker] [screen] [crowd]     the ranker, the legibility screen, the simulated crowd
    [people]                      the annotation service, when people label
    [attic] [semantic_jitter] [jitter] [real_plus] [uncertainty]   each creator's settings
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from outpool.annotate import CrowdConfig
from outpool.creators import CREATORS
from outpool.creators.attic import AtticConfig
from outpool.creators.copies import JitterConfig, RealPlusConfig
from outpool.creators.screen import ScreenConfig
from outpool.creators.semantic_jitter import SemanticJitterConfig
from outpool.creators.uncertainty import UncertaintyConfig
from outpool.errors import ConfigError, UnknownNameError
from outpool.rounds.protocols import PROTOCOLS, REAL_METHODS
from outpool.synth import SynthConfig
from outpool.train.generator import GeneratorTrainConfig
from outpool.train.ranker import RankerTrainConfig

ACTIVE = "active"
ALL_PROTOCOLS = (*PROTOCOLS, ACTIVE)
UNSCREENED = "_unscreened"  # METHOD_unscreened: a generating creator without the screen
ANNOTATORS = ("crowd", "people")
METHODS = (
    *REAL_METHODS,
    *CREATORS,
    *(name + UNSCREENED for name, entry in CREATORS.items() if entry.generates),
)


def creator_of(method: str) -> str:
    """The creator a grid's method runs (``attic_unscreened`` runs ``attic``)."""
    return method.removesuffix(UNSCREENED)


@dataclass(frozen=True)
class GridConfig:
    """Which cells run, and their label budgets."""

    dataset: str = "builtin"  # the built-in world, rendered from [world]
    attributes: tuple[str, ...] = ()  # () = every attribute of the dataset
    methods: tuple[str, ...] = ("real", "semantic_jitter", "attic")
    protocols: tuple[str, ...] = ALL_PROTOCOLS
    seeds: tuple[int, ...] = (0, 1, 2)
    n: int = 150  # labels per method in normal / auto; the real pairs active rounds start from
    batch: int = 50  # active rounds: pairs per batch
    rounds: int = 4  # active rounds: batches
    tables: tuple[str, ...] = ("test", "test_fine")  # pair tables every ranker is scored on
    screen: bool = True  # generated pairs pass the legibility screen before the annotators
    generator: str = ""  # a generator.pt of this world; "" trains one into RUN/generator
    # who labels the created pairs: "crowd" (simulated, with the world's pixel oracle) or
    # "people" (the annotation service of [people]; the run stops while they label)
    annotator: str = "crowd"

    def __post_init__(self) -> None:
        if self.dataset != "builtin":
            raise ConfigError(
                f"experiment.dataset '{self.dataset}': only the built-in world ('builtin') runs "
                "as an experiment so far; other datasets go cell by cell through the API"
            )
        for name in self.methods:
            if name not in METHODS:
                raise UnknownNameError("method", name, METHODS)
        for name in self.protocols:
            if name not in ALL_PROTOCOLS:
                raise UnknownNameError("protocol", name, ALL_PROTOCOLS)
        if not self.methods or not self.protocols or not self.seeds:
            raise ConfigError("experiment.methods, protocols and seeds must not be empty")
        if self.annotator not in ANNOTATORS:
            raise UnknownNameError("annotator", self.annotator, ANNOTATORS)
        if self.n < 2 or self.batch < 1 or self.rounds < 1:
            raise ConfigError("experiment.n must be >= 2, batch and rounds >= 1")


@dataclass(frozen=True)
class PeopleSettings:
    """The annotation service people label in (``experiment.annotator = "people"``); the admin
    token is read from $OUTPOOL_ADMIN_TOKEN, never from a file."""

    server: str = "http://127.0.0.1:8765"
    k: int = 5  # votes per pair
    new_annotators: int = 0  # fresh annotator links printed with each new batch
    batch_prefix: str = "outpool"


@dataclass(frozen=True)
class ExperimentConfig:
    experiment: GridConfig = field(default_factory=GridConfig)
    world: SynthConfig = field(default_factory=SynthConfig)
    generator: GeneratorTrainConfig = field(default_factory=GeneratorTrainConfig)
    ranker: RankerTrainConfig = field(default_factory=RankerTrainConfig)
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    crowd: CrowdConfig = field(default_factory=CrowdConfig)
    people: PeopleSettings = field(default_factory=PeopleSettings)
    attic: AtticConfig = field(default_factory=AtticConfig)
    semantic_jitter: SemanticJitterConfig = field(default_factory=SemanticJitterConfig)
    jitter: JitterConfig = field(default_factory=JitterConfig)
    real_plus: RealPlusConfig = field(default_factory=RealPlusConfig)
    uncertainty: UncertaintyConfig = field(default_factory=UncertaintyConfig)

    def creator_config(self, method: str) -> Any:
        """The creator's settings (``random`` is ATTIC's network untrained: its settings)."""
        name = creator_of(method)
        return getattr(self, "attic" if name == "random" else name)


class Cell(NamedTuple):
    attribute: str
    method: str
    protocol: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.attribute}/{self.method}/{self.protocol}/seed_{self.seed}"


def cells(grid: GridConfig, attributes: tuple[str, ...]) -> list[Cell]:
    """The grid in a fixed order. Real methods train on real pairs alone, the same under every
    protocol: they run once, under the first of normal and auto listed (else normal); in active
    rounds Real is also round 0 of every method."""
    single = [p for p in grid.protocols if p != ACTIVE]
    out = []
    for attribute in attributes:
        for method in grid.methods:
            protocols = list(grid.protocols)
            if method in REAL_METHODS:  # the same cell under any protocol
                protocols = single[:1] or ["normal"]
            for protocol in protocols:
                for seed in grid.seeds:
                    out.append(Cell(attribute, method, protocol, seed))
    return out
