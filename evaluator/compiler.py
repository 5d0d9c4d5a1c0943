"""Compile an architecture to a torch ``nn.Module`` through generated Python source.

As torch.fx's GraphModule does, the compiler writes source (one line per instruction,
parameters created in ``__init__``) and executes it. The same source is what ``export``
writes, so what was trained is what is exported. Only validated programs are compiled: op
names come from the registry and attribute values are validated literals, so no string from
a file or database is evaluated as code.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import itertools
import linecache
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn as nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from primitives.graph import fusable_attention
from primitives.interpret import Interpreter
from primitives.program import Architecture, Instruction, ModelSpec, Program, Subprogram
from primitives.registry import REGISTRY
from primitives.types import MODEL_UNITS, ValueType, seq
from primitives.validate import (
    ProgramError,
    infer_types,
    validate_architecture,
)

from . import runtime


class NonCausalError(ProgramError):
    """Outputs at position t change when tokens after t change."""


class NonFiniteProbe(NonCausalError):
    """Causality could not be checked: the outputs are not finite."""


@dataclass
class _Class:
    name: str
    init: list[str] = field(default_factory=list)
    forward: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    output: str = ""

    def source(self) -> str:
        init = "\n".join(f"        {line}" for line in self.init) or "        pass"
        forward = "\n".join(f"        {line}" for line in self.forward)
        return (
            f"class {self.name}(nn.Module):\n    def __init__(self):\n        super().__init__()\n{init}\n\n"
            f"    def forward(self, {', '.join(self.params)}):\n{forward}\n        return {self.output}\n"
        )


class _Generator:
    """Emits one class per (program, subprogram, input types): widths fix parameter shapes."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.classes: dict[tuple, _Class] = {}
        self._types: dict[int, dict] = {}  # id(program) → infer_types memo

    def program_class(self, program: Program, name: str, where: str) -> str:
        return self._class(program, 0, (seq(MODEL_UNITS),), name, where)

    def _class(self, program: Program, index: int, inputs: tuple[ValueType, ...], base: str, where: str) -> str:
        key = (id(program), index, inputs)
        if key in self.classes:
            return self.classes[key].name
        sub = program.subprograms[index]
        taken = {c.name for c in self.classes.values()}
        name = base if index == 0 else f"{base}_{sub.name}"
        name = next(n for n in itertools.chain([name], (f"{name}_{i}" for i in itertools.count(2))) if n not in taken)
        cls = self.classes[key] = _Class(name, params=list(sub.params), output=sub.output)
        types = infer_types(program, index, list(inputs), where, self._types.setdefault(id(program), {}))
        _ClassBody(self, program, cls, types, base, where).run(index, list(inputs))
        return name

    def _width(self, value: ValueType) -> int:
        return value.width * self.spec.unit if value.kind == "seq" else 1


class _ClassBody(Interpreter[ValueType]):
    """One class's ``__init__`` and ``forward``: an op becomes a line (and a module where it has
    parameters), a ``call`` a submodule of the callee's class; attention's three ops whose
    intermediates have no other use become one fused call."""

    def __init__(self, generator: _Generator, program: Program, cls: _Class, types: dict, base: str, where: str):
        super().__init__(program)
        self.generator, self.cls, self.types, self.base, self.where = generator, cls, types, base, where
        self.fused: dict[str, tuple[str, ...]] = {}

    def run(self, index: int, args, path: str = "") -> dict[str, ValueType]:
        self.fused = fusable_attention(self.program.subprograms[index])
        return super().run(index, args, path)

    def _named(self, sub: Subprogram, i: int, ins: Instruction) -> None:
        if hasattr(nn.Module, ins.out):
            raise ProgramError(
                f"{self.where}.{sub.name}[{i}] ({ins.out} = {ins.op})",
                f"the name {ins.out!r} clashes with torch.nn.Module.{ins.out}; rename the value",
            )

    def call(self, sub: Subprogram, i: int, ins: Instruction, args: list, path: str) -> ValueType:
        self._named(sub, i, ins)
        target = self.position[ins.attrs["target"]]
        callee = self.generator._class(self.program, target, tuple(args), self.base, self.where)
        self.cls.init.append(f"self.{ins.out} = {callee}()")
        self.cls.forward.append(f"{ins.out} = self.{ins.out}({', '.join(ins.inputs)})")
        return self.types[ins.out]

    def op(self, sub: Subprogram, i: int, ins: Instruction, inputs: list, path: str) -> ValueType:
        self._named(sub, i, ins)
        if ins.out in self.fused:
            q, k, v = self.fused[ins.out][:3]
            self.cls.forward.append(f"{ins.out} = _causal_attention({q}, {k}, {v}, {self.generator.spec.n_heads})")
        elif not any(ins.out == inner for group in self.fused.values() for inner in group[3:]):
            op = REGISTRY[ins.op]
            context: dict[str, Any] = {f"in{j}": name for j, name in enumerate(ins.inputs)}
            context.update({key: repr(value) for key, value in ins.attrs.items()})
            context.update(
                out=ins.out,
                heads=self.generator.spec.n_heads,
                d_out=self.generator._width(self.types[ins.out]),
                d_in=self.generator._width(inputs[0]) if inputs else 0,
            )
            if op.module:
                self.cls.init.append(f"self.{ins.out} = {op.module.format(**context)}")
            self.cls.forward.append(f"{ins.out} = {op.expr.format(**context)}")
        return self.types[ins.out]


