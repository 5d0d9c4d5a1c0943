"""The driver's cheap gate before a candidate reaches a worker.

One small compile serves three checks: causality, the parameter limit (from the registry's
shapes at the campaign's size) and the functional fingerprint. The probe model keeps the
campaign's heads and depth pattern but is tiny, so the gate costs milliseconds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from primitives.cost import parameter_count
from primitives.graph import canonicalize
from primitives.program import Architecture, ModelSpec
from primitives.types import MODEL_UNITS
from primitives.validate import ProgramError

from .compile import causal_outputs, compile_model, randomize_parameters
from .runtime import LanguageModel

#: AutoML-Zero's fixed FEC seed (kFunctionalCacheRandomSeed).
PROBE_SEED = 235732282
PROBE_VOCAB, PROBE_SEQ, PROBE_BATCH = 64, 8, 2
#: Outputs are quantised to this many steps of their largest magnitude before hashing, so
#: floating-point reassociation does not split functionally equal programs.
QUANTUM = 1e4


class GateRejected(ProgramError):
    """A candidate that must not be trained (non-causal, too large, does not compile)."""


@dataclass(frozen=True)
class GateReport:
    parameters: int
    fingerprint: str


def probe_spec(spec: ModelSpec, architecture: Architecture) -> ModelSpec:
    """The smallest model with the campaign's heads in which every layer program runs once."""
    layers = len(architecture.prefix) + len(architecture.layers)
    return spec.model_copy(update={"vocab_size": PROBE_VOCAB, "seq_len": PROBE_SEQ, "d_model": MODEL_UNITS * spec.n_heads,
                                   "n_layers": layers})


def canonical_architecture(architecture: Architecture) -> Architecture:
    """Programs in canonical order, so equal programs create (and draw) parameters alike."""
    return architecture.model_copy(update={
        "prefix": [canonicalize(p) for p in architecture.prefix],
        "layers": [canonicalize(p) for p in architecture.layers],
        "final": canonicalize(architecture.final)})


def _quantised(outputs: torch.Tensor) -> bytes:
    """Each output row as integers relative to its largest magnitude, plus that magnitude's
    log-scale: reassociation noise vanishes, a change of scale (temperature) does not."""
    outputs = torch.nan_to_num(outputs.double(), nan=7.0, posinf=8.0, neginf=9.0)
    scale = outputs.abs().amax(dim=-1, keepdim=True).clamp_min(1e-30)
    shape = torch.round(outputs / scale * QUANTUM)
    magnitude = torch.round(torch.log2(scale) * QUANTUM)
    return torch.cat([shape, magnitude], dim=-1).to(torch.int64).numpy().tobytes()


def _stream_and_logits(model: LanguageModel, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The residual stream after the last layer, and the logits. The stream is what a next
    layer would read: a final norm can hide a change to it (a rescaled stream) from the logits."""
    for layer in model.layers:
        x = layer(x)
    return x, model.lm_head(model.final(x))


def probe(model: LanguageModel, spec: ModelSpec) -> str:
    """Check causality and return the functional fingerprint, in one forward pass.

    The fingerprint hashes per-example outputs (stream and logits) on a fixed probe batch with
    every parameter redrawn (so zero-initialised gates hide nothing), together with the
    parameters' initial values: two programs that compute the same function of the same
    parameters, starting from the same values, train alike. The redrawn pass also carries the
    causality check. The model is consumed."""
    generator = torch.Generator().manual_seed(PROBE_SEED)
    idx = torch.randint(spec.vocab_size, (PROBE_BATCH, spec.seq_len), generator=generator)
    with torch.no_grad():
        initial = torch.cat([p.flatten() for p in model.parameters()])
        randomize_parameters(model, generator)
        redrawn = causal_outputs(lambda x: _stream_and_logits(model, x), model.embed(idx), generator)
    digest = hashlib.sha256(_quantised(initial[None]))
    for outputs in redrawn:
        digest.update(_quantised(outputs))
    return digest.hexdigest()[:32]


def gate(spec: ModelSpec, architecture: Architecture, max_parameters: int | None = None) -> GateReport:
    """Check a validated candidate; raise GateRejected saying why it cannot be trained."""
    parameters = parameter_count(spec, architecture)
    if max_parameters is not None and parameters > max_parameters:
        raise GateRejected("architecture", f"{parameters:,} parameters exceed the limit of {max_parameters:,}")
    small = probe_spec(spec, architecture)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(PROBE_SEED)  # torch.manual_seed would also queue CUDA seeding
        try:
            return GateReport(parameters, probe(compile_model(small, canonical_architecture(architecture)), small))
        except ProgramError as error:
            raise GateRejected(error.where, error.message) from None
        except (RuntimeError, ValueError) as error:
            raise GateRejected("architecture", f"does not run: {str(error).splitlines()[0]}") from None
