"""Every seed compiles to exactly the architecture of its paper.

For each seed of primitives.seeds, the compiled model is compared with a hand-written
reference (tests/reference_models.py, written from reference/architectures.md without any
archevo code): after every weight is redrawn at random (zero inits such as SAS's W^Q, Fixup's
W^O and ReZero's gains would otherwise hide whole branches) and copied across by name, the
logits, the loss and every gradient must agree in float32. Parameter counts are checked
against the reference and against closed forms; initialisations against the papers; and the
causality check must pass every seed and reject a program that attends without a mask.
"""

from __future__ import annotations

import copy
import zlib

import pytest
import torch

from evaluator.compiler import (
    NonCausalError,
    check_causality,
    compile_model,
    count_parameters,
)
from primitives.builder import Builder
from primitives.program import Architecture, ModelSpec, Program
from primitives.seeds import SEEDS, seed
from tests.reference_models import REFERENCES, RMSNorm, build_reference, parameter_map

#: Small but complete: 3 layers so SAS's distinct first layer and the cycling of layers[0] both run.
SPEC = ModelSpec(vocab_size=512, d_model=64, n_layers=3, n_heads=4, seq_len=16)
DEFAULT = ModelSpec()
RTOL = 1e-5
ALL_SEEDS = list(SEEDS)


def _spec_kwargs(spec: ModelSpec) -> dict:
    return dict(
        vocab_size=spec.vocab_size,
        d_model=spec.d_model,
        n_layers=spec.n_layers,
        n_heads=spec.n_heads,
        seq_len=spec.seq_len,
    )


def _generator(name: str, salt: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(name.encode()) + salt)


def _gain_like(p: torch.Tensor) -> bool:
    """Scalars, vectors, and per-head [H, 1, 1] gains."""
    return p.dim() <= 1 or all(s == 1 for s in p.shape[1:])


@torch.no_grad()
def _perturb(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Redraw every parameter: matrices and kernels ~ N(0, 1/fan_in); biases and shifts around 0,
    gains around 1 (± 0.1·noise), so that no branch is switched off by its initialisation."""
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=generator)
        leaf = name.rsplit(".", 1)[-1]
        if not _gain_like(p):
            p.copy_(noise / p[0].numel() ** 0.5)
        elif leaf.startswith("bias") or leaf == "shift" or name == "final.final":  # Fixup: bias1, shift, final
            p.copy_(0.1 * noise)
        else:
            p.copy_(1.0 + 0.1 * noise)


def _pair(name: str, spec: ModelSpec = SPEC, overrides: dict | None = None, perturb: bool = True):
    torch.manual_seed(zlib.crc32(name.encode()))
    model = compile_model(spec, seed(name, spec))
    if perturb:
        _perturb(model, _generator(name))
    reference = build_reference(name, **_spec_kwargs(spec), **(overrides or {}))
    reference.load_from(model)
    return model, reference


def _run(model: torch.nn.Module, idx: torch.Tensor, targets: torch.Tensor):
    logits, loss = model(idx, targets)
    loss.backward()
    return logits.detach(), loss.detach(), {n: p.grad for n, p in model.named_parameters()}


def _compare(name: str) -> None:
    """float32 forward and backward of both models; what they compute must agree to RTOL of each
    tensor's scale, plus (for sums that cancel, such as a scalar gain's gradient) ten times the
    round-off that float32 itself puts on the reference, measured against a float64 copy."""
    model, reference = _pair(name)
    reference64 = copy.deepcopy(reference).double()
    generator = _generator(name, salt=1)
    idx = torch.randint(SPEC.vocab_size, (3, SPEC.seq_len), generator=generator)
    targets = torch.randint(SPEC.vocab_size, (3, SPEC.seq_len), generator=generator)

    logits, loss, grads = _run(model, idx, targets)
    ref_logits, ref_loss, ref_grads = _run(reference, idx, targets)
    exact_logits, exact_loss, exact_grads = _run(reference64, idx, targets)
    assert torch.isfinite(ref_logits).all() and logits.dtype == torch.float32

    def close(actual, expected, exact, what):
        assert actual is not None and expected is not None, f"{what}: no gradient"
        roundoff = (expected.double() - exact).abs().max().item()
        scale = expected.abs().max().item()
        torch.testing.assert_close(
            actual, expected, rtol=RTOL, atol=RTOL * scale + 10 * roundoff, msg=lambda m: f"{what}: {m}"
        )

    close(logits, ref_logits, exact_logits, "logits")
    close(loss, ref_loss, exact_loss, "loss")
    mapping = parameter_map(reference)
    for ref_name, (compiled_name, transform) in mapping.items():
        close(
            transform(grads[compiled_name]),
            ref_grads[ref_name],
            exact_grads[ref_name],
            f"gradient of {compiled_name} (reference {ref_name})",
        )

    # Each norm on its own, on inputs of variance 1e-4 where ε (and where it sits) shows at the
    # percent level: inside the model a stream of variance ~1 hides a wrong ε below the tolerance.
    x = 0.01 * torch.randn(2, SPEC.seq_len, SPEC.d_model, generator=generator)
    with torch.no_grad():
        for ref_name, norm in reference.named_modules():
            if isinstance(norm, (torch.nn.LayerNorm, RMSNorm)):
                compiled_name = mapping[f"{ref_name}.weight"][0].rsplit(".", 1)[0]
                expected = norm(x)
                torch.testing.assert_close(
                    model.get_submodule(compiled_name)(x),
                    expected,
                    rtol=RTOL,
                    atol=RTOL * expected.abs().max().item(),
                    msg=lambda m, c=compiled_name, r=ref_name: f"norm {c} (reference {r}): {m}",
                )


# --------------------------------------------------------------------------- equivalence


def test_reference_covers_every_seed():
    assert set(REFERENCES) == set(SEEDS)


@pytest.mark.parametrize("name", ALL_SEEDS)
def test_seed_matches_reference(name):
    """Logits, loss and every gradient of the compiled seed equal the reference's (float32)."""
    _compare(name)


