"""Properties over random valid programs: JSON round trip and the structural hash."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from primitives.graph import (
    canonicalize,
    eliminate_dead_code,
    live_nodes,
    program_hash,
    to_graph,
)
from primitives.program import Program
from primitives.registry import REGISTRY
from primitives.validate import ProgramError, validate_program
from tests.strategies import attr_values, programs

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow]
)


def _with_body(program: Program, body) -> Program:
    return Program(subprograms=[program.main.model_copy(update={"body": body})])


def _live(program: Program) -> list[int]:
    live = live_nodes(to_graph(program))
    return [i for i, ins in enumerate(program.main.body) if ins.out in live]


@SETTINGS
@given(programs())
def test_json_round_trip_is_lossless(program):
    text = json.dumps(program.model_dump(mode="json"))
    again = validate_program(Program.model_validate_json(text))
    assert again == program
    assert program_hash(again) == program_hash(program)


@SETTINGS
@given(programs(), st.randoms(use_true_random=False))
def test_hash_ignores_instruction_order(program, rng):
    body = list(program.main.body)
    rng.shuffle(body)
    shuffled = validate_program(_with_body(program, body))  # any order is legal: values are named
    assert program_hash(shuffled) == program_hash(program)
    assert canonicalize(shuffled) == canonicalize(program)


@SETTINGS
@given(programs())
def test_hash_ignores_input_order_of_commutative_ops(program):
    body = [
        ins.model_copy(update={"inputs": ins.inputs[::-1]}) if REGISTRY[ins.op].commutative else ins
        for ins in program.main.body
    ]
    assert program_hash(_with_body(program, body)) == program_hash(program)


@SETTINGS
@given(programs())
def test_hash_ignores_dead_code(program):
    assert program_hash(eliminate_dead_code(program)) == program_hash(program)


@SETTINGS
@given(programs(), st.data())
def test_hash_changes_with_any_attribute(program, data):
    index = data.draw(st.sampled_from(_live(program)))
    ins = program.main.body[index]
    specs = REGISTRY[ins.op].attrs
    assume(specs)
    name = data.draw(st.sampled_from(sorted(specs)))
    value = specs[name].check(data.draw(attr_values(specs[name])))
    assume(value != ins.attrs[name])
    body = list(program.main.body)
    body[index] = ins.model_copy(update={"attrs": {**ins.attrs, name: value}})
    try:
        changed = validate_program(_with_body(program, body))
    except ProgramError:
        assume(False)
    assert program_hash(changed) != program_hash(program)


@SETTINGS
@given(programs(), st.data())
def test_hash_changes_with_any_op(program, data):
    index = data.draw(st.sampled_from(_live(program)))
    ins = program.main.body[index]
    same_shape = sorted(
        name
        for name, op in REGISTRY.items()
        if name != ins.op and op.inputs == REGISTRY[ins.op].inputs and set(op.attrs) == set(ins.attrs)
    )
    assume(same_shape)
    body = list(program.main.body)
    body[index] = ins.model_copy(update={"op": data.draw(st.sampled_from(same_shape))})
    try:
        changed = validate_program(_with_body(program, body))
    except ProgramError:
        assume(False)
    assert program_hash(changed) != program_hash(program)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(programs())
def test_a_program_that_validates_compiles_and_trains_one_step(program):
    """Validation is complete: nothing it passes may fail later in codegen or in a step."""
    import torch

    from evaluator.compiler import compile_model
    from primitives.program import Architecture, ModelSpec
    from primitives.seeds import seed

    spec = ModelSpec(vocab_size=64, d_model=32, n_layers=2, n_heads=2, seq_len=8)
    architecture = Architecture(name="fuzzed", layers=[program], final=seed("transformer", spec).final)
    model = compile_model(spec, architecture)
    tokens = torch.randint(spec.vocab_size, (2, spec.seq_len + 1))
    _, loss = model(tokens[:, :-1], tokens[:, 1:])
    loss.backward()
    torch.optim.AdamW(model.parameters()).step()
