"""Training throughput of compiled programs against hand-written reference modules.

For each seed (transformer, primer_ez by default) at a preset's frame and batch (``cpu`` by
default; ``primer`` is Primer's LM1B configuration), the archevo-compiled model and the
independent nanoGPT-style nn.Module of tests/reference_models.py (loaded with the compiled
model's weights, so both compute the same function) train side by side: the same batch, the
same AdamW (fused, as evaluator.train uses), gradient clipping, in each precision asked for
(fp32; bf16 = autocast with fp32 master weights, as ``TrainConfig.precision``), rounds
interleaved ABAB… so a shared machine's load hits all alike, and the median round is
reported. Model FLOP/s = training FLOPs per token (the registry's cost model) × tokens/s,
given as a fraction (MFU) of this machine's matmul rate in that precision, measured in the same
run (``a @ b`` between rounds: 2048² on the CPU, 8192² on a GPU, where a small product does not
reach the tensor cores' rate and would inflate MFU). On CUDA, fp32 runs with TF32 matmuls, as
``evaluator.train`` trains (``TrainConfig.tf32``), reference matmul included. ``--packing 1,2,4``
also measures the aggregate tokens/s of that many compiled candidates training at once in
separate processes (several candidates per GPU, as ``gpus_per_worker = 0.25`` schedules them):
each warms up, then all start on one signal and time the same wall-clock window.

    .venv/bin/python benchmarks/train_throughput.py [--preset cpu|primer] [--precision fp32,bf16]
        [--steps 5] [--rounds 7] [--compile] [--device cuda] [--packing 1,2,4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluator.compiler import compile_model
from evaluator.presets import PRESETS
from evaluator.train import parameter_groups
from primitives.cost import training_flops
from primitives.program import ModelSpec
from primitives.seeds import seed
from tests.reference_models import build_reference


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_size(device: torch.device) -> int:
    """The side of the reference matmul: large enough to reach the device's matmul rate."""
    return 8192 if device.type == "cuda" else 2048


