"""Hand-written reference models for every seed, straight from reference/architectures.md.

Written independently of archevo (nothing from primitives/ or evaluator/ is imported), in
plain nanoGPT-style PyTorch, so that tests/test_seed_equivalence.py can check that each
seed program compiles to exactly the architecture the papers define.

    model = build_reference("primer_ez", vocab_size=512, d_model=64, n_layers=3, n_heads=4, seq_len=16)
    model.load_from(compiled)          # copy the compiled model's weights (by compiled name)
    logits, loss = model(idx, targets)

Conventions (the papers' and the seeds' shared frame): token embedding + learned absolute
positions, L blocks, a final norm (or none, or Fixup's scalar shift), lm_head tied to the
token embedding. d_ff = 4·d; GLU feed-forwards use round(2/3·32) = 21 units of d/8.

Each module states, in ``compiled_names``, what the archevo compiler calls its children and
parameters, and (``from_compiled``) how a compiled tensor maps onto its own layout (conv taps
are stored here current-token first, per-head gains as [H]). ``parameter_map`` composes these
into {reference parameter: (compiled parameter, transform)}; ``load_from`` insists that the
map is a bijection onto the compiled model's parameters, so no weight goes unchecked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

# Mesh-TensorFlow norms (Primer and Narang et al. T5 code) use ε = 1e-6:
# `sublayer_true_layer_norm(..., epsilon=1e-6)`, `sublayer_rms_norm` 1e-6, `sublayer_prime_norm` 1e-6.
MESH_TF_EPS = 1e-6
# PyTorch / fairseq / GPT-2 (`layer_norm_epsilon`) / GPT-J default.
TORCH_EPS = 1e-5
# SAS code: RMSNorm with ε = 1e-5 added to the RMS ("outside" the root).
SAS_EPS = 1e-5
SAS_BETA_FF = 0.1
PRIMER_TAPS = (0.5, 0.5 / 3, 0.5 / 3)  # w0 (time t), w1 (t-1), w2 (t-2)
SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    vocab_size: int = 4096
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    seq_len: int = 64
    block: str = "pre"  # pre | post | parallel | primer | rezero | fixup | sas | sas_p
    norm: str | None = "layernorm"  # layernorm | rmsnorm | None (inside the blocks)
    norm_eps: float = MESH_TF_EPS
    rms_eps_outside: bool = False  # SAS code: x / (rms + ε)
    final_norm: str | None = "layernorm"  # layernorm | rmsnorm | shift | None
    final_eps: float = MESH_TF_EPS
    activation: str = "relu"  # relu | relu2 | gelu | swish | elu | selu | sigmoid | softplus | linear
    glu: bool = False  # W_o [f(x W) ⊙ (x V)]; ``activation`` is f
    ffn_bias: bool = True
    dconv: bool = False  # Primer-EZ MDHA: depthwise conv after each of Q, K, V
    shared_qk: bool = False  # released Primer: K = DConv(x W^Q), Q = K W^Qs
    skip_gain: float = 1.0  # DeepNorm α (post-norm blocks)
    init: str = "default"  # default | deepnorm | fixup (how reset_parameters draws)
    mixer: str = "softmax"  # softmax | linear | gla | hyena (the token mixer in place of MHA)
    rotary: bool = False  # RoFormer rotation of Q and K (rotate-half layout), base 10^4
    qk_norm: bool = False  # RMS-normalise each head of Q and K, no gain
    kv_heads: int | None = None  # grouped-query attention: this many key/value heads
    rel_bias: bool = False  # T5 relative position bias (32 buckets, max distance 128)
    canon: bool = False  # residual Canon convolutions (kernel 4) at points A, B, C, D
    zero_out: bool = False  # the speedrun: W^O and W_2 start at zero

    @property
    def unit(self) -> int:
        return self.d_model // 8

    @property
    def d_ff(self) -> int:
        return 21 * self.unit if self.glu else 4 * self.d_model


#: Every seed of the library, as the papers define it (block shape, norms, FFN, widths).
_ACTIVATIONS = ("gelu", "swish", "elu", "selu", "sigmoid", "softplus")
_GLUS = {"glu": "sigmoid", "reglu": "relu", "geglu": "gelu", "swiglu": "swish", "liglu": "linear"}

_LLAMA = Config(norm="rmsnorm", final_norm="rmsnorm", activation="swish", glu=True, ffn_bias=False, rotary=True)

REFERENCES: dict[str, Config] = {
    # §2 Pre-LN (Primer LM1B baseline, Mesh-TF LayerNorm ε 1e-6, FFN biases, final LN)
    "transformer": Config(),
    # §2 Post-LN: x' = LN(x + MHA(x)); y = LN(x' + FFN(x')); no final norm
    "transformer_postln": Config(block="post", norm_eps=TORCH_EPS, final_norm=None),
    # §3 Primer-EZ: the vanilla baseline + squared ReLU + MDHA
    "primer_ez": Config(activation="relu2", dconv=True),
    # §3.2 MDHA alone: the vanilla baseline + depthwise convs after Q, K, V
    "mdha": Config(dconv=True),
    # §4 released Primer: shared QK, squared ReLU, pre-norm attention / post-norm FFN, prime norm ε 1e-6
    "primer": Config(block="primer", activation="relu2", shared_qk=True),
    # §6 parallel block (GPT-J / PaLM)
    "parallel": Config(block="parallel", norm_eps=TORCH_EPS, final_eps=TORCH_EPS),
    # §7 SAS / SAS-P (official code: RMSNorm ε 1e-5 outside, LN ln_f, MLP without biases)
    "sas": Config(
        block="sas", norm="rmsnorm", norm_eps=SAS_EPS, rms_eps_outside=True, final_eps=TORCH_EPS, ffn_bias=False
    ),
    "sas_p": Config(
        block="sas_p", norm="rmsnorm", norm_eps=SAS_EPS, rms_eps_outside=True, final_eps=TORCH_EPS, ffn_bias=False
    ),
    # §8 DeepNorm: LN(α x + G(x)), α = (2L)^¼ (set by build_reference), Post-LN, no final norm
    "deepnorm": Config(block="post", norm_eps=TORCH_EPS, final_norm=None, init="deepnorm"),
    # §5 Transformer++: RMSNorm (ε 1e-6) everywhere + SwiGLU with biases, d_ff · 2/3
    "transformer_pp": Config(norm="rmsnorm", final_norm="rmsnorm", activation="swish", glu=True),
    # Primer code: Transformer + squared ReLU
    "squared_relu": Config(activation="relu2"),
    # §9.2 Narang et al.
    **{name: Config(activation=name) for name in _ACTIVATIONS},
    **{name: Config(activation=gate, glu=True) for name, gate in _GLUS.items()},
    "rmsnorm": Config(norm="rmsnorm", final_norm="rmsnorm"),
    "rezero": Config(block="rezero", norm=None, final_norm=None),
    "rezero_ln": Config(block="rezero"),
    "rezero_rms": Config(block="rezero", norm="rmsnorm", final_norm="rmsnorm"),
    "fixup": Config(block="fixup", norm=None, final_norm="shift", ffn_bias=False, init="fixup"),
    # today's blocks: Llama (RMSNorm ε 1e-6, rotary, SwiGLU without biases), its GQA and Canon variants
    "llama": _LLAMA,
    "gqa": replace(_LLAMA, kv_heads=2),
    "canon": replace(_LLAMA, canon=True, block="canon"),
    # modded-nanogpt: QK-norm, rotary, ReLU², no biases, zero-initialised W^O and W_2
    "speedrun": Config(
        norm="rmsnorm",
        final_norm="rmsnorm",
        activation="relu2",
        ffn_bias=False,
        qk_norm=True,
        rotary=True,
        zero_out=True,
    ),
    # Primer's released configs: Primer-EZ with T5's relative position bias
    "primer_t5": Config(activation="relu2", dconv=True, rel_bias=True),
    # sub-quadratic token mixers in a Pre-LN (or Llama-style) block
    "linear_attention": Config(mixer="linear"),
    "gla": replace(_LLAMA, mixer="gla", rotary=False),
    "hyena_lite": Config(mixer="hyena"),
}


# --------------------------------------------------------------------------- pieces


class Mapped(nn.Module):
    """A module that knows the compiled names of its children / parameters."""

    compiled_names: ClassVar[dict[str, str]] = {}

    def from_compiled(self, local_name: str, tensor: torch.Tensor) -> torch.Tensor:
        return tensor


class RMSNorm(Mapped):
    """g ⊙ x / √(mean(x²) + ε), or g ⊙ x / (√mean(x²) + ε) with ``eps_outside`` (SAS code)."""

    def __init__(self, d: int, eps: float, eps_outside: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps, self.eps_outside = eps, eps_outside

    def forward(self, x):
        ms = (x * x).mean(dim=-1, keepdim=True)
        rms = torch.sqrt(ms) + self.eps if self.eps_outside else torch.sqrt(ms + self.eps)
        return self.weight * (x / rms)


def make_norm(config: Config, kind: str | None = None, eps: float | None = None) -> nn.Module:
    kind = config.norm if kind is None else kind
    eps = config.norm_eps if eps is None else eps
    if kind == "layernorm":
        return nn.LayerNorm(config.d_model, eps=eps)
    if kind == "rmsnorm":
        return RMSNorm(config.d_model, eps, config.rms_eps_outside)
    if kind is None:
        return nn.Identity()
    raise ValueError(kind)


def activation(name: str, z: torch.Tensor) -> torch.Tensor:
    """φ(z) written out from the definitions in §3.1 and §9.2."""
    if name == "relu":
        return torch.clamp(z, min=0)
    if name == "relu2":
        return torch.clamp(z, min=0) ** 2
    if name == "gelu":  # z·Φ(z), exact erf form
        return 0.5 * z * (1.0 + torch.erf(z / math.sqrt(2.0)))
    if name == "swish":
        return z * torch.sigmoid(z)
    if name == "elu":
        return torch.where(z > 0, z, torch.expm1(z))
    if name == "selu":
        return SELU_LAMBDA * torch.where(z > 0, z, SELU_ALPHA * torch.expm1(z))
    if name == "sigmoid":
        return 1.0 / (1.0 + torch.exp(-z))
    if name == "softplus":
        return torch.log1p(torch.exp(z))
    if name == "linear":
        return z
    raise ValueError(name)


class TapConv(Mapped):
    """Primer's causal depthwise conv: out[t, c] = Σ_lag taps[c, lag] · p[t − lag, c], p[t<0] = 0.

    ``taps[:, 0]`` weighs the current token. The compiled layout is Conv1d's [C, 1, k] with the
    oldest tap first, so taps[:, lag] = compiled[:, 0, k − 1 − lag].
    """

    compiled_names: ClassVar[dict[str, str]] = {"taps": "weight"}

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.taps = nn.Parameter(torch.tensor([list(PRIMER_TAPS)] * channels))
        assert kernel == len(PRIMER_TAPS)

    def from_compiled(self, local_name, tensor):
        return tensor[:, 0, :].flip(-1)

    def forward(self, p):  # p: [B, T, C]
        T = p.shape[1]
        delayed = [F.pad(p, (0, 0, lag, 0))[:, :T] for lag in range(self.taps.shape[1])]  # p[t − lag]
        return sum(self.taps[:, lag] * p_lag for lag, p_lag in enumerate(delayed))


class DepthwiseConv(Mapped):
    """A causal depthwise convolution as nn.Conv1d computes it (grouped, padded on both sides, the
    first T outputs kept): weight [C, 1, k] oldest tap first, Conv1d's and the compiled layout."""

    def __init__(self, channels: int, kernel: int, init_std: float | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels, 1, kernel))
        with torch.no_grad():
            if init_std is None:  # Primer's taps on the three newest positions
                self.weight[:, 0, -len(PRIMER_TAPS) :] = torch.tensor(PRIMER_TAPS[::-1])
            else:
                self.weight.normal_(0.0, init_std)

    def forward(self, x):  # x: [B, T, C]
        k = self.weight.shape[-1]
        return F.conv1d(x.transpose(1, 2), self.weight, padding=k - 1, groups=x.shape[-1])[..., : x.shape[1]].transpose(
            1, 2
        )


