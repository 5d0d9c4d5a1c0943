"""Parameter counts from the registry's parameter shapes, without building a model.

Cheap enough for the search to check parameter limits before anything is compiled; the
compiler's torch count is tested to agree with it for every seed.
"""

from __future__ import annotations

import math

from .program import Architecture, ModelSpec, Program
from .registry import CALL, REGISTRY
from .types import MODEL_UNITS, ValueType, seq
from .validate import infer_types


def _width(value: ValueType, spec: ModelSpec) -> int:
    return value.width * spec.unit if value.kind == "seq" else 1


def subprogram_parameters(program: Program, index: int, inputs: list[ValueType], spec: ModelSpec) -> int:
    sub = program.subprograms[index]
    types = infer_types(program, index, inputs)
    names = [s.name for s in program.subprograms]
    total = 0
    for ins in sub.body:
        args = [types[name] for name in ins.inputs]
        if ins.op == CALL:
            total += subprogram_parameters(program, names.index(ins.attrs["target"]), args, spec)
            continue
        shapes = REGISTRY[ins.op].params([_width(a, spec) for a in args], _width(types[ins.out], spec),
                                         ins.attrs, spec.n_heads)
        total += sum(math.prod(shape) for shape in shapes.values())
    return total


def program_parameters(program: Program, spec: ModelSpec) -> int:
    return subprogram_parameters(program, 0, [seq(MODEL_UNITS)], spec)


def parameter_count(spec: ModelSpec, architecture: Architecture) -> int:
    """Every trainable parameter of the model: embeddings, layers, final program, head."""
    per_place = {place: program_parameters(p, spec) for place, p in architecture.programs().items()}
    layers = sum(per_place[architecture.layer_place(i)] for i in range(spec.n_layers))
    embeddings = spec.vocab_size * spec.d_model * (1 if spec.tie_embeddings else 2)
    positions = spec.seq_len * spec.d_model if spec.positions == "learned" else 0
    return embeddings + positions + layers + per_place["final"]
