"""The seed library: every architecture of reference/architectures.md as a program.

Seeds follow Primer's conceptual initialisation: main calls an ``attention`` and an ``ffn``
subprogram, so mutations can act on concepts. Weights default to N(0, 0.02²) (nanoGPT/SAS
code) unless the architecture prescribes its own initialisation (SAS, DeepNorm, Fixup,
Primer's depthwise convolutions, ReZero's zero gains). GLU feed-forwards use 21 of the 32
units (round(2/3·32)), the closest parameter match the relative widths allow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from .builder import Builder
from .program import Architecture, ModelSpec, Program, Subprogram
from .registry import PRIMER_DCONV_INIT, constant, normal, xavier_normal, zeros
from .types import MODEL_UNITS
from .validate import ProgramError, parse_architecture, validate_architecture

D = MODEL_UNITS  # the residual stream: 8 units
D_FF = 4 * MODEL_UNITS  # the vanilla feed-forward width: 32 units
D_GLU = round(2 / 3 * D_FF)
#: Mesh-TF (Primer's and Narang et al.'s code) uses LayerNorm ε = 1e-6; GPT-2-style code 1e-5.
T5_EPS = 1e-6
#: Canon layers' residual depthwise convolutions start near zero, so each starts as the identity.
CANON_INIT = normal(0.02)


# --------------------------------------------------------------------------- sublayers


def attention(
    *,
    qk_init: dict = normal(),
    v_init: dict = normal(),
    out_init: dict = normal(),
    dconv: bool = False,
    shared_qk: bool = False,
    qk_norm: bool = False,
    rotary: bool = False,
    kv_groups: int = 1,
    relative_bias: bool = False,
    canon: bool = False,
) -> Subprogram:
    """Multi-head causal self-attention; ``dconv`` adds Primer's depthwise convs after Q, K, V;
    ``shared_qk`` is released Primer's K = DConv(x W^Q), Q = K W^Qs. ``canon`` adds residual
    Canon-B convolutions (kernel 4) after the projections, ``qk_norm`` then normalises each
    head of Q and K, ``rotary`` then rotates them; ``kv_groups`` > 1 shares each key/value head
    among that many query heads; ``relative_bias`` adds T5's bias to the logits."""
    b = Builder("attention")
    kv_width = D // kv_groups

    def project(name: str, width: int, init: dict) -> str:
        h = b.dense("x", width=width, init=init, out=name)
        if canon:
            h = b.add(h, b.dconv(h, kernel=4, init=CANON_INIT, out=f"{name}_canon"), out=f"{name}_c")
        return h

    if shared_qk:
        k = b.dconv(b.dense("x", width=D, init=qk_init, out="qk"), kernel=3, init=PRIMER_DCONV_INIT, out="k")
        q = b.dense(k, width=D, init=normal(), out="q")
    else:
        q, k = project("q", D, qk_init), project("k", kv_width, qk_init)
        if dconv:
            q = b.dconv(q, kernel=3, init=PRIMER_DCONV_INIT, out="q_conv")
            k = b.dconv(k, kernel=3, init=PRIMER_DCONV_INIT, out="k_conv")
    v = project("v", kv_width, v_init)
    if dconv or shared_qk:
        v = b.dconv(v, kernel=3, init=PRIMER_DCONV_INIT, out="v_conv")
    if kv_groups > 1:  # first, so that per-head ops below see the model's heads
        k = b.repeat_kv(k, groups=kv_groups, out="k_heads")
        v = b.repeat_kv(v, groups=kv_groups, out="v_heads")
    if qk_norm:
        q, k = b.head_rmsnorm(q, out="q_norm"), b.head_rmsnorm(k, out="k_norm")
    if rotary:
        q, k = b.rotary(q, out="q_rot"), b.rotary(k, out="k_rot")
    scores = b.attn_logits(q, k, out="scores")
    if relative_bias:
        scores = b.relative_bias(scores, out="biased")
    heads = b.attend(b.causal_softmax(scores, out="probs"), v, out="heads")
    return b.build(b.dense(heads, width=D, init=out_init, out="proj"))


