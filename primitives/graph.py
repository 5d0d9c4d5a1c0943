"""Graph work on programs: the networkx view, dead code, canonical form and structural hash.

The hash is a Merkle hash of the dataflow (like Hero's HashTracker): a value's hash covers its
op, attributes and its inputs' hashes (sorted for commutative ops), with calls inlined. The
program hash is the multiset of live value hashes, so it ignores value names, instruction
order and subprogram boundaries, and sees parameter sharing (two projections vs one).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Callable, Hashable, Iterable, TypeVar

import networkx as nx

from .program import Architecture, Instruction, Program, Subprogram
from .registry import CALL, REGISTRY
from .interpret import Interpreter, callees, topological_order

T = TypeVar("T")
H = TypeVar("H", bound=Hashable)


class _ContentMemo:
    """A bounded memo keyed by a program's content. The search asks the same questions of the
    same programs over and over (a parent's hash at every draw, the unchanged final program of
    every child); programs are values, so their JSON is a safe key."""

    def __init__(self, size: int):
        self.size = size
        self._values: OrderedDict[bytes, object] = OrderedDict()

    def get(self, program: Program, compute: Callable[[], T]) -> T:
        key = hashlib.blake2b(program.model_dump_json().encode(), digest_size=16).digest()
        if key in self._values:
            self._values.move_to_end(key)
            return self._values[key]  # type: ignore[return-value]
        value = self._values[key] = compute()
        if len(self._values) > self.size:
            self._values.popitem(last=False)
        return value

    def clear(self) -> None:
        self._values.clear()


_HASHES = _ContentMemo(4096)
_CANONICAL_JSON = _ContentMemo(1024)


def clear_graph_caches() -> None:
    """Forget the memoised program hashes and canonical forms."""
    _HASHES.clear()
    _CANONICAL_JSON.clear()


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _node_digest(label: str, inputs: list[tuple[int, str]]) -> str:
    """``_digest(label, inputs)`` for hex-digest inputs, without the general JSON encoder (the
    same bytes: one of these runs for every value of every child)."""
    pairs = ",".join(f'[{port},"{digest}"]' for port, digest in inputs)
    return hashlib.sha256(f"[{json.dumps(label)},[{pairs}]]".encode()).hexdigest()


def _label(op: str, attrs: dict) -> str:
    return op + (json.dumps(attrs, sort_keys=True, separators=(",", ":")) if attrs else "")


class _Dataflow(Interpreter[H]):
    """Calls inlined: every primitive instruction becomes a node, named by its call path."""

    def __init__(self, program: Program, add_value: Callable[[str, Instruction, list[H]], H]):
        super().__init__(program)
        self.add_value = add_value

    def op(self, sub: Subprogram, i: int, ins: Instruction, inputs: list[H], path: str) -> H:
        return self.add_value(path + ins.out, ins, inputs)


def _dataflow(
    program: Program,
    index: int,
    add_input: Callable[[int, str], H],
    add_value: Callable[[str, Instruction, list[H]], H],
) -> H:
    """Walk subprogram ``index`` in dependency order with calls inlined: ``add_input(position,
    name)`` and ``add_value(path, instruction, source nodes)`` make the nodes (``path`` is the
    call path, ``attention/q``). Returns the output's node."""
    params = program.subprograms[index].params
    return _Dataflow(program, add_value).output(index, [add_input(p, name) for p, name in enumerate(params)])


def to_graph(program: Program, index: int = 0) -> nx.MultiDiGraph:
    """Dataflow graph of subprogram ``index`` (main by default) with calls inlined. Nodes: one
    per input (``x``) and one per instruction, named by call path (``attention/q``); edges
    carry the input position as ``port``; ``graph.graph["output"]`` is the result's node."""
    graph = nx.MultiDiGraph()

    def add_input(position: int, name: str) -> str:
        graph.add_node(name, op="input", attrs={"position": position})
        return name

    def add_value(node: str, ins: Instruction, sources: list) -> str:
        graph.add_node(node, op=ins.op, attrs=ins.attrs)
        for port, source in enumerate(sources):
            graph.add_edge(source, node, port=port)
        return node

    graph.graph["output"] = _dataflow(program, index, add_input, add_value)
    return graph


def live_nodes(graph: nx.MultiDiGraph) -> set[str]:
    output = graph.graph["output"]
    return nx.ancestors(graph, output) | {output}


def program_hash(program: Program, index: int = 0) -> str:
    """Structural hash of a program (or of one of its subprograms, as a function)."""
    function = _function(program, index)
    return _HASHES.get(function, lambda: _program_hash(function, 0))


def _function(program: Program, index: int) -> Program:
    """Subprogram ``index`` and what it calls, alone: the memo's key, so that a subprogram a
    mutation left unchanged keeps its hash in the child."""
    if index == 0:
        return program
    position = {s.name: i for i, s in enumerate(program.subprograms)}
    reached = _reachable(index, lambda i: [position[name] for name in callees(program.subprograms[i])])
    return Program(subprograms=[program.subprograms[i] for i in sorted(reached)])


def _reachable(start: H, successors: Callable[[H], Iterable[H]]) -> set[H]:
    """``start`` and everything reachable from it (a cycle ends at a visited node). A plain
    worklist: these run for every child the search draws, where building a networkx graph
    would cost more than the walk."""
    reached, pending = set(), [start]
    while pending:
        node = pending.pop()
        if node not in reached:
            reached.add(node)
            pending.extend(successors(node))
    return reached


