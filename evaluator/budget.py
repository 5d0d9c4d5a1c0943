"""Compute budgets: wall-clock seconds (as Primer), FLOPs or tokens.

A campaign fixes one budget for every candidate; the learning-rate schedule and the hurdles
follow the *fraction* of it spent, so the same recipe works whichever quantity is fixed.

    >>> parse_budget("5m")
    Budget(kind='seconds', amount=300.0)
    >>> parse_budget("3e12flops").fraction(seconds=1.0, flops=1.5e12, tokens=0)
    0.5
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

BudgetKind = Literal["seconds", "flops", "tokens"]
KINDS: tuple[str, ...] = ("seconds", "flops", "tokens")

# unit suffix → (kind, multiplier)
_UNITS: dict[str, tuple[str, float]] = {
    "s": ("seconds", 1.0),
    "sec": ("seconds", 1.0),
    "secs": ("seconds", 1.0),
    "second": ("seconds", 1.0),
    "seconds": ("seconds", 1.0),
    "m": ("seconds", 60.0),
    "min": ("seconds", 60.0),
    "mins": ("seconds", 60.0),
    "minute": ("seconds", 60.0),
    "minutes": ("seconds", 60.0),
    "h": ("seconds", 3600.0),
    "hour": ("seconds", 3600.0),
    "hours": ("seconds", 3600.0),
    "flop": ("flops", 1.0),
    "flops": ("flops", 1.0),
    "tok": ("tokens", 1.0),
    "toks": ("tokens", 1.0),
    "token": ("tokens", 1.0),
    "tokens": ("tokens", 1.0),
}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+\.(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")
_EXAMPLES = "e.g. 60s, 5m, 1h, 3e12flops or 2e6tokens"


#: The most one run may be given: a week, 1e21 FLOPs, 1e12 tokens (more is a typo that would
#: train for ever, not an experiment this engine runs).
LIMITS = {"seconds": 7 * 86400.0, "flops": 1e21, "tokens": 1e12}


@dataclass(frozen=True)
class Budget:
    """How much one training run may spend: ``amount`` of ``kind``."""

    kind: BudgetKind
    amount: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown budget kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if not (isinstance(self.amount, (int, float)) and math.isfinite(self.amount) and self.amount > 0):
            raise ValueError(f"a budget must be a positive finite amount, got {self.amount!r} {self.kind}")
        if self.amount > LIMITS[self.kind]:
            raise ValueError(
                f"a budget of {self.amount:g} {self.kind} is more than one run may spend "
                f"(at most {LIMITS[self.kind]:g} {self.kind})"
            )
        object.__setattr__(self, "amount", float(self.amount))

    def fraction(self, seconds: float, flops: float, tokens: float) -> float:
        """The fraction of the budget spent (≥ 1 once it is used up)."""
        spent = {"seconds": seconds, "flops": flops, "tokens": tokens}[self.kind]
        return spent / self.amount

    def __str__(self) -> str:
        if self.kind == "seconds":
            return f"{self.amount:g}s"
        return f"{self.amount:g}{self.kind}"


def parse_budget(text: str) -> Budget:
    """``"60s"`` | ``"5m"`` | ``"1h"`` | ``"3e12flops"`` | ``"2e6tokens"`` → Budget.

    Raises ValueError naming the text when it is not a positive amount with a known unit.
    """
    if not isinstance(text, str):
        raise TypeError(f"budget {text!r} is not text ({_EXAMPLES})")
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"cannot read the budget {text!r}: expected a positive number and a unit, {_EXAMPLES}")
    number, unit = match.groups()
    if not unit:
        raise ValueError(f"the budget {text!r} has no unit: write seconds (s, m, h), flops or tokens, {_EXAMPLES}")
    # one-letter units are case-sensitive: "5M" would read as five million, not five minutes
    key = unit if len(unit) == 1 else unit.lower()
    if key not in _UNITS:
        raise ValueError(
            f"the budget {text!r} has an unknown unit {unit!r}: expected s, m, h, flops or tokens ({_EXAMPLES})"
        )
    kind, scale = _UNITS[key]
    amount = float(number) * scale
    if not (math.isfinite(amount) and amount > 0):
        raise ValueError(f"the budget {text!r} must be a positive finite amount ({_EXAMPLES})")
    return Budget(kind, amount)  # type: ignore[arg-type]
