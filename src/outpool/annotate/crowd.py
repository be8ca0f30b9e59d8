"""A simulated crowd: noisy Thurstone-style workers who vote on pairs through a ``Judge``.

Lets experiments run the paper's annotation protocol offline, with the noise, spammer share and
reject rule as knobs. Votes are a pure function of (seed, pair id, the pair's images), so a
pair's labels never depend on which other pairs share its batch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from outpool.annotate.aggregate import majority_vote
from outpool.annotate.protocol import Judge, LabelResult, PairRequest
from outpool.annotate.votes import (
    CONFIDENCE_NOT,
    CONFIDENCE_SOMEWHAT,
    CONFIDENCE_VERY,
    REJECT,
    VoteTable,
)
from outpool.errors import ConfigError, UnknownNameError


@dataclass(frozen=True)
class CrowdConfig:
    """Settings of ``SimulatedCrowd``; noise and bands are in the attribute's units (~[0, 1]).

    Each pair goes to ``votes_per_pair`` distinct workers out of ``n_workers``. Worker w perceives
    d = (v_a - v_b) + sigma_w * eps with sigma_w = noise * lognormal(0, worker_noise_spread),
    fixed per worker; it answers "equal" when |d| < equal_band, else the sign of d. Its
    confidence is the distance of d from the nearest decision boundary (+-equal_band) in units
    of sigma_w: "very" (1.0) at >= confidence_scale, "somewhat" (0.5) at >= confidence_scale / 2,
    else "not" (0.0). A worker rejects the pair when either image's perceived legibility
    (legibility + reject_noise * eps) is below legibility_threshold, with the same confidence
    rule on the distance below the threshold in units of reject_noise. Spammers (a seeded
    ``spammer_share`` of the pool) answer +1/-1/0 and a confidence level uniformly at random
    and never reject. min_agreement / min_confidence are the ``majority_vote`` pruning rule.
    """

    votes_per_pair: int = 5
    n_workers: int = 40
    noise: float = 0.04
    worker_noise_spread: float = 0.5
    equal_band: float = 0.03
    spammer_share: float = 0.0
    legibility_threshold: float = 0.5
    reject_noise: float = 0.1
    confidence_scale: float = 2.0
    min_agreement: float = 0.6
    min_confidence: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.votes_per_pair <= self.n_workers:
            raise ConfigError(
                f"votes_per_pair must be between 1 and n_workers ({self.n_workers}), "
                f"got {self.votes_per_pair}"
            )
        for name in ("noise", "worker_noise_spread", "equal_band", "reject_noise"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("spammer_share", "min_agreement", "min_confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.confidence_scale <= 0:
            raise ConfigError(f"confidence_scale must be > 0, got {self.confidence_scale}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")


class SimulatedCrowd:
    """An ``Annotator`` whose workers perceive attributes through ``judge`` plus noise."""

    def __init__(self, judge: Judge, config: CrowdConfig) -> None:
        self.judge = judge
        self.config = config
        c = config
        # Worker traits come from their own stream, so they do not move when pairs change.
        rng = np.random.default_rng([c.seed, _WORKER_STREAM])
        self.worker_noise = c.noise * rng.lognormal(0.0, c.worker_noise_spread, c.n_workers)
        n_spam = round(c.spammer_share * c.n_workers)
        self.is_spammer = np.zeros(c.n_workers, dtype=bool)
        self.is_spammer[rng.permutation(c.n_workers)[:n_spam]] = True
        width = max(3, len(str(c.n_workers - 1)))
        self.worker_ids = np.array([f"sim-{i:0{width}d}" for i in range(c.n_workers)])

    def label(self, request: PairRequest) -> LabelResult:
        """Five (``votes_per_pair``) votes per pair, aggregated by majority vote."""
        votes = self.vote(request)
        return majority_vote(
            votes,
            request.ids,
            min_agreement=self.config.min_agreement,
            min_confidence=self.config.min_confidence,
        )

    def vote(self, request: PairRequest) -> VoteTable:
        """The individual votes, (P * votes_per_pair) rows grouped by pair in request order."""
        c = self.config
        p, k = len(request), c.votes_per_pair
        names = tuple(self.judge.attributes)
        column = {n: i for i, n in enumerate(names)}
        for a in np.unique(request.attribute):
            if a not in column:
                raise UnknownNameError("attribute", str(a), names)
        cols = np.array([column[a] for a in request.attribute], dtype=np.int64)

        # One judge call per side for the whole batch; the per-pair work below is only drawing.
        rows = np.arange(p)
        if p:
            values_a, leg_a = (
                np.asarray(x, np.float64) for x in self.judge.assess(request.images_a)
            )
            values_b, leg_b = (
                np.asarray(x, np.float64) for x in self.judge.assess(request.images_b)
            )
            delta = values_a[rows, cols] - values_b[rows, cols]
        else:
            delta = leg_a = leg_b = np.zeros(0)

        workers = np.empty((p, k), dtype=np.int64)
        eps = np.empty((p, 3, k))  # perception, legibility of a, legibility of b
        spam = np.empty((p, 2, k), dtype=np.int64)  # random answer, random confidence level
        for i, pid in enumerate(request.ids):
            # Fixed draw order per pair: every pair uses the same amount of its own stream.
            rng = np.random.default_rng([c.seed, _PAIR_STREAM, _pair_key(str(pid))])
            workers[i] = rng.choice(c.n_workers, size=k, replace=False)
            eps[i] = rng.standard_normal((3, k))
            spam[i] = rng.integers(0, 3, size=(2, k))

        sigma = self.worker_noise[workers]  # (P, k)
        # a value the judge could not measure (NaN): the worker cannot tell, and rejects
        readable = np.isfinite(delta)[:, None]
        d = np.where(readable, delta[:, None], 0.0) + sigma * eps[:, 0]
        answer = np.where(np.abs(d) < c.equal_band, 0, np.sign(d)).astype(np.int8)
        confidence = _confidence(np.abs(np.abs(d) - c.equal_band), sigma, c.confidence_scale)

        seen = np.minimum(
            leg_a[:, None] + c.reject_noise * eps[:, 1], leg_b[:, None] + c.reject_noise * eps[:, 2]
        )
        rejects = (seen < c.legibility_threshold) | ~readable
        reject_conf = _confidence(
            c.legibility_threshold - seen, np.full_like(seen, c.reject_noise), c.confidence_scale
        )
        answer = np.where(rejects, REJECT, answer)
        confidence = np.where(rejects, reject_conf, confidence)

        spammer = self.is_spammer[workers]
        levels = np.array([CONFIDENCE_NOT, CONFIDENCE_SOMEWHAT, CONFIDENCE_VERY])
        answer = np.where(spammer, spam[:, 0] - 1, answer)
        confidence = np.where(spammer, levels[spam[:, 1]], confidence)

        return VoteTable(
            pair_id=np.repeat(request.ids, k),
            annotator=self.worker_ids[workers].reshape(-1),
            answer=answer.reshape(-1),
            confidence=confidence.reshape(-1),
            rationale=np.full(p * k, "", dtype="<U1"),
        )


# Distinct seed prefixes keep the worker-trait stream apart from every pair's stream.
_WORKER_STREAM, _PAIR_STREAM = 0, 1


def _pair_key(pair_id: str) -> int:
    """A stable 64-bit key of a pair id (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(pair_id.encode("utf-8"), digest_size=8).digest(), "big")


def _confidence(margin: np.ndarray, sigma: np.ndarray, scale: float) -> np.ndarray:
    """Confidence level from a margin to the decision boundary, in units of the noise sigma.

    A noiseless worker (sigma = 0) is always "very" sure.
    """
    return np.where(
        margin >= scale * sigma,
        CONFIDENCE_VERY,
        np.where(margin >= 0.5 * scale * sigma, CONFIDENCE_SOMEWHAT, CONFIDENCE_NOT),
    )
