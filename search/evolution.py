"""Regularized (aging) evolution, as pure logic over the population it is shown.

The population is the P most recently *finished* individuals (a query over storage; children
rejected for their cost, never trained, are not members), so aging needs no state here. Each
proposal draws its randomness from (campaign seed, birth), so a campaign replays identically
whatever the timing of workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from primitives.program import Architecture

from .mutate import MutationStats, NoValidChild, mutate

#: Tournaments tried for one birth before a parent-less seed is proposed instead.
PARENT_ATTEMPTS = 3


class Member(Protocol):
    """What a parent must offer (storage's IndividualRecord has it)."""

    @property
    def id(self) -> int: ...

    @property
    def root_seed(self) -> str: ...

    def architecture(self) -> Architecture: ...


@dataclass(frozen=True)
class Proposal:
    birth: int
    architecture: Architecture
    root_seed: str
    parent_id: int | None = None
    mutation: str | None = None
    verdict: Any = None  # the gate's verdict on a child (None for a seed, which the gate has not seen)


def rng_for(campaign_seed: int, birth: int) -> np.random.Generator:
    return np.random.default_rng([campaign_seed, birth])


def tournament(population: Sequence[tuple[int, float | None]], sample_size: int, rng: np.random.Generator) -> int:
    """The id of the best (lowest-loss) of ``sample_size`` (id, fitness) pairs drawn with
    replacement; a member without a fitness (a failure) loses to any that has one."""
    picks = rng.integers(len(population), size=sample_size)
    best = min((population[i] for i in picks), key=lambda m: (m[1] is None or not math.isfinite(m[1]), m[1] or 0.0))
    return best[0]


class AgingEvolution:
    """Proposes the campaign's next individual: the seeds first, then mutated tournament winners."""

    def __init__(
        self,
        seeds: dict[str, Architecture],
        population_size: int,
        sample_size: int,
        campaign_seed: int,
        mutation_weights: dict[str, float] | None = None,
        accept: Callable[[Architecture], Any] = lambda a: True,
        max_tries: int = 1000,
    ):
        self.seeds = seeds
        self.population_size, self.sample_size = population_size, sample_size
        self.campaign_seed = campaign_seed
        self.mutation_weights = mutation_weights
        self.accept = accept
        self.max_tries = max_tries
        self.stats = MutationStats()

    def propose(
        self, birth: int, population: Sequence[tuple[int, float | None]], load: Callable[[int], Member]
    ) -> Proposal:
        """``population``: (id, fitness) of the most recently finished individuals, oldest first
        (before anything has finished, the seed individuals); ``load`` fetches the winner."""
        names = list(self.seeds)
        if birth < len(names):
            return Proposal(birth, self.seeds[names[birth]], names[birth])
        rng = rng_for(self.campaign_seed, birth)
        barren = []
        for _ in range(PARENT_ATTEMPTS):
            parent = load(tournament(population[-self.population_size :], self.sample_size, rng))
            try:
                child = mutate(
                    parent.architecture(), rng, self.stats, self.mutation_weights, self.max_tries, accept=self.accept
                )
            except NoValidChild:
                barren.append(parent.id)
                continue
            return Proposal(
                birth,
                child.architecture,
                parent.root_seed,
                parent.id,
                f"{child.kind}: {child.description}",
                child.verdict,
            )
        # Never a stopped campaign: the seed again (stored as a duplicate of its first evaluation).
        name = names[int(rng.integers(len(names)))]
        return Proposal(
            birth,
            self.seeds[name],
            name,
            None,
            f"reseeded: no valid child of individuals {', '.join(map(str, barren))}",
        )
