"""Known-good edits of the Transformer layer, recognised on programs (for measurement only).

The proposal distribution never reads this module: the benchmarks and studies use it to count
how often a proposal draws, or a search finds, an edit the literature knows to help. Each test
compares a program with the seed it descends from, on the Transformer's subprogram and value
names (``attention``: q, k, v, heads; ``ffn``: up, act), and says whether the program has more
instances of the edit than the seed.
"""

from __future__ import annotations

from typing import Callable

from .program import Architecture, Instruction
from .registry import REGISTRY


def _instructions(architecture: Architecture, subprogram: str | None = None) -> list[Instruction]:
    """Every instruction of the layer programs (of one named subprogram, if given)."""
    return [
        instruction
        for program in architecture.layers
        for sub in program.subprograms
        if subprogram is None or sub.name == subprogram
        for instruction in sub.body
    ]


def _squares_activation(i: Instruction) -> bool:
    """x² (or x·x) of the FFN's hidden value ``up`` or ``act``, or ``act`` itself a square."""
    squaring = i.op == "square" or (i.op == "mul" and len(set(i.inputs)) == 1)
    return squaring and (i.inputs[0] in ("up", "act") or i.out == "act")


def _local_mixing(i: Instruction) -> bool:
    op = REGISTRY.get(i.op)
    return op is not None and op.mixing == "causal" and op.group != "attention"


#: Name → (subprogram or None for all, the instruction test).
EDITS: dict[str, tuple[str | None, Callable[[Instruction], bool]]] = {
    "squared activation in the FFN": ("ffn", _squares_activation),
    "dconv after Q, K or V": ("attention", lambda i: i.op == "dconv" and i.inputs[0] in ("q", "k", "v")),
    "  of which kernel 3": (
        "attention",
        lambda i: i.op == "dconv" and i.inputs[0] in ("q", "k", "v") and i.attrs.get("kernel") == 3,
    ),
    "token shift (or mix) anywhere": (None, lambda i: i.op in ("token_shift", "token_mix")),
    "token shift after the heads": ("attention", lambda i: i.op == "token_shift" and i.inputs[0] == "heads"),
    "multiplicative gate in the FFN": ("ffn", lambda i: i.op == "mul" and len(set(i.inputs)) == 2),
    "any local mixing (causal, not attention)": (None, _local_mixing),
}

#: The four edits the search-power issues name (not the sub-rows or the broad class).
NAMED = (
    "squared activation in the FFN",
    "dconv after Q, K or V",
    "token shift (or mix) anywhere",
    "multiplicative gate in the FFN",
)


def known_edits(seed: Architecture, program: Architecture) -> list[str]:
    """The edits ``program`` has more instances of than ``seed``, in ``EDITS``' order."""

    def count(architecture: Architecture, where: str | None, test: Callable[[Instruction], bool]) -> int:
        return sum(test(i) for i in _instructions(architecture, where))

    return [name for name, (where, test) in EDITS.items() if count(program, where, test) > count(seed, where, test)]
