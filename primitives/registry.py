"""The op registry: the one place an op is defined.

Each entry states its arity and input kinds, its attributes and their legal values, its
output type rule, its learned parameters (shapes; initialisation is an attribute), whether
and how it mixes positions, and the PyTorch code it compiles to. Validation, compilation,
cost, mutation and export all read this table; adding an op means adding one entry here.

Code templates are plain strings formatted by the compiler with: ``in0, in1`` (input
variable names), ``out`` (the instruction's name, also its parameter attribute), ``d_in``
and ``d_out`` (absolute widths), ``heads``, and every attribute by name (as a Python
literal). Templates call only ``torch``, ``F`` and the helpers of ``evaluator/runtime.py``;
forward-time helpers start with ``_``, which no value name may, so no value shadows one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from .types import COL, MAP, MAX_WIDTH, WIDTH_VOCABULARY, Kind, ValueType, seq


class OpError(ValueError):
    """A type or attribute error inside one instruction; the validator adds the location."""


# --------------------------------------------------------------------------- attributes

#: Initialisers and the numbers each one needs.
INIT_FIELDS: dict[str, tuple[str, ...]] = {
    "normal": ("std",),
    "zeros": (),
    "constant": ("value",),
    "identity": (),
    "xavier_normal": ("gain",),
    "taps": ("values",),
}


@dataclass(frozen=True)
class AttrSpec:
    """One attribute: its type, legal values and default.

    ``choices`` (ints and strings) lists every legal value; ints without choices are legal in
    [low, high] and draw from ``vocabulary`` when mutated; ``inits`` lists legal initialisers.
    ``log_scale`` floats (ε) are positive scales: mutation multiplies them by 10^X instead of
    Primer's c·10^X + Y, whose additive term would turn ε = 1e-5 into 0.3 or a negative.
    """

    kind: Literal["int", "float", "bool", "choice", "init"]
    default: Any
    doc: str = ""
    choices: tuple = ()
    low: float = -math.inf
    high: float = math.inf
    vocabulary: tuple = ()
    inits: tuple[str, ...] = ()
    log_scale: bool = False

    def check(self, value: Any) -> Any:
        """Return the value in canonical form, or raise OpError saying what is legal."""
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise OpError(f"expected true or false, got {value!r}")
            return value
        if self.kind == "init":
            return _check_init(value, self.inits)
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise OpError(f"expected an integer, got {value!r}")
        elif self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise OpError(f"expected a finite number, got {value!r}")
            value = float(value)
        if self.choices and value not in self.choices:
            raise OpError(f"{value!r} is not one of {', '.join(map(str, self.choices))}")
        if self.kind != "choice" and not self.low <= value <= self.high:
            raise OpError(f"{value!r} is outside [{self.low:g}, {self.high:g}]")
        return value


def _check_init(value: Any, allowed: tuple[str, ...]) -> dict:
    if not isinstance(value, dict) or "kind" not in value:
        raise OpError(f'expected an initialiser like {{"kind": "normal", "std": 0.02}}, got {value!r}')
    kind = value["kind"]
    if kind not in allowed:
        raise OpError(f"initialiser {kind!r} is not one of {', '.join(allowed)}")
    needed = INIT_FIELDS[kind]
    extra = set(value) - {"kind", *needed}
    if extra:
        raise OpError(f"initialiser {kind!r} takes {list(needed) or 'no fields'}, not {sorted(extra)}")
    out: dict[str, Any] = {"kind": kind}
    for name in needed:
        if name not in value:
            raise OpError(f"initialiser {kind!r} needs {name!r}")
        number = value[name]
        if name == "values":
            if not isinstance(number, list) or not number or not all(_is_number(v) for v in number):
                raise OpError(f"initialiser 'taps' needs a non-empty list of numbers, got {number!r}")
            out[name] = [float(v) for v in number]
        elif not _is_number(number):
            raise OpError(f"initialiser {kind!r}: {name} must be a number, got {number!r}")
        elif name in ("std", "gain") and number < 0:
            raise OpError(f"initialiser {kind!r}: {name} must be ≥ 0, got {number!r}")
        else:
            out[name] = float(number)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def normal(std: float = 0.02) -> dict:
    return {"kind": "normal", "std": std}


def zeros() -> dict:
    return {"kind": "zeros"}


def constant(value: float) -> dict:
    return {"kind": "constant", "value": value}


def xavier_normal(gain: float = 1.0) -> dict:
    return {"kind": "xavier_normal", "gain": gain}


def taps(*values: float) -> dict:
    """Depthwise-conv initialiser: values[0] weighs the current position, values[1] t-1, ..."""
    return {"kind": "taps", "values": list(values)}


#: Primer's MDHA initialiser: w0 = 0.5 on the current token, 0.5/3 on t-1 and t-2.
PRIMER_DCONV_INIT = taps(0.5, 0.5 / 3, 0.5 / 3)

WIDTH = AttrSpec("int", 8, "output width in units of d_model/8", low=1, high=MAX_WIDTH, vocabulary=WIDTH_VOCABULARY)
KERNEL = AttrSpec("int", 3, "kernel width along time (4: Canon layers)", choices=(3, 4, 7, 15, 31))
BIAS = AttrSpec("bool", False, "add a learned bias")
SCALAR_INIT = AttrSpec("init", constant(1.0), "initial value", inits=("constant", "zeros", "normal"))


# --------------------------------------------------------------------------- op table

Mixing = Literal["pointwise", "causal", "all_pairs"]
ParamShapes = Callable[[list[int], int, dict, int], dict[str, tuple[int, ...]]]


def _no_params(d_in: list[int], d_out: int, attrs: dict, heads: int) -> dict[str, tuple[int, ...]]:
    return {}


FlopRule = Callable[[list[int], int, dict, int, int], tuple[float, float]]
"""``flops(d_in, d_out, attrs, heads, seq_len)`` → forward FLOPs per token as ``(matmul, other)``.

