"""The PyTorch building blocks that compiled programs call.

This file is copied verbatim into every exported model, so it imports nothing but torch and
the standard library. Layers apply the program's initialiser at construction.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def init_(tensor: torch.Tensor, init: dict) -> torch.Tensor:
    """Apply an archevo initialiser ({"kind": ..., ...}) in place."""
    kind = init["kind"]
    with torch.no_grad():
        if kind == "normal":
            return tensor.normal_(0.0, init["std"])
        if kind == "zeros":
            return tensor.zero_()
        if kind == "constant":
            return tensor.fill_(init["value"])
        if kind == "identity":
            return nn.init.eye_(tensor)
        if kind == "xavier_normal":
            return nn.init.xavier_normal_(tensor, gain=init["gain"])
        if kind == "taps":  # conv kernels are stored oldest tap first: weight[..., -1] is time t
            tensor.zero_()
            for lag, value in enumerate(init["values"]):
                tensor[..., -1 - lag] = value
            return tensor
    raise ValueError(f"unknown initialiser {kind!r}")


def scalar_parameter(init: dict) -> nn.Parameter:
    return nn.Parameter(init_(torch.empty(()), init))


def head_parameter(heads: int, init: dict) -> nn.Parameter:
    """One scalar per head, shaped to broadcast over [batch, heads, time, time] maps."""
    return nn.Parameter(init_(torch.empty(heads, 1, 1), init))


class Dense(nn.Module):
    """nn.Linear's parameters and forward, initialised once, by the program's initialiser."""

    def __init__(self, d_in: int, d_out: int, bias: bool, init: dict):
        super().__init__()
        self.weight = nn.Parameter(init_(torch.empty(d_out, d_in), init))
        self.bias = nn.Parameter(torch.zeros(d_out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class _CausalDepthwise(torch.autograd.Function):
    """y[:, t] = Σ_lag taps[:, -1 - lag] · x[:, t - lag] (x before the start is 0), forward and
    backward each as one fused multiply-add per tap over shifted views: no padded copy, and
    none of the zero-filled slice gradients autograd would build for the same sum."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:  # x [b, t, c], taps [c, k]
        ctx.save_for_backward(x, taps)
        time, kernel = x.shape[1], taps.shape[1]
        y = x * taps[:, -1]
        for lag in range(1, min(kernel, time)):
            y[:, lag:].addcmul_(x[:, : time - lag], taps[:, -1 - lag])
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        x, taps = ctx.saved_tensors
        time, kernel = x.shape[1], taps.shape[1]
        grad_x = grad_taps = None
        if ctx.needs_input_grad[0]:  # x[t] reached y[t + lag] through taps[:, -1 - lag]
            grad_x = grad * taps[:, -1]
            for lag in range(1, min(kernel, time)):
                grad_x[:, : time - lag].addcmul_(grad[:, lag:], taps[:, -1 - lag])
        if ctx.needs_input_grad[1]:
            grad_taps = torch.zeros_like(taps)
            for lag in range(min(kernel, time)):
                grad_taps[:, -1 - lag] = (grad[:, lag:] * x[:, : time - lag]).sum((0, 1))
        return grad_x, grad_taps


