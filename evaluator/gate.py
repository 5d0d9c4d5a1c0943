"""The driver's cheap gate before a candidate reaches a worker.

The probe checks causality and computes the functional fingerprint, one layer program at a
time: each distinct program is compiled once at a tiny width and kept, so a child costs one
compile (its mutated program) and one forward through its programs. Programs are probed as
they are, not in canonical form: a structural duplicate (a reordering, dead code) never
reaches the gate, the campaign's hash lookup catches it first.
The parameter limit comes from the registry's shapes at the campaign's size.
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from primitives.cost import parameter_count
from primitives.program import Architecture, ModelSpec, Program
from primitives.registry import REGISTRY
from primitives.types import MODEL_UNITS
from primitives.validate import ProgramError

from . import runtime
from .compiler import causal_half, causal_pair, compile_program, randomize_parameters

#: AutoML-Zero's fixed FEC seed (kFunctionalCacheRandomSeed).
PROBE_SEED = 235732282
PROBE_VOCAB, PROBE_SEQ, PROBE_BATCH = 64, 8, 2
#: Outputs are quantised to this many steps of their largest magnitude before hashing, so
#: floating-point reassociation does not split functionally equal programs.
QUANTUM = 1e4
#: Compiled probe programs kept (a population's programs and their recent children), and
#: building blocks kept for them.
CACHED_PROGRAMS, CACHED_BLOCKS = 128, 1024


class GateRejected(ProgramError):
    """A candidate that must not be trained (non-causal, too large, does not compile)."""


@dataclass(frozen=True)
class GateReport:
    fingerprint: str


def probe_spec(heads: int) -> ModelSpec:
    """The probe's frame: the campaign's heads at the smallest width that splits into them."""
    return ModelSpec(vocab_size=PROBE_VOCAB, seq_len=PROBE_SEQ, d_model=MODEL_UNITS * heads, n_heads=heads)


class BlockPool:
    """The probe's parameterised building blocks (runtime.py's Dense, norms, convolutions and
    parameters), each built once per distinct constructor call, and per repeat of that call
    within a program, then lent to every probe program that makes the same call.

    A block is built from a seed derived from its call, its initial values are digested, and
    then its parameters are redrawn (``randomize_parameters``, from the next seed) and kept:
    so a block holds the same values whichever program built it first, programs that share a
    block compute with the same parameters, and a probe never redraws. Building blocks was
    most of what compiling a program cost."""

    #: Every constructor an op's ``module`` template calls: a block not lent would escape the
    #: digest of initial values.
    NAMES = tuple(sorted({op.module.split("(")[0] for op in REGISTRY.values() if op.module}))

    def __init__(self, size: int):
        self.size = size
        self._blocks: OrderedDict[str, tuple[object, bytes]] = OrderedDict()  # call#repeat → (block, initial digest)

    def lenders(self, digests: list[bytes]) -> dict[str, Callable]:
        """Stand-ins for the building blocks for one program's build; they append the lent
        blocks' initial-value digests to ``digests`` in construction order."""
        repeats: Counter[str] = Counter()

        def lender(name: str) -> Callable:
            def lend(*args, **kwargs):
                call = f"{name}{args!r}{sorted(kwargs.items())!r}"
                repeats[call] += 1
                block, digest = self._block(f"{call}#{repeats[call]}", getattr(runtime, name), args, kwargs)
                digests.append(digest)
                return block

            return lend

        return {name: lender(name) for name in self.NAMES}

    def clear(self) -> None:
        self._blocks.clear()

    def _block(self, key: str, make: Callable, args: tuple, kwargs: dict) -> tuple[object, bytes]:
        if key in self._blocks:
            self._blocks.move_to_end(key)
            return self._blocks[key]
        seed = int.from_bytes(hashlib.blake2b(f"{PROBE_SEED}:{key}".encode(), digest_size=7).digest(), "big")
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)  # torch.manual_seed would also queue CUDA seeding
            block = make(*args, **kwargs)
        params = [block] if isinstance(block, torch.Tensor) else list(block.parameters())
        digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in params)).digest()
        randomize_parameters(params, torch.Generator().manual_seed(seed + 1))
        # float64 from here on: a reassociated sum (another machine's kernels, a reordered
        # program) moves a float32 output by ~1e-7, enough to cross a quantisation step somewhere
        # in the probe's outputs; in float64 by ~1e-16, so equal functions hash alike everywhere.
        if isinstance(block, torch.nn.Parameter):
            block = torch.nn.Parameter(block.detach().double(), requires_grad=block.requires_grad)
        else:
            block = block.double()
        self._blocks[key] = block, digest
        if len(self._blocks) > self.size:
            self._blocks.popitem(last=False)
        return block, digest