Widths are elements per token: a [b, t, w] value has w, a column 1, an attention map
heads × seq_len. ``matmul`` is what torch's FLOP counter counts too (matrix products and
full convolutions, 2 per multiply-add); ``other`` is the elementwise work it treats as free,
one FLOP per elementary operation of the op's formula (a transcendental function is one).
Attention products count the full t × t square, as torch's counter does."""


def elementwise(per_element: float) -> FlopRule:
    """``per_element`` FLOPs for each output element."""
    return lambda d_in, d_out, attrs, heads, seq_len: (0.0, per_element * d_out)


def _free(d_in: list[int], d_out: int, attrs: dict, heads: int, seq_len: int) -> tuple[float, float]:
    return 0.0, 0.0


@dataclass(frozen=True)
class OpDef:
    """One primitive. ``inputs[i]`` lists the kinds input i accepts; ``infer`` gives the
    output type from the input types and attributes (raising OpError on a mismatch)."""

    name: str
    doc: str
    inputs: tuple[tuple[Kind, ...], ...]
    infer: Callable[[list[ValueType], dict], ValueType]
    expr: str
    flops: FlopRule
    attrs: dict[str, AttrSpec] = field(default_factory=dict)
    params: ParamShapes = _no_params
    module: str | None = None
    mixing: Mixing = "pointwise"
    commutative: bool = False
    group: str = "misc"

    @property
    def arity(self) -> int:
        return len(self.inputs)


ANY: tuple[Kind, ...] = ("seq", "col", "map")
SEQ_OR_COL: tuple[Kind, ...] = ("seq", "col")

REGISTRY: dict[str, OpDef] = {}


def _register(op: OpDef) -> None:
    assert op.name not in REGISTRY, op.name
    REGISTRY[op.name] = op


def _broadcast(types: list[ValueType], attrs: dict) -> ValueType:
    a, b = types
    if "map" in (a.kind, b.kind):
        if a.kind != b.kind:
            raise OpError(f"cannot combine {a} with {b}: attention maps combine only with maps")
        return MAP
    if a.kind == b.kind == "seq" and a.width != b.width:
        raise OpError(f"input widths differ: {a} vs {b}")
    return a if a.kind == "seq" else b


