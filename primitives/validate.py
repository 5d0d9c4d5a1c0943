"""Validation and type inference: every error names the instruction and what is wrong.

``validate_architecture`` returns a normalised copy (every attribute present, in canonical
form), so that equal programs serialise and hash equally whatever defaults they relied on.
"""

from __future__ import annotations

import json
import keyword
import re
from collections.abc import Sequence
from typing import Any, Collection

import networkx as nx
from pydantic import ValidationError

from .interpret import Interpreter, in_dependency_order, topological_order
from .program import Architecture, Instruction, Program, Subprogram
from .registry import CALL, REGISTRY, OpError
from .types import MODEL_UNITS, ValueType, seq

NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")  # matched in full: no trailing newline slips through
#: Names the generated PyTorch source uses itself, and the attributes of torch's nn.Module a
#: value (compiled to ``self.<name>``) would shadow (tests check this list against torch's).
RESERVED = frozenset(
    {
        "self",
        "torch",
        "nn",
        "F",
        "math",
        "super",
        "training",
        "add_module",
        "apply",
        "bfloat16",
        "buffers",
        "call_super_init",
        "children",
        "compile",
        "cpu",
        "cuda",
        "double",
        "dump_patches",
        "eval",
        "extra_repr",
        "float",
        "forward",
        "get_buffer",
        "get_extra_state",
        "get_parameter",
        "get_submodule",
        "half",
        "ipu",
        "load_state_dict",
        "modules",
        "mtia",
        "named_buffers",
        "named_children",
        "named_modules",
        "named_parameters",
        "parameters",
        "register_backward_hook",
        "register_buffer",
        "register_forward_hook",
        "register_forward_pre_hook",
        "register_full_backward_hook",
        "register_full_backward_pre_hook",
        "register_load_state_dict_post_hook",
        "register_load_state_dict_pre_hook",
        "register_module",
        "register_parameter",
        "register_state_dict_post_hook",
        "register_state_dict_pre_hook",
        "requires_grad_",
        "set_extra_state",
        "set_submodule",
        "share_memory",
        "state_dict",
        "to",
        "to_empty",
        "train",
        "type",
        "xpu",
        "zero_grad",
    }
)


class ProgramError(ValueError):
    """A malformed program; ``str()`` is one line: where, then what."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}" if where else message)
        self.where, self.message = where, message


def parse_architecture(text: str) -> Architecture:
    """JSON text → validated, normalised Architecture, or a one-line ProgramError."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProgramError("", f"not JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except RecursionError:
        raise ProgramError("", "not an architecture: the JSON is nested too deeply") from None
    except ValueError as error:  # an integer of more digits than Python converts (4300)
        raise ProgramError("", f"not an architecture: {str(error).split(';')[0]}") from None
    if not isinstance(data, dict):
        raise ProgramError("", f"expected a JSON object describing an architecture, got {type(data).__name__}")
    if isinstance(data.get("archevo"), dict):  # an exported config.json carries its program under "archevo"
        data = data["archevo"].get("architecture")
        if not isinstance(data, dict):
            raise ProgramError("archevo.architecture", "an exported config.json without its architecture")
    try:
        architecture = Architecture.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = "field missing" if first["type"] == "missing" else first["msg"]
        raise ProgramError(where or "architecture", message) from None
    return validate_architecture(architecture)


def validate_architecture(architecture: Architecture) -> Architecture:
    fields: dict[str, Any] = {}
    for part in ("prefix", "layers"):
        fields[part] = [validate_program(p, f"{part}[{i}]") for i, p in enumerate(getattr(architecture, part))]
    fields["final"] = validate_program(architecture.final, "final")
    return architecture.model_copy(update=fields)