_POOL = BlockPool(CACHED_BLOCKS)


class ProbeProgram:
    """One program compiled at the probe's width from lent blocks, with the digest of its
    blocks' initial values."""

    def __init__(self, program: Program, spec: ModelSpec):
        digests: list[bytes] = []
        self.module = compile_program(spec, program, blocks=_POOL.lenders(digests))
        self.initial = hashlib.sha256(b"".join(digests)).digest()


@functools.lru_cache(maxsize=CACHED_PROGRAMS)
def _probe_program(program_json: str, heads: int) -> ProbeProgram:
    return ProbeProgram(Program.model_validate_json(program_json), probe_spec(heads))


@functools.lru_cache(maxsize=8)
def _frame(heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The probe's fixed input stream (a batch beside its causally redrawn copy) and its
    unembedding matrix, the same for every candidate."""
    spec = probe_spec(heads)
    generator = torch.Generator().manual_seed(PROBE_SEED)
    # Token embeddings as randomize_parameters draws them (std 1/√d); the head is tied to them.
    stream = torch.randn(PROBE_BATCH, spec.seq_len, spec.d_model, generator=generator) * spec.d_model**-0.5
    head = torch.randn(spec.vocab_size, spec.d_model, generator=generator) * spec.d_model**-0.5
    return causal_pair(stream, generator).double(), head.double()


def clear_gate_caches() -> None:
    """Forget the probe's compiled programs, lent blocks and fixed frames."""
    _probe_program.cache_clear()
    _frame.cache_clear()
    _POOL.clear()


def _quantised(outputs: np.ndarray) -> bytes:
    """Each output row as integers relative to its largest magnitude, plus that magnitude's
    log-scale: reassociation noise vanishes, a change of scale (temperature) does not."""
    outputs = outputs.astype(np.float64)
    if not np.isfinite(outputs).all():
        outputs = np.nan_to_num(outputs, nan=7.0, posinf=8.0, neginf=9.0)
    scale = np.maximum(np.abs(outputs).max(axis=-1, keepdims=True), 1e-30)
    return (
        np.concatenate([np.round(outputs / scale * QUANTUM), np.round(np.log2(scale) * QUANTUM)], axis=-1)
        .astype(np.int64)
        .tobytes()
    )


def probe(spec: ModelSpec, architecture: Architecture) -> str:
    """Check causality and return the functional fingerprint, in one forward pass.

    Every distinct program (prefix, layers, final) runs once, in that order, on a fixed random
    stream; the unembedding turns the result into logits. The fingerprint hashes the stream
    and the logits per example under redrawn parameters (so zero-initialised gates hide
    nothing), together with the parameters' initial values: two programs that compute the
    same function of the same parameters, starting from the same values, train alike. The
    stream is hashed beside the logits because a final norm can hide a change to it (a
    rescaled stream) that the next layer of a deeper model would see."""
    stream, head = _frame(spec.n_heads)
    digest = hashlib.sha256()
    with torch.no_grad():
        for program in [*architecture.prefix, *architecture.layers]:
            compiled = _probe_program(program.model_dump_json(), spec.n_heads)
            digest.update(compiled.initial)
            stream = compiled.module(stream)
        final = _probe_program(architecture.final.model_dump_json(), spec.n_heads)
        digest.update(final.initial)
        for outputs in (stream, final.module(stream) @ head.T):
            digest.update(_quantised(causal_half(outputs).numpy()))
    return digest.hexdigest()[:32]


def gate(spec: ModelSpec, architecture: Architecture, max_parameters: int | None = None) -> GateReport:
    """Check a validated candidate; raise GateRejected saying why it cannot be trained."""
    if len(architecture.prefix) > spec.n_layers:
        raise GateRejected("prefix", f"{len(architecture.prefix)} prefix layers but the model has {spec.n_layers}")
    if max_parameters is not None:  # counted only against a limit: the worker reports the count
        parameters = parameter_count(spec, architecture)
        if parameters > max_parameters:
            raise GateRejected("architecture", f"{parameters:,} parameters exceed the limit of {max_parameters:,}")
    try:
        return GateReport(probe(spec, architecture))
    except ProgramError as error:
        raise GateRejected(error.where, error.message) from None
    except (RuntimeError, ValueError) as error:
        raise GateRejected("architecture", f"does not run: {str(error).splitlines()[0]}") from None