def _same(types: list[ValueType], attrs: dict) -> ValueType:
    return types[0]


def _reduce(types: list[ValueType], attrs: dict) -> ValueType:
    return COL


for _name, _expr, _comm in [
    ("add", "{in0} + {in1}", True),
    ("sub", "{in0} - {in1}", False),
    ("mul", "{in0} * {in1}", True),
    ("div", "{in0} / {in1}", False),
    ("max", "torch.maximum({in0}, {in1})", True),
    ("min", "torch.minimum({in0}, {in1})", True),
]:
    _register(
        OpDef(
            _name,
            f"elementwise {_name}; a [b,t,1] column broadcasts over width",
            (ANY, ANY),
            _broadcast,
            _expr,
            elementwise(1),
            commutative=_comm,
            group="binary",
        )
    )

# (name, code, doc, FLOPs per element: the elementary operations of the formula)
for _name, _expr, _doc, _cost in [
    ("abs", "torch.abs({in0})", "|x|", 1),
    ("square", "torch.square({in0})", "x²", 1),
    ("sqrt_abs", "torch.sqrt(torch.abs({in0}))", "√|x| (Primer's ABS_ROOT)", 2),
    ("exp", "torch.exp({in0})", "eˣ", 1),
    ("log_abs", "torch.log(torch.abs({in0}))", "log|x|", 2),
    ("recip", "torch.reciprocal({in0})", "1/x", 1),
    ("sign", "torch.sign({in0})", "sign(x)", 1),
    ("sin", "torch.sin({in0})", "sin(x)", 1),
    ("cos", "torch.cos({in0})", "cos(x)", 1),
    ("tanh", "torch.tanh({in0})", "tanh(x)", 1),
    ("sigmoid", "torch.sigmoid({in0})", "σ(x) = 1/(1 + e⁻ˣ)", 4),
    ("relu", "torch.relu({in0})", "max(0, x)", 1),
    ("gelu", "F.gelu({in0})", "x·Φ(x), exact erf form", 5),
    ("swish", "F.silu({in0})", "x·σ(x)", 5),
    ("elu", "F.elu({in0})", "x if x > 0 else eˣ − 1", 3),
    ("selu", "F.selu({in0})", "λ·ELU_α(x), λ ≈ 1.0507, α ≈ 1.6733", 5),
    ("softplus", "F.softplus({in0})", "log(1 + eˣ)", 3),
]:
    _register(OpDef(_name, _doc, (ANY,), _same, _expr, elementwise(_cost), group="unary"))


def _reduction_flops(d_in: list[int], d_out: int, attrs: dict, heads: int, seq_len: int) -> tuple[float, float]:
    return 0.0, float(d_in[0])


for _name, _expr in [
    ("red_mean", "{in0}.mean(-1, keepdim=True)"),
    ("red_sum", "{in0}.sum(-1, keepdim=True)"),
    ("red_max", "{in0}.amax(-1, keepdim=True)"),
    ("red_min", "{in0}.amin(-1, keepdim=True)"),
]:
    _register(
        OpDef(
            _name,
            f"{_name[4:]} over width, giving one value per position",
            (("seq",),),
            _reduce,
            _expr,
            _reduction_flops,
            group="reduction",
        )
    )

_register(
    OpDef(
        "cmul",
        "x · c for the instruction's constant c",
        (ANY,),
        _same,
        "{in0} * {value}",
        elementwise(1),
        attrs={"value": AttrSpec("float", 1.0, "the constant")},
        group="scalar",
    )
)


def _scalar(d_in: list[int], d_out: int, attrs: dict, heads: int) -> dict[str, tuple[int, ...]]:
    return {"": ()}


