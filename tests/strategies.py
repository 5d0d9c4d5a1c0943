"""Hypothesis strategies: random valid programs drawn from the op registry."""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st

from primitives.program import Instruction, Program, Subprogram
from primitives.registry import INIT_FIELDS, REGISTRY, AttrSpec, OpError
from primitives.types import MODEL_UNITS, ValueType, seq
from primitives.validate import ProgramError, validate_program

OPS = sorted(REGISTRY)


@st.composite
def attr_values(draw, spec: AttrSpec):
    if spec.kind == "bool":
        return draw(st.booleans())
    if spec.kind == "choice" or spec.choices:
        return draw(st.sampled_from(spec.choices))
    if spec.kind == "int":
        return draw(st.sampled_from(spec.vocabulary) if spec.vocabulary else st.integers(int(spec.low), int(spec.high)))
    if spec.kind == "float":
        return draw(st.floats(max(spec.low, -10.0), min(spec.high, 10.0), allow_nan=False))
    kind = draw(st.sampled_from(spec.inits))
    init = {"kind": kind}
    for name in INIT_FIELDS[kind]:
        if name == "values":
            init[name] = draw(st.lists(st.floats(-1, 1), min_size=1, max_size=3))
        else:
            init[name] = draw(st.floats(0.01, 2.0))
    return init


@st.composite
def instructions(draw, values: dict[str, ValueType], out: str):
    """One instruction over the typed ``values`` that type-checks (or is rejected by assume)."""
    op = REGISTRY[draw(st.sampled_from(OPS))]
    inputs = []
    for kinds in op.inputs:
        candidates = [name for name, t in values.items() if t.kind in kinds]
        assume(candidates)
        inputs.append(draw(st.sampled_from(sorted(candidates))))
    attrs = {name: draw(attr_values(spec)) for name, spec in op.attrs.items()}
    try:
        attrs = {name: spec.check(attrs[name]) for name, spec in op.attrs.items()}
        out_type = op.infer([values[n] for n in inputs], attrs)
    except OpError:
        assume(False)
    return Instruction(out=out, op=op.name, inputs=inputs, attrs=attrs), out_type


@st.composite
def programs(draw, max_size: int = 10) -> Program:
    """A valid one-subprogram layer program; its output is a dense back to the model width."""
    values: dict[str, ValueType] = {"x": seq(MODEL_UNITS)}
    body = []
    for i in range(draw(st.integers(1, max_size))):
        ins, out_type = draw(instructions(values, f"v{i}"))
        body.append(ins)
        values[ins.out] = out_type
    seqs = sorted(name for name, t in values.items() if t.kind == "seq")
    last = draw(st.sampled_from(seqs))
    body.append(Instruction(out="out", op="dense", inputs=[last], attrs={"width": MODEL_UNITS}))
    try:
        return validate_program(Program(subprograms=[Subprogram(name="main", body=body, output="out")]))
    except ProgramError:
        assume(False)
