"""Primer's depthwise causal convolution: runtime.DepthwiseCausalConv (a sum of shifted,
scaled copies) against the grouped ``F.conv1d`` it replaced, side by side in one run.

Both compute the same thing (checked here); the benchmark prints each one's time for forward
and forward + backward at the gate's probe size and at training sizes, and the ratio.

    .venv/bin/python benchmarks/depthwise_conv.py
    .venv/bin/python benchmarks/depthwise_conv.py --threads 2 --repeats 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluator.runtime import DepthwiseCausalConv  # noqa: E402

SHAPES = [(2, 8, 32), (32, 64, 128), (32, 64, 512)]  # [batch, time, width]: probe, default, Primer's d_model


def grouped_conv1d(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    kernel = weight.shape[-1]
    return F.conv1d(F.pad(x.transpose(1, 2), (kernel - 1, 0)), weight, groups=x.shape[-1]).transpose(1, 2)


def seconds(fn, x: torch.Tensor, backward: bool, repeats: int) -> float:
    """Median of ``repeats`` timings (after a warm-up)."""
    times = []
    for i in range(repeats + 3):
        start = time.perf_counter()
        y = fn(x)
        if backward:
            y.sum().backward()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--kernel", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), kernel {args.kernel}, median of {args.repeats}")
    print(f"{'[batch, time, width]':<22} {'pass':<16} {'conv1d':>10} {'shifted sum':>12} {'speed-up':>9}")
    for shape in SHAPES:
        module = DepthwiseCausalConv(shape[-1], args.kernel, {"kind": "normal", "std": 0.5})
        x = torch.randn(*shape, requires_grad=True)
        torch.testing.assert_close(module(x), grouped_conv1d(x, module.weight), rtol=1e-5, atol=1e-5)
        for backward in (False, True):
            grouped = seconds(lambda v: grouped_conv1d(v, module.weight), x, backward, args.repeats)
            shifted = seconds(module, x, backward, args.repeats)
            name = "forward+backward" if backward else "forward"
            print(
                f"{str(list(shape)):<22} {name:<16} {grouped * 1e3:8.3f}ms {shifted * 1e3:10.3f}ms "
                f"{grouped / shifted:8.2f}x"
            )


if __name__ == "__main__":
    main()
