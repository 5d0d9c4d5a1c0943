"""Regularized (aging) evolution, as pure logic over the population it is shown.

The population is the P most recently *finished* individuals (a query over storage), so
aging needs no state here. Each proposal draws its randomness from (campaign seed, birth),
so a campaign replays identically whatever the timing of workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

from primitives.program import Architecture

from .mutate import MutationStats, mutate


class Member(Protocol):
    """What selection needs of an individual (storage's IndividualRecord has it)."""

    id: int
    fitness: float | None
    root_seed: str

    def architecture(self) -> Architecture: ...


@dataclass(frozen=True)
class Proposal:
    birth: int
    architecture: Architecture
    root_seed: str
    parent_id: int | None = None
    mutation: str | None = None


def rng_for(campaign_seed: int, birth: int) -> np.random.Generator:
    return np.random.default_rng([campaign_seed, birth])


def tournament(population: Sequence[Member], sample_size: int, rng: np.random.Generator) -> Member:
    """Best fitness (lowest loss) among ``sample_size`` members drawn with replacement; a
    member without a fitness (failed) loses to any that has one."""
    picks = rng.integers(len(population), size=sample_size)
    return min((population[i] for i in picks), key=lambda m: (m.fitness is None or not math.isfinite(m.fitness),
                                                             m.fitness if m.fitness is not None else 0.0))


class AgingEvolution:
    """Proposes the campaign's next individual: the seeds first, then mutated tournament winners."""

    def __init__(self, seeds: dict[str, Architecture], population_size: int, sample_size: int, campaign_seed: int,
                 mutation_weights: dict[str, float] | None = None,
                 accept: Callable[[Architecture], bool] = lambda a: True):
        self.seeds = seeds
        self.population_size, self.sample_size = population_size, sample_size
        self.campaign_seed = campaign_seed
        self.mutation_weights = mutation_weights
        self.accept = accept
        self.stats = MutationStats()

    def propose(self, birth: int, population: Sequence[Member], seed_members: Sequence[Member] = ()) -> Proposal:
        """``population``: the most recently finished individuals, oldest first. Until one has
        finished, parents come from ``seed_members`` (the seed individuals already born)."""
        names = list(self.seeds)
        if birth < len(names):
            return Proposal(birth, self.seeds[names[birth]], names[birth])
        rng = rng_for(self.campaign_seed, birth)
        pool = list(population[-self.population_size:]) or list(seed_members)
        parent = tournament(pool, self.sample_size, rng)
        child = mutate(parent.architecture(), rng, self.stats, self.mutation_weights, accept=self.accept)
        return Proposal(birth, child.architecture, parent.root_seed, parent.id, f"{child.kind}: {child.description}")
