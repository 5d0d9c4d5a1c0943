"""Train one architecture under a fixed compute budget and report what it reached.

``train`` compiles the architecture, trains it with AdamW on random windows of the train
split until the budget (seconds, FLOPs or tokens) is spent, evaluates the validation loss
on a fixed subset at each hurdle and at the end, and returns a ``TrainResult``. It never
raises: compile errors, exceptions, NaN/Inf losses, memory over the limit and runs past the
wall-clock cap all become a result with a status and a one-line message.

The learning rate follows the fraction of the budget spent (linear warmup, cosine decay to
``min_lr_fraction``), so one recipe serves every kind of budget. FLOPs per token come from the
registry's cost model (``primitives.cost``: every op's FLOPs, elementwise work included, the
backward pass 2 × the forward), multiplied by the tokens trained.
In a seconds budget only the training steps count: time spent evaluating is excluded, and so
is the warm-up step that compiles the model (``compile``) or starts CUDA's lazy work before
the clock starts (``compile_seconds``): a cold compile must not eat a candidate's budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from pydantic import BaseModel, Field
from safetensors.torch import save_model
from torch import nn

from primitives.cost import TRAINING_MULTIPLIER, forward_flops
from primitives.measurement import Metrics, TrainStatus
from primitives.program import Architecture, ModelSpec

from .budget import Budget, parse_budget
from .training_config import TrainConfig
from .compiler import check_causality, compile_model, count_parameters

OnHurdle = Callable[[int, float, float], bool]
"""``on_hurdle(index, fraction, val_loss)``: return False to stop training at this hurdle."""
OnProgress = Callable[[int, float, float, float], None]
"""``progress(step, fraction, train_loss, tokens_per_second)``, called after every step."""

CURVE_POINTS = 50  # the train-loss curve is sampled about every 1/50 of the budget
#: On CUDA a loss is read (a device sync) every this many steps, and at every curve point.
CUDA_LOSS_READS = 16


class TokenData(Protocol):
    """What ``train`` needs of a corpus (evaluator.tokenization.TokenizedCorpus has it)."""

    train: np.ndarray
    validation: np.ndarray
    bytes_per_token: float
    vocab_size: int


class HurdleLoss(BaseModel):
    fraction: float
    loss: float | None
    step: int


class CurvePoint(BaseModel):
    """One sample of the training curve: mean train loss since the previous point; ``val_loss``
    is set on the points where the validation loss was evaluated (hurdles and the end)."""

    tokens: int
    flops: float
    seconds: float
    train_loss: float | None
    val_loss: float | None = None


class TrainResult(Metrics):
    """One run: how it ended, its metrics (``primitives.measurement.Metrics``), its curve and the
    validation loss at each hurdle it reached."""

    status: TrainStatus
    message: str = ""
    loss_curve: list[CurvePoint] = Field(default_factory=list)
    hurdle_losses: list[HurdleLoss] = Field(default_factory=list)

    @classmethod
    def started(cls, budget: str) -> TrainResult:
        """A run before its first step: nothing trained, nothing spent yet."""
        return cls(
            status="ok",
            budget=budget,
            steps=0,
            tokens=0,
            parameters=0,
            seconds=0.0,
            wall_seconds=0.0,
            flops=0.0,
            flops_per_token=0.0,
            forward_flops_per_token=0.0,
        )


# --------------------------------------------------------------------------- helpers


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


class StepMemoryError(MemoryError):
    """One training step would need more memory than ``TrainConfig.max_memory_mb``."""


def _one_line(error: BaseException) -> str:
    if isinstance(error, StepMemoryError):
        return str(error)
    text = " ".join(str(error).split()) or repr(error)
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return f"out of memory: {type(error).__name__}: {text}"[:500]
    return f"{type(error).__name__}: {text}"[:500]


def loss_read_interval(device: torch.device) -> int:
    """Steps between reads of the training loss: every step on the CPU; on CUDA a read syncs
    the device, so the NaN check is batched."""
    return CUDA_LOSS_READS if device.type == "cuda" else 1


def lr_at(fraction: float, config: TrainConfig) -> float:
    """Linear warmup over ``warmup_fraction`` of the budget, then cosine to ``min_lr_fraction``·lr."""
    fraction = min(max(fraction, 0.0), 1.0)
    if fraction < config.warmup_fraction:
        return config.lr * fraction / config.warmup_fraction
    progress = (fraction - config.warmup_fraction) / (1.0 - config.warmup_fraction)
    floor = config.min_lr_fraction * config.lr
    return floor + 0.5 * (config.lr - floor) * (1.0 + math.cos(math.pi * progress))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices and kernels; not gains, biases, norms or per-head scalars (a parameter
    with fewer than two dimensions of size > 1, so SAS's [heads, 1, 1] gains are not decayed)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():  # a tied embedding appears once
        if not p.requires_grad:
            continue
        (decay if sum(s > 1 for s in p.shape) >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def validation_windows(validation: np.ndarray, seq_len: int, count: int) -> np.ndarray:
    """``count`` windows of seq_len + 1 tokens spread evenly over the whole split (fewer if it
    is short): fixed, so every candidate is scored on the same tokens, and representative."""
    available = (len(validation) - 1) // seq_len
    count = min(count, available)
    if count < 1:
        raise ValueError(f"the validation split has {len(validation)} tokens, too few for one window of {seq_len + 1}")
    starts = np.linspace(0, len(validation) - seq_len - 1, count).astype(np.int64)
    return np.asarray(validation[starts[:, None] + np.arange(seq_len + 1)], dtype=np.int64)


@torch.no_grad()
def evaluate(model: nn.Module, windows: torch.Tensor, batch_size: int) -> float:
    """Mean next-token cross-entropy (nats/token) over ``windows`` [n, seq_len + 1]."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(windows), batch_size):
        chunk = windows[i : i + batch_size]
        _, loss = model(chunk[:, :-1], chunk[:, 1:])
        total += loss.item() * chunk.shape[0]
        count += chunk.shape[0]
    model.train(was_training)
    return total / count