def use_tf32(device: torch.device) -> None:
    """fp32 matmuls as training runs them: TF32 on CUDA (evaluator.train's default)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True


def matmul_rate(device: torch.device, dtype: torch.dtype = torch.float32, repeats: int = 5) -> float:
    """FLOP/s of an n×n matmul in ``dtype`` (n: ``reference_size``; median of ``repeats`` after 2 warm-ups)."""
    n = reference_size(device)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    times = []
    for i in range(repeats + 2):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times)


class Trainer:
    """One model with its own AdamW: ``run(steps)`` returns seconds per training step."""

    def __init__(
        self, name: str, model: torch.nn.Module, batch: torch.Tensor, lr: float = 1e-4, dtype: torch.dtype | None = None
    ):
        self.name, self.model, self.batch = name, model, batch
        self.dtype = dtype  # autocast dtype (None: fp32)
        self.x, self.y = batch[:, :-1].contiguous(), batch[:, 1:].contiguous()
        self.optimizer = torch.optim.AdamW(parameter_groups(model, 0.1), lr=lr, betas=(0.9, 0.95), fused=True)
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.step_fn = model
        self.times: list[float] = []

    def step(self) -> None:
        with torch.autocast(self.x.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            loss = self.step_fn(self.x, self.y)[1]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0, foreach=True)
        self.optimizer.step()

    def run(self, steps: int, device: torch.device) -> float:
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        sync(device)
        return (time.perf_counter() - start) / steps


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def build(
    name: str, spec: ModelSpec, device: torch.device, batch: torch.Tensor, use_compile: bool, precision: str
) -> list[Trainer]:
    torch.manual_seed(0)
    compiled = compile_model(spec, seed(name, spec))
    reference = build_reference(
        name,
        vocab_size=spec.vocab_size,
        d_model=spec.d_model,
        n_layers=spec.n_layers,
        n_heads=spec.n_heads,
        seq_len=spec.seq_len,
    )
    reference.load_from(compiled)
    with torch.no_grad():  # same weights → same function (a wrong comparison would be worthless)
        probe = batch[:4, :-1].cpu()
        gap = (compiled(probe)[0] - reference(probe)).abs().max().item()
    if gap > 1e-4:
        raise SystemExit(f"{name}: compiled and reference logits differ by {gap:.2e}; not comparing")
    compiled.to(device).train()
    reference.to(device).train()
    dtype = PRECISIONS[precision]
    trainers = [
        Trainer(f"{name} {precision} compiled", compiled, batch, dtype=dtype),
        Trainer(f"{name} {precision} hand-written", reference, batch, dtype=dtype),
    ]
    if use_compile:
        for base in list(trainers):
            clone = Trainer(f"{base.name} +torch.compile", base.model, batch, dtype=dtype)
            clone.optimizer = base.optimizer  # same parameters: share the optimizer state
            clone.params = base.params
            clone.step_fn = torch.compile(base.model)
            trainers.append(clone)
    return trainers


def packed_rate(
    name: str, preset: str, batch_size: int, copies: int, window_s: float, precision: str, device: str = "cuda"
) -> tuple[float, list[tuple[float, float]]]:
    """Aggregate tokens/s of ``copies`` processes each training the compiled ``name`` at once, and
    each one's timed window (start, end; seconds since the epoch). Every copy warms up (start-up,
    a compile) and says so; then all are told to go at once and each trains for ``window_s``,
    so the windows overlap and the sum is a rate of candidates training together."""
    import subprocess

    command = [
        sys.executable,
        __file__,
        "--single",
        name,
        "--preset",
        preset,
        "--batch-size",
        str(batch_size),
        "--window",
        str(window_s),
        "--device",
        device,
        "--precision",
        precision,
    ]
    procs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(copies)]
    for proc in procs:  # each is warm
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"a packed copy of {name} failed to start")
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    reports = [proc.communicate()[0].split() for proc in procs]  # tokens, start, end
    windows = [(float(start), float(end)) for _, start, end in reports]
    common = min(end for _, end in windows) - max(start for start, _ in windows)
    if common < 0.5 * window_s:
        raise SystemExit(f"the packed copies' timed windows overlap by {common:.2f} s only; not summing them")
    return sum(float(tokens) / (end - start) for (tokens, _, _), (start, end) in zip(reports, windows)), windows


def single(
    name: str, spec: ModelSpec, batch: torch.Tensor, device: torch.device, precision: str, warmup: int, window_s: float
) -> None:
    """One packed copy: warm up, say ``ready``, wait for ``go``, train for ``window_s`` and
    print the tokens trained and the window's start and end."""
    torch.manual_seed(0)
    model = compile_model(spec, seed(name, spec)).to(device).train()
    trainer = Trainer(name, model, batch, dtype=PRECISIONS[precision])
    trainer.run(warmup, device)
    print("ready", flush=True)
    sys.stdin.readline()
    sync(device)
    start = time.time()
    steps = 0
    while time.time() - start < window_s:
        trainer.step()
        steps += 1
        if steps % 8 == 0:
            sync(device)
    sync(device)
    print(steps * batch[:, :-1].numel(), start, time.time(), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help="frame and batch size")
    parser.add_argument("--seeds", nargs="+", default=["transformer", "primer_ez"])
    parser.add_argument("--precision", default="fp32", help="comma-separated: fp32, bf16")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=7, help="ABAB… rounds; the median is reported")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model before the rounds")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd versions of both")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--packing", default="", help="comma-separated candidates at once per device, e.g. 1,2,4")
    parser.add_argument("--window", type=float, default=10.0, help="--packing: seconds every copy trains at once")
    parser.add_argument("--single", default=None, help=argparse.SUPPRESS)  # one packed copy (packed_rate)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    use_tf32(device)
    preset = PRESETS[args.preset]
    spec = preset.spec
    batch_size = args.batch_size or preset.train.batch_size
    batch = torch.randint(
        spec.vocab_size, (batch_size, spec.seq_len + 1), generator=torch.Generator().manual_seed(0)
    ).to(device)
    tokens = batch_size * spec.seq_len
    if args.single:
        single(args.single, spec, batch, device, args.precision, args.warmup, args.window)
        return
    precisions = args.precision.split(",")
    print(
        f"preset {args.preset}: ModelSpec {spec.model_dump()}  batch {batch_size} × {spec.seq_len} = {tokens} "
        f"tokens/step  device {device}  torch {torch.__version__}  threads {torch.get_num_threads()}"
    )

    trainers: list[Trainer] = []
    flops: dict[str, float] = {}
    for precision in precisions:
        for name in args.seeds:
            group = build(name, spec, device, batch, args.compile, precision)
            for trainer in group:  # the registry's cost model: the same math on both sides
                flops[trainer.name] = training_flops(spec, seed(name, spec))
            trainers += group
    for trainer in trainers:
        start = time.perf_counter()
        for _ in range(args.warmup):
            trainer.step()
        sync(device)
        if "torch.compile" in trainer.name:
            print(f"  {trainer.name}: compile + warm-up {time.perf_counter() - start:.1f} s")

    rates = {p: [matmul_rate(device, PRECISIONS[p] or torch.float32)] for p in precisions}
    for _ in range(args.rounds):
        for trainer in trainers:
            trainer.times.append(trainer.run(args.steps, device))
        for p in precisions:
            rates[p].append(matmul_rate(device, PRECISIONS[p] or torch.float32))
    peaks = {p: statistics.median(r) for p, r in rates.items()}
    for p, r in rates.items():
        print(
            f"{p} matmul {reference_size(device)}²{' (TF32)' if p == 'fp32' and device.type == 'cuda' else ''}: "
            f"{peaks[p] / 1e9:.1f} GFLOP/s (median of {len(r)}, range "
            f"{min(r) / 1e9:.0f}–{max(r) / 1e9:.0f})"
        )
    print()

    header = f"{'model':50s} {'ms/step':>8s} {'tokens/s':>9s} {'GFLOP/s':>8s} {'MFU':>6s} {'vs hand-written':>15s}"
    print(header)
    print("-" * len(header))
    medians = {t.name: statistics.median(t.times) for t in trainers}
    for trainer in trainers:
        seconds = medians[trainer.name]
        rate = tokens / seconds
        model_flops = flops[trainer.name] * rate
        peak = peaks[trainer.name.split()[1]]
        reference = trainer.name.replace("compiled", "hand-written")
        ratio = f"{medians[reference] / seconds:.3f}" if "compiled" in trainer.name.split()[2] else ""
        print(
            f"{trainer.name:50s} {seconds * 1e3:8.1f} {rate:9.0f} {model_flops / 1e9:8.1f} {model_flops / peak:6.1%} "
            f"{ratio:>15s}"
        )
    print(
        "\n(train FLOPs/token: "
        + ", ".join(f"{n} {training_flops(spec, seed(n, spec)) / 1e6:.2f}M" for n in args.seeds)
        + "; 'vs hand-written' = compiled tokens/s ÷ hand-written tokens/s, target ≥ 1.0; MFU against the "
        "matmul rate of the row's precision)"
    )
    if args.packing:
        print("\ncandidates at once on the device (compiled programs, separate processes, one common window):")
        for name in args.seeds:
            for precision in precisions:
                for copies in (int(c) for c in args.packing.split(",")):
                    rate, _ = packed_rate(name, args.preset, batch_size, copies, args.window, precision, args.device)
                    print(
                        f"  {name} {precision} × {copies}: {rate:,.0f} tokens/s in all "
                        f"({flops[f'{name} {precision} compiled'] * rate / peaks[precision]:.1%} MFU)"
                    )


if __name__ == "__main__":
    main()