def ffn(*activations: str, bias: bool = True, up_init: dict = normal(), down_init: dict = normal()) -> Subprogram:
    """W_2 φ(W_1 x + b_1) + b_2, φ the composition of ``activations`` (relu, square = ReLU²)."""
    b = Builder("ffn")
    h = b.dense("x", width=D_FF, bias=bias, init=up_init, out="up")
    for i, name in enumerate(activations):
        h = b.emit(name, h, out="act" if i == 0 else f"act{i + 1}")
    return b.build(b.dense(h, width=D, bias=bias, init=down_init, out="down"))


def glu_ffn(gate_activation: str | None, bias: bool = True, canon: bool = False) -> Subprogram:
    """Shazeer's GLU family: W_o [f(x W) ⊙ (x V)] (+ biases), f = None for the bilinear LiGLU;
    ``canon`` adds residual Canon-D convolutions (kernel 4) after W and V."""
    b = Builder("ffn")

    def project(name: str) -> str:
        h = b.dense("x", width=D_GLU, bias=bias, out=name)
        return b.add(h, b.dconv(h, kernel=4, init=CANON_INIT, out=f"{name}_canon"), out=f"{name}_c") if canon else h

    gate = project("gate")
    if gate_activation:
        gate = b.emit(gate_activation, gate, out="act")
    glu = b.mul(gate, project("up"), out="glu")
    return b.build(b.dense(glu, width=D, bias=bias, out="down"))


def linear_attention() -> Subprogram:
    """Causal linear attention (Katharopoulos et al., φ = elu + 1) in place of softmax attention."""
    b = Builder("attention")
    q, k, v = (b.dense("x", width=D, out=name) for name in ("q", "k", "v"))
    return b.build(b.dense(b.linear_attention(q, k, v, out="heads"), width=D, out="proj"))


def gated_linear_attention() -> Subprogram:
    """GLA's token mixer with a decay per head: o = W_o (HeadNorm(GLA(q, k, v, g)) ⊙ swish(x W_r))."""
    b = Builder("attention")
    q, k, v, g = (b.dense("x", width=D, out=name) for name in ("q", "k", "v", "g"))
    heads = b.head_rmsnorm(b.gated_linear_attention(q, k, v, g, out="heads"), out="heads_norm")
    gated = b.mul(heads, b.swish(b.dense("x", width=D, out="r"), out="r_act"), out="gated")
    return b.build(b.dense(gated, width=D, out="proj"))


def short_conv_mixer() -> Subprogram:
    """Hyena of order 2 with short filters only (no attention): y = W_o (a ⊙ DConv₁₅(b ⊙ v)),
    a, b, v each a projection through a kernel-3 depthwise convolution (H3 / Hyena's short conv)."""
    b = Builder("attention")
    a, gate, v = (b.dconv(b.dense("x", width=D, out=name), kernel=3, out=f"{name}_conv") for name in ("a", "b", "v"))
    long = b.dconv(b.mul(gate, v, out="bv"), kernel=15, out="long")
    return b.build(b.dense(b.mul(a, long, out="mixed"), width=D, out="proj"))


def canon_norm_layer(attn: Subprogram, mlp: Subprogram) -> Program:
    """Pre-RMSNorm block with residual Canon-A and Canon-C convolutions (kernel 4) on the
    normalised inputs of attention and the FFN (Allen-Zhu, Physics of LMs 4.1)."""
    b = Builder("main")

    def canon(value: str, name: str) -> str:
        return b.add(value, b.dconv(value, kernel=4, init=CANON_INIT, out=f"{name}_canon"), out=f"{name}_c")

    h = b.add("x", b.call("attention", canon(b.rmsnorm("x", out="norm1"), "norm1"), out="attn"), out="h")
    y = b.add(h, b.call("ffn", canon(b.rmsnorm(h, out="norm2"), "norm2"), out="mlp"), out="y")
    return _layer(b, y, attn, mlp)


def _layer(main: Builder, output: str, *subprograms: Subprogram) -> Program:
    return Program(subprograms=[main.build(output), *subprograms])


def final(norm: str | None, **attrs) -> Program:
    """The program after the stack: a final norm, a Fixup shift, or nothing."""
    b = Builder("main")
    return _layer(b, b.emit(norm, "x", out="final", **attrs) if norm else "x")


# --------------------------------------------------------------------------- block shapes


