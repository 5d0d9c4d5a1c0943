"""The one walk over a program's IR, in the manner of torch.fx's Interpreter.

A subprogram runs over values of any kind (types for validation, graph nodes for hashing,
value types for the cost model): each instruction in dependency order, and ``call`` as a real
construct, which by default runs the callee on the call's arguments and returns its output.
A walker says what an instruction does (``op``) and, where it must, what a call does (memoise
it, emit a class for it); it never special-cases ``call`` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

import networkx as nx

from .program import Instruction, Program, Subprogram
from .registry import CALL

V = TypeVar("V")


def in_dependency_order(sub: Subprogram) -> bool:
    """Whether every instruction reads only inputs and earlier values (the common case)."""
    seen = set(sub.params)
    for ins in sub.body:
        if not seen.issuperset(ins.inputs):
            return False
        seen.add(ins.out)
    return True


def topological_order(sub: Subprogram) -> list[int]:
    """Instruction indices in dependency order (stable: ties keep program order)."""
    if in_dependency_order(sub):
        return list(range(len(sub.body)))
    index = {ins.out: i for i, ins in enumerate(sub.body)}
    graph = nx.DiGraph()
    graph.add_nodes_from(range(len(sub.body)))
    graph.add_edges_from((index[name], i) for i, ins in enumerate(sub.body) for name in ins.inputs if name in index)
    return list(nx.lexicographical_topological_sort(graph))


def callees(sub: Subprogram) -> list[str]:
    """The subprograms ``sub`` calls, by name, in program order (the call graph's edges)."""
    return [ins.attrs["target"] for ins in sub.body if ins.op == CALL]


class Interpreter(Generic[V]):
    """Runs the subprograms of one (structurally valid) program over values of kind ``V``."""

    def __init__(self, program: Program):
        self.program = program
        self.position = {s.name: i for i, s in enumerate(program.subprograms)}

    def run(self, index: int, args: Sequence[V], path: str = "") -> dict[str, V]:
        """Every value of subprogram ``index`` called with ``args``, by name. ``path`` is the call
        path of its values (``attn/`` inside ``attn = call attention(...)``)."""
        sub = self.program.subprograms[index]
        env: dict[str, V] = dict(zip(sub.params, args))
        for i in topological_order(sub):
            ins = sub.body[i]
            inputs = [env[name] for name in ins.inputs]
            env[ins.out] = (self.call if ins.op == CALL else self.op)(sub, i, ins, inputs, path)
        return env

    def output(self, index: int, args: Sequence[V], path: str = "") -> V:
        """What subprogram ``index`` returns when called with ``args``."""
        return self.run(index, args, path)[self.program.subprograms[index].output]

    def call(self, sub: Subprogram, i: int, ins: Instruction, args: list[V], path: str) -> V:
        """Instruction ``i`` of ``sub``, a ``call``: by default, the callee run on the arguments."""
        return self.output(self.position[ins.attrs["target"]], args, f"{path}{ins.out}/")

    def op(self, sub: Subprogram, i: int, ins: Instruction, inputs: list[V], path: str) -> V:
        """The value instruction ``i`` of ``sub`` (a primitive op) makes of its inputs."""
        raise NotImplementedError
