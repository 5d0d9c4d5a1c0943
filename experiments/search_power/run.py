"""Search power: does the default search beat random parents, and does it rediscover Primer?

The design is the README's (fixed before running): arms ``ladder`` (the default search,
``examples/demo.toml``) and ``random`` (the same with ``ladder_parents = "random"``), campaign
seeds 0–4, 150 births each, one candidate at a time per campaign, ``--jobs`` campaigns at once,
into ``search_power.db``; a rerun resumes every campaign where it stopped.

Finished campaigns are then confirmed: each one's top 3 children and the Transformer seed (once,
in ``ladder-s0``; the runs are shared with every campaign whose seed is the same run) at 3 fresh
training seeds, ``archevo confirm``'s code.

    .venv/bin/python experiments/search_power/run.py campaigns --seeds 0,1,2,3,4 --jobs 2
    .venv/bin/python experiments/search_power/run.py confirm --jobs 2
    .venv/bin/python experiments/search_power/run.py report
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from cli.compare import summarize_campaign  # noqa: E402
from evaluator.provenance import code_version  # noqa: E402
from experiments.study_tools import (
    best_at,
    confirm_individuals,
    plot_best_so_far,
    run_pool,
    share_seed_runs,
    top_children,
)  # noqa: E402
from primitives.known_edits import EDITS, known_edits  # noqa: E402
from primitives.validate import parse_architecture  # noqa: E402
from search.campaign import build_campaign  # noqa: E402
from search.config import CampaignConfig  # noqa: E402
from search.confirm import summarize  # noqa: E402
from storage import Repository  # noqa: E402

#: The campaigns run in a working copy that git never touches (a checkout or stash of a database
#: that live processes write corrupts it); `snapshot` copies it, checkpointed, to the tracked file.
COMMITTED, WORKING = HERE / "search_power.db", HERE / "search_power.work.db"
DB = f"sqlite:///{WORKING}"
ARMS = {"ladder": {}, "random": {"ladder_parents": "random"}}
BIRTHS = 150
TOP = 5  # the secondary outcome: named edits among each campaign's top 5
CONFIRM_TOP, CONFIRM_SEEDS = 3, 3
REFERENCE = "ladder-s0"  # whose confirmation runs of the Transformer seed every campaign shares


def config_for(arm: str, seed: int, births: int) -> CampaignConfig:
    return CampaignConfig.from_toml(
        ROOT / "examples" / "demo.toml",
        name=f"{arm}-s{seed}",
        search_seed=seed,
        max_evals=births,
        backend="inprocess",
        workers=1,
        keep_weights=0,  # as the campaigns started before weights were kept by default
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


def confirm_campaign(name: str, which: str) -> str:
    """Retrain a finished campaign's ``top`` 3 children, or its ``seed`` individual, at the
    confirmation seeds (resumable: recorded runs are not repeated)."""
    repo = Repository(DB)
    campaign = repo.get_campaign(name)
    individuals = top_children(repo, campaign.id, CONFIRM_TOP) if which == "top" else repo.roots(campaign.id)
    confirm_individuals(repo, name, individuals, CONFIRM_SEEDS)
    return f"{name}: {which} confirmed"


def confirm_finished(jobs: int) -> None:
    repo = Repository(DB, readonly=True)
    finished = sorted(c.name for c in repo.list_campaigns() if c.status == "finished")
    calls = [(REFERENCE, "seed")] if REFERENCE in finished else []
    run_pool(jobs, confirm_campaign, calls + [(name, "top") for name in finished])
    if REFERENCE in finished:
        share_seed_runs(Repository(DB), REFERENCE, finished)


# --------------------------------------------------------------------------- the report


def _fmt(mean: float | None, std: float | None, digits: int = 4) -> str:
    return "-" if mean is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def first_appearance(repo: Repository, campaign_id: int, seed_program, edit: str) -> float | None:
    """Training + screen FLOPs the campaign had spent when a trained individual first carried
    ``edit`` (None if none did)."""
    spent, screens = 0.0, repo.screens(campaign_id)
    for individual in repo.finished_individuals(campaign_id):
        spent += (individual.flops or 0.0) + sum(s.flops for s in screens.get(individual.id, []))
        trained = individual.status in ("ok", "stopped_at_hurdle")
        if trained and edit in known_edits(seed_program, parse_architecture(individual.architecture_json)):
            return spent
    return None


def confirmed_section(repo: Repository, campaigns: list) -> list[str]:
    lines = [
        "## Confirmed top children",
        "",
        f"Each finished campaign's top {CONFIRM_TOP} children retrained at {CONFIRM_SEEDS} fresh training seeds, "
        "against the Transformer seed at the same seeds (speedup: Primer's, paired by training seed).",
        "",
        "| campaign | individual | search loss | confirmed loss | speedup vs seed | wins | known edits |",
        "|---|---|---|---|---|---|---|",
    ]
    for campaign in campaigns:
        confirmed = summarize(repo, campaign.id)
        if not confirmed:
            continue
        seed_program = parse_architecture(repo.roots(campaign.id)[0].architecture_json)
        for individual in top_children(repo, campaign.id, CONFIRM_TOP):
            c = confirmed.get(individual.id)
            found = known_edits(seed_program, parse_architecture(individual.architecture_json))
            lines.append(
                f"| {campaign.name} | {individual.id} | {individual.fitness:.4f} | "
                f"{_fmt(c.loss_mean, c.loss_std) if c else '-'} | "
                f"{_fmt(c.speedup_mean, c.speedup_std, 2) if c else '-'} | {f'{c.wins}/{c.paired}' if c else '-'} | "
                f"{', '.join(e.strip() for e in found) or '-'} |"
            )
    return lines + [""]


def rediscovery_section(repo: Repository, campaigns: list) -> list[str]:
    """The secondary outcome: per arm and named edit, the campaigns with it among their top 5,
    and the compute to its first trained appearance."""
    lines = [
        "## Rediscovery of the named edits",
        "",
        f"Per arm: campaigns with the edit among their top {TOP} individuals; compute (FLOPs) to its first "
        "appearance in a trained individual, median over the campaigns where it appeared.",
        "",
        "| arm | edit | in the top 5 | appeared | FLOPs to first appearance |",
        "|---|---|---|---|---|",
    ]
    for arm in ARMS:
        mine = [c for c in campaigns if c.name.split("-")[0] == arm]
        if not mine:
            continue
        for edit in EDITS:
            in_top = appeared = 0
            firsts = []
            for campaign in mine:
                seed_program = parse_architecture(repo.roots(campaign.id)[0].architecture_json)
                top = repo.top(campaign.id, TOP)
                in_top += any(edit in known_edits(seed_program, parse_architecture(r.architecture_json)) for r in top)
                first = first_appearance(repo, campaign.id, seed_program, edit)
                if first is not None:
                    appeared += 1
                    firsts.append(first)
            median = f"{statistics.median(firsts):.3g}" if firsts else "-"
            lines.append(f"| {arm} | {edit.strip()} | {in_top}/{len(mine)} | {appeared}/{len(mine)} | {median} |")
    return lines + [""]


def report() -> None:
    from scipy.stats import mannwhitneyu

    repo = Repository(DB, readonly=True)
    campaigns = sorted(repo.list_campaigns(), key=lambda c: c.name)
    summaries = {c.name: summarize_campaign(repo, c) for c in campaigns}
    equal = min((s.compute for s in summaries.values()), default=0.0)
    finished = all(c.status == "finished" for c in campaigns) and len(campaigns) == len(ARMS) * 5
    lines = [
        "# Search power: tables",
        "",
        f"Written by `run.py report` at {code_version(HERE)} from `search_power.db`. Equal compute: "
        f"{equal:.3g} FLOPs (training + screen), the least any campaign has spent"
        + ("." if finished else " so far. **Partial: campaigns are still running; not the study's answer.**"),
        "",
        "| campaign | state | births | trained | FLOPs | best − seed at equal compute | best − seed | "
        "named edits in the top 5 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    relative: dict[str, list[float]] = {arm: [] for arm in ARMS}
    curves: dict[str, list] = {arm: [] for arm in ARMS}
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
        curves.setdefault(arm, []).append((summary, seed_loss))
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
            f"P(a ladder campaign beats a random one) = {1 - test.statistic / (len(ladder) * len(random)):.2f}, "
            f"median best − seed at equal compute: ladder {statistics.median(ladder):+.4f}, "
            f"random {statistics.median(random):+.4f}." + ("" if finished else " **Partial: not the study's answer.**")
        )
    else:
        lines.append("Too few campaigns per arm for the test yet.")
    lines += ["", *rediscovery_section(repo, campaigns), *confirmed_section(repo, campaigns)]
    plot_best_so_far(curves, HERE / "best_so_far.png", "Transformer seed: ladder search against random parents")
    lines += ["![best-so-far against compute](best_so_far.png)", ""]
    lines += [f"Named edits recognised: {', '.join(e.strip() for e in EDITS)}."]
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def working_copy() -> None:
    """Start the working copy from the committed database the first time."""
    if not WORKING.exists():
        shutil.copyfile(COMMITTED, WORKING)


def snapshot() -> None:
    """The working copy, every row folded into one file, as the committed database."""
    repo = Repository(DB)
    repo.checkpoint()
    repo.close()
    with sqlite3.connect(WORKING) as source, sqlite3.connect(COMMITTED) as target:
        source.backup(target)  # SQLite's online backup: a consistent copy even beside a writer
    print(f"wrote {COMMITTED.name} from {WORKING.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("campaigns", help="every arm at every seed, --jobs at once (resumable)")
    run.add_argument("--seeds", default="0,1,2,3,4")
    run.add_argument("--births", type=int, default=BIRTHS)
    run.add_argument("--jobs", type=int, default=2)
    confirming = sub.add_parser("confirm", help="retrain the finished campaigns' top children (resumable)")
    confirming.add_argument("--jobs", type=int, default=2)
    sub.add_parser("report", help="table.md and best_so_far.png from the database")
    sub.add_parser("snapshot", help="copy the working database to search_power.db (to commit)")
    args = parser.parse_args()
    working_copy()
    if args.command == "snapshot":
        snapshot()
    elif args.command == "report":
        report()
    elif args.command == "confirm":
        confirm_finished(args.jobs)
    else:
        run_pool(args.jobs, run_campaign, [(arm, int(s), args.births) for s in args.seeds.split(",") for arm in ARMS])


if __name__ == "__main__":
    main()