# --------------------------------------------------------------------------- parameter counts


def _closed_form(name: str, spec: ModelSpec) -> int:
    """Parameter counts written out from the equations (tied embeddings, learned positions)."""
    V, d, L, T, H, u = spec.vocab_size, spec.d_model, spec.n_layers, spec.seq_len, spec.n_heads, spec.unit
    emb = V * d + T * d
    attn = 4 * d * d  # W^Q, W^K, W^V, W^O, no biases
    ffn = d * 4 * d + 4 * d + 4 * d * d + d  # W_1, b_1, W_2, b_2
    ln = 2 * d
    g = 21 * u  # GLU width: round(2/3 · 32) units
    glu = 3 * d * g + 2 * g + d  # W, V, W_o and their biases
    transformer = emb + L * (attn + ffn + 2 * ln) + ln
    if name == "transformer":
        return transformer
    if name in ("transformer_postln", "deepnorm"):  # no final norm
        return transformer - ln
    if name in ("primer_ez", "mdha"):  # three 3-tap depthwise kernels of width d per layer
        return transformer + L * 9 * d
    if name == "primer":  # W^K → W^Qs, two dconvs (shared QK and V)
        return transformer + L * 6 * d
    if name == "swiglu":
        return emb + L * (attn + glu + 2 * ln) + ln
    if name == "transformer_pp":  # RMSNorm: gains only
        return emb + L * (attn + glu + 2 * d) + d
    if name in ("sas", "sas_p"):
        qk = 2 * d * d + 2 * d  # W^Q, W^K with biases; no W^V, no W^P
        mlp = 8 * d * d  # no biases
        shaped = 3 * H  # α_h, β_h, γ_h
        if name == "sas":  # 2 RMSNorms, β_SA, β_FF, α_FF
            layer = qk + shaped + mlp + 2 * d + 3
        else:  # 1 RMSNorm, β_SA, β_FF
            layer = qk + shaped + mlp + d + 2
        first_value = d * d + 2  # layer 1: ΔW, α_V, β_V
        return emb + L * layer + first_value + ln
    if name == "fixup":  # no biases or norms; 5 scalars a layer, final shift
        return emb + L * (attn + 8 * d * d + 5) + 1
    if name == "rezero":
        return emb + L * (attn + ffn + 2)
    raise KeyError(name)


CLOSED_FORM = [
    "transformer",
    "transformer_postln",
    "deepnorm",
    "primer_ez",
    "mdha",
    "primer",
    "swiglu",
    "transformer_pp",
    "sas",
    "sas_p",
    "fixup",
    "rezero",
]


@pytest.mark.parametrize("spec", [SPEC, DEFAULT], ids=["small", "default"])
@pytest.mark.parametrize("name", ALL_SEEDS)
def test_parameter_count_matches_reference(name, spec):
    model = compile_model(spec, seed(name, spec))
    reference = build_reference(name, **_spec_kwargs(spec))
    assert count_parameters(model) == sum(p.numel() for p in reference.parameters())
    if name in CLOSED_FORM:
        assert count_parameters(model) == _closed_form(name, spec)


