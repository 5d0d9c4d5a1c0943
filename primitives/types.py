"""Value types of the DSL: what flows along the edges of a program.

Widths are *relative*: a multiple of the model's width unit (d_model / MODEL_UNITS), as in
Primer's dimension vocabulary, so one program describes a layer at every model size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: The residual stream is always this many units wide; the unit is d_model / MODEL_UNITS.
MODEL_UNITS = 8

#: Primer's dimension vocabulary (appendix), in units; mutations draw widths from it.
WIDTH_VOCABULARY = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64)

#: Largest relative width a program may use (validation bound, not a search prior).
MAX_WIDTH = 256

Kind = Literal["seq", "col", "map"]


@dataclass(frozen=True)
class ValueType:
    """``seq``: [batch, time, width·unit]; ``col``: [batch, time, 1] (a reduction over width,
    broadcast against any seq); ``map``: [batch, heads, time, time] attention maps."""

    kind: Kind
    width: int = 0

    def __str__(self) -> str:
        return f"seq[{self.width}]" if self.kind == "seq" else self.kind


def seq(width: int) -> ValueType:
    return ValueType("seq", width)


COL = ValueType("col")
MAP = ValueType("map")