_register(
    OpDef(
        "scale",
        "x · s for a learned scalar s (ReZero's α, SAS's β, DeepNorm-free gains)",
        (ANY,),
        _same,
        "{in0} * self.{out}",
        elementwise(1),
        attrs={"init": SCALAR_INIT},
        params=_scalar,
        module="scalar_parameter({init})",
        group="scalar",
    )
)
_register(
    OpDef(
        "shift",
        "x + s for a learned scalar s (Fixup's bias)",
        (ANY,),
        _same,
        "{in0} + self.{out}",
        elementwise(1),
        attrs={"init": AttrSpec("init", zeros(), "initial value", inits=("constant", "zeros", "normal"))},
        params=_scalar,
        module="scalar_parameter({init})",
        group="scalar",
    )
)


def _dense_type(types: list[ValueType], attrs: dict) -> ValueType:
    if attrs["init"]["kind"] == "identity" and types[0].width != attrs["width"]:
        raise OpError(f"identity init needs equal widths, got {types[0].width} → {attrs['width']}")
    return seq(attrs["width"])


def _dense_params(d_in: list[int], d_out: int, attrs: dict, heads: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"weight": (d_out, d_in[0])}
    if attrs["bias"]:
        shapes["bias"] = (d_out,)
    return shapes


def _dense_flops(d_in: list[int], d_out: int, attrs: dict, heads: int, seq_len: int) -> tuple[float, float]:
    return 2.0 * d_in[0] * d_out, float(d_out if attrs["bias"] else 0)


_register(
    OpDef(
        "dense",
        "x·W (+ b): a projection to a relative width (Primer's CONV 1X1)",
        (("seq",),),
        _dense_type,
        "self.{out}({in0})",
        _dense_flops,
        attrs={
            "width": WIDTH,
            "bias": BIAS,
            "init": AttrSpec(
                "init",
                normal(0.02),
                "weight initialiser; the bias starts at 0",
                inits=("normal", "zeros", "xavier_normal", "identity"),
            ),
        },
        params=_dense_params,
        module="Dense({d_in}, {d_out}, bias={bias}, init={init})",
        group="layer",
    )
)


def _dconv_params(d_in: list[int], d_out: int, attrs: dict, heads: int) -> dict[str, tuple[int, ...]]:
    return {"weight": (d_in[0], 1, attrs["kernel"])}


def _dconv_flops(d_in: list[int], d_out: int, attrs: dict, heads: int, seq_len: int) -> tuple[float, float]:
    # compiled as a sum of shifted, scaled copies (elementwise work torch does not count)
    return 0.0, 2.0 * attrs["kernel"] * d_in[0]


def _dconv_type(types: list[ValueType], attrs: dict) -> ValueType:
    init = attrs["init"]
    if init["kind"] == "taps" and len(init["values"]) > attrs["kernel"]:
        raise OpError(f"{len(init['values'])} initial taps for a kernel of width {attrs['kernel']}")
    return types[0]


_register(
    OpDef(
        "dconv",
        "causal depthwise convolution along time: one kernel per channel (Primer's MDHA)",
        (("seq",),),
        _dconv_type,
        "self.{out}({in0})",
        _dconv_flops,
        attrs={
            "kernel": KERNEL,
            "init": AttrSpec(
                "init",
                PRIMER_DCONV_INIT,
                "kernel initialiser (taps: current position first)",
                inits=("taps", "normal", "constant"),
            ),
        },
        params=_dconv_params,
        module="DepthwiseCausalConv({d_in}, {kernel}, init={init})",
        mixing="causal",
        group="layer",
    )
)


def _conv_params(d_in: list[int], d_out: int, attrs: dict, heads: int) -> dict[str, tuple[int, ...]]:
    return {"weight": (d_out, d_in[0], attrs["kernel"])}


def _conv_flops(d_in: list[int], d_out: int, attrs: dict, heads: int, seq_len: int) -> tuple[float, float]:
    return 2.0 * attrs["kernel"] * d_in[0] * d_out, 0.0