def step_memory_bytes(model: nn.Module, batch: torch.Tensor) -> int:
    """Memory one AdamW training step needs on ``batch`` [batch, seq_len + 1], in bytes.

    Parameters, gradients and AdamW's two moments (4 × the parameters), plus on CPU the
    tensors autograd saves for backward (summed by a saved_tensors_hooks, each storage once,
    parameters excluded), the logits, and the two logit-sized gradients (of the log-softmax
    and of the logits) that are alive together at the start of backward. An estimate for a
    gate, not a measurement: against the peak allocation torch's profiler reports for a
    real step it was within −15 % … +30 % on the seeds (d 128–256, seq 128, vocab 1k–4k). On CUDA it is the measured
    peak of a forward and backward (torch.cuda.max_memory_allocated) plus the moments.
    """
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    x, y = batch[:, :-1], batch[:, 1:]
    if batch.device.type == "cuda":
        torch.cuda.synchronize(batch.device)
        torch.cuda.reset_peak_memory_stats(batch.device)
        before = torch.cuda.memory_allocated(batch.device)
        loss = model(x, y)[1]
        loss.backward()
        peak = torch.cuda.max_memory_allocated(batch.device) - before  # activations and gradients
        model.zero_grad(set_to_none=True)
        del loss
        return 3 * param_bytes + peak
    seen = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            saved += storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        logits, loss = model(x, y)
    logit_bytes = logits.numel() * logits.element_size()
    alive = 0 if logits.untyped_storage().data_ptr() in seen else logit_bytes
    del logits, loss
    return 4 * param_bytes + saved + alive + 2 * logit_bytes


class _Sampler:
    """Random training windows [batch, seq_len + 1] from a numpy Generator seeded by the run's seed."""

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, seed: int, device: torch.device):
        if len(tokens) < seq_len + 2:
            raise ValueError(f"the train split has {len(tokens)} tokens, too few for one window of {seq_len + 1}")
        self.tokens, self.batch_size, self.device = tokens, batch_size, device
        self.offsets = np.arange(seq_len + 1, dtype=np.int64)
        self.high = len(tokens) - seq_len  # starts in [0, high): the window ends inside the split
        self.rng = np.random.default_rng(seed)

    def __call__(self) -> torch.Tensor:
        starts = self.rng.integers(0, self.high, size=self.batch_size)
        batch = torch.from_numpy(self.tokens[starts[:, None] + self.offsets].astype(np.int64))
        if self.device.type == "cuda":
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch


# --------------------------------------------------------------------------- train


def train(
    spec: ModelSpec,
    architecture: Architecture,
    data: TokenData,
    budget: Budget | str,
    config: TrainConfig | None = None,
    on_hurdle: OnHurdle | None = None,
    progress: OnProgress | None = None,
    save_weights: str | Path | None = None,
) -> TrainResult:
    """Train ``architecture`` at ``spec`` on ``data`` until ``budget`` is spent; never raises.
    ``save_weights``: where to keep the trained weights (safetensors) unless the run failed."""
    config = config or TrainConfig()
    result = TrainResult.started(str(budget))
    if isinstance(budget, str):
        try:
            budget = parse_budget(budget)
        except ValueError as error:
            result.status, result.message = "error", str(error)
            return result
    threads, tf32 = torch.get_num_threads(), (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    start = time.perf_counter()
    try:
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        if torch.device(config.device).type == "cuda":  # TF32 matmuls: fp32 storage, tensor-core speed
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = config.tf32
        run = _Run(spec, architecture, data, budget, config, on_hurdle, progress, result, start)
        run.run()
        if save_weights is not None and result.status in ("ok", "stopped_at_hurdle"):
            Path(save_weights).parent.mkdir(parents=True, exist_ok=True)
            save_model(run.model, str(save_weights), metadata={"format": "pt"})
            result.weights = str(save_weights)
    except Exception as error:  # noqa: BLE001 - every failure becomes a result
        result.status, result.message = "error", _one_line(error)
        result.val_loss = result.perplexity = result.bits_per_byte = None
        if torch.device(config.device).type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()
    finally:
        torch.set_num_threads(threads)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        result.wall_seconds = time.perf_counter() - start
    return result


class _Run:
    """One training run; fills ``result`` as it goes so a failure still reports the progress made."""

    def __init__(self, spec, architecture, data, budget, config, on_hurdle, progress, result, start):
        self.spec, self.architecture, self.data, self.budget = spec, architecture, data, budget
        self.config, self.on_hurdle, self.progress, self.result = config, on_hurdle, progress, result
        self.start = start
        self.device = torch.device(config.device)

    def run(self) -> None:
        spec, config, result, data = self.spec, self.config, self.result, self.data
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device cuda was asked for but torch sees no CUDA device")
        if data.vocab_size > spec.vocab_size:
            raise ValueError(
                f"the data's vocabulary ({data.vocab_size}) is larger than the model's ({spec.vocab_size})"
            )
        torch.manual_seed(config.seed)
        model = compile_model(spec, self.architecture)
        # The gate's probe checks causality on one tiny draw, which a saturated activation can
        # blind; this second check (the real width, other draws) keeps a model that sees the
        # future from reaching a loss it did not earn.
        check_causality(model, spec, seed=config.seed)
        result.parameters = count_parameters(model)
        result.forward_flops_per_token = forward_flops(spec, self.architecture).total
        result.flops_per_token = TRAINING_MULTIPLIER * result.forward_flops_per_token
        model.to(self.device).train()
        self.autocast = torch.autocast(
            self.device.type, dtype=config.autocast_dtype or torch.float32, enabled=config.autocast_dtype is not None
        )
        windows = validation_windows(data.validation, spec.seq_len, config.eval_batches * config.batch_size)
        self.windows = torch.from_numpy(windows).to(self.device)
        if config.max_memory_mb is not None:
            need = step_memory_bytes(model, self._probe()) / 2**20
            if need > config.max_memory_mb:
                raise StepMemoryError(
                    f"out of memory: one step needs {need:.0f} MB, the limit is {config.max_memory_mb:g} MB"
                )
        self.model = model
        self._loop()

    def _probe(self) -> torch.Tensor:
        """One batch of validation windows (repeated if the split is short): a step's shape."""
        probe = self.windows[: self.config.batch_size]
        if len(probe) < self.config.batch_size:
            probe = probe.repeat(math.ceil(self.config.batch_size / len(probe)), 1)[: self.config.batch_size]
        return probe

    def _warm_up(self, step_model: Callable[..., Any]) -> None:
        """One forward and backward before the clock starts, its gradients dropped (nothing is
        learnt): torch.compile traces and compiles here and CUDA starts its lazy work, so
        neither is charged to the budget, the schedule or the hurdles. Timed apart."""
        start = time.perf_counter()
        probe = self._probe()
        with self.autocast:
            loss = step_model(probe[:, :-1], probe[:, 1:])[1]
        loss.backward()
        self.model.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.result.compile_seconds = time.perf_counter() - start

    def _loop(self) -> None:
        spec, config, result, budget = self.spec, self.config, self.result, self.budget
        model = self.model
        if config.compile:
            # Dynamo caches compiled code per code object (LanguageModel.forward, the same for
            # every candidate) and falls back to eager after 8 recompiles: each run starts clean.
            torch._dynamo.reset()
        step_model = torch.compile(model) if config.compile else model  # same parameters, compiled forward
        optimizer = torch.optim.AdamW(
            parameter_groups(model, config.weight_decay), lr=config.lr, betas=config.betas, fused=True
        )
        params = [p for group in optimizer.param_groups for p in group["params"]]
        sample = _Sampler(self.data.train, config.batch_size, spec.seq_len, config.seed, self.device)
        batch_tokens = config.batch_size * spec.seq_len
        flops_per_step = batch_tokens * result.flops_per_token
        cuda = self.device.type == "cuda"
        check_every = loss_read_interval(self.device)
        pending: list[torch.Tensor] = []
        hurdles = list(config.hurdle_fractions)
        next_hurdle = 0
        eval_points = [i / config.eval_points for i in range(1, config.eval_points)]
        next_eval = 0
        curve_loss, curve_steps, next_point = 0.0, 0, 1
        train_seconds, step, fraction = 0.0, 0, 0.0
        step_fraction = budget.fraction(0.0, flops_per_step, batch_tokens) if budget.kind != "seconds" else 0.0
        last_loss = math.nan

        def spent() -> float:
            return budget.fraction(train_seconds, step * flops_per_step, step * batch_tokens)

        def record(loss: float | None = None) -> None:
            nonlocal curve_loss, curve_steps
            last = result.loss_curve[-1] if result.loss_curve else None
            if loss is not None and not curve_steps and last is not None and last.tokens == step * batch_tokens:
                last.val_loss = loss  # an evaluation right after a curve point: one point, not two
                return
            mean = curve_loss / curve_steps if curve_steps else None
            result.loss_curve.append(
                CurvePoint(
                    tokens=step * batch_tokens,
                    flops=step * flops_per_step,
                    seconds=train_seconds,
                    train_loss=_finite(mean),
                    val_loss=loss,
                )
            )
            curve_loss, curve_steps = 0.0, 0

        def check() -> bool:
            """Read the pending losses into the curve; False (the run marked diverged) at a non-finite one."""
            nonlocal curve_loss, curve_steps, last_loss
            values = torch.stack(pending).tolist() if len(pending) > 1 else [pending[0].item()]
            pending.clear()
            for i, value in enumerate(values):
                if not math.isfinite(value):
                    result.status = "diverged"
                    result.diverged_step = step - len(values) + i + 1
                    result.message = f"the training loss became {value} at step {result.diverged_step}"
                    return False
            curve_loss += sum(values)
            curve_steps += len(values)
            last_loss = values[-1]
            return True

        if config.compile or cuda:
            self._warm_up(step_model)
        tick = time.perf_counter()
        while fraction < 1.0:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(fraction + step_fraction, config)
            batch = sample()
            with self.autocast:
                loss = step_model(batch[:, :-1], batch[:, 1:])[1]  # the logits are freed before backward
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip, foreach=True)
            optimizer.step()
            step += 1
            pending.append(loss.detach())
            if (len(pending) >= check_every or cuda and budget.kind == "seconds") and not check():
                break
            now = time.perf_counter()
            if budget.kind == "seconds":
                step_fraction = (now - tick) / budget.amount
            train_seconds += now - tick
            fraction = spent()
            self._account(step, batch_tokens, flops_per_step, train_seconds)
            if self.progress is not None:
                self.progress(step, min(fraction, 1.0), last_loss, step * batch_tokens / max(train_seconds, 1e-9))
            if fraction * CURVE_POINTS >= next_point:
                if pending and not check():  # the point's mean needs the losses not read yet
                    break
                record()
                next_point = math.floor(fraction * CURVE_POINTS) + 1
            crossed = []
            while next_hurdle < len(hurdles) and fraction >= hurdles[next_hurdle]:
                crossed.append(next_hurdle)
                next_hurdle += 1
            if crossed:
                if pending and not check():  # never evaluate (or stop) on a run that already diverged
                    break
                with self.autocast:
                    loss_value = evaluate(model, self.windows, config.batch_size)
                record(_finite(loss_value))
                stop = False
                for index in crossed:
                    result.hurdle_losses.append(
                        HurdleLoss(fraction=hurdles[index], loss=_finite(loss_value), step=step)
                    )
                    if not math.isfinite(loss_value):
                        result.status, result.diverged_step = "diverged", step
                        result.message = f"the validation loss became {loss_value} at hurdle {hurdles[index]:g}"
                        stop = True
                        break
                    if self.on_hurdle is not None and not self.on_hurdle(index, hurdles[index], loss_value):
                        result.status = "stopped_at_hurdle"
                        result.message = (
                            f"stopped at hurdle {index} (fraction {hurdles[index]:g}, validation loss {loss_value:.4f})"
                        )
                        self._finish(loss_value)
                        stop = True
                        break
                if stop:
                    return
            evaluate_now = False
            while next_eval < len(eval_points) and fraction >= eval_points[next_eval]:
                evaluate_now, next_eval = True, next_eval + 1
            if evaluate_now and not crossed:  # a hurdle evaluated this step already
                if pending and not check():
                    break
                validated = self._validate(step, f"at {fraction:.2f} of the budget")
                if validated is None:
                    break
                record(validated)
            if config.max_seconds is not None and time.perf_counter() - self.start > config.max_seconds:
                result.status = "timeout"
                result.message = (
                    f"stopped after {time.perf_counter() - self.start:.1f} s, the cap is "
                    f"{config.max_seconds:g} s, at {min(fraction, 1.0):.1%} of the budget {budget}"
                )
                break
            tick = time.perf_counter()
        if pending and result.status != "diverged":
            check()
        if result.status == "diverged":
            self._account(step, batch_tokens, flops_per_step, train_seconds)
            return
        last = result.loss_curve[-1] if result.loss_curve else None
        if last is not None and last.val_loss is not None and last.tokens == step * batch_tokens:
            self._finish(last.val_loss)  # the last hurdle was at the final step
            return
        final = self._validate(step, "at the end of the budget")
        if final is None:
            return
        record(final)
        self._finish(final)

    def _validate(self, step: int, where: str) -> float | None:
        """The validation loss now; None (the run marked diverged) if it is not finite."""
        with self.autocast:
            loss = evaluate(self.model, self.windows, self.config.batch_size)
        if math.isfinite(loss):
            return loss
        self.result.status, self.result.diverged_step = "diverged", step
        self.result.message = f"the validation loss became {loss} {where}"
        return None

    def _account(self, steps: int, batch_tokens: int, flops_per_step: float, seconds: float) -> None:
        self.result.steps, self.result.tokens = steps, steps * batch_tokens
        self.result.flops, self.result.seconds = steps * flops_per_step, seconds

    def _finish(self, loss: float) -> None:
        result = self.result
        result.val_loss = _finite(loss)
        result.perplexity = _finite(math.exp(loss)) if loss < 700 else None
        result.bits_per_byte = _finite(loss / math.log(2) / self.data.bytes_per_token)
