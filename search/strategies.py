"""Search strategies: how a parent is chosen (the sampler) and when a run stops (the pruner).

A strategy reads the campaign's parent window, (id, fitness) of the most recently finished
individuals oldest first, and its randomness comes from (campaign seed, birth), so a resumed
campaign draws the same parents. In Optuna's terms ``Selection`` is the sampler and the
``HurdlePolicy`` the pruner; evolution and the driver stay the same whichever is named.

* ``aging``: Primer's regularized evolution, a tournament of ``sample`` from the window, with
  Primer's halving hurdles (median rule).
* ``random``: the parent drawn uniformly from the same window, the same mutations, no
  selection: random search over the space the mutations reach.
* ``ladder``: stop-based successive halving inside the one training schedule (rungs at
  fractions of the budget; no pausing, no second schedule), with ``aging`` or ``random``
  parents. A run goes on past a rung only while its validation loss there is within the
  rung's margin of its seed's (``rung_rule = "seed"``, the default that the ladder fidelity
  study chose: experiments/ladder_fidelity) or in the top 1/η of the runs that reached the rung,
  the seed's included (``"top"``: ASHA).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol, Sequence

import numpy as np

from .hurdles import HurdlePolicy

STRATEGIES = ("aging", "random", "ladder")
StrategyName = Literal["aging", "random", "ladder"]

Window = Sequence[tuple[int, float | None]]

#: The ladder's rungs and seed-relative margins (nats), from experiments/ladder_fidelity: on the
#: rediscovery study's 98 trained children they stop every child > 0.1 behind the seed at half
#: way and none that finished within 0.03 of it, at 0.35 of the budget per child (0.74 today).
LADDER_RUNGS = (1 / 16, 1 / 8, 1 / 4, 1 / 2)
LADDER_MARGINS = (0.2, 0.1, 0.05, 0.02)


class Selection(Protocol):
    """Picks the id of the next parent from the window."""

    def __call__(self, window: Window, rng: np.random.Generator) -> int: ...


def _rank(member: tuple[int, float | None]) -> tuple[bool, float]:
    """Lower is better; a member without a finite fitness (a failure) loses to any that has one."""
    fitness = member[1]
    return (fitness is None or not math.isfinite(fitness), fitness or 0.0)


def tournament(window: Window, sample_size: int, rng: np.random.Generator) -> int:
    """The id of the best of ``sample_size`` members drawn with replacement."""
    picks = rng.integers(len(window), size=sample_size)
    return min((window[i] for i in picks), key=_rank)[0]


@dataclass(frozen=True)
class Tournament:
    """Aging evolution's selection: the best of ``sample_size`` drawn from the window."""

    sample_size: int

    def __call__(self, window: Window, rng: np.random.Generator) -> int:
        return tournament(window, self.sample_size, rng)


@dataclass(frozen=True)
class Uniform:
    """Random search's selection: any member of the window, fitness unseen."""

    def __call__(self, window: Window, rng: np.random.Generator) -> int:
        return window[int(rng.integers(len(window)))][0]


@dataclass(frozen=True)
class Strategy:
    """A named pairing of a parent selection over a window of ``population`` and a pruner."""

    name: str
    selection: Selection
    population: int
    stopping: HurdlePolicy

    def parent(self, window: Window, rng: np.random.Generator) -> int:
        """The id of the next parent, drawn from the ``population`` most recent of ``window``."""
        return self.selection(window[-self.population :], rng)
