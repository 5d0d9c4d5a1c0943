"""Hurdles: stop a candidate early when it trails the campaign at a checkpoint.

Primer's halving hurdles put K checkpoints so that every band of training costs the same
expected compute when half the candidates pass each one: positions c·(2^i − 1) of the
budget with c = 1/(2^(K+1) − 1), i.e. 1/31, 3/31, 7/31, 15/31 for K = 4. The threshold at
hurdle i is the q-quantile (median by default) of the losses earlier individuals recorded
there (ASHA's top 1/η is q = 1/η); the Evolved Transformer's progressive dynamic hurdles use
the mean instead; the ladder's seed rule asks for the seed's loss there plus a margin.
"""

from __future__ import annotations

import bisect
import math
from array import array
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence


def halving_positions(count: int) -> list[float]:
    """Budget fractions of ``count`` halving hurdles (equal expected compute per band)."""
    unit = 1.0 / (2 ** (count + 1) - 1)
    return [unit * (2**i - 1) for i in range(1, count + 1)]


def expected_cost(positions: list[float], pass_rate: float = 0.5) -> float:
    """Expected fraction of the full budget one candidate costs if each hurdle passes ``pass_rate``."""
    cost, reach, start = 0.0, 1.0, 0.0
    for end in [*positions, 1.0]:
        cost += reach * (end - start)
        reach *= pass_rate
        start = end
    return cost


class RecordedLosses:
    """The losses recorded at one hurdle, kept sorted at 8 bytes each, so that the driver reads
    a threshold by index instead of querying and sorting the whole history per candidate.
    A missing or non-finite loss (a failed run) counts as +inf."""

    def __init__(self, losses: Iterable[float | None] = ()):
        self._sorted = array("d")
        self._finite_sum, self._finite_count = 0.0, 0
        for loss in losses:
            self.add(loss)

    def add(self, loss: float | None) -> None:
        value = loss if loss is not None and math.isfinite(loss) else math.inf
        bisect.insort(self._sorted, value)
        if value != math.inf:
            self._finite_sum += value
            self._finite_count += 1

    def __len__(self) -> int:
        return len(self._sorted)

    def quantile(self, q: float) -> float:
        """numpy's ``quantile(method="lower")``: a recorded loss, never an interpolation."""
        return self._sorted[math.floor(q * (len(self._sorted) - 1))]

    def finite_mean(self) -> float | None:
        return self._finite_sum / self._finite_count if self._finite_count else None


@dataclass(frozen=True)
class HurdlePolicy:
    """Where the hurdles are and how thresholds follow from the losses recorded there."""

    positions: tuple[float, ...]
    rule: Literal["quantile", "mean", "seed"] = "quantile"
    quantile: float = 0.5
    min_samples: int = 5
    margins: tuple[float, ...] = ()  # the seed rule's, one per position (nats)

    @classmethod
    def halving(cls, count: int, **options) -> "HurdlePolicy":
        return cls(tuple(halving_positions(count)), **options)

    def threshold(self, losses: RecordedLosses | Iterable[float | None]) -> float | None:
        """The loss to beat, or None while too few individuals have been recorded (all pass).
        Failed runs count as infinitely bad, so they raise the bar for nobody."""
        if not isinstance(losses, RecordedLosses):
            losses = RecordedLosses(losses)
        if len(losses) < self.min_samples:
            return None
        return losses.finite_mean() if self.rule == "mean" else losses.quantile(self.quantile)

    def thresholds(self, recorded: Sequence[RecordedLosses], seed: Sequence[float | None]) -> list[float | None]:
        """Every hurdle's bar: from the losses ``recorded`` there, or under the seed rule the
        candidate's seed's loss there (``seed``, as far as it got) plus the margin; None while
        there is nothing to judge by."""
        if self.rule != "seed":
            return [self.threshold(losses) for losses in recorded]
        reached = [*seed, *[None] * (len(self.positions) - len(seed))]
        return [None if loss is None else loss + margin for loss, margin in zip(reached, self.margins)]

    @staticmethod
    def passes(loss: float, threshold: float | None) -> bool:
        """Lower loss is better; a tie passes; NaN never passes a set threshold."""
        return threshold is None or (math.isfinite(loss) and loss <= threshold)