class DepthwiseCausalConv(nn.Module):
    """One kernel per channel along time, left-padded so position t sees t-k+1 .. t only."""

    def __init__(self, width: int, kernel: int, init: dict):
        super().__init__()
        self.weight = nn.Parameter(init_(torch.empty(width, 1, kernel), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A sum of shifted, scaled copies with its own backward, not a grouped conv1d: the same
        # result, about 2x faster on a CPU from the gate's probe to width 512, forward and
        # backward (benchmarks/depthwise_conv.py).
        return _CausalDepthwise.apply(x, self.weight[:, 0])


class CausalConv(nn.Module):
    def __init__(self, d_in: int, d_out: int, kernel: int, init: dict):
        super().__init__()
        self.weight = nn.Parameter(init_(torch.empty(d_out, d_in, kernel), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self.weight.shape[-1]
        return F.conv1d(F.pad(x.transpose(1, 2), (kernel - 1, 0)), self.weight).transpose(1, 2)


class LayerNorm(nn.Module):
    """nn.LayerNorm's parameters and forward, without its initialisation pass (a tenth of the cost)."""

    def __init__(self, width: int, eps: float, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width)) if bias else None
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class RMSNorm(nn.Module):
    """x / √(mean(x²) + ε) · g, or x / (√mean(x²) + ε) · g with eps_placement="outside"."""

    def __init__(self, width: int, eps: float, eps_placement: str):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps, self.eps_placement = eps, eps_placement

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.eps_placement == "inside":
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        return x / (x.square().mean(-1, keepdim=True).sqrt() + self.eps) * self.weight


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[batch, time, width] → [batch, heads, time, width / heads]."""
    b, t, w = x.shape
    return x.view(b, t, heads, w // heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


def _attn_logits(q: torch.Tensor, k: torch.Tensor, heads: int) -> torch.Tensor:
    qh, kh = _heads(q, heads), _heads(k, heads)
    return qh @ kh.transpose(-2, -1) / math.sqrt(qh.shape[-1])


def _causal_mask(t: int, device: torch.device) -> torch.Tensor:
    return torch.ones(t, t, dtype=torch.bool, device=device).tril()


def _causal_softmax(logits: torch.Tensor) -> torch.Tensor:
    mask = _causal_mask(logits.shape[-1], logits.device)
    return logits.masked_fill(~mask, float("-inf")).softmax(-1)


def _attend(attention: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    return _merge(attention @ _heads(v, heads))


def _bf16_on_cpu(x: torch.Tensor) -> bool:
    """Whether ``x``'s attention runs in bf16: it is bf16, or autocast will make it so (a program
    whose fp32 parameters touched it, a depthwise convolution say, promoted it back to fp32)."""
    return x.dtype == torch.bfloat16 or (
        torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    )


def _causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """attend(causal_softmax(attn_logits(q, k)), v) in one fused kernel, except in bf16 on a CPU
    with heads narrower than 64, where the fused kernel's backward is slower than the three ops
    it replaces (about 20 ms against 5 per layer at the cpu preset's 32-wide heads; at Primer's
    64-wide heads the fused kernel is faster: benchmarks/train_throughput.py --precision bf16)."""
    if q.device.type == "cpu" and q.shape[-1] // heads < 64 and _bf16_on_cpu(q):
        return _attend(_causal_softmax(_attn_logits(q, k, heads)), v, heads)
    return _merge(F.scaled_dot_product_attention(_heads(q, heads), _heads(k, heads), _heads(v, heads), is_causal=True))


def _rotary(x: torch.Tensor, heads: int, base: float) -> torch.Tensor:
    """Rotary positions on each head of x, rotate-half layout: channels i and i + d/2 of a head
    turn by t·base^(-2i/d) at position t (an odd head width leaves its last channel as it is)."""
    b, t, w = x.shape
    d = w // heads
    half = d // 2
    frequency = base ** (-2.0 * torch.arange(half, dtype=torch.float32, device=x.device) / d)
    angle = torch.arange(t, dtype=torch.float32, device=x.device)[:, None] * frequency  # [t, half]
    cos, sin = angle.cos()[:, None].to(x.dtype), angle.sin()[:, None].to(x.dtype)  # [t, 1, half]
    xh = x.view(b, t, heads, d)
    x1, x2 = xh[..., :half], xh[..., half : 2 * half]
    turned = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, xh[..., 2 * half :]], dim=-1)
    return turned.reshape(b, t, w)


def _head_rms_norm(x: torch.Tensor, heads: int, eps: float) -> torch.Tensor:
    b, t, w = x.shape
    return F.rms_norm(x.view(b, t, heads, w // heads), (w // heads,), eps=eps).view(b, t, w)


def _repeat_kv(x: torch.Tensor, heads: int, groups: int) -> torch.Tensor:
    """[b, t, w] holding heads/groups heads → [b, t, w·groups], each head repeated for the
    ``groups`` consecutive query heads that share it. Where ``groups`` does not divide the
    heads, the whole value is repeated: every valid program runs at every model size."""
    b, t, w = x.shape
    kv = heads // groups if heads % groups == 0 else 1
    return x.view(b, t, kv, 1, w // kv).expand(b, t, kv, groups, w // kv).reshape(b, t, w * groups)


class RelativeBias(nn.Module):
    """T5's relative position bias (unidirectional buckets): logits + weight[h, bucket(i − j)]."""

    def __init__(self, heads: int, buckets: int, max_distance: int, init: dict):
        super().__init__()
        self.weight = nn.Parameter(init_(torch.empty(heads, buckets), init))
        self.max_distance = max_distance

    def buckets(self, t: int, device: torch.device) -> torch.Tensor:
        distance = (torch.arange(t, device=device)[:, None] - torch.arange(t, device=device)).clamp(min=0)
        count = self.weight.shape[1]
        exact = count // 2
        far = (
            exact
            + (
                torch.log(distance.float().clamp(min=1) / exact) / math.log(self.max_distance / exact) * (count - exact)
            ).long()
        )
        return torch.where(distance < exact, distance, far.clamp(max=count - 1))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits + self.weight[:, self.buckets(logits.shape[-1], logits.device)]


def _alibi(logits: torch.Tensor, heads: int) -> torch.Tensor:
    """logits − m_h·(i − j), m_h = 2^(-8(h+1)/H); a [t, t] map broadcasts to [heads, t, t]."""
    t = logits.shape[-1]
    slopes = 2.0 ** (-8.0 * torch.arange(1, heads + 1, dtype=logits.dtype, device=logits.device) / heads)
    distance = torch.arange(t, device=logits.device)[:, None] - torch.arange(t, device=logits.device)
    return logits - slopes[:, None, None] * distance.to(logits.dtype)


def _token_shift(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x, (0, 0, 1, 0))[:, : x.shape[1]]


class TokenMix(nn.Module):
    """RWKV's token shift with a learned mix per channel: x + μ ⊙ (x_{t−1} − x)."""

    def __init__(self, width: int, init: dict):
        super().__init__()
        self.weight = nn.Parameter(init_(torch.empty(width), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight * (_token_shift(x) - x)


def _linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Causal linear attention, φ = elu + 1, in its parallel (masked quadratic) form."""
    scores = ((F.elu(_heads(q, heads)) + 1) @ (F.elu(_heads(k, heads)) + 1).transpose(-2, -1)).tril()
    return _merge(scores @ _heads(v, heads) / scores.sum(-1, keepdim=True))


def _gated_linear_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, heads: int
) -> torch.Tensor:
    """Linear attention with a decay per head and position, log α_r = log σ(mean of the head's
    channels of g_r) / 16 (GLA's temperature τ = 16), in the parallel form: the decay from j to
    i is exp(Σ_{j<r≤i} log α_r), masked above the diagonal before the exponential."""
    qh, kh = _heads(q, heads), _heads(k, heads)
    log_decay = (F.logsigmoid(_heads(g, heads).mean(-1)) / 16).cumsum(-1)  # [b, h, t]
    gap = log_decay[..., :, None] - log_decay[..., None, :]
    decay = gap.masked_fill(~_causal_mask(gap.shape[-1], gap.device), float("-inf")).exp()
    scores = qh @ kh.transpose(-2, -1) / math.sqrt(qh.shape[-1]) * decay
    return _merge(scores @ _heads(v, heads))


def _identity_map(x: torch.Tensor) -> torch.Tensor:
    return torch.eye(x.shape[1], dtype=x.dtype, device=x.device)


def _uniform_causal_map(x: torch.Tensor) -> torch.Tensor:
    t = x.shape[1]
    rows = torch.arange(1, t + 1, dtype=x.dtype, device=x.device)[:, None]
    return _causal_mask(t, x.device).to(x.dtype) / rows


def sinusoidal_positions(seq_len: int, width: int) -> torch.Tensor:
    position = torch.arange(seq_len, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    table = torch.zeros(seq_len, width)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: width // 2])
    return table


class LanguageModel(nn.Module):
    """Token embedding (+ positions) → layers → final program → unembedding (tied by default)."""

    position_table: torch.Tensor | None  # a buffer (sinusoidal positions), so it moves with .to()

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        seq_len: int,
        positions: str,
        tie_embeddings: bool,
        layers: list,
        final: nn.Module,
    ):
        super().__init__()
        self.seq_len = seq_len
        self.wte = nn.Embedding(vocab_size, d_model)
        init_(self.wte.weight, {"kind": "normal", "std": 0.02})
        self.wpe = nn.Embedding(seq_len, d_model) if positions == "learned" else None
        if self.wpe is not None:
            init_(self.wpe.weight, {"kind": "normal", "std": 0.02})
        table = sinusoidal_positions(seq_len, d_model) if positions == "sinusoidal" else None
        self.register_buffer("position_table", table, persistent=False)
        self.layers = nn.ModuleList(layers)
        self.final = final
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        if tie_embeddings:
            self.lm_head.weight = self.wte.weight
        else:
            init_(self.lm_head.weight, {"kind": "normal", "std": 0.02})

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        if self.position_table is not None:
            x = x + self.position_table[: idx.shape[1]]
        return x

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """The residual stream through every layer and the final program."""
        for layer in self.layers:
            x = layer(x)
        return self.final(x)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits [batch, time, vocab], the mean next-token cross-entropy or None without
        targets): one shape either way, as nanoGPT's."""
        if idx.shape[1] > self.seq_len:
            raise ValueError(
                f"{idx.shape[1]} tokens exceed the model's context of {self.seq_len}: crop the input "
                "(generate() keeps the last seq_len tokens)"
            )
        logits = self.lm_head(self.body(self.embed(idx)))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        eos_token_id: int | None = None,
    ) -> torch.Tensor:
        """``prompt_ids`` [batch, time] followed by up to ``max_new_tokens`` sampled tokens
        (nanoGPT's loop: the context is cropped to the last seq_len tokens; temperature 0 is
        greedy). With ``eos_token_id``, a row that has produced it goes on with it alone, and
        the loop ends once every row has."""
        if prompt_ids.dim() != 2 or prompt_ids.shape[1] == 0:
            raise ValueError(f"prompt_ids must be [batch, time] with at least one token, got {tuple(prompt_ids.shape)}")
        idx = prompt_ids
        done = torch.zeros(idx.shape[0], 1, dtype=torch.bool, device=idx.device)
        for _ in range(max_new_tokens):
            logits = self(idx[:, -self.seq_len :])[0][:, -1]
            if temperature == 0:
                token = logits.argmax(-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                token = torch.multinomial(logits.softmax(-1), 1)
            if eos_token_id is not None:
                token = token.masked_fill(done, eos_token_id)
                done |= token == eos_token_id
            idx = torch.cat([idx, token], dim=1)
            if bool(done.all()):
                break
        return idx