_register(
    OpDef(
        "conv",
        "causal full convolution along time to a relative width (Primer's CONV Kx1)",
        (("seq",),),
        lambda types, attrs: seq(attrs["width"]),
        "self.{out}({in0})",
        _conv_flops,
        attrs={
            "width": WIDTH,
            "kernel": KERNEL,
            "init": AttrSpec("init", normal(0.02), "weight initialiser", inits=("normal", "zeros", "xavier_normal")),
        },
        params=_conv_params,
        module="CausalConv({d_in}, {d_out}, {kernel}, init={init})",
        mixing="causal",
        group="layer",
    )
)

_register(
    OpDef(
        "cumsum",
        "causal cumulative sum along time",
        (SEQ_OR_COL,),
        _same,
        "torch.cumsum({in0}, dim=1)",
        elementwise(1),
        mixing="causal",
        group="unary",
    )
)


def _norm_params(d_in: list[int], d_out: int, attrs: dict, heads: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"weight": (d_in[0],)}
    if attrs.get("bias"):
        shapes["bias"] = (d_in[0],)
    return shapes


def _layernorm_flops(d_in: list[int], d_out: int, attrs: dict, heads: int, seq_len: int) -> tuple[float, float]:
    # mean, centre, square, mean, normalise, gain (+ bias); the per-position root is negligible
    return 0.0, float((7 if attrs["bias"] else 6) * d_in[0])


_register(
    OpDef(
        "layernorm",
        "LayerNorm over width: g ⊙ (x − μ)/√(σ² + ε) + b, g = 1, b = 0 at init",
        (("seq",),),
        _same,
        "self.{out}({in0})",
        _layernorm_flops,
        attrs={
            "eps": AttrSpec("float", 1e-5, "ε inside the square root", low=0.0, high=1.0, log_scale=True),
            "bias": AttrSpec("bool", True, "learned b"),
        },
        params=_norm_params,
        module="LayerNorm({d_in}, eps={eps}, bias={bias})",
        group="norm",
    )
)
_register(
    OpDef(
        "rmsnorm",
        "RMSNorm over width: g ⊙ x/√(mean(x²) + ε); 'outside' puts ε on the RMS (SAS code)",
        (("seq",),),
        _same,
        "self.{out}({in0})",
        elementwise(4),  # square, mean, normalise, gain
        attrs={
            "eps": AttrSpec("float", 1e-6, "ε", low=0.0, high=1.0, log_scale=True),
            "eps_placement": AttrSpec(
                "choice", "inside", "ε inside the root or added to the RMS", choices=("inside", "outside")
            ),
        },
        params=_norm_params,
        module="RMSNorm({d_in}, eps={eps}, eps_placement={eps_placement})",
        group="norm",
    )
)


# --------------------------------------------------------------------------- attention


def _logits_type(types: list[ValueType], attrs: dict) -> ValueType:
    q, k = types
    if q.width != k.width:
        raise OpError(f"queries and keys differ in width: {q} vs {k}")
    return MAP


def _head_params(d_in: list[int], d_out: int, attrs: dict, heads: int) -> dict[str, tuple[int, ...]]:
    return {"": (heads, 1, 1)}


def _logits_flops(d_in: list[int], d_out: int, attrs: dict, heads: int, seq_len: int) -> tuple[float, float]:
    return 2.0 * seq_len * d_in[0], float(d_out)  # q·k over every key; the 1/√d scaling


def _attend_flops(d_in: list[int], d_out: int, attrs: dict, heads: int, seq_len: int) -> tuple[float, float]:
    return 2.0 * seq_len * d_in[1], 0.0


