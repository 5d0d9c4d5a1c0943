"""Evolution as pure logic over the parent window it is shown.

The window is the P most recently *finished* individuals (a query over storage; children
rejected for their cost, never trained, are not members), so aging needs no state here; the
strategy (``search.strategies``) picks the parent, a mutation operator makes the child. Each
proposal draws its randomness from (campaign seed, birth), so a campaign replays identically
whatever the timing of workers. Nothing here knows what a program is: the same code drives
the offline validation on NAS-Bench-201 cells (``search.nb201``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Protocol

import numpy as np

from .mutate import Child, Genome, NoValidChild
from .strategies import Strategy, Window

#: Tournaments tried for one birth before a parent-less seed is proposed instead.
PARENT_ATTEMPTS = 3


class Member(Protocol):
    """What a parent must offer (storage's IndividualRecord, through the ledger, has it)."""

    @property
    def id(self) -> int: ...

    @property
    def root_seed(self) -> str: ...

    def architecture(self) -> Any: ...


@dataclass(frozen=True)
class Proposal(Generic[Genome]):
    birth: int
    architecture: Genome
    root_seed: str
    parent_id: int | None = None
    mutation: str | None = None
    verdict: Any = None  # the gate's verdict on a child (None for a seed, which the gate has not seen)


def rng_for(campaign_seed: int, birth: int) -> np.random.Generator:
    return np.random.default_rng([campaign_seed, birth])


class Evolution(Generic[Genome]):
    """Proposes the campaign's next individual: the seeds first, then mutated parents that the
    strategy picks. ``mutate(parent, rng)`` returns a ``Child`` or raises NoValidChild."""

    def __init__(
        self,
        seeds: dict[str, Genome],
        strategy: Strategy,
        campaign_seed: int,
        mutate: Callable[[Genome, np.random.Generator], Child[Genome]],
    ):
        self.seeds, self.strategy, self.campaign_seed, self.mutate = seeds, strategy, campaign_seed, mutate

    def propose(self, birth: int, window: Window, load: Callable[[int], Member]) -> Proposal:
        """``window``: (id, fitness) of the most recently finished individuals, oldest first
        (before anything has finished, the seed individuals); ``load`` fetches the parent."""
        names = list(self.seeds)
        if birth < len(names):
            return Proposal(birth, self.seeds[names[birth]], names[birth])
        rng = rng_for(self.campaign_seed, birth)
        barren = []
        for _ in range(PARENT_ATTEMPTS):
            parent = load(self.strategy.parent(window, rng))
            try:
                child = self.mutate(parent.architecture(), rng)
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
