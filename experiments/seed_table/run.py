"""The seed table on the calibrated ``cpu`` preset: every library seed, at equal training FLOPs
(registry cost model) and at equal wall-clock time, 3 training seeds each.

The runs, the table and the plots are the calibration study's (``experiments/calibration/run.py``,
imported): the FLOPs-matched table is its ``T128-1M-flops`` protocol over the whole library. The
wall-clock table gives every arm the time the Transformer's 1e6 tokens take, at the arm's own
speed: ``speeds`` times every seed's training step side by side with the others (one torch
thread, rounds interleaved so that the machine's load hits all alike) and writes
``speeds.json``; each arm then trains ``1e6 × its tokens/s ÷ the Transformer's`` tokens, and
the report puts every run on a seconds axis at the measured rates. So the table does not
depend on what else the machine was doing while it trained. Runs go seed by seed (every arm at
training seed 0, then 1, ...), so a stopped run leaves complete tables at fewer seeds; a rerun
skips what ``results.jsonl`` holds.

    .venv/bin/python experiments/seed_table/run.py run --table flops --seeds 0,1,2 --jobs 2
    .venv/bin/python experiments/seed_table/run.py speeds        # writes speeds.json (~3 min)
    .venv/bin/python experiments/seed_table/run.py run --table wall --seeds 0,1,2 --jobs 2
    .venv/bin/python experiments/seed_table/run.py report
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from evaluator.provenance import code_version, load_script, read_jsonl
from primitives.cost import training_flops
from primitives.seeds import SEEDS, seed

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.jsonl"


calibration = load_script("calibration_run", HERE.parent / "calibration" / "run.py")
_FLOPS = calibration.PROTOCOLS["T128-1M-flops"]
SPEEDS = HERE / "speeds.json"
WALL_TOKENS = 1e6  # the Transformer's tokens; every other arm gets the same time at its own speed

TABLES = {
    "flops": _FLOPS,
    "wall": _FLOPS.model_copy(
        update={
            "name": "T128-wall",
            "budget": f"{WALL_TOKENS:g}tokens",
            "description": "the cpu preset wall-clock-matched: every arm trains for the "
            "time the Transformer's 1e6 tokens take, at its own measured "
            "speed (speeds.json)",
        }
    ),
}

#: Library order, with the calibration panel first (the arms the papers rank).
ORDER = [*calibration.PANEL, *(name for name in SEEDS if name not in calibration.PANEL)]


def measure_speeds(arms: list[str], steps: int, rounds: int) -> dict:
    """Seconds per training step of every arm on the cpu preset, one torch thread, ``rounds``
    interleaved rounds of ``steps`` steps each (median and range over rounds)."""
    import platform

    import torch

    from evaluator.compiler import compile_model

    bench = load_script("train_throughput", HERE.parents[1] / "benchmarks" / "train_throughput.py")
    torch.set_num_threads(1)
    spec, batch_size = _FLOPS.spec, _FLOPS.train.batch_size
    batch = torch.randint(spec.vocab_size, (batch_size, spec.seq_len + 1), generator=torch.Generator().manual_seed(0))
    trainers = []
    for arm in arms:
        torch.manual_seed(0)
        trainer = bench.Trainer(arm, compile_model(spec, seed(arm, spec)), batch)
        trainer.run(3, torch.device("cpu"))  # warm-up
        trainers.append(trainer)
    load_before = os.getloadavg()
    for i in range(rounds):
        for trainer in trainers:
            trainer.times.append(trainer.run(steps, torch.device("cpu")))
        print(f"round {i + 1}/{rounds}", flush=True)
    tokens = batch_size * spec.seq_len
    per_step = {t.name: statistics.median(t.times) for t in trainers}
    return {
        "commit": code_version(HERE),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
        "torch": torch.__version__,
        "threads": 1,
        "steps": steps,
        "rounds": rounds,
        "load_average": [load_before, os.getloadavg()],
        "tokens_per_step": tokens,
        "seconds_per_step": per_step,
        "range": {t.name: [min(t.times), max(t.times)] for t in trainers},
        "tokens_per_second": {arm: tokens / s for arm, s in per_step.items()},
    }


def wall_budgets() -> dict[str, str]:
    """Each arm's token budget for the wall-clock table, from ``speeds.json``."""
    if not SPEEDS.exists():
        raise SystemExit(f"{SPEEDS} is missing: run `run.py speeds` first")
    rates = json.loads(SPEEDS.read_text())["tokens_per_second"]
    return {arm: f"{round(WALL_TOKENS * rate / rates['transformer'])}tokens" for arm, rate in rates.items()}