def _model_sources(spec: ModelSpec, architecture: Architecture) -> list[str]:
    """The sources of the architecture's classes and of ``build_model()`` (they call the names
    of runtime.py), for a validated architecture."""
    if len(architecture.prefix) > spec.n_layers:
        raise ProgramError("prefix", f"{len(architecture.prefix)} prefix layers but the model has {spec.n_layers}")
    generator = _Generator(spec)
    class_of = {}
    for place, program in architecture.programs().items():
        base = place.replace("[", "").replace("]", "").capitalize()
        class_of[place] = generator.program_class(program, base, place)
    layers = [class_of[architecture.layer_place(i)] for i in range(spec.n_layers)]
    build = (
        f"def build_model():\n    return LanguageModel(\n"
        f"        vocab_size={spec.vocab_size}, d_model={spec.d_model}, seq_len={spec.seq_len},\n"
        f"        positions={spec.positions!r}, tie_embeddings={spec.tie_embeddings},\n"
        f"        layers=[{', '.join(f'{c}()' for c in layers)}],\n"
        f"        final={class_of['final']}(),\n    )\n"
    )
    return [c.source() for c in generator.classes.values()] + [build]


def generate_source(spec: ModelSpec, architecture: Architecture) -> str:
    """Standalone Python source: the runtime's building blocks, the classes, ``build_model()``."""
    runtime_source = inspect.getsource(runtime).split('"""', 2)[2].lstrip()
    # The docstring is repr()'s literal of the text: no stored string can end it early.
    header = repr(f"Generated by archevo from architecture {architecture.name!r}: {architecture.description}")
    return f"{header}\n\n{runtime_source}\n\n" + "\n\n".join(_model_sources(spec, validate_architecture(architecture)))


def compile_model(spec: ModelSpec, architecture: Architecture) -> runtime.LanguageModel:
    """Build the module from generated source (parameters initialised from torch's RNG).

    The classes run in runtime.py's own namespace: the same classes that ``generate_source``
    appends to a copy of runtime.py for export."""
    return _run(_model_sources(spec, validate_architecture(architecture)))["build_model"]()


def compile_program(
    spec: ModelSpec, program: Program, where: str = "program", blocks: dict[str, Callable] | None = None
) -> nn.Module:
    """One validated layer program alone, as a module from the residual stream to the residual
    stream (the gate probes programs one at a time). ``blocks`` replaces runtime.py's building
    blocks by name (the gate lends pre-built ones)."""
    generator = _Generator(spec)
    name = generator.program_class(program, "Program", where)
    return _run([c.source() for c in generator.classes.values()], blocks)[name]()


def _run(sources: list[str], blocks: dict[str, Callable] | None = None) -> dict:
    """Execute class sources in a copy of runtime.py's namespace. Each source is compiled once:
    a child shares most classes with its parent, and Python's compiler is the dearest step."""
    namespace = {**vars(runtime), **(blocks or {})}
    for source in sources:
        exec(_bytecode(source), namespace)
    return namespace


_BYTECODE_CACHE = 512
_LISTED: OrderedDict[str, None] = OrderedDict()  # generated files linecache knows, oldest first


@functools.lru_cache(maxsize=_BYTECODE_CACHE)
def _bytecode(source: str):
    """Compiled once per distinct source, under a name of its content that linecache can show:
    a traceback through a candidate's module prints the generated line that failed."""
    filename = f"<archevo {hashlib.sha1(source.encode()).hexdigest()[:12]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    _LISTED[filename] = None
    _LISTED.move_to_end(filename)
    while len(_LISTED) > _BYTECODE_CACHE:  # as bounded as the bytecode cache itself
        linecache.cache.pop(_LISTED.popitem(last=False)[0], None)
    return compile(source, filename, "exec")