def pre_norm(norm: str, attn: Subprogram, mlp: Subprogram, **norm_attrs) -> Program:
    """x' = x + MHA(Norm(x)); y = x' + FFN(Norm(x'))."""
    b = Builder("main")
    h = b.add("x", b.call("attention", b.emit(norm, "x", out="norm1", **norm_attrs), out="attn"), out="h")
    y = b.add(h, b.call("ffn", b.emit(norm, h, out="norm2", **norm_attrs), out="mlp"), out="y")
    return _layer(b, y, attn, mlp)


def post_norm(attn: Subprogram, mlp: Subprogram, skip_gain: float | None = None) -> Program:
    """x' = LN(αx + MHA(x)); y = LN(αx' + FFN(x')): Post-LN, or DeepNorm with α = skip_gain."""
    b = Builder("main")

    def skip(value: str, out: str) -> str:
        return b.cmul(value, value=skip_gain, out=out) if skip_gain is not None else value

    h = b.layernorm(b.add(skip("x", "skip1"), b.call("attention", "x", out="attn"), out="sum1"), out="h")
    y = b.layernorm(b.add(skip(h, "skip2"), b.call("ffn", h, out="mlp"), out="sum2"), out="y")
    return _layer(b, y, attn, mlp)


def rezero(norm: str | None, attn: Subprogram, mlp: Subprogram, **norm_attrs) -> Program:
    """y = x + a·F(Norm(x)), a a learned scalar per sublayer starting at 0."""
    b = Builder("main")

    def sublayer(x: str, concept: str, i: int) -> str:
        inner = b.emit(norm, x, out=f"norm{i}", **norm_attrs) if norm else x
        gained = b.scale(b.call(concept, inner, out=concept), init=zeros(), out=f"gain{i}")
        return b.add(x, gained, out=f"h{i}")

    return _layer(b, sublayer(sublayer("x", "attention", 1), "ffn", 2), attn, mlp)


def fixup_layer(n_layers: int, d_model: int) -> Program:
    """Fixup as in Mesh-TF: y = x + s·F(x + b); He inits shrunk by the depth, zero output
    projections, FFN W_2(φ(W_1 x) + b′) without biases."""
    n_blocks = 2 * n_layers
    he = (2 / d_model) ** 0.5
    attn = attention(
        qk_init=normal(he * n_blocks ** (-1 / 6)), v_init=normal(he * n_blocks ** (-1 / 6)), out_init=zeros()
    )
    m = Builder("ffn")
    relu = m.relu(m.dense("x", width=D_FF, init=normal(he * n_blocks**-0.5), out="up"), out="act")
    mlp = m.build(m.dense(m.shift(relu, init=zeros(), out="shift"), width=D, init=zeros(), out="down"))
    b = Builder("main")

    def sublayer(x: str, concept: str, i: int) -> str:
        inner = b.call(concept, b.shift(x, init=zeros(), out=f"bias{i}"), out=concept)
        return b.add(x, b.scale(inner, init=constant(1.0), out=f"scale{i}"), out=f"h{i}")

    return _layer(b, sublayer(sublayer("x", "attention", 1), "ffn", 2), attn, mlp)


def parallel_layer() -> Program:
    """GPT-J/PaLM: n = LN(x); y = x + MHA(n) + FFN(n)."""
    b = Builder("main")
    n = b.layernorm("x", out="norm")
    both = b.add(b.call("attention", n, out="attn"), b.call("ffn", n, out="mlp"), out="branches")
    return _layer(b, b.add("x", both, out="y"), attention(), ffn("relu"))


def primer_layer() -> Program:
    """Released Primer: shared-QK MDHA, ReLU², pre-norm attention and post-norm FFN, LN ε 1e-6."""
    b = Builder("main")
    h = b.add("x", b.call("attention", b.layernorm("x", eps=T5_EPS, out="norm1"), out="attn"), out="h")
    y = b.add(h, b.layernorm(b.call("ffn", h, out="mlp"), eps=T5_EPS, out="norm2"), out="y")
    return _layer(b, y, attention(shared_qk=True), ffn("relu", "square"))