def on_measured_clock(run: dict, rates: dict[str, float]) -> dict:
    """A wall-table run with its seconds replaced by tokens ÷ the arm's measured tokens/s."""
    rate = rates[run["arm"]]
    return {
        **run,
        "seconds": run["tokens"] / rate,
        "budget": f"{WALL_TOKENS / rates['transformer']:.0f}s",
        "loss_curve": [{**p, "seconds": p["tokens"] / rate} for p in run["loss_curve"]],
    }


def speed_table() -> list[str]:
    """Every seed's measured step time against its FLOPs, relative to the Transformer."""
    speeds = json.loads(SPEEDS.read_text())
    rates = speeds["tokens_per_second"]
    spec = _FLOPS.spec
    base_flops = training_flops(spec, seed("transformer", spec))
    lines = [
        f"## Training speed (speeds.json: `run.py speeds`, commit {speeds['commit']}, {speeds['machine']}, "
        f"torch {speeds['torch']}, one thread, median of {speeds['rounds']} interleaved rounds of "
        f"{speeds['steps']} steps; load average {speeds['load_average'][0][0]:.1f} → "
        f"{speeds['load_average'][1][0]:.1f})",
        "",
        "The last column is the step time ÷ the Transformer's, divided by the FLOPs ratio: how much slower a "
        "seed trains than its FLOPs say (1.00: in proportion).",
        "",
        "| seed | ms/step | round range (ms) | tokens/s | speed × transformer | FLOPs/token × transformer "
        "| time per FLOP × transformer |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in sorted(rates, key=lambda a: -rates[a]):
        low, high = speeds["range"][arm]
        speed, flops = rates[arm] / rates["transformer"], training_flops(spec, seed(arm, spec)) / base_flops
        lines.append(
            f"| {arm} | {speeds['seconds_per_step'][arm] * 1e3:.0f} | {low * 1e3:.0f}–{high * 1e3:.0f} | "
            f"{rates[arm]:,.0f} | {speed:.2f} | {flops:.3f} | {1 / (speed * flops):.2f} |"
        )
    return lines + [""]


def report() -> None:
    runs = read_jsonl(RESULTS)
    lines = [
        "# Seed table on the cpu preset",
        "",
        "Generated by `.venv/bin/python experiments/seed_table/run.py report` from `results.jsonl`.",
        "",
    ]
    for key, protocol in TABLES.items():
        mine = [r for r in runs if r["protocol"] == protocol.name]
        if not mine:
            continue
        if key == "wall":  # on the seconds axis of the measured speeds (see the module docstring)
            rates = json.loads(SPEEDS.read_text())["tokens_per_second"]
            mine = [on_measured_clock(r, rates) for r in mine]
            protocol = protocol.model_copy(update={"budget": mine[0]["budget"]})
        seeds = sorted({r["seed"] for r in mine})
        lines += [
            f"## {protocol.name}: {protocol.description}",
            "",
            f"Training seeds {seeds}; {len({r['arm'] for r in mine})} of {len(SEEDS)} library seeds run.",
            "",
            *calibration.table(protocol, mine, ORDER),
        ]
        calibration.plot(
            HERE / f"loss_{key}.png",
            f"seed table {protocol.name}",
            mine,
            [
                "transformer",
                "primer_ez",
                "primer",
                "mdha",
                "squared_relu",
                "transformer_pp",
                "swiglu",
                "sas",
                "sas_p",
                "parallel",
                "deepnorm",
                "transformer_postln",
            ],
        )
        lines += [f"![loss curves, {protocol.name}](loss_{key}.png)", ""]
    if SPEEDS.exists():
        lines += speed_table()
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run", help="train the library under one table's budget (skips recorded runs)")
    go.add_argument("--table", required=True, choices=sorted(TABLES))
    go.add_argument("--arms", default=",".join(ORDER), help="comma-separated seeds of the library")
    go.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    go.add_argument("--jobs", type=int, default=2)
    speeds = sub.add_parser("speeds", help="time every seed's training step side by side; writes speeds.json")
    speeds.add_argument("--steps", type=int, default=4, help="timed steps per arm and round")
    speeds.add_argument("--rounds", type=int, default=7, help="interleaved rounds; the median is kept")
    sub.add_parser("report", help="write table.md and the plots from results.jsonl")
    args = parser.parse_args()
    if args.command == "run":
        budgets = wall_budgets() if args.table == "wall" else None
        calibration.run(
            TABLES[args.table],
            args.arms.split(","),
            [int(s) for s in args.seeds.split(",")],
            args.jobs,
            RESULTS,
            budgets,
        )
    elif args.command == "speeds":
        SPEEDS.write_text(json.dumps(measure_speeds(ORDER, args.steps, args.rounds), indent=1) + "\n")
        print(f"wrote {SPEEDS}")
    else:
        report()


if __name__ == "__main__":
    main()