class Canon(Mapped):
    """Allen-Zhu's Canon layer: h + DepthwiseConv₄(h), the convolution initialised near zero."""

    compiled_names: ClassVar[dict[str, str]] = {}

    def __init__(self, channels: int):
        super().__init__()
        self.conv = DepthwiseConv(channels, 4, init_std=0.02)

    def forward(self, h):
        return h + self.conv(h)


def rotate(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """RoFormer's rotation of [B, H, T, d] in the rotate-half layout, as a complex product:
    z_i = x_i + i·x_{i+d/2} is multiplied by e^{i·t·θ_i}, θ_i = base^(-2i/d)."""
    d, T = x.shape[-1], x.shape[-2]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64)[: d // 2] / d)
    turn = torch.polar(
        torch.ones(T, d // 2, dtype=torch.float64), torch.arange(T, dtype=torch.float64)[:, None] * theta
    )
    z = torch.complex(x[..., : d // 2].double(), x[..., d // 2 :].double()) * turn
    return torch.cat([z.real, z.imag], dim=-1).to(x.dtype)


def rms_per_head(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps)


class RelativePositionBias(Mapped):
    """T5's relative attention bias (Hugging Face's ``_relative_position_bucket``, unidirectional):
    an Embedding-style table [buckets, H]; the compiled op stores it as [H, buckets]."""

    def __init__(self, n_heads: int, buckets: int = 32, max_distance: int = 128):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(buckets, n_heads) * 0.02)
        self.buckets, self.max_distance = buckets, max_distance

    def from_compiled(self, local_name, tensor):
        return tensor.t()

    def bucket(self, T: int) -> torch.Tensor:
        relative = torch.arange(T)[None, :] - torch.arange(T)[:, None]  # memory − query position
        n = -torch.min(relative, torch.zeros_like(relative))
        max_exact = self.buckets // 2
        large = max_exact + (
            torch.log(n.float() / max_exact) / math.log(self.max_distance / max_exact) * (self.buckets - max_exact)
        ).to(torch.long)
        large = torch.min(large, torch.full_like(large, self.buckets - 1))
        return torch.where(n < max_exact, n, large)

    def forward(self, T: int) -> torch.Tensor:
        return self.weight[self.bucket(T)].permute(2, 0, 1)  # [H, T, T]


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    B, T, C = x.shape
    return x.view(B, T, n_heads, C // n_heads).transpose(1, 2)  # [B, H, T, d_k]


def merge_heads(y: torch.Tensor) -> torch.Tensor:
    B, H, T, dk = y.shape
    return y.transpose(1, 2).contiguous().view(B, T, H * dk)


def causal_softmax_attention(q, k, n_heads, mask, bias=None):
    """softmax(Q_h K_hᵀ / √d_k (+ B_h) + M) per head: [B, H, T, T] (q, k already split when 4-d)."""
    q, k = (t if t.dim() == 4 else split_heads(t, n_heads) for t in (q, k))
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.shape[-1]))
    T = q.shape[2]
    if bias is not None:
        att = att + bias
    att = att.masked_fill(mask[:T, :T] == 0, float("-inf"))
    return F.softmax(att, dim=-1)


class CausalSelfAttention(Mapped):
    """MHA(X) = concat_h softmax(Q_h K_hᵀ/√d_k + M) V_h · W^O, no biases.

    ``dconv``: Primer-EZ's MDHA, Q, K, V each through their own depthwise conv.
    ``shared_qk``: released Primer, R = DConv(X W^Q), K = R, Q = R W^Qs, V = DConv(X W^V).
    ``kv_heads``: grouped-query attention, K and V with fewer heads, each shared by consecutive
    query heads; ``canon``: Canon-B, h + DConv₄(h) after each projection; then ``qk_norm``
    (RMS per head) and ``rotary`` on Q and K; ``rel_bias``: T5's bias added to the logits.
    """

    compiled_names: ClassVar[dict[str, str]] = {
        "w_q": "q",
        "w_k": "k",
        "w_v": "v",
        "w_o": "proj",
        "conv_q": "q_conv",
        "conv_k": "k_conv",
        "conv_v": "v_conv",
        "w_qk": "qk",
        "conv_qk": "k",
        "w_qs": "q",  # shared QK: R = k(qk(x)), Q = q(R)
        "canon_q": "q_canon",
        "canon_k": "k_canon",
        "canon_v": "v_canon",
        "rel_bias": "biased",
    }

    def __init__(self, config: Config):
        super().__init__()
        d, self.n_heads = config.d_model, config.n_heads
        self.kv_heads = config.kv_heads or config.n_heads
        d_kv = d * self.kv_heads // self.n_heads
        self.shared_qk, self.dconv = config.shared_qk, config.dconv
        self.qk_norm, self.rotary = config.qk_norm, config.rotary
        if config.shared_qk:
            self.w_qk = nn.Linear(d, d, bias=False)
            self.conv_qk = TapConv(d)
            self.w_qs = nn.Linear(d, d, bias=False)
        else:
            self.w_q = nn.Linear(d, d, bias=False)
            self.w_k = nn.Linear(d, d_kv, bias=False)
            if config.dconv:
                self.conv_q, self.conv_k = TapConv(d), TapConv(d)
        self.w_v = nn.Linear(d, d_kv, bias=False)
        if config.dconv or config.shared_qk:
            self.conv_v = TapConv(d)
        if config.canon:
            self.canon_q, self.canon_k, self.canon_v = Canon(d).conv, Canon(d_kv).conv, Canon(d_kv).conv
        self.rel_bias = RelativePositionBias(config.n_heads) if config.rel_bias else None
        self.w_o = nn.Linear(d, d, bias=False)
        self.register_buffer("mask", torch.tril(torch.ones(config.seq_len, config.seq_len)), persistent=False)

    def forward(self, x):
        if self.shared_qk:
            k = self.conv_qk(self.w_qk(x))
            q = self.w_qs(k)
            v = self.conv_v(self.w_v(x))
        else:
            q, k, v = self.w_q(x), self.w_k(x), self.w_v(x)
            if hasattr(self, "canon_q"):
                q, k, v = q + self.canon_q(q), k + self.canon_k(k), v + self.canon_v(v)
            if self.dconv:
                q, k, v = self.conv_q(q), self.conv_k(k), self.conv_v(v)
        q, k, v = split_heads(q, self.n_heads), split_heads(k, self.kv_heads), split_heads(v, self.kv_heads)
        if self.qk_norm:
            q, k = rms_per_head(q), rms_per_head(k)
        if self.rotary:
            q, k = rotate(q), rotate(k)
        share = self.n_heads // self.kv_heads
        k, v = k.repeat_interleave(share, dim=1), v.repeat_interleave(share, dim=1)
        bias = self.rel_bias(x.shape[1]) if self.rel_bias is not None else None
        att = causal_softmax_attention(q, k, self.n_heads, self.mask, bias)
        return self.w_o(merge_heads(att @ v))


class LinearAttention(Mapped):
    """Katharopoulos et al.'s causal linear attention, φ(x) = elu(x) + 1, in its recurrent form:
    S_i = Σ_{j≤i} φ(k_j) v_jᵀ, z_i = Σ_{j≤i} φ(k_j), out_i = φ(q_i)ᵀ S_i / φ(q_i)ᵀ z_i."""

    compiled_names: ClassVar[dict[str, str]] = {"w_q": "q", "w_k": "k", "w_v": "v", "w_o": "proj"}

    def __init__(self, config: Config):
        super().__init__()
        d, self.n_heads = config.d_model, config.n_heads
        self.w_q, self.w_k, self.w_v, self.w_o = (nn.Linear(d, d, bias=False) for _ in range(4))

    def forward(self, x):
        q, k, v = (split_heads(w(x), self.n_heads) for w in (self.w_q, self.w_k, self.w_v))
        q, k = F.elu(q) + 1, F.elu(k) + 1
        state = torch.cumsum(k.unsqueeze(-1) * v.unsqueeze(-2), dim=2)  # [B, H, T, d_k, d_v]
        norm = torch.cumsum(k, dim=2)  # [B, H, T, d_k]
        out = (q.unsqueeze(-1) * state).sum(-2) / (q * norm).sum(-1, keepdim=True)
        return self.w_o(merge_heads(out))


class GatedLinearAttention(Mapped):
    """GLA's mixer with a data-dependent decay per head, run as its recurrence:
    S_t = α_t S_{t−1} + k_t v_tᵀ, o_t = q_tᵀ S_t / √d, α_t = σ(mean of the head's channels of
    x_t W_g)^(1/16); then y = W_o (RMS-per-head(o) ⊙ swish(x W_r))."""

    compiled_names: ClassVar[dict[str, str]] = {
        "w_q": "q",
        "w_k": "k",
        "w_v": "v",
        "w_g": "g",
        "w_r": "r",
        "w_o": "proj",
    }

    def __init__(self, config: Config):
        super().__init__()
        d, self.n_heads = config.d_model, config.n_heads
        self.w_q, self.w_k, self.w_v, self.w_g, self.w_r, self.w_o = (nn.Linear(d, d, bias=False) for _ in range(6))

    def forward(self, x):
        q, k, v, g = (split_heads(w(x), self.n_heads) for w in (self.w_q, self.w_k, self.w_v, self.w_g))
        alpha = torch.sigmoid(g.mean(-1)) ** (1 / 16)  # [B, H, T]
        state = torch.zeros(*q.shape[:2], q.shape[-1], v.shape[-1], dtype=x.dtype)
        outs = []
        for t in range(x.shape[1]):
            state = alpha[:, :, t, None, None] * state + k[:, :, t, :, None] * v[:, :, t, None, :]
            outs.append((q[:, :, t, :, None] * state).sum(-2) / math.sqrt(q.shape[-1]))
        o = rms_per_head(torch.stack(outs, dim=2))
        r = self.w_r(x)
        return self.w_o(merge_heads(o) * (r * torch.sigmoid(r)))


class HyenaLite(Mapped):
    """Order-2 Hyena with short filters: a, b, v = DConv₃(x W_a), DConv₃(x W_b), DConv₃(x W_v);
    y = W_o (a ⊙ DConv₁₅(b ⊙ v)), every convolution starting from Primer's taps."""

    compiled_names: ClassVar[dict[str, str]] = {
        "w_a": "a",
        "w_b": "b",
        "w_v": "v",
        "conv_a": "a_conv",
        "conv_b": "b_conv",
        "conv_v": "v_conv",
        "conv_long": "long",
        "w_o": "proj",
    }

    def __init__(self, config: Config):
        super().__init__()
        d = config.d_model
        self.w_a, self.w_b, self.w_v, self.w_o = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.conv_a, self.conv_b, self.conv_v = (DepthwiseConv(d, 3) for _ in range(3))
        self.conv_long = DepthwiseConv(d, 15)

    def forward(self, x):
        a, b, v = self.conv_a(self.w_a(x)), self.conv_b(self.w_b(x)), self.conv_v(self.w_v(x))
        return self.w_o(a * self.conv_long(b * v))


MIXERS: dict[str, type[nn.Module]] = {
    "softmax": CausalSelfAttention,
    "linear": LinearAttention,
    "gla": GatedLinearAttention,
    "hyena": HyenaLite,
}


def make_mixer(config: Config) -> nn.Module:
    return MIXERS[config.mixer](config)


class ShapedAttention(Mapped):
    """SAS's MHÂ (§7.1-7.2): Â_h = α_h I + β_h A_h − γ_h C applied to the heads of the values,
    no W^P; the values are x itself, or in the first layer x (α_V I + β_V ΔW)."""

    compiled_names: ClassVar[dict[str, str]] = {
        "w_q": "q",
        "w_k": "k",
        "w_v_delta": "value_delta",
        "alpha_v": "value_skip",
        "beta_v": "value_resid",
    }

    def __init__(self, config: Config, first_layer: bool):
        super().__init__()
        d, H, T = config.d_model, config.n_heads, config.seq_len
        self.n_heads, self.first_layer = H, first_layer
        self.w_q = nn.Linear(d, d, bias=True)
        self.w_k = nn.Linear(d, d, bias=True)
        self.alpha = nn.Parameter(torch.ones(H))
        self.beta = nn.Parameter(torch.ones(H))
        self.gamma = nn.Parameter(torch.ones(H))
        if first_layer:
            self.w_v_delta = nn.Linear(d, d, bias=False)
            self.alpha_v = nn.Parameter(torch.tensor(1.0))
            self.beta_v = nn.Parameter(torch.tensor(1.0))
        mask = torch.tril(torch.ones(T, T))
        self.register_buffer("mask", mask, persistent=False)
        # C: the map zero logits give under the causal mask, C_ij = 1/i for j ≤ i (rows from 1)
        self.register_buffer("centre", mask / torch.arange(1, T + 1, dtype=torch.float32)[:, None], persistent=False)

    def from_compiled(self, local_name, tensor):
        return tensor.reshape(-1) if local_name in ("alpha", "beta", "gamma") else tensor

    def forward(self, x):
        T = x.shape[1]
        A = causal_softmax_attention(self.w_q(x), self.w_k(x), self.n_heads, self.mask)
        eye = torch.eye(T, dtype=x.dtype, device=x.device)
        shaped = (
            self.alpha[:, None, None] * eye
            + self.beta[:, None, None] * A
            - self.gamma[:, None, None] * self.centre[:T, :T]
        )
        values = x
        if self.first_layer:  # x W^V_1 with W^V_1 = α_V I + β_V ΔW
            values = self.alpha_v * x + self.beta_v * self.w_v_delta(x)
        return merge_heads(shaped @ split_heads(values, self.n_heads))


class MLP(Mapped):
    """FFN(x) = W_2 φ(W_1 x + b_1) + b_2, or the GLU form W_o [f(x W + b) ⊙ (x V + c)] + b_o.

    ``hidden_shift``: Fixup's W_2 (φ(W_1 x) + b′) with one learned scalar b′.
    """

    compiled_names: ClassVar[dict[str, str]] = {
        "c_fc": "up",
        "c_gate": "gate",
        "c_proj": "down",
        "shift": "shift",
        "canon_gate": "gate_canon",
        "canon_fc": "up_canon",
    }

    def __init__(self, config: Config, hidden_shift: bool = False):
        super().__init__()
        d, d_ff, bias = config.d_model, config.d_ff, config.ffn_bias
        self.act, self.glu = config.activation, config.glu
        if config.glu:
            self.c_gate = nn.Linear(d, d_ff, bias=bias)
        self.c_fc = nn.Linear(d, d_ff, bias=bias)
        self.c_proj = nn.Linear(d_ff, d, bias=bias)
        self.shift = nn.Parameter(torch.tensor(0.0)) if hidden_shift else None
        self.canon = config.canon and config.glu  # Canon-D: h + DConv₄(h) on both GLU projections
        if self.canon:
            self.canon_gate, self.canon_fc = Canon(d_ff).conv, Canon(d_ff).conv

    def forward(self, x):
        if self.canon:
            gate, up = self.c_gate(x), self.c_fc(x)
            h = activation(self.act, gate + self.canon_gate(gate)) * (up + self.canon_fc(up))
        elif self.glu:
            h = activation(self.act, self.c_gate(x)) * self.c_fc(x)
        else:
            h = activation(self.act, self.c_fc(x))
        if self.shift is not None:
            h = h + self.shift
        return self.c_proj(h)


# --------------------------------------------------------------------------- blocks


class PreNormBlock(Mapped):
    """x' = x + MHA(Norm(x)); y = x' + FFN(Norm(x'))."""

    compiled_names: ClassVar[dict[str, str]] = {"ln_1": "norm1", "ln_2": "norm2"}

    def __init__(self, config: Config, index: int):
        super().__init__()
        self.ln_1, self.attn = make_norm(config), make_mixer(config)
        self.ln_2, self.mlp = make_norm(config), MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class CanonBlock(Mapped):
    """Canon-A and Canon-C: x' = x + MHA(C_A(Norm(x))); y = x' + FFN(C_C(Norm(x'))), C(h) = h + DConv₄(h)."""

    compiled_names: ClassVar[dict[str, str]] = {
        "ln_1": "norm1",
        "ln_2": "norm2",
        "canon_a": "norm1_canon",
        "canon_c": "norm2_canon",
    }

    def __init__(self, config: Config, index: int):
        super().__init__()
        self.ln_1, self.canon_a, self.attn = make_norm(config), Canon(config.d_model).conv, make_mixer(config)
        self.ln_2, self.canon_c, self.mlp = make_norm(config), Canon(config.d_model).conv, MLP(config)

    def forward(self, x):
        n = self.ln_1(x)
        x = x + self.attn(n + self.canon_a(n))
        n = self.ln_2(x)
        return x + self.mlp(n + self.canon_c(n))


class PostNormBlock(Mapped):
    """x' = LN(α x + MHA(x)); y = LN(α x' + FFN(x')): Post-LN (α = 1) or DeepNorm."""

    compiled_names: ClassVar[dict[str, str]] = {"ln_1": "h", "ln_2": "y"}

    def __init__(self, config: Config, index: int):
        super().__init__()
        self.alpha = config.skip_gain
        self.attn, self.ln_1 = CausalSelfAttention(config), make_norm(config)
        self.mlp, self.ln_2 = MLP(config), make_norm(config)

    def forward(self, x):
        x = self.ln_1(self.alpha * x + self.attn(x))
        return self.ln_2(self.alpha * x + self.mlp(x))


class ParallelBlock(Mapped):
    """n = Norm(x); y = x + MHA(n) + FFN(n)."""

    compiled_names: ClassVar[dict[str, str]] = {"ln": "norm"}

    def __init__(self, config: Config, index: int):
        super().__init__()
        self.ln, self.attn, self.mlp = make_norm(config), CausalSelfAttention(config), MLP(config)

    def forward(self, x):
        n = self.ln(x)
        return x + self.attn(n) + self.mlp(n)


class PrimerBlock(Mapped):
    """Released Primer's alternating norms: h = x + MHA(Norm(x)); y = h + Norm(FFN(h))."""

    compiled_names: ClassVar[dict[str, str]] = {"ln_1": "norm1", "ln_2": "norm2"}

    def __init__(self, config: Config, index: int):
        super().__init__()
        self.ln_1, self.attn = make_norm(config), CausalSelfAttention(config)
        self.mlp, self.ln_2 = MLP(config), make_norm(config)

    def forward(self, x):
        h = x + self.attn(self.ln_1(x))
        return h + self.ln_2(self.mlp(h))


class ReZeroBlock(Mapped):
    """y = x + a·F(Norm(x)) per sublayer, a a learned scalar (init 0); Norm may be none."""

    compiled_names: ClassVar[dict[str, str]] = {
        "ln_1": "norm1",
        "attn": "attention",
        "a_attn": "gain1",
        "ln_2": "norm2",
        "mlp": "ffn",
        "a_mlp": "gain2",
    }

    def __init__(self, config: Config, index: int):
        super().__init__()
        self.ln_1, self.attn = make_norm(config), CausalSelfAttention(config)
        self.ln_2, self.mlp = make_norm(config), MLP(config)
        self.a_attn = nn.Parameter(torch.tensor(0.0))
        self.a_mlp = nn.Parameter(torch.tensor(0.0))

    def forward(self, x):
        x = x + self.a_attn * self.attn(self.ln_1(x))
        return x + self.a_mlp * self.mlp(self.ln_2(x))


class FixupBlock(Mapped):
    """y = x + s·F(x + b) per sublayer (scalars b init 0, s init 1); FFN W_2(φ(W_1 x) + b′)."""

    compiled_names: ClassVar[dict[str, str]] = {
        "b_attn": "bias1",
        "attn": "attention",
        "s_attn": "scale1",
        "b_mlp": "bias2",
        "mlp": "ffn",
        "s_mlp": "scale2",
    }

    def __init__(self, config: Config, index: int):
        super().__init__()
        self.attn, self.mlp = CausalSelfAttention(config), MLP(config, hidden_shift=True)
        self.b_attn, self.s_attn = nn.Parameter(torch.tensor(0.0)), nn.Parameter(torch.tensor(1.0))
        self.b_mlp, self.s_mlp = nn.Parameter(torch.tensor(0.0)), nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        x = x + self.s_attn * self.attn(x + self.b_attn)
        return x + self.s_mlp * self.mlp(x + self.b_mlp)


class SASBlock(Mapped):
    """SAS (App. B, Eqs. 12-13): h = β_SA·MHÂ(Norm_1(x)); y = α_FF·h + β_FF·MLP(Norm_2(h))."""

    compiled_names: ClassVar[dict[str, str]] = {
        "ln_1": "norm1",
        "ln_2": "norm2",
        "beta_sa": "attn_gain",
        "beta_ff": "mlp_gain",
        "alpha_ff": "mlp_skip",
    }

    def __init__(self, config: Config, index: int):
        super().__init__()
        self.ln_1, self.attn = make_norm(config), ShapedAttention(config, first_layer=index == 0)
        self.ln_2, self.mlp = make_norm(config), MLP(config)
        self.beta_sa = nn.Parameter(torch.tensor(1.0))
        self.beta_ff = nn.Parameter(torch.tensor(SAS_BETA_FF))
        self.alpha_ff = nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        h = self.beta_sa * self.attn(self.ln_1(x))
        return self.alpha_ff * h + self.beta_ff * self.mlp(self.ln_2(h))


class SASPBlock(Mapped):
    """SAS-P (§4.3): n = Norm(x); y = β_SA·MHÂ(n) + β_FF·MLP(n), no skip at all."""

    compiled_names: ClassVar[dict[str, str]] = {"ln": "norm1", "beta_sa": "attn_gain", "beta_ff": "mlp_gain"}

    def __init__(self, config: Config, index: int):
        super().__init__()
        self.ln, self.attn = make_norm(config), ShapedAttention(config, first_layer=index == 0)
        self.mlp = MLP(config)
        self.beta_sa = nn.Parameter(torch.tensor(1.0))
        self.beta_ff = nn.Parameter(torch.tensor(SAS_BETA_FF))

    def forward(self, x):
        n = self.ln(x)
        return self.beta_sa * self.attn(n) + self.beta_ff * self.mlp(n)


BLOCKS: dict[str, type[nn.Module]] = {
    "pre": PreNormBlock,
    "post": PostNormBlock,
    "parallel": ParallelBlock,
    "primer": PrimerBlock,
    "rezero": ReZeroBlock,
    "fixup": FixupBlock,
    "sas": SASBlock,
    "sas_p": SASPBlock,
    "canon": CanonBlock,
}


# --------------------------------------------------------------------------- the model


class ReferenceLM(Mapped):
    """wte + wpe → blocks → final norm / shift / nothing → tied lm_head."""

    compiled_names: ClassVar[dict[str, str]] = {"blocks": "layers", "ln_f": "final.final", "final_shift": "final.final"}

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.d_model)
        self.wpe = nn.Embedding(config.seq_len, config.d_model)
        self.blocks = nn.ModuleList([BLOCKS[config.block](config, i) for i in range(config.n_layers)])
        self.ln_f = None
        self.final_shift = None
        if config.final_norm == "shift":  # Fixup: the decoder's final stack applies a shift only
            self.final_shift = nn.Parameter(torch.tensor(0.0))
        elif config.final_norm is not None:
            self.ln_f = make_norm(config, config.final_norm, config.final_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        self.reset_parameters()

    # ----------------------------------------------------------------- forward

    def forward(self, idx, targets=None):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x)
        if self.ln_f is not None:
            x = self.ln_f(x)
        if self.final_shift is not None:
            x = x + self.final_shift
        logits = self.lm_head(x)
        if targets is None:
            return logits
        return logits, F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    # ----------------------------------------------------------------- initialisation (the papers')

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The initialisation each paper prescribes; N(0, 0.02²) (nanoGPT / SAS code) elsewhere."""
        c = self.config
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, 0.02)
        for block in self.blocks:
            attn = block.attn
            if isinstance(attn, ShapedAttention):  # §7.1-7.2: W^Q = 0, ΔW = 0
                nn.init.zeros_(attn.w_q.weight)
                if attn.first_layer:
                    nn.init.zeros_(attn.w_v_delta.weight)
            if c.zero_out:  # the speedrun: zero W^O and W_2
                nn.init.zeros_(attn.w_o.weight)
                nn.init.zeros_(block.mlp.c_proj.weight)
            if c.init == "deepnorm":  # §8.1: Xavier-normal, gain β on FFN, V, O; 1 on Q, K
                beta = (8 * c.n_layers) ** -0.25
                for linear, gain in (
                    (attn.w_q, 1.0),
                    (attn.w_k, 1.0),
                    (attn.w_v, beta),
                    (attn.w_o, beta),
                    (block.mlp.c_fc, beta),
                    (block.mlp.c_proj, beta),
                ):
                    nn.init.xavier_normal_(linear.weight, gain=gain)
            if c.init == "fixup":  # §9.2: He std · n_blocks^{-1/6} / ^{-1/2}, zero outputs
                n_blocks = 2 * c.n_layers
                he = math.sqrt(2.0 / c.d_model)
                for linear in (attn.w_q, attn.w_k, attn.w_v):
                    nn.init.normal_(linear.weight, 0.0, he * n_blocks ** (-1 / 6))
                nn.init.zeros_(attn.w_o.weight)
                nn.init.normal_(block.mlp.c_fc.weight, 0.0, he * n_blocks**-0.5)
                nn.init.zeros_(block.mlp.c_proj.weight)

    # ----------------------------------------------------------------- compiled weights

    def load_from(self, compiled: nn.Module) -> None:
        """Copy every weight of the compiled model in (the map must cover both sides exactly)."""
        params = dict(compiled.named_parameters())
        mapping = parameter_map(self)
        check_bijection(mapping, params)
        with torch.no_grad():
            own = dict(self.named_parameters())
            for name, (compiled_name, transform) in mapping.items():
                value = transform(params[compiled_name])
                if value.shape != own[name].shape:
                    raise ValueError(f"{name} {tuple(own[name].shape)} vs {compiled_name} {tuple(value.shape)}")
                own[name].copy_(value)


def parameter_map(model: nn.Module) -> dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor]]]:
    """{reference parameter name: (compiled parameter name, compiled tensor → reference layout)}.

    The tied lm_head is listed once, as wte.weight (named_parameters drops the duplicate)."""
    out = {}
    for name, _ in model.named_parameters():
        parts = name.split(".")
        module, compiled = model, []
        for part in parts[:-1]:
            compiled.append(getattr(module, "compiled_names", {}).get(part, part))
            module = getattr(module, part)
        leaf = parts[-1]
        compiled.append(getattr(module, "compiled_names", {}).get(leaf, leaf))
        owner = module

        def transform(tensor, owner=owner, leaf=leaf):
            return owner.from_compiled(leaf, tensor) if isinstance(owner, Mapped) else tensor

        out[name] = (".".join(compiled), transform)
    return out


def check_bijection(mapping: dict, compiled_params: dict) -> None:
    targets = [compiled for compiled, _ in mapping.values()]
    missing = sorted(set(targets) - set(compiled_params))
    unused = sorted(set(compiled_params) - set(targets))
    doubled = sorted({t for t in targets if targets.count(t) > 1})
    if missing or unused or doubled:
        raise ValueError(
            f"parameter map is not a bijection: reference names with no compiled parameter {missing}; "
            f"compiled parameters with no reference {unused}; mapped twice {doubled}"
        )


def reference_config(
    name: str,
    *,
    vocab_size: int = 4096,
    d_model: int = 128,
    n_layers: int = 2,
    n_heads: int = 4,
    seq_len: int = 64,
    **overrides,
) -> Config:
    """The seed's paper configuration at the given widths (DeepNorm's α = (2L)^¼ follows L)."""
    config = replace(
        REFERENCES[name], vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads, seq_len=seq_len
    )
    if name == "deepnorm":
        config = replace(config, skip_gain=(2 * n_layers) ** 0.25)
    return replace(config, **overrides)


def build_reference(name: str, **kwargs) -> ReferenceLM:
    return ReferenceLM(reference_config(name, **kwargs))