def _program_hash(program: Program, index: int) -> str:
    """The dataflow of ``to_graph`` hashed directly (this runs for every child the search
    draws): each value's Merkle hash covers its op, attributes and its inputs' hashes by
    position (sorted for commutative ops); the program hash covers the output's hash and the
    sorted hashes of every live value."""
    hashes: list[str] = []
    sources_of: list[list[int]] = []

    def value(label: str, sources: list[int], commutative: bool = False) -> int:
        inputs = [(port, hashes[source]) for port, source in enumerate(sources)]
        if commutative:
            inputs = sorted((0, h) for _, h in inputs)
        hashes.append(_node_digest(label, inputs))
        sources_of.append(sources)
        return len(hashes) - 1

    def add_value(path: str, ins: Instruction, sources: list[int]) -> int:
        op = REGISTRY.get(ins.op)
        return value(_label(ins.op, ins.attrs), sources, op is not None and op.commutative)

    output = _dataflow(
        program, index, lambda position, name: value(_label("input", {"position": position}), []), add_value
    )
    live = _reachable(output, sources_of.__getitem__)
    return _digest(hashes[output], sorted(hashes[node] for node in live))


def architecture_hash(architecture: Architecture) -> str:
    """Structural hash of everything a campaign searches (names and descriptions excluded)."""
    parts = {place: program_hash(program) for place, program in architecture.programs().items()}
    return _digest(parts)


def eliminate_dead_code(program: Program) -> Program:
    """Drop instructions whose values never reach their subprogram's output, and subprograms
    no live instruction calls."""
    kept: dict[str, Subprogram] = {}
    pending = [program.main.name]
    while pending:
        sub = program.subprogram(pending.pop())
        if sub.name in kept:
            continue
        kept[sub.name] = live = _live_body(sub)
        pending.extend(callees(live))
    return Program(subprograms=[kept[s.name] for s in program.subprograms if s.name in kept])


def _live_body(sub: Subprogram) -> Subprogram:
    producers = {ins.out: ins for ins in sub.body}
    live = _reachable(sub.output, lambda name: producers[name].inputs if name in producers else ())
    if all(ins.out in live for ins in sub.body):
        return sub  # nothing dead: the same subprogram (a caller may know it is normal already)
    return sub.model_copy(update={"body": [ins for ins in sub.body if ins.out in live]})


def canonicalize(program: Program) -> Program:
    """Dead code removed, instructions in dependency order with ties broken by structure, and
    commutative inputs in a fixed order. Value names are kept: diffs and lineage read them."""
    return Program.model_validate_json(_CANONICAL_JSON.get(program, lambda: _canonical(program).model_dump_json()))


def _canonical(program: Program) -> Program:
    program = eliminate_dead_code(program)
    callee_hash = {s.name: program_hash(program, k) for k, s in enumerate(program.subprograms)}
    return Program(subprograms=[_canonical_body(sub, callee_hash) for sub in program.subprograms])


def _canonical_body(sub: Subprogram, callee_hash: dict[str, str]) -> Subprogram:
    local = {p: _digest("param", i) for i, p in enumerate(sub.params)}
    graph = nx.DiGraph()
    by_name = {ins.out: ins for ins in sub.body}
    for i in topological_order(sub):
        ins = sub.body[i]
        op = REGISTRY.get(ins.op)
        inputs = list(ins.inputs)
        if op is not None and op.commutative:
            inputs.sort(key=lambda name: local[name])
        label = callee_hash[ins.attrs["target"]] if ins.op == CALL else _label(ins.op, ins.attrs)
        local[ins.out] = _digest(label, [local[name] for name in inputs])
        by_name[ins.out] = ins.model_copy(update={"inputs": inputs})
        graph.add_node(ins.out)
        graph.add_edges_from((name, ins.out) for name in inputs if name in by_name)
    order = nx.lexicographical_topological_sort(graph, key=lambda name: (local[name], name))
    return sub.model_copy(update={"body": [by_name[name] for name in order]})


def fusable_attention(sub: Subprogram) -> dict[str, tuple[str, ...]]:
    """attend(causal_softmax(attn_logits(q, k)), v) whose intermediates have no other use: what
    the compiler runs as one fused scaled-dot-product call, whose attention maps are never kept
    (the cost model's memory estimate counts them so): {attend's name: (q, k, v, logits, softmax)}."""
    by_name = {ins.out: ins for ins in sub.body}
    uses: dict[str, int] = {}
    for ins in sub.body:
        for name in ins.inputs:
            uses[name] = uses.get(name, 0) + 1
    uses[sub.output] = uses.get(sub.output, 0) + 1
    fused = {}
    for ins in sub.body:
        if ins.op != "attend":
            continue
        probs = by_name.get(ins.inputs[0])
        if probs is None or probs.op != "causal_softmax" or uses[probs.out] != 1:
            continue
        logits = by_name.get(probs.inputs[0])
        if logits is None or logits.op != "attn_logits" or uses[logits.out] != 1:
            continue
        fused[ins.out] = (*logits.inputs, ins.inputs[1], logits.out, probs.out)
    return fused