def shaped_attention(first_layer: bool) -> Subprogram:
    """SAS's MHÂ: Â_h = α_h I + β_h A_h − γ_h C applied to the heads of the input, no W^V or
    W^P; the first layer keeps a value matrix α_V·I + β_V·ΔW with ΔW = 0 at init."""
    b = Builder("attention")
    q = b.dense("x", width=D, bias=True, init=zeros(), out="q")
    k = b.dense("x", width=D, bias=True, init=normal(), out="k")
    probs = b.causal_softmax(b.attn_logits(q, k, out="scores"), out="probs")
    skip = b.head_scale(b.identity_map("x", out="eye"), init=constant(1.0), out="alpha")
    resid = b.head_scale(probs, init=constant(1.0), out="beta")
    centre = b.head_scale(b.uniform_causal_map("x", out="uniform"), init=constant(1.0), out="gamma")
    shaped = b.sub(b.add(skip, resid, out="skip_resid"), centre, out="shaped")
    values = "x"
    if first_layer:
        delta = b.dense("x", width=D, init=zeros(), out="value_delta")
        values = b.add(
            b.scale("x", init=constant(1.0), out="value_skip"),
            b.scale(delta, init=constant(1.0), out="value_resid"),
            out="values",
        )
    return b.build(b.attend(shaped, values, out="heads"))


SAS_NORM = {"eps": 1e-5, "eps_placement": "outside"}
SAS_MLP_GAIN = 0.1


def sas_layer(first_layer: bool, parallel: bool) -> Program:
    """SAS: h = β_SA·MHÂ(N(x)); y = α_FF·h + β_FF·MLP(N(h)). SAS-P: y = β_SA·MHÂ(n) + β_FF·MLP(n)."""
    mlp = ffn("relu", bias=False)
    b = Builder("main")
    n1 = b.rmsnorm("x", out="norm1", **SAS_NORM)
    attn = b.scale(b.call("attention", n1, out="attn"), init=constant(1.0), out="attn_gain")
    mlp_in = n1 if parallel else b.rmsnorm(attn, out="norm2", **SAS_NORM)
    mlp_out = b.scale(b.call("ffn", mlp_in, out="mlp"), init=constant(SAS_MLP_GAIN), out="mlp_gain")
    skip = attn if parallel else b.scale(attn, init=constant(1.0), out="mlp_skip")
    return _layer(b, b.add(skip, mlp_out, out="y"), shaped_attention(first_layer), mlp)


# --------------------------------------------------------------------------- the library


@dataclass(frozen=True)
class Seed:
    name: str
    description: str
    build: Callable[[ModelSpec], Architecture]


SEEDS: dict[str, Seed] = {}


def _seed(
    name: str,
    description: str,
    layers: Callable[[ModelSpec], list[Program]],
    final_program: Program,
    prefix: Callable[[ModelSpec], list[Program]] = lambda spec: [],
) -> None:
    def build(spec: ModelSpec) -> Architecture:
        return Architecture(
            name=name, description=description, prefix=prefix(spec), layers=layers(spec), final=final_program
        )

    SEEDS[name] = Seed(name, description, build)


def _pre_ln(*activations: str) -> Callable[[ModelSpec], list[Program]]:
    return lambda spec: [pre_norm("layernorm", attention(), ffn(*activations), eps=T5_EPS)]


T5_FINAL = final("layernorm", eps=T5_EPS)
LN_FINAL = final("layernorm")
RMS_FINAL = final("rmsnorm")
NO_FINAL = final(None)

_seed("transformer", "Pre-LN Transformer, ReLU FFN with biases, final LN", _pre_ln("relu"), T5_FINAL)
_seed(
    "transformer_postln",
    "Post-LN Transformer (Vaswani et al.), no final norm",
    lambda spec: [post_norm(attention(), ffn("relu"))],
    NO_FINAL,
)
_seed(
    "primer_ez",
    "Primer-EZ: Pre-LN + squared ReLU + depthwise convs after Q, K, V",
    lambda spec: [pre_norm("layernorm", attention(dconv=True), ffn("relu", "square"), eps=T5_EPS)],
    T5_FINAL,
)
_seed(
    "mdha",
    "Transformer with Primer's depthwise convs after Q, K and V (MDHA) and nothing else",
    lambda spec: [pre_norm("layernorm", attention(dconv=True), ffn("relu"), eps=T5_EPS)],
    T5_FINAL,
)
_seed(
    "primer",
    "released Primer: MDHA with shared QK, squared ReLU, pre/post norm",
    lambda spec: [primer_layer()],
    T5_FINAL,
)
_seed("parallel", "parallel block: x + MHA(LN x) + FFN(LN x)", lambda spec: [parallel_layer()], LN_FINAL)
_seed(
    "sas",
    "simplified attention sub-block (He & Hofmann): shaped attention, no V/P, no attention skip",
    lambda spec: [sas_layer(first_layer=False, parallel=False)],
    LN_FINAL,
    prefix=lambda spec: [sas_layer(first_layer=True, parallel=False)],
)
_seed(
    "sas_p",
    "SAS-P: parallel simplified block without any skip",
    lambda spec: [sas_layer(False, True)],
    LN_FINAL,
    prefix=lambda spec: [sas_layer(first_layer=True, parallel=True)],
)