def validate_program(program: Program, where: str = "program", normal: Collection[Subprogram] = ()) -> Program:
    """Check one layer program; return it with attributes normalised and every body in
    dependency order (ties keep program order). Subprograms in ``normal`` (a parent's, which a
    mutation left alone, found by identity) skip the per-subprogram checks; types are still
    inferred across the whole program."""
    names = [s.name for s in program.subprograms]
    for i, name in enumerate(names):
        _check_name(name, f"{where}.subprograms[{i}]")
        if name in names[:i]:
            raise ProgramError(f"{where}.subprograms[{i}]", f"subprogram name {name!r} is used twice")
    if len(program.main.params) != 1:
        raise ProgramError(
            f"{where}.{program.main.name}",
            f"main takes exactly one input (the residual stream), not {len(program.main.params)}",
        )
    subprograms = [
        s if any(s is n for n in normal) else _normalise(program, s, f"{where}.{s.name}") for s in program.subprograms
    ]
    unchanged = all(new is old for new, old in zip(subprograms, program.subprograms))
    normalised = program if unchanged else Program(subprograms=subprograms)
    out = infer_types(normalised, 0, [seq(MODEL_UNITS)], where)[normalised.main.output]
    if out != seq(MODEL_UNITS):
        raise ProgramError(
            f"{where}.{program.main.name}",
            f"output {program.main.output!r} is {out}, but a layer must return seq[{MODEL_UNITS}]",
        )
    return normalised


def _check_name(name: str, where: str) -> None:
    if not isinstance(name, str) or not NAME.fullmatch(name) or keyword.iskeyword(name) or name in RESERVED:
        reserved = (
            "a Python keyword"
            if keyword.iskeyword(name)
            else "reserved by the generated nn.Module"
            if name in RESERVED
            else "not a plain name"
        )
        raise ProgramError(
            where,
            f"bad name {name!r} ({reserved}): use lower-case letters, digits and _, "
            "starting with a letter, at most 64 characters",
        )


def _normalise(program: Program, sub: Subprogram, where: str) -> Subprogram:
    """Structural checks of one subprogram (names, references, ops, arity, attributes, cycles)."""
    defined: dict[str, str] = {}
    for p in sub.params:
        _check_name(p, f"{where}.params")
        if p in defined:
            raise ProgramError(f"{where}.params", f"input {p!r} is listed twice")
        defined[p] = "input"
    body = []
    for i, ins in enumerate(sub.body):
        at = _at(where, i, ins)
        _check_name(ins.out, at)
        if ins.out in defined:
            raise ProgramError(at, f"{ins.out!r} is already defined ({defined[ins.out]}); each value is assigned once")
        defined[ins.out] = f"instruction {i}"
        attrs = _normalise_attrs(program, sub, ins, at)
        body.append(ins if _identical(attrs, ins.attrs) else ins.model_copy(update={"attrs": attrs}))
    for i, ins in enumerate(body):
        for name in ins.inputs:
            if name not in defined:
                raise ProgramError(_at(where, i, ins), f"input {name!r} is not defined in {sub.name}")
    if sub.output not in defined:
        raise ProgramError(f"{where}.output", f"output {sub.output!r} is not defined in {sub.name}")
    if not in_dependency_order(sub):  # values used before their definition may close a cycle
        graph = nx.DiGraph([(name, ins.out) for ins in body for name in ins.inputs])
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            pass
        else:
            path = " → ".join([edge[0] for edge in cycle] + [cycle[0][0]])
            raise ProgramError(where, f"cycle: {path}")
    # Stored in dependency order, so everything downstream takes topological_order's fast path.
    ordered = [body[i] for i in topological_order(sub)]
    if all(new is old for new, old in zip(ordered, sub.body)):
        return sub  # already normal (a parent's subprogram that the mutation left alone)
    return sub.model_copy(update={"body": ordered})


