"""The engine's search strategies on NAS-Bench-201, offline: does selection beat chance?

Runs ``--campaigns`` campaigns per strategy and data set with the engine's own evolution and
strategy code (``search.nb201``: one-edge mutations, each query one training seed's accuracy)
and prints, at each budget, the mean regret (optimum minus the true mean accuracy of the best
observed cell, in accuracy points) with its standard error, P(the strategy's campaign beats a
random campaign, 1 v 1: the Mann-Whitney U over n²) and the one-sided Mann-Whitney p against
``random``. ``uniform`` is a reference line, not an engine strategy: i.i.d. cells, the
literature's random search. Campaign seeds are 0..n-1 for every strategy. Needs the ``nb201``
extra (in the dev install).

    .venv/bin/python benchmarks/search_strategies.py                      # 300 campaigns, ~1 min
    .venv/bin/python benchmarks/search_strategies.py --campaigns 1000 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.nb201 import DATASETS, load_table, run_campaign, strategy  # noqa: E402

BUDGETS = (32, 64, 200)
STRATEGIES = ("aging", "random", "uniform")


def regrets(dataset: str, name: str, campaigns: int, budgets: tuple[int, ...], population: int, sample: int):
    """Campaign × budget regrets of one strategy."""
    table = load_table(dataset)
    search = None if name == "uniform" else strategy(name, population, sample)
    curves = [run_campaign(table, search, max(budgets), seed) for seed in range(campaigns)]
    return np.array([[curve[b - 1] for b in budgets] for curve in curves])


def compare(mine: np.ndarray, random: np.ndarray) -> tuple[float, float]:
    """(P(mine beats random 1 v 1), one-sided Mann-Whitney p that mine's regret is lower)."""
    test = mannwhitneyu(mine, random, alternative="less")
    return 1 - float(test.statistic) / (len(mine) * len(random)), float(test.pvalue)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaigns", type=int, default=300)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="evaluations per campaign")
    parser.add_argument("--population", type=int, default=10)
    parser.add_argument("--sample", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON object per (strategy, data set, budget)")
    args = parser.parse_args()
    budgets = tuple(int(b) for b in args.budgets.split(","))
    if not args.json:
        print(
            f"NAS-Bench-201, {args.campaigns} campaigns per strategy, population {args.population}, "
            f"tournaments of {args.sample}; regret in accuracy points (mean ± s.e.)"
        )
    for dataset in args.datasets.split(","):
        table = {s: regrets(dataset, s, args.campaigns, budgets, args.population, args.sample) for s in STRATEGIES}
        if not args.json:
            print(f"\n{dataset} (optimum {load_table(dataset).optimum:.2f})")
            print(f"{'strategy':10s}{'evaluations':>12s}{'regret':>16s}{'P(beats random)':>18s}{'p (MWU)':>12s}")
        for name in STRATEGIES:
            for j, budget in enumerate(budgets):
                values = table[name][:, j]
                beats, p = compare(values, table["random"][:, j])
                row = {
                    "strategy": name,
                    "dataset": dataset,
                    "evaluations": budget,
                    "campaigns": args.campaigns,
                    "mean_regret": float(values.mean()),
                    "stderr": float(values.std(ddof=1) / np.sqrt(len(values))),
                    "p_beats_random": beats,
                    "mannwhitney_p": p,
                }
                if args.json:
                    print(json.dumps(row))
                else:
                    print(
                        f"{name:10s}{budget:12d}{row['mean_regret']:10.3f} ± {row['stderr']:.3f}{beats:18.2f}{p:12.2g}"
                    )


if __name__ == "__main__":
    main()
