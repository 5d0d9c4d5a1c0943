"""Primer's six mutations over architectures with subprograms.

A mutation edits one subprogram of one layer program (the final program is part of the
fixed frame). Children that fail validation are counted per mutation type and redrawn; a
child structurally equal to its parent (same hash: e.g. an insertion left dead) is mutated
again, as in Primer and Lion's Hero.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Literal, TypeVar

import numpy as np

from primitives.graph import eliminate_dead_code, program_hash
from primitives.listing import diff_architectures
from primitives.program import Architecture, Instruction, Program, Subprogram
from primitives.registry import CALL, INIT_FIELDS, REGISTRY, AttrSpec, OpError
from primitives.types import ValueType
from primitives.validate import ProgramError, first_call_types, validate_program

MUTATIONS = ("delete", "insert", "delete_insert", "change_field", "swap", "change_value")

#: Ops a random insertion draws from (all of the registry; norms and attention included).
INSERTABLE = tuple(sorted(REGISTRY))

ProposalName = Literal["family", "uniform"]

#: Of an attribute's legal values, how often the family proposal draws the op's own default.
DEFAULT_SHARE = 0.5


@dataclass(frozen=True)
class Draws:
    """How a mutation draws an op and an attribute value.

    ``uniform`` (campaigns before the family proposal): any op of the registry alike, so each
    op added dilutes the rest; attributes as ``random_attr`` draws them. ``family``: an op
    family (the registry's ``group``: unary, binary, layer, norm, attention, time, ...) alike,
    then an op in it alike, so a family's share does not shrink as ops are added to others;
    an attribute takes its default half of the time, else any legal value alike (every
    initialiser included)."""

    proposal: ProposalName = "family"

    def op(self, rng: np.random.Generator, names: list[str]) -> str:
        if self.proposal == "uniform":
            return _pick(rng, sorted(names))
        family = _pick(rng, sorted({REGISTRY[n].group for n in names}))
        return _pick(rng, sorted(n for n in names if REGISTRY[n].group == family))

    def attr(self, spec: AttrSpec, rng: np.random.Generator) -> Any:
        if self.proposal == "uniform" or spec.kind == "float":
            return random_attr(spec, rng)
        if rng.random() < DEFAULT_SHARE:
            return spec.default
        if spec.kind == "init":
            kind = _pick(rng, list(spec.inits))
            return spec.default if kind in (spec.default["kind"], "taps") else _init(kind)
        return random_attr(spec, rng)


class MutationFailed(Exception):
    """This draw cannot apply (e.g. nothing to delete); the caller redraws."""


class NoValidChild(RuntimeError):
    """Every draw for this parent failed validation or the gate."""


@dataclass
class MutationStats:
    """Per mutation type: children proposed, invalid, and equal to their parent."""

    tried: Counter = field(default_factory=Counter)
    invalid: Counter = field(default_factory=Counter)
    unchanged: Counter = field(default_factory=Counter)


Genome = TypeVar("Genome")


@dataclass(frozen=True)
class Child(Generic[Genome]):
    """A mutated individual (a program here; a NAS-Bench-201 cell in ``search.nb201``)."""

    architecture: Genome
    kind: str
    description: str
    verdict: Any = True  # what ``accept`` said of it (the campaign's gate report)


def mutate(
    parent: Architecture,
    rng: np.random.Generator,
    stats: MutationStats | None = None,
    weights: dict[str, float] | None = None,
    max_tries: int = 1000,
    accept: Callable[[Architecture], Any] = lambda a: True,
    proposal: ProposalName = "uniform",
) -> Child[Architecture]:
    """One valid child that differs structurally from ``parent`` and that ``accept`` admits (the
    campaign's gate: a falsy verdict rejects, any other is returned with the child), its edit
    drawn under ``proposal`` (``Draws``). Raises NoValidChild after ``max_tries`` draws."""
    draws = Draws(proposal)
    stats = stats if stats is not None else MutationStats()
    weights = weights or {name: 1.0 for name in MUTATIONS}
    kinds = sorted(weights)
    p = np.array([weights[k] for k in kinds], dtype=float)
    programs = parent.programs()
    places = [place for place in programs if place != "final"]
    types: dict[str, dict[int, dict[str, ValueType]]] = {}  # per place, the parent's types, inferred once
    for _ in range(max_tries):
        kind = kinds[rng.choice(len(kinds), p=p / p.sum())]
        stats.tried[kind] += 1
        place = places[rng.integers(len(places))]
        program = programs[place]
        if place not in types:
            types[place] = first_call_types(program)
        try:
            changed = validate_program(
                eliminate_dead_code(_edit(kind, program, rng, types[place], draws)),
                place,
                normal=program.subprograms,
            )
        except (MutationFailed, ProgramError):
            stats.invalid[kind] += 1
            continue
        if program_hash(changed) == program_hash(program):
            stats.unchanged[kind] += 1
            continue
        child = _replace(parent, place, changed)
        verdict = accept(child)
        if not verdict:
            stats.invalid[kind] += 1
            continue
        return Child(child, kind, "; ".join(diff_architectures(parent, child)), verdict)
    raise NoValidChild(f"no valid child of {parent.name!r} in {max_tries} tries")


def _edit(
    kind: str, program: Program, rng: np.random.Generator, types: dict[int, dict[str, ValueType]], draws: Draws
) -> Program:
    """Apply one edit of ``kind`` to a random subprogram of ``program`` (``types``: its values' types)."""
    index = int(rng.integers(len(program.subprograms)))
    if index not in types:
        raise MutationFailed(f"subprogram {program.subprograms[index].name} is never called")
    subprograms = list(program.subprograms)
    subprograms[index] = _EDITS[kind](program.subprograms[index], types[index], rng, draws)
    return Program(subprograms=subprograms)


def _replace(architecture: Architecture, place: str, program: Program) -> Architecture:
    part, _, rest = place.partition("[")
    position = int(rest.rstrip("]"))
    programs = list(getattr(architecture, part))
    programs[position] = program
    return architecture.model_copy(update={part: programs})


def _fresh(sub: Subprogram) -> str:
    taken = {*sub.params, *(ins.out for ins in sub.body)}
    return next(f"h{i}" for i in range(1, len(taken) + 2) if f"h{i}" not in taken)


def _pick(rng: np.random.Generator, items: list):
    if not items:
        raise MutationFailed("nothing to choose from")
    return items[int(rng.integers(len(items)))]


def _consumers(sub: Subprogram, name: str) -> list[tuple[int, int]]:
    """(instruction index, input position) pairs reading ``name``; (-1, 0) is the output."""
    uses = [(i, j) for i, ins in enumerate(sub.body) for j, n in enumerate(ins.inputs) if n == name]
    return uses + ([(-1, 0)] if sub.output == name else [])


def _reroute(sub: Subprogram, uses: list[tuple[int, int]], new: str) -> Subprogram:
    body = [ins.model_copy(update={"inputs": list(ins.inputs)}) for ins in sub.body]
    output = sub.output
    for i, j in uses:
        if i == -1:
            output = new
        else:
            body[i].inputs[j] = new
    return sub.model_copy(update={"body": body, "output": output})


# --------------------------------------------------------------------------- the six edits


def _delete(sub: Subprogram, types: dict[str, ValueType], rng: np.random.Generator, draws: Draws) -> Subprogram:
    """Remove one instruction; its readers read one of its inputs of the same type instead."""
    victim = _pick(rng, list(sub.body))
    same_type = [n for n in victim.inputs if types.get(n) == types.get(victim.out)]
    replacement = _pick(rng, same_type or [n for n in types if types[n] == types[victim.out] and n != victim.out])
    rerouted = _reroute(sub, _consumers(sub, victim.out), replacement)
    return rerouted.model_copy(update={"body": [ins for ins in rerouted.body if ins.out != victim.out]})


def _insert(sub: Subprogram, types: dict[str, ValueType], rng: np.random.Generator, draws: Draws) -> Subprogram:
    """A random instruction over existing values, spliced in after one of its inputs: readers
    of that input read the new value instead (so the new value is never dead code)."""
    op = REGISTRY[draws.op(rng, list(INSERTABLE))]
    inputs: list[str] = []
    for kinds in op.inputs:
        options = [n for n, t in types.items() if t.kind in kinds]
        if inputs and kinds == op.inputs[0]:  # a binary op: a partner it can combine with
            first = types[inputs[0]]
            options = [n for n in options if types[n] == first or "col" in (types[n].kind, first.kind)]
        inputs.append(_pick(rng, sorted(options)))
    attrs = {name: draws.attr(spec, rng) for name, spec in op.attrs.items()}
    if "width" in attrs and types[inputs[0]].kind == "seq" and rng.random() < 0.5:
        attrs["width"] = types[inputs[0]].width  # width-preserving, so it can splice in
    try:
        out_type = op.infer([types[n] for n in inputs], {k: s.check(attrs[k]) for k, s in op.attrs.items()})
    except OpError as error:
        raise MutationFailed(str(error)) from None
    new = [Instruction(out=_fresh(sub), op=op.name, inputs=inputs, attrs=attrs)]
    if out_type.kind == "seq" and "width" not in op.attrs and all(types[n] != out_type for n in inputs):
        # an op that changes width by itself (repeat_kv) is projected back to its first input's
        # width, so that it can splice in
        back = Instruction(
            out=_fresh(sub.model_copy(update={"body": [*sub.body, *new]})),
            op="dense",
            inputs=[new[0].out],
            attrs={"width": types[inputs[0]].width},
        )
        new, out_type = [*new, back], types[inputs[0]]
    anchor = _pick(rng, [n for n in inputs if types[n] == out_type])
    # Placed right after its last input's definition, so the body usually stays in dependency order.
    defined = {ins.out: i for i, ins in enumerate(sub.body)}
    position = max((defined.get(n, -1) for n in inputs), default=-1) + 1
    consumers = [(i + (i >= position) * len(new), j) for i, j in _consumers(sub, anchor)]  # indices after the splice
    body = [*sub.body[:position], *new, *sub.body[position:]]
    return _reroute(sub.model_copy(update={"body": body}), consumers, new[-1].out)


def _delete_insert(sub: Subprogram, types: dict[str, ValueType], rng: np.random.Generator, draws: Draws) -> Subprogram:
    deleted = _delete(sub, types, rng, draws)
    remaining = {n: t for n, t in types.items() if n in deleted.params or any(i.out == n for i in deleted.body)}
    return _insert(deleted, remaining, rng, draws)


def _change_field(sub: Subprogram, types: dict[str, ValueType], rng: np.random.Generator, draws: Draws) -> Subprogram:
    """Change one instruction's op (to one of the same signature), one input, or one attribute."""
    index = int(rng.integers(len(sub.body))) if sub.body else _pick(rng, [])
    ins = sub.body[index]
    if ins.op == CALL:
        raise MutationFailed("calls have no fields to change but their inputs")
    field_kind = _pick(rng, ["op", "input", "attr"])
    if field_kind == "op":
        same = [n for n, op in REGISTRY.items() if n != ins.op and op.inputs == REGISTRY[ins.op].inputs]
        new_op = REGISTRY[draws.op(rng, same)]
        attrs = {k: ins.attrs[k] if k in ins.attrs else draws.attr(s, rng) for k, s in new_op.attrs.items()}
        changed = ins.model_copy(update={"op": new_op.name, "attrs": attrs})
    elif field_kind == "input":
        j = int(rng.integers(len(ins.inputs))) if ins.inputs else _pick(rng, [])
        options = sorted(n for n, t in types.items() if t == types[ins.inputs[j]] and n not in (ins.inputs[j], ins.out))
        inputs = list(ins.inputs)
        inputs[j] = _pick(rng, options)
        changed = ins.model_copy(update={"inputs": inputs})
    else:
        name = _pick(rng, sorted(REGISTRY[ins.op].attrs))
        changed = ins.model_copy(update={"attrs": {**ins.attrs, name: draws.attr(REGISTRY[ins.op].attrs[name], rng)}})
    body = list(sub.body)
    body[index] = changed
    return sub.model_copy(update={"body": body})


def _swap(sub: Subprogram, types: dict[str, ValueType], rng: np.random.Generator, draws: Draws) -> Subprogram:
    """Exchange the operations of two instructions of the same arity (``relu(dconv(q))`` ↔
    ``dconv(relu(q))`` when they are chained), keeping the wiring."""
    ops = [i for i, ins in enumerate(sub.body) if ins.op != CALL]
    a = _pick(rng, ops)
    b = _pick(
        rng,
        [
            i
            for i in ops
            if i != a and len(sub.body[i].inputs) == len(sub.body[a].inputs) and sub.body[i].op != sub.body[a].op
        ],
    )
    body = list(sub.body)
    body[a] = body[a].model_copy(update={"op": sub.body[b].op, "attrs": sub.body[b].attrs})
    body[b] = body[b].model_copy(update={"op": sub.body[a].op, "attrs": sub.body[a].attrs})
    return sub.model_copy(update={"body": body})


def _change_value(sub: Subprogram, types: dict[str, ValueType], rng: np.random.Generator, draws: Draws) -> Subprogram:
    """Primer's bank mutation: a constant c → c·10^X + Y (X, Y ~ N(0, 1)), a positive scale
    (ε) c → c·10^X; a width or kernel redrawn from its vocabulary."""
    candidates = [
        (i, name)
        for i, ins in enumerate(sub.body)
        if ins.op != CALL
        for name, spec in REGISTRY[ins.op].attrs.items()
        if spec.kind in ("int", "float", "init")
    ]
    index, name = _pick(rng, candidates)
    ins = sub.body[index]
    spec = REGISTRY[ins.op].attrs[name]
    value = ins.attrs[name]
    if spec.kind == "int":
        value = random_attr(spec, rng)
    elif spec.kind == "float":
        value = float(value * 10 ** rng.normal()) if spec.log_scale else perturb(value, rng)
    else:
        numeric = [k for k in value if k != "kind"]
        key = _pick(rng, numeric)
        value = {**value, key: [perturb(v, rng) for v in value[key]] if key == "values" else perturb(value[key], rng)}
    body = list(sub.body)
    body[index] = ins.model_copy(update={"attrs": {**ins.attrs, name: value}})
    return sub.model_copy(update={"body": body})


_EDITS = {
    "delete": _delete,
    "insert": _insert,
    "delete_insert": _delete_insert,
    "change_field": _change_field,
    "swap": _swap,
    "change_value": _change_value,
}


def perturb(value: float, rng: np.random.Generator) -> float:
    return float(value * 10 ** rng.normal() + rng.normal())


def random_attr(spec: AttrSpec, rng: np.random.Generator):
    """A random legal value: drawn from the choices or vocabulary, N(0, 1) for constants (the
    default·10^X for positive scales), and a small set of initialisers around the defaults."""
    if spec.kind == "bool":
        return bool(rng.integers(2))
    if spec.choices:
        return _pick(rng, list(spec.choices))
    if spec.kind == "int":
        return (
            int(_pick(rng, list(spec.vocabulary)))
            if spec.vocabulary
            else int(rng.integers(int(spec.low), int(spec.high) + 1))
        )
    if spec.kind == "float":
        value = spec.default * 10 ** rng.normal() if spec.log_scale else rng.normal()
        return float(min(max(value, spec.low), spec.high))
    kind = _pick(rng, [k for k in spec.inits if k != "taps"] or list(spec.inits))
    if kind == "taps":
        return spec.default
    return _init(kind)


def _init(kind: str) -> dict:
    """An initialiser of ``kind`` with its usual numbers."""
    numbers = {"std": 0.02, "gain": 1.0, "value": 1.0}
    return {"kind": kind, **{name: numbers[name] for name in INIT_FIELDS[kind]}}
