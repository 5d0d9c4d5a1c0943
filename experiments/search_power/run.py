"""Search power: does the default search beat random parents, and does it rediscover Primer?

The design is the README's (fixed before running): arms ``ladder`` (the default search,
``examples/demo.toml``) and ``random`` (the same with ``ladder_parents = "random"``), campaign
seeds 0–4, 150 births each, one candidate at a time per campaign, ``--jobs`` campaigns at once,
into ``search_power.db``; a rerun resumes every campaign where it stopped.

    .venv/bin/python experiments/search_power/run.py campaigns --seeds 0,1,2,3,4 --jobs 2
    .venv/bin/python experiments/search_power/run.py report
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from cli.compare import CampaignSummary, summarize_campaign  # noqa: E402
from evaluator.provenance import code_version  # noqa: E402
from primitives.known_edits import EDITS, known_edits  # noqa: E402
from primitives.validate import parse_architecture  # noqa: E402
from search.campaign import build_campaign  # noqa: E402
from search.config import CampaignConfig  # noqa: E402
from storage import Repository  # noqa: E402

DB = f"sqlite:///{HERE / 'search_power.db'}"
ARMS = {"ladder": {}, "random": {"ladder_parents": "random"}}
BIRTHS = 150
TOP = 5


def config_for(arm: str, seed: int, births: int) -> CampaignConfig:
    return CampaignConfig.from_toml(
        ROOT / "examples" / "demo.toml",
        name=f"{arm}-s{seed}",
        search_seed=seed,
        max_evals=births,
        backend="inprocess",
        workers=1,
        **ARMS[arm],
    )


def run_campaign(arm: str, seed: int, births: int) -> str:
    """Start or resume one campaign (extended to ``births`` if it was stored with fewer)."""
    repo = Repository(DB)
    config = config_for(arm, seed, births)
    stored = repo.get_campaign(config.name)
    if stored is not None:
        config = CampaignConfig.from_stored(stored.config)
        if config.max_evals < births:
            config = config.model_copy(update={"max_evals": births})
            repo.set_campaign_config(config.name, config.model_dump(mode="json"))
            repo.set_campaign_status(config.name, "running")
        elif stored.status == "finished":
            return f"{config.name}: finished"
    build_campaign(config, repo).run()
    return f"{config.name}: {repo.count(repo.get_campaign(config.name).id)} individuals"


# --------------------------------------------------------------------------- the report


def best_at(summary: CampaignSummary, compute: float) -> float | None:
    below = [loss for spent, loss in summary.curve if spent <= compute]
    return below[-1] if below else None


def report() -> None:
    from scipy.stats import mannwhitneyu

    repo = Repository(DB, readonly=True)
    campaigns = sorted(repo.list_campaigns(), key=lambda c: c.name)
    summaries = {c.name: summarize_campaign(repo, c) for c in campaigns}
    equal = min((s.compute for s in summaries.values()), default=0.0)
    lines = [
        "# Search power: tables",
        "",
        f"Written by `run.py report` at {code_version(HERE)} from `search_power.db`. Equal compute: "
        f"{equal:.3g} FLOPs (training + screen), the least any campaign has spent so far.",
        "",
        "| campaign | state | births | trained | FLOPs | best − seed at equal compute | best − seed | "
        "named edits in the top 5 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    relative: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for campaign in campaigns:
        summary = summaries[campaign.name]
        roots = repo.roots(campaign.id)
        seed_loss = roots[0].fitness if roots else None
        at_equal = best_at(summary, equal)
        if seed_loss is None or at_equal is None:
            continue
        seed_program = parse_architecture(roots[0].architecture_json)
        top = repo.top(campaign.id, TOP)
        edits = sorted({e for r in top for e in known_edits(seed_program, parse_architecture(r.architecture_json))})
        arm = campaign.name.split("-")[0]
        relative.setdefault(arm, []).append(at_equal - seed_loss)
        state = "finished" if campaign.status == "finished" else "**partial**"
        lines.append(
            f"| {campaign.name} | {state} | {summary.individuals} | {summary.trained} | {summary.compute:.3g} | "
            f"{at_equal - seed_loss:+.4f} | {(summary.best or seed_loss) - seed_loss:+.4f} | "
            f"{', '.join(e.strip() for e in edits) or '–'} |"
        )
    lines += ["", "## Primary outcome", ""]
    ladder, random = relative.get("ladder", []), relative.get("random", [])
    if len(ladder) >= 2 and len(random) >= 2:
        test = mannwhitneyu(ladder, random, alternative="less")
        lines.append(
            f"ladder {len(ladder)} campaigns, random {len(random)}: one-sided Mann-Whitney p = {test.pvalue:.3g}, "
            f"P(a ladder campaign beats a random one) = {1 - test.statistic / (len(ladder) * len(random)):.2f}."
            + ("" if all(c.status == "finished" for c in campaigns) else " **Partial: not the study's answer.**")
        )
    else:
        lines.append("Too few campaigns per arm for the test yet.")
    lines += ["", f"Named edits recognised: {', '.join(e.strip() for e in EDITS)}."]
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("campaigns", help="every arm at every seed, --jobs at once (resumable)")
    run.add_argument("--seeds", default="0,1,2,3,4")
    run.add_argument("--births", type=int, default=BIRTHS)
    run.add_argument("--jobs", type=int, default=2)
    sub.add_parser("report", help="table.md from the database")
    args = parser.parse_args()
    if args.command == "report":
        report()
        return
    calls = [(arm, int(s), args.births) for s in args.seeds.split(",") for arm in ARMS]
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        for message in pool.map(run_campaign, *zip(*calls)):
            print(message, flush=True)


if __name__ == "__main__":
    main()
