"""Annotators: the protocol, the simulated crowd, vote tables and aggregation."""

from outpool.annotate.aggregate import (
    AGGREGATORS,
    AnnotatorStats,
    aggregate,
    dawid_skene,
    majority_vote,
    per_annotator_stats,
)
from outpool.annotate.crowd import CrowdConfig, SimulatedCrowd
from outpool.annotate.protocol import Annotator, Judge, LabelResult, PairRequest
from outpool.annotate.votes import EQUAL, MORE_A, MORE_B, REJECT, Vote, VoteTable

__all__ = [
    "AGGREGATORS",
    "EQUAL",
    "MORE_A",
    "MORE_B",
    "REJECT",
    "Annotator",
    "AnnotatorStats",
    "CrowdConfig",
    "Judge",
    "LabelResult",
    "PairRequest",
    "SimulatedCrowd",
    "Vote",
    "VoteTable",
    "aggregate",
    "dawid_skene",
    "majority_vote",
    "per_annotator_stats",
]
