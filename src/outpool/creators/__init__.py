"""Pair creators: what makes the pairs the annotators label (ATTIC and its baselines).

``CREATORS`` maps each name used in configs to its function and config class; a creator is
``create(context, budget, work_dir, cfg, *, progress) -> CreatedPairs``. A creator that trains
(ATTIC) also has ``more(context, count, work_dir, cfg, draw) -> CreatedPairs``: pairs from new
seeds through what ``create`` trained into ``work_dir``, to replace screened pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from outpool.creators.attic import AtticConfig, create_attic, create_random, more_attic
from outpool.creators.context import CreationContext
from outpool.creators.copies import JitterConfig, RealPlusConfig, create_jitter, create_real_plus
from outpool.creators.pairs import CreatedPairs
from outpool.creators.semantic_jitter import SemanticJitterConfig, create_semantic_jitter
from outpool.creators.uncertainty import UncertaintyConfig, create_uncertainty
from outpool.errors import UnknownNameError

CreateFn = Callable[..., CreatedPairs]
MoreFn = Callable[..., CreatedPairs]


@dataclass(frozen=True)
class CreatorEntry:
    create: CreateFn
    config: type
    generates: bool  # draws new pictures through the generator (the legibility screen reads them)
    # more pairs without training again; None: ``create`` from a new seed is cheap
    more: MoreFn | None = None


CREATORS: dict[str, CreatorEntry] = {
    "attic": CreatorEntry(create_attic, AtticConfig, generates=True, more=more_attic),
    "random": CreatorEntry(create_random, AtticConfig, generates=True),
    "jitter": CreatorEntry(create_jitter, JitterConfig, generates=False),
    "real_plus": CreatorEntry(create_real_plus, RealPlusConfig, generates=False),
    "uncertainty": CreatorEntry(create_uncertainty, UncertaintyConfig, generates=False),
    "semantic_jitter": CreatorEntry(create_semantic_jitter, SemanticJitterConfig, generates=True),
}


def creator(name: str) -> CreatorEntry:
    """The registry's entry; an unknown name lists the valid ones."""
    if name not in CREATORS:
        raise UnknownNameError("creator", name, CREATORS)
    return CREATORS[name]


__all__ = ["CREATORS", "CreatedPairs", "CreationContext", "CreatorEntry", "creator"]