def test_sas_parameter_saving_against_transformer():
    """SAS drops W^V, W^P (layers ≥ 2), the FFN and norm biases; adds Q/K biases, per-head gains and scalars."""
    d, L, H = DEFAULT.d_model, DEFAULT.n_layers, DEFAULT.n_heads
    transformer = count_parameters(compile_model(DEFAULT, seed("transformer", DEFAULT)))
    sas = count_parameters(compile_model(DEFAULT, seed("sas", DEFAULT)))
    assert transformer - sas == L * (2 * d * d + 5 * d - 3 * H - 3) - (d * d + 2)


def test_glu_width_is_21_units():
    model = compile_model(DEFAULT, seed("swiglu", DEFAULT))
    assert model.layers[0].mlp.up.weight.shape == (21 * DEFAULT.d_model // 8, DEFAULT.d_model)


# --------------------------------------------------------------------------- initialisation


@pytest.mark.parametrize("name", ALL_SEEDS)
def test_initialisation_matches_paper(name):
    """At init, constant parameters (gains, zero matrices, conv taps, biases) equal the paper's
    values exactly and random ones have the paper's standard deviation (to sampling error)."""
    model, _ = _pair(name, perturb=False)
    draws = []
    for salt in (7, 8):  # what differs between two draws of the reference is random, the rest fixed
        torch.manual_seed(zlib.crc32(name.encode()) + salt)
        draws.append(build_reference(name, **_spec_kwargs(SPEC)))
    compiled = dict(model.named_parameters())
    first, second = (dict(draw.named_parameters()) for draw in draws)
    for ref_name, (compiled_name, transform) in parameter_map(draws[0]).items():
        value = transform(compiled[compiled_name].detach())
        expected, other = first[ref_name].detach(), second[ref_name].detach()
        if torch.equal(expected, other):
            torch.testing.assert_close(value, expected, rtol=1e-6, atol=0, msg=lambda m, c=compiled_name: f"{c}: {m}")
        else:
            ratio = (value.std() / expected.std()).item()
            spread = max(0.1, 3 / value.numel() ** 0.5)  # 3σ of the ratio of two sample stds
            assert abs(ratio - 1) < spread, f"{compiled_name}: std {value.std():.4g}, paper {expected.std():.4g}"
            assert value.mean().abs() < 0.1 * expected.std(), f"{compiled_name}: mean {value.mean():.3g}"


@pytest.mark.parametrize("name", ["sas", "sas_p"])
def test_sas_attention_is_identity_at_init(name):
    """W^Q = 0 ⇒ A = C, and β = γ ⇒ Â = I: every shaped-attention sublayer passes its input through."""
    model = compile_model(SPEC, seed(name, SPEC))
    x = torch.randn(2, SPEC.seq_len, SPEC.d_model)
    for layer in model.layers:
        torch.testing.assert_close(layer.attn(x), x, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- causality


@pytest.mark.parametrize("name", ALL_SEEDS)
def test_seed_is_causal(name):
    check_causality(compile_model(SPEC, seed(name, SPEC)), SPEC)


@pytest.mark.parametrize("name", ["transformer", "primer", "sas"])
def test_reference_is_causal(name):
    """The references themselves: changing tokens after t leaves the logits up to t unchanged."""
    _, reference = _pair(name)
    idx = torch.randint(SPEC.vocab_size, (2, SPEC.seq_len), generator=_generator(name, 2))
    changed = idx.clone()
    t = SPEC.seq_len // 2
    changed[:, t + 1 :] = (changed[:, t + 1 :] + 1) % SPEC.vocab_size
    with torch.no_grad():
        torch.testing.assert_close(reference(idx)[:, : t + 1], reference(changed)[:, : t + 1], rtol=0, atol=1e-6)
        assert not torch.allclose(reference(idx)[:, t + 1 :], reference(changed)[:, t + 1 :])


def _attention_layer(normalise: str) -> Architecture:
    b = Builder("attention")
    q, k, v = (b.dense("x", width=8, out=n) for n in ("q", "k", "v"))
    weights = b.emit(normalise, b.attn_logits(q, k, out="scores"), out="weights")
    attn = b.build(b.dense(b.attend(weights, v, out="heads"), width=8, out="proj"))
    m = Builder("main")
    main = m.build(m.add("x", m.call("attention", "x", out="attn"), out="y"))
    final = Builder("main").build("x")
    return Architecture(
        name=f"attend_{normalise}", layers=[Program(subprograms=[main, attn])], final=Program(subprograms=[final])
    )


def test_unmasked_attention_is_not_causal():
    """attend on exp(attn_logits), which no mask touches, sees the future: rejected."""
    with pytest.raises(NonCausalError):
        check_causality(compile_model(SPEC, _attention_layer("exp")), SPEC)
    check_causality(compile_model(SPEC, _attention_layer("causal_softmax")), SPEC)  # the control passes
