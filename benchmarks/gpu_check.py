"""The device check: what a session lent a GPU runs once, in under 10 minutes, for the README.

Steps, each with its own time limit, each recorded (figures, or why it failed) in
``OUT/gpu_check.json`` and its output in ``OUT/<step>.txt``, so a step that breaks or runs
out of time costs its own figures only:

1. ``correctness``: the Transformer at the ``cpu`` preset trained a few steps on the device
   in fp32 (TF32 off) against the same run on the CPU (the same batches and initial weights),
   the validation losses within ``TOLERANCE``; and a bf16 run twice on the device (the gap
   between the reruns says how deterministic its kernels are).
2. ``throughput``: ``benchmarks/train_throughput.py`` in bf16 at the ``cpu`` preset with and
   without torch.compile, and at the ``primer`` preset eager: compiled programs against the
   hand-written reference, MFU.
3. ``packing``: 1, 2, 4 and 8 compiled candidates training at once on the one GPU (aggregate
   tokens/s, the copies timed over one common window).
4. ``search``: a short campaign on the device (in-process: the device image has no Ray).

``--dry-run`` runs every step on the CPU at tiny sizes (the CI test does), so the script
cannot rot between loans. ``scripts/gpu_check.sh`` is the entry point (it installs the wheels
the device image lacks).

    .venv/bin/python benchmarks/gpu_check.py --dry-run --out /tmp/gpu_check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: |val_loss(device fp32) − val_loss(CPU)| that counts as the same training (nats).
TOLERANCE = 2e-3


def correctness(device: str, steps: int) -> dict:
    """The same short run on ``device`` and on the CPU; bf16 twice on ``device``."""
    import torch

    from evaluator.budget import Budget
    from evaluator.presets import get_preset
    from evaluator.tokenization import load_tokenized
    from evaluator.train import train
    from primitives.seeds import seed

    preset = get_preset("cpu")
    spec, config = preset.spec, preset.train.model_copy(update={"eval_points": 0, "threads": None, "tf32": False})
    data = load_tokenized("default", spec.vocab_size, max_train_tokens=200_000)
    budget = Budget("tokens", steps * config.batch_size * spec.seq_len)
    architecture = seed("transformer", spec)

    def run(on: str, precision: str) -> float:
        result = train(
            spec, architecture, data, budget, config.model_copy(update={"device": on, "precision": precision})
        )
        if result.status != "ok":
            raise RuntimeError(f"{on} {precision}: {result.status}: {result.message}")
        return result.val_loss

    cpu, fp32 = run("cpu", "fp32"), run(device, "fp32")
    bf16 = [run(device, "bf16"), run(device, "bf16")]
    return {
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "steps": steps,
        "val_loss_cpu_fp32": cpu,
        "val_loss_device_fp32": fp32,
        "fp32_gap": abs(fp32 - cpu),
        "fp32_within_tolerance": abs(fp32 - cpu) <= TOLERANCE,
        "tolerance": TOLERANCE,
        "val_loss_device_bf16": bf16,
        "bf16_rerun_gap": abs(bf16[0] - bf16[1]),
    }


def _script(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "benchmarks" / "train_throughput.py"), *args]


def commands(device: str, dry_run: bool, out: Path) -> dict[str, list[list[str]]]:
    """Each step's commands (the correctness step runs in this process instead); the search's
    config and database go to ``out``."""
    if dry_run:  # every path once, at the smallest sizes
        tiny = ["--device", device, "--steps", "1", "--rounds", "1", "--warmup", "1", "--batch-size", "2"]
        throughput = [_script("--preset", "cpu", "--precision", "fp32", *tiny)]
        packing = [_script("--preset", "cpu", "--seeds", "transformer", "--packing", "1,2", "--window", "1", *tiny)]
        evals, budget = 3, "4096tokens"
    else:
        throughput = [
            _script("--preset", "cpu", "--device", device, "--precision", "bf16", "--compile", "--rounds", "5"),
            _script("--preset", "primer", "--device", device, "--precision", "bf16", "--steps", "3", "--rounds", "5"),
        ]
        packing = [
            _script(
                "--preset",
                "cpu",
                "--device",
                device,
                "--precision",
                "bf16",
                "--seeds",
                "transformer",
                "--packing",
                "1,2,4,8",
                "--window",
                "10",
                "--rounds",
                "1",
            )
        ]
        evals, budget = 12, "1e6tokens"
    config = out / "search.toml"
    config.write_text(
        f'name = "gpu-check"\npreset = "cpu"\nbackend = "inprocess"\nmax_evals = {evals}\nbudget = "{budget}"\n'
        f'[train]\ndevice = "{device}"\n'
    )
    search = [sys.executable, "-c", "from cli.main import run; run()", "search", "start", "--config", str(config)]
    search += ["--db", f"sqlite:///{out / 'search.db'}"]
    return {"throughput": throughput, "packing": packing, "search": [search]}


def run_step(name: str, argvs: list[list[str]], out: Path, limit_s: float) -> dict:
    """Run a step's commands one after another within ``limit_s``; their output to ``out/name.txt``."""
    start, log = time.monotonic(), out / f"{name}.txt"
    with log.open("w") as handle:
        for argv in argvs:
            left = limit_s - (time.monotonic() - start)
            handle.write(f"$ {' '.join(argv)}\n")
            handle.flush()
            try:
                done = subprocess.run(argv, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, timeout=max(left, 1))
            except subprocess.TimeoutExpired:
                return {"status": "timeout", "seconds": time.monotonic() - start, "output": log.name}
            if done.returncode != 0:
                return {"status": f"exit {done.returncode}", "seconds": time.monotonic() - start, "output": log.name}
    return {"status": "ok", "seconds": time.monotonic() - start, "output": log.name}


#: Seconds per step with a device: ≤ 10 minutes in all, the search last.
LIMITS = {"correctness": 90, "throughput": 240, "packing": 120, "search": 120}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu_check_out"))
    parser.add_argument("--dry-run", action="store_true", help="every step on the CPU at tiny sizes (CI)")
    args = parser.parse_args(argv)
    import torch

    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: torch sees no CUDA device; --dry-run runs the check on the CPU")
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"device": device, "torch": torch.__version__, "dry_run": args.dry_run, "steps": {}}
    limits = {name: (300 if args.dry_run else limit) for name, limit in LIMITS.items()}
    start = time.monotonic()
    try:
        report["steps"]["correctness"] = {"status": "ok", **correctness(device, 3 if args.dry_run else 20)}
    except Exception as error:  # noqa: BLE001 - a failed step is a recorded figure, the rest still run
        report["steps"]["correctness"] = {"status": f"error: {type(error).__name__}: {error}"}
    for name, argvs in commands(device, args.dry_run, args.out).items():
        print(f"gpu_check: {name} ...", flush=True)
        report["steps"][name] = run_step(name, argvs, args.out, limits[name])
    report["seconds"] = time.monotonic() - start
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    for name, step in report["steps"].items():
        print(f"gpu_check: {name}: {step['status']}")
    print(f"gpu_check: figures in {args.out} ({report['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
