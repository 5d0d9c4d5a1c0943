"""Throughput: trained candidates per core-hour, today's recipe against the new default.

Two arms on the ``cpu`` preset with the selective-copying screen, the same search seeds and the
same number of births, run side by side (one in-process campaign per core, at the same time, so
the machine's load falls on both):

* ``today``: the rediscovery study's recipe (``experiments/rediscovery/config.toml``): aging
  evolution, one median hurdle at half the budget, the uniform proposal.
* ``default``: the README demo's recipe (``examples/demo.toml``): the ladder (rungs at 1/16,
  1/8, 1/4, 1/2, seed-relative margins) over aging parents, the family proposal.

A trained candidate is one that got language-model training (``ok`` or stopped at a hurdle or
rung); a core-hour is an hour of one campaign's wall clock (its driver and its one worker
share a core). The FLOPs column is the load-free count: training and screen FLOPs by the cost
model. ``campaigns`` resumes (a rerun continues what ``throughput.db`` holds).

    .venv/bin/python experiments/throughput/run.py campaigns --seeds 0 --births 32
    .venv/bin/python experiments/throughput/run.py report
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from evaluator.provenance import code_version  # noqa: E402
from search.campaign import build_campaign  # noqa: E402
from search.config import CampaignConfig  # noqa: E402
from storage import Repository  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DB = f"sqlite:///{HERE / 'throughput.db'}"
RECIPES = {"today": ROOT / "experiments" / "rediscovery" / "config.toml", "default": ROOT / "examples" / "demo.toml"}
TRAINED = ("ok", "stopped_at_hurdle")


def config_for(arm: str, seed: int, births: int) -> CampaignConfig:
    return CampaignConfig.from_toml(
        RECIPES[arm], name=f"{arm}-s{seed}", search_seed=seed, max_evals=births, backend="inprocess", workers=1
    )


def run_one(arm: str, seed: int, births: int) -> None:
    repo = Repository(DB)
    config = config_for(arm, seed, births)
    stored = repo.get_campaign(config.name)
    if stored is not None:
        config = CampaignConfig.from_stored(stored.config)
    build_campaign(config, repo).run()


def report() -> None:
    repo = Repository(DB, readonly=True)
    lines = [
        "# Throughput: trained candidates per core-hour",
        "",
        f"Written by `run.py report` at {code_version(HERE)} from `throughput.db`. Each row is one "
        "campaign on one core (in-process, one worker); the two arms of a seed ran at the same time.",
        "",
        "| campaign | births | trained | stopped early | screened out | rejected (cost) | duplicates "
        "| wall hours | trained per core-hour | training + screen FLOPs | trained per 1e15 FLOPs | best loss |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    totals: dict[str, list[float]] = {}
    for campaign in sorted(repo.list_campaigns(), key=lambda c: c.name):
        rows = repo.finished_individuals(campaign.id)
        if not rows:
            continue
        count = {s: sum(r.status == s for r in rows) for s in {r.status for r in rows}}
        trained = sum(count.get(s, 0) for s in TRAINED)
        times = [t for r in rows for t in (r.created_at, r.finished_at) if t is not None]
        hours = (max(times) - min(times)).total_seconds() / 3600
        flops = sum(repo.compute(campaign.id))
        best = min((r.fitness for r in rows if r.status == "ok" and r.fitness is not None), default=None)
        arm = campaign.name.split("-")[0]
        partial = "" if campaign.status == "finished" else " (partial)"
        totals.setdefault(arm, [0, 0.0, 0.0])
        totals[arm] = [totals[arm][0] + trained, totals[arm][1] + hours, totals[arm][2] + flops]
        lines.append(
            f"| {campaign.name}{partial} | {len(rows)} | {trained} | {count.get('stopped_at_hurdle', 0)} | "
            f"{count.get('screened_out', 0)} | {count.get('rejected', 0)} | {count.get('duplicate', 0)} | "
            f"{hours:.2f} | {trained / hours:.1f} | {flops:.3g} | {trained / flops * 1e15:.2f} | "
            f"{'–' if best is None else f'{best:.4f}'} |"
        )
    lines += [
        "",
        "| arm | trained | core-hours | trained per core-hour | trained per 1e15 FLOPs |",
        "|---|---|---|---|---|",
    ]
    for arm, (trained, hours, flops) in sorted(totals.items()):
        lines.append(f"| {arm} | {trained:.0f} | {hours:.2f} | {trained / hours:.1f} | {trained / flops * 1e15:.2f} |")
    if {"today", "default"} <= totals.keys():
        rate = {arm: t / h for arm, (t, h, _) in totals.items()}
        per_flop = {arm: t / f for arm, (t, _, f) in totals.items()}
        lines += [
            "",
            f"default ÷ today: **{rate['default'] / rate['today']:.2f}×** trained candidates per core-hour, "
            f"{per_flop['default'] / per_flop['today']:.2f}× per FLOP.",
        ]
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    both = sub.add_parser("campaigns", help="both arms side by side, seed after seed (resumable)")
    both.add_argument("--seeds", default="0")
    both.add_argument("--births", type=int, default=32)
    one = sub.add_parser("one", help="one campaign (what `campaigns` starts twice at once)")
    one.add_argument("arm", choices=sorted(RECIPES))
    one.add_argument("seed", type=int)
    one.add_argument("births", type=int)
    sub.add_parser("report", help="table.md")
    args = parser.parse_args()
    if args.command == "one":
        run_one(args.arm, args.seed, args.births)
    elif args.command == "campaigns":
        for seed in (int(s) for s in args.seeds.split(",")):
            arms = [
                subprocess.Popen([sys.executable, __file__, "one", arm, str(seed), str(args.births)])
                for arm in sorted(RECIPES)
            ]
            if any(process.wait() for process in arms):
                raise SystemExit(f"a campaign of seed {seed} failed")
            print(f"seed {seed}: both arms done", flush=True)
    else:
        report()


if __name__ == "__main__":
    main()