_register(
    OpDef(
        "attn_logits",
        "per-head scores q_h·k_hᵀ/√d_head (unmasked: apply causal_softmax before attend)",
        (("seq",), ("seq",)),
        _logits_type,
        "_attn_logits({in0}, {in1}, {heads})",
        _logits_flops,
        mixing="all_pairs",
        group="attention",
    )
)
_register(
    OpDef(
        "causal_softmax",
        "softmax over keys j ≤ i (the causal mask), per head",
        (("map",),),
        _same,
        "_causal_softmax({in0})",
        elementwise(5),  # max, subtract, exp, sum, divide
        mixing="causal",
        group="attention",
    )
)
_register(
    OpDef(
        "attend",
        "apply an attention map to values: head h of the output is map_h · v_h",
        (("map",), ("seq",)),
        lambda types, attrs: types[1],
        "_attend({in0}, {in1}, {heads})",
        _attend_flops,
        mixing="causal",
        group="attention",
    )
)
_register(
    OpDef(
        "identity_map",
        "the identity attention map I_T (the input only gives the sequence length)",
        (("seq",),),
        lambda types, attrs: MAP,
        "_identity_map({in0})",
        _free,
        group="attention",
    )
)
_register(
    OpDef(
        "uniform_causal_map",
        "the map zero logits give under the causal mask: C_ij = 1/i for j ≤ i",
        (("seq",),),
        lambda types, attrs: MAP,
        "_uniform_causal_map({in0})",
        _free,
        mixing="causal",
        group="attention",
    )
)
_register(
    OpDef(
        "head_scale",
        "a learned scalar per head times a map (shaped attention's α_h, β_h, γ_h)",
        (("map",),),
        _same,
        "self.{out} * {in0}",
        elementwise(1),
        attrs={"init": SCALAR_INIT},
        params=_head_params,
        module="head_parameter({heads}, {init})",
        group="attention",
    )
)


# --------------------------------------------------------------------------- positions and heads
# Ops of today's blocks (Llama, the modded-nanogpt speedrun, Canon layers, MAD's and STAR's
# sub-quadratic mixers). Per-head ops split a [b, t, w] value into the model's heads.


_register(
    OpDef(
        "rotary",
        "rotary position embedding per head (RoFormer; Llama's rotate-half layout): channel pair "
        "(i, i + d/2) of a head turns by t·base^(-2i/d) at position t",
        (("seq",),),
        _same,
        "_rotary({in0}, {heads}, {base})",
        elementwise(3),
        attrs={"base": AttrSpec("float", 10000.0, "the wavelength base", low=1.0, high=1e7, log_scale=True)},
        group="position",
    )
)
_register(
    OpDef(
        "head_rmsnorm",
        "RMS normalisation within each head, no gain (QK-norm, as the speedrun applies it)",
        (("seq",),),
        _same,
        "_head_rms_norm({in0}, {heads}, {eps})",
        elementwise(3),
        attrs={"eps": AttrSpec("float", 1e-6, "ε inside the root", low=0.0, high=1.0, log_scale=True)},
        group="attention",
    )
)


def _repeat_kv_type(types: list[ValueType], attrs: dict) -> ValueType:
    width = types[0].width * attrs["groups"]
    if width > MAX_WIDTH:
        raise OpError(f"repeating {types[0]} {attrs['groups']} times exceeds the width limit {MAX_WIDTH}")
    return seq(width)


_register(
    OpDef(
        "repeat_kv",
        "grouped-query attention's keys or values: a value of heads/groups heads, each repeated "
        "for the groups query heads that share it (Llama's repeat_kv; where groups does not "
        "divide the heads, the whole value is repeated)",
        (("seq",),),
        _repeat_kv_type,
        "_repeat_kv({in0}, {heads}, {groups})",
        _free,
        attrs={"groups": AttrSpec("int", 2, "query heads per key/value head", choices=(2, 4, 8))},
        group="attention",
    )
)
_register(
    OpDef(
        "softcap",
        "c·tanh(x/c): logit soft-capping (Gemma 2, the speedrun)",
        (ANY,),
        _same,
        "{cap} * torch.tanh({in0} / {cap})",
        elementwise(3),
        attrs={"cap": AttrSpec("float", 30.0, "the cap c", low=1e-2, high=1e4, log_scale=True)},
        group="attention",
    )
)


def _relative_bias_params(d_in: list[int], d_out: int, attrs: dict, heads: int) -> dict[str, tuple[int, ...]]:
    return {"weight": (heads, attrs["buckets"])}


