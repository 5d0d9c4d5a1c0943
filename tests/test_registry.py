"""A walk over the whole op registry: every op, alone in a program, is whole.

For each op, a program that applies it once to the residual stream (with the smallest adapters
its input and output kinds need: a causal map from ``uniform_causal_map``, a column from
``red_mean``, a projection back to the stream's width) compiles, its parameter count from the
registry equals torch's, the gate's fingerprint does not depend on the random state before it,
the causality check accepts it unless the op is marked as mixing all pairs, its JSON round-trips
and the listing shows it; and mutation can insert it into a seed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluator import gate
from evaluator.compiler import NonCausalError, check_causality, compile_model, compile_program, count_parameters
from primitives.builder import Builder
from primitives.cost import program_cost
from primitives.listing import format_instruction, list_architecture
from primitives.program import Architecture, ModelSpec, Program
from primitives.registry import CALL, REGISTRY
from primitives.seeds import seed
from primitives.types import COL, MAP, MODEL_UNITS, seq
from primitives.validate import ProgramError, parse_architecture, validate_architecture
from search import mutate as mutation
from search.caches import clear_caches

SPEC = ModelSpec(vocab_size=64, d_model=32, n_layers=1, n_heads=2, seq_len=8)
OPS = sorted(REGISTRY)
#: Ops whose output is not causal on its own (attention logits before the mask).
ALL_PAIRS = {name for name, op in REGISTRY.items() if op.mixing == "all_pairs"}


def alone(name: str, mask: bool = True) -> Architecture:
    """``name`` applied once to the stream, with adapters, inside a residual layer; a map it
    returns goes through ``causal_softmax`` (unless ``mask`` is false) and is applied to x."""
    op = REGISTRY[name]
    b = Builder("main")
    inputs, types = [], []
    for i, kinds in enumerate(op.inputs):
        if "seq" in kinds:
            inputs.append("x"), types.append(seq(MODEL_UNITS))
        elif "map" in kinds:
            inputs.append(b.uniform_causal_map("x", out=f"map{i}")), types.append(MAP)
        else:
            inputs.append(b.red_mean("x", out=f"col{i}")), types.append(COL)
    attrs = {key: spec.default for key, spec in op.attrs.items()}
    out = b.emit(name, *inputs, out="under_test", **attrs)
    out_type = op.infer(types, attrs)
    if out_type.kind == "map":
        if mask and name != "causal_softmax":
            out = b.causal_softmax(out, out="masked")
        out = b.attend(out, "x", out="applied")
    elif out_type.kind == "col" or out_type.width != MODEL_UNITS:
        out = (
            b.add("x", out, out="broadcast") if out_type.kind == "col" else b.dense(out, width=MODEL_UNITS, out="back")
        )
    main = b.build(b.add("x", out, out="y"))
    return validate_architecture(
        Architecture(
            name=f"only_{name}",
            layers=[Program(subprograms=[main])],
            final=Program(subprograms=[Builder("main").build("x")]),
        )
    )


@pytest.mark.parametrize("name", [n for n in OPS if n != CALL])
def test_every_op_alone_compiles_counts_fingerprints_and_lists(name):
    architecture = alone(name)
    program = architecture.layers[0]
    module = compile_program(SPEC, program)
    x = torch.randn(2, SPEC.seq_len, SPEC.d_model)
    assert module(x).shape == x.shape
    assert program_cost(program, SPEC)[1] == count_parameters(module), "registry and torch disagree on parameters"

    fingerprints = set()
    for state in (0, 1):  # the fingerprint must not read the global random state
        clear_caches()  # a cold gate each time, so the second probe is not served from the first
        torch.manual_seed(state)
        fingerprints.add(gate.probe(SPEC, architecture))
    assert len(fingerprints) == 1

    check_causality(compile_model(SPEC, architecture), SPEC)
    if name in ALL_PAIRS:  # the marking is honest: without the mask the op sees the future
        with pytest.raises(NonCausalError):
            check_causality(compile_model(SPEC, alone(name, mask=False)), SPEC)

    assert parse_architecture(architecture.to_json()) == architecture
    line = format_instruction(next(ins for ins in program.main.body if ins.out == "under_test"))
    assert f"  {line}" in list_architecture(architecture)


def test_the_gate_lends_every_block_an_op_builds():
    constructors = {op.module.split("(")[0] for op in REGISTRY.values() if op.module}
    assert constructors == set(gate.BlockPool.NAMES)
    assert {"RelativeBias", "TokenMix"} <= constructors


NEW_OPS = [
    "rotary",
    "head_rmsnorm",
    "repeat_kv",
    "softcap",
    "relative_bias",
    "alibi",
    "token_shift",
    "token_mix",
    "linear_attention",
    "gated_linear_attention",
]


@pytest.mark.parametrize("name", NEW_OPS)
def test_mutation_can_insert_the_op(name, monkeypatch):
    """An insertion drawing only ``name`` lands in the Transformer's attention and yields a
    valid, compilable child (a width-changing op arrives with a projection back)."""
    monkeypatch.setattr(mutation, "INSERTABLE", (name,))
    parent = seed("transformer", SPEC)
    program = parent.layers[0]
    index = [s.name for s in program.subprograms].index("attention")
    types = mutation.first_call_types(program)[index]
    rng = np.random.default_rng(0)
    for _ in range(50):
        try:
            sub = mutation._insert(program.subprograms[index], types, rng, mutation.Draws("family"))
            subprograms = list(program.subprograms)
            subprograms[index] = sub
            child = validate_architecture(parent.model_copy(update={"layers": [Program(subprograms=subprograms)]}))
        except (mutation.MutationFailed, ProgramError):  # as mutate() does: redraw
            continue
        assert any(ins.op == name for ins in child.layers[0].subprogram("attention").body)
        compile_model(SPEC, child)(torch.randint(SPEC.vocab_size, (1, SPEC.seq_len)))
        return
    pytest.fail(f"no insertion of {name} in 50 draws")


def test_a_failing_candidate_shows_its_generated_line_and_caches_clear():
    """Generated source is registered with linecache, so a traceback names the line of the
    program that failed; clear_caches() forgets it (and every other process-wide cache)."""
    import linecache
    import traceback

    from evaluator.compiler import _bytecode

    layer = compile_model(SPEC, seed("transformer", SPEC)).layers[0]
    with pytest.raises(RuntimeError) as failure:
        layer(torch.randn(2, SPEC.seq_len, SPEC.d_model + 1))  # the wrong width
    generated = [
        frame for frame in traceback.extract_tb(failure.value.__traceback__) if frame.filename.startswith("<archevo ")
    ]
    assert generated and generated[0].line == "norm1 = self.norm1(x)"
    clear_caches()
    assert _bytecode.cache_info().currsize == 0
    assert not [name for name in linecache.cache if str(name).startswith("<archevo ")]
