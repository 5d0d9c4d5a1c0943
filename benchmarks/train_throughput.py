"""Training throughput of compiled programs against hand-written reference modules.

For each seed (transformer, primer_ez by default) at the default ModelSpec, the archevo-
compiled model and the independent nn.Module of tests/reference_models.py (loaded with the
compiled model's weights, so both compute the same function) train side by side: the same
batch, the same AdamW (fused, as evaluator.train uses), gradient clipping, rounds interleaved
ABAB… so a shared machine's load hits both alike, and the median round is reported. Model
FLOP/s = training FLOPs per token (torch's FLOP counter on the compiled model) × tokens/s,
given as a fraction (MFU) of this machine's fp32 matmul rate measured in the same run
(2048² ``a @ b`` between rounds).

    .venv/bin/python benchmarks/train_throughput.py [--steps 5] [--rounds 7] [--compile] [--device cuda]
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

from evaluator.compile import compile_model
from evaluator.train import parameter_groups
from primitives.cost import training_flops
from primitives.program import ModelSpec
from primitives.seeds import seed
from tests.reference_models import build_reference


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """fp32 FLOP/s of an n×n matmul (median of ``repeats`` after 2 warm-ups)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
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

    def __init__(self, name: str, model: torch.nn.Module, batch: torch.Tensor, lr: float = 1e-4):
        self.name, self.model, self.batch = name, model, batch
        self.x, self.y = batch[:, :-1].contiguous(), batch[:, 1:].contiguous()
        self.optimizer = torch.optim.AdamW(parameter_groups(model, 0.1), lr=lr, betas=(0.9, 0.95), fused=True)
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.step_fn = model
        self.times: list[float] = []

    def step(self) -> None:
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


def build(name: str, spec: ModelSpec, device: torch.device, batch: torch.Tensor, use_compile: bool) -> list[Trainer]:
    torch.manual_seed(0)
    compiled = compile_model(spec, seed(name, spec))
    reference = build_reference(name, vocab_size=spec.vocab_size, d_model=spec.d_model, n_layers=spec.n_layers,
                                n_heads=spec.n_heads, seq_len=spec.seq_len)
    reference.load_from(compiled)
    with torch.no_grad():  # same weights → same function (a wrong comparison would be worthless)
        probe = batch[:4, :-1].cpu()
        gap = (compiled(probe) - reference(probe)).abs().max().item()
    if gap > 1e-4:
        raise SystemExit(f"{name}: compiled and reference logits differ by {gap:.2e}; not comparing")
    compiled.to(device).train()
    reference.to(device).train()
    trainers = [Trainer(f"{name} compiled", compiled, batch), Trainer(f"{name} hand-written", reference, batch)]
    if use_compile:
        for base in list(trainers):
            clone = Trainer(f"{base.name} +torch.compile", base.model, batch)
            clone.optimizer = base.optimizer  # same parameters: share the optimizer state
            clone.params = base.params
            clone.step_fn = torch.compile(base.model)
            trainers.append(clone)
    return trainers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", default=["transformer", "primer_ez"])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=7, help="ABAB… rounds; the median is reported")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model before the rounds")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd versions of both")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--d-model", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--seq-len", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    overrides = {"d_model": args.d_model, "n_layers": args.layers, "seq_len": args.seq_len}
    spec = ModelSpec(**{k: v for k, v in overrides.items() if v is not None})
    batch = torch.randint(spec.vocab_size, (args.batch_size, spec.seq_len + 1),
                          generator=torch.Generator().manual_seed(0)).to(device)
    tokens = args.batch_size * spec.seq_len
    print(f"ModelSpec {spec.model_dump()}  batch {args.batch_size} × {spec.seq_len} = {tokens} tokens/step  "
          f"device {device}  torch {torch.__version__}  threads {torch.get_num_threads()}")

    trainers: list[Trainer] = []
    flops: dict[str, float] = {}
    for name in args.seeds:
        group = build(name, spec, device, batch, args.compile)
        # FLOPs are the model's, by the registry's cost model (the same math on both sides)
        model_flops = training_flops(spec, seed(name, spec))
        for trainer in group:
            flops[trainer.name] = model_flops
        trainers += group
    for trainer in trainers:
        start = time.perf_counter()
        for _ in range(args.warmup):
            trainer.step()
        sync(device)
        if "torch.compile" in trainer.name:
            print(f"  {trainer.name}: compile + warm-up {time.perf_counter() - start:.1f} s")

    rates = [matmul_rate(device)]
    for _ in range(args.rounds):
        for trainer in trainers:
            trainer.times.append(trainer.run(args.steps, device))
        rates.append(matmul_rate(device))
    peak = statistics.median(rates)
    print(f"fp32 matmul 2048²: {peak / 1e9:.1f} GFLOP/s (median of {len(rates)}, range "
          f"{min(rates) / 1e9:.0f}–{max(rates) / 1e9:.0f})\n")

    header = f"{'model':44s} {'ms/step':>8s} {'tokens/s':>9s} {'GFLOP/s':>8s} {'MFU':>6s} {'vs hand-written':>15s}"
    print(header)
    print("-" * len(header))
    medians = {t.name: statistics.median(t.times) for t in trainers}
    for trainer in trainers:
        seconds = medians[trainer.name]
        rate = tokens / seconds
        model_flops = flops[trainer.name] * rate
        reference = trainer.name.replace("compiled", "hand-written")
        ratio = f"{medians[reference] / seconds:.3f}" if "compiled" in trainer.name else ""
        print(f"{trainer.name:44s} {seconds * 1e3:8.1f} {rate:9.0f} {model_flops / 1e9:8.1f} {model_flops / peak:6.1%} "
              f"{ratio:>15s}")
    print("\n(train FLOPs/token: " + ", ".join(f"{n} {flops[n + ' compiled'] / 1e6:.2f}M" for n in args.seeds)
          + "; 'vs hand-written' = compiled tokens/s ÷ hand-written tokens/s, target ≥ 0.95)")


if __name__ == "__main__":
    main()