def clear_compile_cache() -> None:
    """Forget every compiled source and its lines."""
    _bytecode.cache_clear()
    while _LISTED:
        linecache.cache.pop(_LISTED.popitem(last=False)[0], None)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, a tied embedding counted once."""
    return sum(p.numel() for p in model.parameters())


def torch_forward_flops(model: nn.Module, spec: ModelSpec) -> float:
    """Forward FLOPs per token by torch's FLOP counter: the cross-check of the registry's cost
    model (``primitives.cost``) on what torch counts, matrix products and convolutions.
    Attention runs on the math backend here, whose products torch sees (it counts none of
    the fused CPU kernel's)."""
    idx = torch.randint(spec.vocab_size, (1, spec.seq_len))
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(idx)
    return counter.get_total_flops() / spec.seq_len


def randomize_parameters(params: Iterable[torch.Tensor], generator: torch.Generator) -> None:
    """Redraw parameters (a module's ``parameters()``, say): gains and scalars around 1,
    matrices variance-preserving.

    Probes run on such a copy so that nothing hides behind a zero-initialised weight
    (Fixup's W^O, SAS's W^Q, ReZero's gains)."""
    params = list(params)
    sizes = [p.numel() for p in params]
    scale = torch.from_numpy(
        np.repeat(np.array([0.5 if p.dim() <= 1 else p[0].numel() ** -0.5 for p in params], dtype=np.float32), sizes)
    )
    offset = torch.from_numpy(
        np.repeat(np.array([1.0 if p.dim() <= 1 else 0.0 for p in params], dtype=np.float32), sizes)
    )
    with torch.no_grad():  # one draw for all of them
        torch.nn.utils.vector_to_parameters(torch.randn(sum(sizes), generator=generator) * scale + offset, params)


def check_causality(model: runtime.LanguageModel, spec: ModelSpec, seed: int = 0, draws: int = 3) -> None:
    """Raise NonCausalError if outputs at positions ≤ t depend on inputs after t, checked on a
    copy of the model as initialised and under ``draws`` random redraws of its parameters: one
    draw can saturate an activation and hide a path from the future that another exposes. A
    draw whose outputs are not finite tells nothing and is passed over (if even the initial
    parameters give non-finite outputs, training reports the divergence)."""
    probe = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    for draw in range(draws + 1):
        if draw:
            randomize_parameters(probe.parameters(), generator)
        x = torch.randn(2, spec.seq_len, spec.d_model, generator=generator)
        with torch.no_grad():
            try:
                causal_outputs(lambda inputs: (probe.body(inputs),), x, generator)
            except NonFiniteProbe:
                continue


def causal_outputs(
    body: Callable[[torch.Tensor], tuple[torch.Tensor, ...]], inputs: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, ...]:
    """``body(inputs)`` (a tuple of [batch, time, ...] tensors), checked for causality on the
    way: the same batch runs beside a copy whose positions after the middle position t are
    redrawn, and no output up to t may move. One forward pass of twice the batch; no backward."""
    return tuple(causal_half(output) for output in body(causal_pair(inputs, generator)))


def causal_pair(inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``inputs`` [batch, time, ...] followed by a copy whose positions after the middle are redrawn."""
    t = inputs.shape[1] // 2
    redrawn = inputs.clone()
    redrawn[:, t + 1 :] = torch.randn(redrawn[:, t + 1 :].shape, generator=generator, dtype=inputs.dtype)
    return torch.cat([inputs, redrawn])


def causal_half(output: torch.Tensor) -> torch.Tensor:
    """The outputs of the first half of a ``causal_pair`` batch, after checking that no output
    up to the middle position moved in the second half (on the CPU, in numpy: the gate's
    tensors are tiny, and numpy's per-call cost is a fraction of torch's)."""
    half = output.shape[0] // 2
    both = output.detach().float().cpu().numpy()
    t = both.shape[1] // 2
    before, after = both[:half, : t + 1], both[half:, : t + 1]
    if not np.isfinite(both[:, : t + 1]).all():
        raise NonFiniteProbe("architecture", "cannot check causality: the probe's outputs are not finite")
    leak, scale = float(np.abs(after - before).max()), float(np.abs(before).max())
    if leak > 1e-6 * max(scale, 1e-12):
        raise NonCausalError(
            "architecture",
            f"not causal: outputs at positions ≤ {t} depend on later tokens "
            f"(they move by {leak:.3g} at scale {scale:.3g})",
        )
    return output[:half]