_register(
    OpDef(
        "relative_bias",
        "T5's relative position bias on attention logits: a learned scalar per head and "
        "bucket of i − j (exact below buckets/2, log-spaced up to max_distance)",
        (("map",),),
        _same,
        "self.{out}({in0})",
        elementwise(1),
        attrs={
            "buckets": AttrSpec("int", 32, "number of buckets", choices=(16, 32, 64)),
            "max_distance": AttrSpec("int", 128, "distance of the last bucket", choices=(64, 128, 256)),
            "init": AttrSpec("init", normal(0.02), "initial biases", inits=("normal", "zeros")),
        },
        params=_relative_bias_params,
        module="RelativeBias({heads}, {buckets}, {max_distance}, init={init})",
        group="position",
    )
)
_register(
    OpDef(
        "alibi",
        "ALiBi: logits − m_h·(i − j), slopes m_h = 2^(-8(h+1)/H)",
        (("map",),),
        _same,
        "_alibi({in0}, {heads})",
        elementwise(2),
        group="position",
    )
)
_register(
    OpDef(
        "token_shift",
        "the previous position's value (zero at the first): RWKV's token shift",
        (SEQ_OR_COL,),
        _same,
        "_token_shift({in0})",
        _free,
        mixing="causal",
        group="time",
    )
)


def _token_mix_params(d_in: list[int], d_out: int, attrs: dict, heads: int) -> dict[str, tuple[int, ...]]:
    return {"weight": (d_in[0],)}


_register(
    OpDef(
        "token_mix",
        "x + μ ⊙ (x_{t−1} − x), a learned mix per channel with the previous position (RWKV)",
        (("seq",),),
        _same,
        "self.{out}({in0})",
        elementwise(3),
        attrs={"init": AttrSpec("init", constant(0.5), "initial μ", inits=("constant", "zeros", "normal"))},
        params=_token_mix_params,
        module="TokenMix({d_in}, init={init})",
        mixing="causal",
        group="time",
    )
)


def _mixer_type(types: list[ValueType], attrs: dict) -> ValueType:
    q, k, v = types[:3]
    if q.width != k.width:
        raise OpError(f"queries and keys differ in width: {q} vs {k}")
    return v


def _linear_attention_flops(d_in: list[int], d_out: int, attrs: dict, heads: int, seq_len: int) -> tuple[float, float]:
    # two products over every key (the parallel form); φ = elu + 1 on q and k; row sums; division
    return 2.0 * seq_len * (d_in[0] + d_in[2]), 4.0 * (d_in[0] + d_in[1]) + heads * seq_len + d_out


_register(
    OpDef(
        "linear_attention",
        "causal linear attention (Katharopoulos et al.), φ = elu + 1: out_i = Σ_{j≤i} "
        "φ(q_i)·φ(k_j) v_j / Σ_{j≤i} φ(q_i)·φ(k_j), per head",
        (("seq",), ("seq",), ("seq",)),
        _mixer_type,
        "_linear_attention({in0}, {in1}, {in2}, {heads})",
        _linear_attention_flops,
        mixing="causal",
        group="attention",
    )
)


def _gated_linear_attention_flops(
    d_in: list[int], d_out: int, attrs: dict, heads: int, seq_len: int
) -> tuple[float, float]:
    # log σ and the per-head mean of the gate; cumsum; per map element a difference, exp, product
    return 2.0 * seq_len * (d_in[0] + d_in[2]), 5.0 * d_in[3] + heads * (1 + 4 * seq_len)


_register(
    OpDef(
        "gated_linear_attention",
        "linear attention with a data-dependent decay per head (GLA, scalar form): "
        "out_i = Σ_{j≤i} (Π_{j<r≤i} α_r) (q_i·k_j/√d) v_j, α_r = σ(mean of the head's "
        "gate channels)^(1/16)",
        (("seq",), ("seq",), ("seq",), ("seq",)),
        _mixer_type,
        "_gated_linear_attention({in0}, {in1}, {in2}, {in3}, {heads})",
        _gated_linear_attention_flops,
        mixing="causal",
        group="attention",
    )
)


#: The one structural op: calls a later subprogram, named by the ``target`` attribute.
CALL = "call"
