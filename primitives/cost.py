"""Parameters and FLOPs from the registry, without building a model.

Every op states its parameter shapes and its forward FLOPs per token (``OpDef.params``,
``OpDef.flops``); this module walks a program's instructions and adds them up, then adds
the model frame (embedding, positions, unembedding, loss). Cheap enough for the search to
check limits before anything is compiled. The compiler's torch parameter count and torch's
FLOP counter (on the matrix products and convolutions it counts) are tested to agree with
these numbers for every seed.

Training FLOPs are 3 × forward (the backward pass costs about twice the forward), the
convention of Kaplan et al. and of Primer's FLOPs comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from .program import Architecture, ModelSpec, Program
from .registry import CALL, REGISTRY, OpDef
from .types import MODEL_UNITS, ValueType, seq
from .validate import infer_types

TRAINING_MULTIPLIER = 3
#: log-softmax and the pick of the target per vocabulary entry: max, subtract, exp, sum.
LOSS_FLOPS_PER_ENTRY = 4


@dataclass(frozen=True)
class Flops:
    """FLOPs per token: ``matmul`` (what torch's FLOP counter counts too) and ``other``."""

    matmul: float = 0.0
    other: float = 0.0

    @property
    def total(self) -> float:
        return self.matmul + self.other

    def __add__(self, other: "Flops") -> "Flops":
        return Flops(self.matmul + other.matmul, self.other + other.other)

    def __mul__(self, factor: float) -> "Flops":
        return Flops(self.matmul * factor, self.other * factor)


def _elements(value: ValueType, spec: ModelSpec) -> int:
    """Elements per token: the absolute width, 1 for a column, heads × seq_len for a map."""
    if value.kind == "seq":
        return value.width * spec.unit
    return spec.n_heads * spec.seq_len if value.kind == "map" else 1


def _instructions(program: Program, index: int, inputs: list[ValueType],
                  spec: ModelSpec) -> Iterator[tuple[OpDef, list[int], int, dict]]:
    """Every primitive instruction a call of subprogram ``index`` runs (callees expanded), as
    (op, input elements per token, output elements per token, attributes)."""
    sub = program.subprograms[index]
    types = infer_types(program, index, inputs)
    names = [s.name for s in program.subprograms]
    for ins in sub.body:
        args = [types[name] for name in ins.inputs]
        if ins.op == CALL:
            yield from _instructions(program, names.index(ins.attrs["target"]), args, spec)
        else:
            yield REGISTRY[ins.op], [_elements(a, spec) for a in args], _elements(types[ins.out], spec), ins.attrs


def subprogram_parameters(program: Program, index: int, inputs: list[ValueType], spec: ModelSpec) -> int:
    return sum(math.prod(shape)
               for op, d_in, d_out, attrs in _instructions(program, index, inputs, spec)
               for shape in op.params(d_in, d_out, attrs, spec.n_heads).values())


def program_parameters(program: Program, spec: ModelSpec) -> int:
    return subprogram_parameters(program, 0, [seq(MODEL_UNITS)], spec)


def program_flops(program: Program, spec: ModelSpec) -> Flops:
    """Forward FLOPs per token of one program (one layer, or the final program)."""
    total = Flops()
    for op, d_in, d_out, attrs in _instructions(program, 0, [seq(MODEL_UNITS)], spec):
        total += Flops(*op.flops(d_in, d_out, attrs, spec.n_heads, spec.seq_len))
    return total


def _stacked(spec: ModelSpec, architecture: Architecture, measure) -> tuple:
    """``measure`` of each layer of the stack (a list), and of the final program."""
    per_place = {place: measure(p, spec) for place, p in architecture.programs().items()}
    layers = [per_place[architecture.layer_place(i)] for i in range(spec.n_layers)]
    return layers, per_place["final"]


def parameter_count(spec: ModelSpec, architecture: Architecture) -> int:
    """Every trainable parameter of the model: embeddings, layers, final program, head."""
    layers, final = _stacked(spec, architecture, program_parameters)
    embeddings = spec.vocab_size * spec.d_model * (1 if spec.tie_embeddings else 2)
    positions = spec.seq_len * spec.d_model if spec.positions == "learned" else 0
    return embeddings + positions + sum(layers) + final


def forward_flops(spec: ModelSpec, architecture: Architecture) -> Flops:
    """Forward FLOPs per token of the whole model: the layers, the final program, and the
    frame (adding positions, the unembedding's product, the loss's log-softmax)."""
    layers, final = _stacked(spec, architecture, program_flops)
    frame = Flops(matmul=2.0 * spec.vocab_size * spec.d_model,
                  other=LOSS_FLOPS_PER_ENTRY * spec.vocab_size + (spec.d_model if spec.positions != "none" else 0))
    return sum(layers, Flops()) + final + frame


def training_flops(spec: ModelSpec, architecture: Architecture) -> float:
    """Training (forward + backward) FLOPs per token: the budget's and the reports' unit."""
    return TRAINING_MULTIPLIER * forward_flops(spec, architecture).total


def training_memory_bytes(spec: ModelSpec, architecture: Architecture, batch_size: int) -> float:
    """A rough upper estimate of one AdamW step's memory (fp32), to refuse an absurd request
    (a million layers, sequences of 10⁶) before anything is allocated: parameters, gradients
    and two moments, plus the activations autograd keeps, every instruction's output counted
    (attention maps at heads × seq_len per token) and the logits three times."""
    def outputs(program: Program, spec: ModelSpec) -> int:
        return sum(d_out for _, _, d_out, _ in _instructions(program, 0, [seq(MODEL_UNITS)], spec))

    layers, final = _stacked(spec, architecture, outputs)
    per_token = sum(layers) + final + 3 * spec.vocab_size + 2 * spec.d_model
    return 4.0 * (4 * parameter_count(spec, architecture) + batch_size * spec.seq_len * per_token)
