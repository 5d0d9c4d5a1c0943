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
from collections import Counter
from dataclasses import dataclass

from .graph import fusable_attention
from .interpret import Interpreter
from .program import Architecture, Instruction, ModelSpec, Program, Subprogram
from .registry import REGISTRY, OpDef
from .types import MODEL_UNITS, ValueType, seq

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


class _Costing(Interpreter[ValueType]):
    """The value types of a call (callees expanded), and every primitive op it runs as (op,
    input elements per token, output elements per token, attributes)."""

    def __init__(self, program: Program, spec: ModelSpec):
        super().__init__(program)
        self.spec = spec
        self.ops: list[tuple[OpDef, list[int], int, dict]] = []
        self.kept = 0  # elements per token that autograd keeps for backward (memory, not FLOPs)
        self._fused: dict[int, tuple[dict[str, tuple[str, ...]], set[str]]] = {}

    def op(self, sub: Subprogram, i: int, ins: Instruction, inputs: list[ValueType], path: str) -> ValueType:
        op = REGISTRY[ins.op]
        out = op.infer(inputs, ins.attrs)
        elements = _elements(out, self.spec)
        self.ops.append((op, [_elements(a, self.spec) for a in inputs], elements, ins.attrs))
        if id(sub) not in self._fused:
            fused = fusable_attention(sub)
            self._fused[id(sub)] = fused, {name for group in fused.values() for name in group[3:]}
        fused, maps = self._fused[id(sub)]
        if ins.out in fused:  # the fused kernel keeps its output and a log-sum-exp per head
            self.kept += elements + self.spec.n_heads
        elif ins.out not in maps:  # its attention maps are never materialised
            self.kept += elements
        return out


def _walk(program: Program, spec: ModelSpec) -> _Costing:
    costing = _Costing(program, spec)
    costing.run(0, [seq(MODEL_UNITS)])
    return costing


def _ops(program: Program, spec: ModelSpec) -> list[tuple[OpDef, list[int], int, dict]]:
    """Every primitive op one run of ``program`` (from the residual stream) performs."""
    return _walk(program, spec).ops


def _runs(spec: ModelSpec, architecture: Architecture) -> Counter[str]:
    """How many times each program (by place) runs in the model: once per layer it serves, and
    the final program once."""
    places = Counter(architecture.layer_place(i) for i in range(spec.n_layers))
    places["final"] += 1
    return places


def program_cost(program: Program, spec: ModelSpec) -> tuple[Flops, int]:
    """Forward FLOPs per token and parameters of one program (a layer or the final program),
    in one walk over its instructions."""
    matmul = other = 0.0
    parameters = 0
    for op, d_in, d_out, attrs in _ops(program, spec):
        m, o = op.flops(d_in, d_out, attrs, spec.n_heads, spec.seq_len)
        matmul, other = matmul + m, other + o
        parameters += sum(math.prod(shape) for shape in op.params(d_in, d_out, attrs, spec.n_heads).values())
    return Flops(matmul, other), parameters


def program_flops(program: Program, spec: ModelSpec) -> Flops:
    return program_cost(program, spec)[0]


def model_cost(spec: ModelSpec, architecture: Architecture) -> tuple[Flops, int]:
    """The whole model's forward FLOPs per token and trainable parameters: the layers, the final
    program and the frame (embeddings and positions; adding positions, the unembedding's
    product, the loss's log-softmax)."""
    per_place = {place: program_cost(p, spec) for place, p in architecture.programs().items()}
    places = _runs(spec, architecture)
    flops = Flops(
        matmul=2.0 * spec.vocab_size * spec.d_model,
        other=LOSS_FLOPS_PER_ENTRY * spec.vocab_size + (spec.d_model if spec.positions != "none" else 0),
    )
    parameters = spec.vocab_size * spec.d_model * (1 if spec.tie_embeddings else 2) + (
        spec.seq_len * spec.d_model if spec.positions == "learned" else 0
    )
    for place, count in places.items():
        flops += per_place[place][0] * count
        parameters += per_place[place][1] * count
    return flops, parameters


def parameter_count(spec: ModelSpec, architecture: Architecture) -> int:
    """Every trainable parameter of the model: embeddings, layers, final program, head."""
    return model_cost(spec, architecture)[1]


def forward_flops(spec: ModelSpec, architecture: Architecture) -> Flops:
    return model_cost(spec, architecture)[0]


def training_flops(spec: ModelSpec, architecture: Architecture) -> float:
    """Training (forward + backward) FLOPs per token: the budget's and the reports' unit."""
    return TRAINING_MULTIPLIER * forward_flops(spec, architecture).total


def training_memory_bytes(spec: ModelSpec, architecture: Architecture, batch_size: int) -> float:
    """A rough upper estimate of one AdamW step's memory (fp32), to refuse an absurd request
    (a million layers, sequences of 10⁶) before anything is allocated: parameters, gradients
    and two moments, plus the activations autograd keeps, every instruction's output counted
    (attention maps at heads × seq_len per token, except inside the fused attention kernel,
    which never materialises them) and the logits three times."""
    places, programs = _runs(spec, architecture), architecture.programs()
    kept = sum(count * _walk(programs[place], spec).kept for place, count in places.items())
    per_token = kept + 3 * spec.vocab_size + 2 * spec.d_model
    return 4.0 * (4 * parameter_count(spec, architecture) + batch_size * spec.seq_len * per_token)