def _deepnorm(spec: ModelSpec) -> list[Program]:
    alpha, beta = (2 * spec.n_layers) ** 0.25, (8 * spec.n_layers) ** -0.25
    attn = attention(qk_init=xavier_normal(1.0), v_init=xavier_normal(beta), out_init=xavier_normal(beta))
    mlp = ffn("relu", up_init=xavier_normal(beta), down_init=xavier_normal(beta))
    return [post_norm(attn, mlp, skip_gain=alpha)]


_seed("deepnorm", "DeepNet: LN(α·x + G(x)), α = (2L)^¼, Xavier gain β = (8L)^-¼ on FFN, V, O", _deepnorm, NO_FINAL)
_seed(
    "transformer_pp",
    "Transformer++: RMSNorm everywhere + SwiGLU (d_ff · 2/3)",
    lambda spec: [pre_norm("rmsnorm", attention(), glu_ffn("swish"))],
    RMS_FINAL,
)
_seed("squared_relu", "Transformer with squared ReLU in the FFN", _pre_ln("relu", "square"), T5_FINAL)
for _act in ("gelu", "swish", "elu", "selu", "sigmoid", "softplus"):
    _seed(_act, f"Transformer with {_act} in the FFN (Narang et al.)", _pre_ln(_act), T5_FINAL)


def _glu_layers(gate: str | None) -> Callable[[ModelSpec], list[Program]]:
    return lambda spec: [pre_norm("layernorm", attention(), glu_ffn(gate), eps=T5_EPS)]


for _name, _gate in (("glu", "sigmoid"), ("reglu", "relu"), ("geglu", "gelu"), ("swiglu", "swish"), ("liglu", None)):
    _seed(
        _name,
        f"Transformer with a {_name} FFN, d_ff · 2/3 for equal parameters (Shazeer)",
        _glu_layers(_gate),
        T5_FINAL,
    )
_seed(
    "rmsnorm",
    "Transformer with RMSNorm in place of every LayerNorm",
    lambda spec: [pre_norm("rmsnorm", attention(), ffn("relu"))],
    RMS_FINAL,
)
_seed(
    "rezero",
    "ReZero: y = x + a·F(x), a = 0 at init, no norms",
    lambda spec: [rezero(None, attention(), ffn("relu"))],
    NO_FINAL,
)
_seed(
    "rezero_ln",
    "ReZero + LayerNorm: y = x + a·F(LN x), final LN",
    lambda spec: [rezero("layernorm", attention(), ffn("relu"), eps=T5_EPS)],
    T5_FINAL,
)
_seed(
    "rezero_rms",
    "ReZero + RMSNorm: y = x + a·F(RMSNorm x), final RMSNorm",
    lambda spec: [rezero("rmsnorm", attention(), ffn("relu"))],
    RMS_FINAL,
)
_seed(
    "fixup",
    "Fixup: y = x + s·F(x + b), depth-scaled He init, zero output layers, no norms",
    lambda spec: [fixup_layer(spec.n_layers, spec.d_model)],
    final("shift"),
)


