"""Ladder fidelity: how well does a cheap look at a candidate rank it against its full run?

The seed table's FLOPs-matched runs (35 seeds × training seeds 0, 1, 2, the ``cpu`` preset,
1e6 tokens of the Transformer's FLOPs) carry a validation loss at every tenth of the budget
and a training loss every ~20k tokens: points *inside* one cosine schedule. ``short`` adds
*complete short runs* (their own schedule) at 1/16 and 1/4 of that budget, for the same seeds
at training seeds 0 and 1. ``report`` writes ``table.md``: Spearman ρ (bootstrap 95 %
intervals over programs) of each cheap look against the full run's final loss, and what a
seed-relative stopping rule would have stopped. The rediscovery study's campaign children add
a second population (their recorded training curves) for the rule.

    .venv/bin/python experiments/ladder_fidelity/run.py short --jobs 1   # resumable
    .venv/bin/python experiments/ladder_fidelity/run.py report
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evaluator.provenance import load_script

HERE = Path(__file__).resolve().parent
SHORT = HERE / "short_runs.jsonl"
SEED_TABLE = HERE.parent / "seed_table" / "results.jsonl"

#: Fractions of the full budget that the complete short runs get.
SHORT_FRACTIONS = (1 / 16, 1 / 4)
SHORT_SEEDS = (0, 1)


calibration = load_script("calibration_run", HERE.parent / "calibration" / "run.py")
FULL = calibration.PROTOCOLS["T128-1M-flops"]


def short_protocol(fraction: float):
    flops = float(FULL.budget.removesuffix("flops")) * fraction
    return FULL.model_copy(
        update={
            "name": f"T128-flops-{fraction:g}",
            "budget": f"{flops:.6g}flops",
            "description": f"a complete run of {fraction:g} of the FLOPs-matched budget, its own schedule",
        }
    )


def arms() -> list[str]:
    from evaluator.provenance import read_jsonl

    return sorted({r["arm"] for r in read_jsonl(SEED_TABLE) if r["protocol"] == FULL.name})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    short = sub.add_parser("short", help="complete short runs (resumable)")
    short.add_argument("--jobs", type=int, default=1)
    sub.add_parser("report", help="table.md from the runs")
    args = parser.parse_args()
    if args.command == "short":
        for fraction in SHORT_FRACTIONS:  # the cheap fidelity first: a stopped run leaves it complete
            for training_seed in SHORT_SEEDS:
                calibration.run(short_protocol(fraction), arms(), [training_seed], args.jobs, results=SHORT)
    else:
        from report import write_report  # experiments/ladder_fidelity/report.py

        write_report()


if __name__ == "__main__":
    main()