def _identical(a: Any, b: Any) -> bool:
    """Equal and of the same types throughout (1 == 1.0, but they serialise differently)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_identical(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b))
    return a == b


def _at(where: str, index: int, ins: Instruction) -> str:
    return f"{where}[{index}] ({ins.out} = {ins.op})"


def _normalise_attrs(program: Program, sub: Subprogram, ins: Instruction, at: str) -> dict[str, Any]:
    if ins.op == CALL:
        target = ins.attrs.get("target")
        later = [s.name for s in program.subprograms[program.subprograms.index(sub) + 1 :]]
        if target not in later:
            raise ProgramError(
                at, f"call target {target!r} must name a later subprogram ({', '.join(later) or 'none'})"
            )
        if set(ins.attrs) != {"target"}:
            raise ProgramError(at, f"call takes only the attribute 'target', not {sorted(set(ins.attrs) - {'target'})}")
        arity = len(program.subprogram(target).params)
        if len(ins.inputs) != arity:
            raise ProgramError(at, f"call {target} takes {arity} input(s), got {len(ins.inputs)}")
        return dict(ins.attrs)
    op = REGISTRY.get(ins.op)
    if op is None:
        raise ProgramError(at, f"unknown op {ins.op!r}")
    if len(ins.inputs) != op.arity:
        raise ProgramError(at, f"{ins.op} takes {op.arity} input(s), got {len(ins.inputs)}")
    unknown = set(ins.attrs) - set(op.attrs)
    if unknown:
        raise ProgramError(
            at, f"{ins.op} has no attribute {sorted(unknown)[0]!r} (it takes {sorted(op.attrs) or 'none'})"
        )
    attrs = {}
    for name, spec in op.attrs.items():
        try:
            attrs[name] = spec.check(ins.attrs.get(name, spec.default))
        except OpError as error:
            raise ProgramError(at, f"attribute {name!r}: {error}") from None
    return attrs


class _TypeInference(Interpreter[ValueType]):
    """Each value's type, each op checked against the kinds it takes; a callee's types are
    inferred once per argument types (``memo``)."""

    def __init__(self, program: Program, where: str, memo: dict | None):
        super().__init__(program)
        self.where, self.memo = where, memo

    def run(self, index: int, args: Sequence[ValueType], path: str = "") -> dict[str, ValueType]:
        key = (index, tuple(args))
        if self.memo is not None and key in self.memo:
            return self.memo[key]
        types = super().run(index, args, path)
        if self.memo is not None:
            self.memo[key] = types
        return types

    def op(self, sub: Subprogram, i: int, ins: Instruction, args: list[ValueType], path: str) -> ValueType:
        op = REGISTRY[ins.op]
        for position, (arg, kinds) in enumerate(zip(args, op.inputs)):
            if arg.kind not in kinds:
                raise ProgramError(
                    _at(f"{self.where}.{sub.name}", i, ins),
                    f"input {position + 1} ({ins.inputs[position]}) is {arg}, but {ins.op} takes {' or '.join(kinds)}",
                )
        try:
            return op.infer(args, ins.attrs)
        except OpError as error:
            raise ProgramError(_at(f"{self.where}.{sub.name}", i, ins), str(error)) from None


def infer_types(
    program: Program, index: int, inputs: list[ValueType], where: str = "program", memo: dict | None = None
) -> dict[str, ValueType]:
    """Types of every value of subprogram ``index`` called with ``inputs`` (a normalised program).
    ``memo`` (a dict the caller keeps for this program) saves inferring a callee twice."""
    return _TypeInference(program, where, memo).run(index, inputs)


class _FirstCalls(_TypeInference):
    """Type inference over the whole layer, keeping each subprogram's types from its first call."""

    def __init__(self, program: Program):
        super().__init__(program, "program", None)
        self.first: dict[int, dict[str, ValueType]] = {}

    def run(self, index: int, args: Sequence[ValueType], path: str = "") -> dict[str, ValueType]:
        types = super().run(index, args, path)
        self.first.setdefault(index, types)
        return types


def first_call_types(program: Program) -> dict[int, dict[str, ValueType]]:
    """The value types of each called subprogram of a normalised ``program``, by index, as the
    layer first calls it (main's: on the residual stream). Mutation edits a subprogram called at
    two types in the first."""
    walk = _FirstCalls(program)
    walk.run(0, [seq(MODEL_UNITS)])
    return walk.first