# today's blocks (2023-2026)
_seed(
    "llama",
    "Llama: pre-RMSNorm, rotary positions on Q and K, SwiGLU (d_ff · 2/3), no biases",
    lambda spec: [pre_norm("rmsnorm", attention(rotary=True), glu_ffn("swish", bias=False))],
    RMS_FINAL,
)
_seed(
    "speedrun",
    "modded-nanogpt speedrun block: pre-RMSNorm, QK-norm, rotary, squared ReLU, zero-initialised output projections",
    lambda spec: [
        pre_norm(
            "rmsnorm",
            attention(qk_norm=True, rotary=True, out_init=zeros()),
            ffn("relu", "square", bias=False, down_init=zeros()),
        )
    ],
    RMS_FINAL,
)
_seed(
    "canon",
    "Llama with residual Canon layers (causal depthwise convs, kernel 4) at points A, B, C and D",
    lambda spec: [canon_norm_layer(attention(rotary=True, canon=True), glu_ffn("swish", bias=False, canon=True))],
    RMS_FINAL,
)


def _kv_groups(spec: ModelSpec, kv_heads: int = 2) -> int:
    """Query heads per key/value head for ``kv_heads`` key/value heads (1 when they do not divide)."""
    groups = spec.n_heads // kv_heads if spec.n_heads % kv_heads == 0 else 1
    return groups if groups in (1, 2, 4, 8) else 1


_seed(
    "gqa",
    "Llama with grouped-query attention: 2 key/value heads shared by the query heads",
    lambda spec: [
        pre_norm("rmsnorm", attention(rotary=True, kv_groups=_kv_groups(spec)), glu_ffn("swish", bias=False))
    ],
    RMS_FINAL,
)
_seed(
    "primer_t5",
    "Primer-EZ with T5's relative position bias on the logits (Primer's released configs)",
    lambda spec: [pre_norm("layernorm", attention(dconv=True, relative_bias=True), ffn("relu", "square"), eps=T5_EPS)],
    T5_FINAL,
)
_seed(
    "linear_attention",
    "Transformer with causal linear attention (φ = elu + 1) in place of softmax attention",
    lambda spec: [pre_norm("layernorm", linear_attention(), ffn("relu"), eps=T5_EPS)],
    T5_FINAL,
)
_seed(
    "gla",
    "gated linear attention (decay per head, head norm, swish output gate) + SwiGLU, pre-RMSNorm",
    lambda spec: [pre_norm("rmsnorm", gated_linear_attention(), glu_ffn("swish", bias=False))],
    RMS_FINAL,
)
_seed(
    "hyena_lite",
    "attention-free: short depthwise convolutions with multiplicative gating (H3 / Hyena order 2)",
    lambda spec: [pre_norm("layernorm", short_conv_mixer(), ffn("relu"), eps=T5_EPS)],
    T5_FINAL,
)


def ablated(sublayer: Literal["attention", "ffn"], spec: ModelSpec | None = None) -> Architecture:
    """The Transformer with one sublayer deleted from every layer (not a seed): what short
    budgets reward, and what the cost bounds and the task screen must rule out."""
    kept = {"attention": ffn("relu"), "ffn": attention()}[sublayer]
    b = Builder("main")
    y = b.add("x", b.call(kept.name, b.layernorm("x", eps=T5_EPS, out="norm"), out="branch"), out="y")
    return validate_architecture(
        Architecture(
            name=f"no_{sublayer}",
            description=f"the Transformer without {sublayer}",
            layers=[Program(subprograms=[b.build(y), kept])],
            final=T5_FINAL,
        )
    )


def seed(name: str, spec: ModelSpec | None = None) -> Architecture:
    """The named seed at ``spec`` (default ModelSpec), validated and normalised."""
    if name not in SEEDS:
        raise KeyError(f"unknown seed {name!r}; the library has: {', '.join(SEEDS)}")
    return validate_architecture(SEEDS[name].build(spec or ModelSpec()))


def resolve(reference: str, spec: ModelSpec | None = None) -> Architecture:
    """A seed name or the path of an architecture JSON file → a validated architecture.

    Raises ProgramError (one line) for a bad file, KeyError for a name that is neither."""
    path = Path(reference)
    if reference in SEEDS:
        return seed(reference, spec)
    if path.suffix == ".json" or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ProgramError(reference, f"cannot read: {error.strerror}") from None
        except UnicodeDecodeError as error:
            raise ProgramError(reference, f"not UTF-8 text (byte {error.start}): an architecture is JSON") from None
        try:
            return parse_architecture(text)
        except ProgramError as error:
            raise ProgramError(f"{reference}: {error.where}" if error.where else reference, error.message) from None
    raise KeyError(f"{reference!r} is neither a seed ({', '.join(SEEDS)}) nor a .json file")
