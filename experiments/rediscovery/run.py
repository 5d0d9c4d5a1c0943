"""Rediscovery on the calibrated protocol: does evolution find Primer's edits, beat random
search, and repair a handicapped seed?

Every campaign is ``config.toml`` (the ``cpu`` preset, the selective-copying screen, one hurdle
at half the budget) with a seed program, an arm and a campaign seed:

* arms: ``evolution`` (tournaments of ``sample``) and ``random`` (``sample = 1``: the parent is
  drawn uniformly from the same window, the same mutations with no selection);
* ``search``: Transformer-seeded campaigns of both arms at each campaign seed;
* ``handicaps``: campaigns seeded with a weakened program (``sigmoid``, ``rezero``,
  ``transformer_postln``), extended ``--step`` individuals at a time until one reaches the
  Transformer seed's search loss (the hit) or ``--cap`` individuals;
* ``confirm``: ``archevo confirm``'s retraining (3 fresh training seeds) of each search
  campaign's top-3 children that beat the seed in the search (the best child where none did)
  and of each handicap campaign's first hit; the Transformer seed is retrained
  once and its runs shared by every Transformer-seeded campaign (the same run);
* ``report``: ``table.md``, the best-so-far-against-compute plot, ``archevo plot``'s figures;
* ``signal``: where a hurdle can judge (the seed table's curves; the README's hurdle position);
* ``machine``: this machine's search loss for the Transformer seed (a one-individual campaign in
  a scratch database), beside the ones ``rediscovery.db`` holds: training is bitwise repeatable
  on one VM but not across them.

Campaigns run in-process (one candidate at a time, so a campaign replays exactly), ``--jobs``
campaigns at once, into ``rediscovery.db``; everything resumes where it stopped.

    P=.venv/bin/python; R=experiments/rediscovery/run.py
    $P $R search --seeds 0,1,2 --jobs 2
    $P $R confirm --jobs 2
    $P $R handicaps --programs sigmoid,rezero,transformer_postln --seeds 0,1,2 --jobs 2
    $P $R report
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from experiments.study_tools import (
    best_at,
    confirm_individuals,
    plot_best_so_far,
    run_pool,
    share_seed_runs,
    top_children,
)  # noqa: E402
from primitives.listing import diff_architectures  # noqa: E402
from primitives.program import Architecture  # noqa: E402
from primitives.validate import parse_architecture  # noqa: E402
from search.campaign import build_campaign  # noqa: E402
from search.config import CampaignConfig  # noqa: E402
from cli.compare import summarize_campaign  # noqa: E402
from search.confirm import summarize  # noqa: E402
from storage import IndividualRecord, Repository  # noqa: E402

DB = f"sqlite:///{HERE / 'rediscovery.db'}"
ARMS = {"evolution": {}, "random": {"sample": 1}}
BASE = "transformer"
CONFIRM_TOP, CONFIRM_SEEDS = 3, 3


def campaign_name(program: str, arm: str, seed: int) -> str:
    return f"{program}-{arm}-s{seed}"


def config_for(program: str, arm: str, seed: int, max_evals: int | None = None) -> CampaignConfig:
    overrides = {"max_evals": max_evals} if max_evals else {}
    return CampaignConfig.from_toml(
        HERE / "config.toml",
        name=campaign_name(program, arm, seed),
        search_seed=seed,
        seed_programs=[program],
        **ARMS[arm],
        **overrides,
    )


def _printer(name: str):
    start = time.monotonic()

    def on_event(event: dict) -> None:
        if event["kind"] == "recorded":
            fitness = event.get("fitness")
            print(
                f"[{time.monotonic() - start:5.0f} s] {name} #{event['birth']:2d} {event['status']:17s} "
                f"{'-' if fitness is None else f'{fitness:.4f}'}  {event.get('mutation') or '(seed)'}",
                flush=True,
            )

    return on_event


def run_campaign(program: str, arm: str, seed: int, max_evals: int | None = None) -> str:
    """Start, resume or extend one campaign to ``max_evals`` (default: the config's)."""
    repo = Repository(DB)
    config = config_for(program, arm, seed, max_evals)
    stored = repo.get_campaign(config.name)
    if stored is not None:
        previous = CampaignConfig.from_stored(stored.config)
        config = previous.model_copy(update={"max_evals": max(previous.max_evals, config.max_evals)})
        if config.max_evals > previous.max_evals:
            repo.set_campaign_config(config.name, config.model_dump(mode="json"))
            repo.set_campaign_status(config.name, "running")
        elif stored.status == "finished":
            return f"{config.name}: finished, {repo.count(stored.id)} individuals"
    build_campaign(config, repo, on_event=_printer(config.name)).run()
    return f"{config.name}: {repo.count(repo.get_campaign(config.name).id)} individuals"


def target_loss(repo: Repository) -> float | None:
    """The Transformer seed's search loss: the largest any Transformer-seeded campaign recorded.
    The same program, recipe and training seed reach 3.7226 on one machine and 3.7290 on another;
    the handicap campaigns ran on the second, where the repaired program (the Transformer
    itself) trains to 3.7290, so the first machine's value would refuse the exact repair."""
    losses = [
        root.fitness
        for campaign in repo.list_campaigns()
        if campaign.name.startswith(f"{BASE}-")
        for root in repo.roots(campaign.id)
        if root.fitness is not None
    ]
    return max(losses) if losses else None


def first_hit(repo: Repository, campaign_id: int, target: float) -> IndividualRecord | None:
    """The first individual (in finishing order) that trained to at most the target loss."""
    hits = [
        r
        for r in repo.finished_individuals(campaign_id)
        if r.status == "ok" and r.fitness is not None and r.fitness <= target
    ]
    return hits[0] if hits else None


def hunt(program: str, arm: str, seed: int, step: int, cap: int) -> str:
    """Extend a handicap campaign ``step`` individuals at a time until its first hit."""
    repo = Repository(DB)
    target = target_loss(repo)
    if target is None:
        return f"{program}: no Transformer search loss recorded yet (run `search` first)"
    size = step
    while True:
        run_campaign(program, arm, seed, size)
        campaign = repo.get_campaign(campaign_name(program, arm, seed))
        hit = first_hit(repo, campaign.id, target)
        if hit is not None or repo.count(campaign.id) >= cap:
            return (
                f"{campaign.name}: {'hit at birth ' + str(hit.birth) if hit else 'no hit'} "
                f"after {repo.count(campaign.id)} individuals"
            )
        size = repo.count(campaign.id) + step


def candidates(repo: Repository, campaign_id: int) -> list[IndividualRecord]:
    """What ``confirm`` retrains: the top children that beat the seed in the search, or the
    best child where none did (a child that lost to its seed once is not a candidate discovery)."""
    children, seed_loss = top_children(repo, campaign_id, CONFIRM_TOP), repo.roots(campaign_id)[0].fitness
    better = [c for c in children if seed_loss is not None and c.fitness < seed_loss]
    return better or children[:1]


def confirm_campaign(name: str, which: str) -> str:
    """Retrain ``which`` of a campaign at the confirmation seeds: its ``top`` 3, its ``seed``
    individual, or a handicap campaign's first ``hit``."""
    repo = Repository(DB)
    campaign = repo.get_campaign(name)
    if which == "hit":
        hit = first_hit(repo, campaign.id, target_loss(repo))
        if hit is None:
            return f"{name}: no hit to confirm"
        individuals = [hit]
    else:
        individuals = candidates(repo, campaign.id) if which == "top" else repo.roots(campaign.id)
    confirm_individuals(repo, name, individuals, CONFIRM_SEEDS)
    return f"{name}: {which} confirmed"


# --------------------------------------------------------------------------- the report


def _fmt(mean: float | None, std: float | None, digits: int = 4) -> str:
    return "-" if mean is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def edits_of(repo: Repository, individual: IndividualRecord, base) -> list[str]:
    return diff_architectures(base, parse_architecture(individual.architecture_json))


def _is_squaring(instruction) -> bool:
    return instruction.op == "square" or (instruction.op == "mul" and len(set(instruction.inputs)) == 1)


#: Primer's two edits and the other local mixing the registry has, each as a test of an
#: instruction: read off the programs, not the diff's wording (x² is also ``mul(up, up)``).
KNOWN_EDITS = {
    "depthwise conv": lambda i: i.op.startswith("dconv"),
    "squared activation": _is_squaring,
    "token shift": lambda i: i.op == "token_shift",
}


def known_edits(base: Architecture, candidate: Architecture) -> list[str]:
    """The known-good edits ``candidate`` has more instances of than ``base``."""

    def count(architecture: Architecture, test) -> int:
        return sum(
            test(instruction)
            for program in architecture.programs().values()
            for sub in program.subprograms
            for instruction in sub.body
        )

    return [name for name, test in KNOWN_EDITS.items() if count(candidate, test) > count(base, test)]


def search_section(repo: Repository, seeds: list[int]) -> list[str]:
    summaries = {
        (arm, s): summarize_campaign(repo, c)
        for arm in ARMS
        for s in seeds
        if (c := repo.get_campaign(campaign_name(BASE, arm, s))) is not None
    }
    if not summaries:
        return []
    common = min(s.compute for s in summaries.values())
    lines = [
        "## Transformer-seeded campaigns",
        "",
        f"Equal compute: every campaign's best-so-far at {common:.3g} training FLOPs (the smallest "
        "campaign's total, screens included).",
        "",
        "| arm | campaign seed | individuals | trained | compute (FLOPs) | seed's loss | best | best − seed "
        "| best at equal compute "
        "| best child confirmed loss | its speedup vs seed | wins |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    at_common: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for (arm, s), summary in sorted(summaries.items()):
        campaign = repo.get_campaign(summary.name)
        value = best_at(summary, common)
        seed_loss = repo.roots(campaign.id)[0].fitness
        if value is not None:
            at_common[arm].append(value - seed_loss)
        confirmed = summarize(repo, campaign.id)
        tops = [confirmed[r.id] for r in top_children(repo, campaign.id, CONFIRM_TOP)[:1] if r.id in confirmed]
        top = tops[0] if tops else None
        lines.append(
            f"| {arm} | {s} | {summary.individuals} | {summary.trained} | {summary.compute:.3g} | "
            f"{seed_loss:.4f} | {summary.best:.4f} | {summary.best - seed_loss:+.4f} | "
            f"{'-' if value is None else f'{value:.4f}'} | "
            f"{_fmt(top.loss_mean, top.loss_std) if top else '-'} | "
            f"{_fmt(top.speedup_mean, top.speedup_std, 2) if top else '-'} | "
            f"{f'{top.wins}/{top.paired}' if top else '-'} |"
        )
    reference = repo.get_campaign(campaign_name(BASE, "evolution", 0))
    if reference is not None:
        root = repo.roots(reference.id)[0]
        seed_runs = [r.val_loss for r in repo.confirmations(reference.id) if r.individual_id == root.id and r.val_loss]
        if seed_runs:
            lines += [
                "",
                f"The Transformer seed, confirmed at {CONFIRM_SEEDS} fresh training seeds on one machine: "
                f"{_fmt(statistics.mean(seed_runs), statistics.stdev(seed_runs) if len(seed_runs) > 1 else 0)}.",
            ]
    lines += [
        "",
        "Per arm, best at equal compute minus the campaign's seed, over campaign seeds (mean ± std): "
        + "; ".join(
            f"{arm} {statistics.mean(v):+.4f} ± {statistics.stdev(v) if len(v) > 1 else 0:.4f} ({len(v)} seeds)"
            for arm, v in at_common.items()
            if v
        ),
        "",
    ]
    lines += winners_section(repo, summaries)
    arms = {
        arm: [(s, repo.roots(repo.get_campaign(s.name).id)[0].fitness) for key, s in summaries.items() if key[0] == arm]
        for arm in ARMS
    }
    plot_best_so_far(arms, HERE / "best_so_far.png", "Transformer-seeded campaigns: evolution against random search")
    return lines + ["![best-so-far against compute](best_so_far.png)", ""]


def winners_section(repo: Repository, summaries: dict) -> list[str]:
    lines = [
        "### The winners against the seed",
        "",
        "| campaign | rank | individual | search loss | confirmed loss | speedup vs seed | known edits "
        "| diff against the seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    counts = {edit: 0 for edit in KNOWN_EDITS}
    lineages = 0
    for summary in summaries.values():
        campaign = repo.get_campaign(summary.name)
        base = parse_architecture(repo.roots(campaign.id)[0].architecture_json)
        confirmed = summarize(repo, campaign.id)
        for rank, individual in enumerate(top_children(repo, campaign.id, CONFIRM_TOP), 1):
            diff = edits_of(repo, individual, base)
            found = known_edits(base, parse_architecture(individual.architecture_json))
            lineages += 1
            for edit in found:
                counts[edit] += 1
            c = confirmed.get(individual.id)
            lines.append(
                f"| {summary.name} | {rank} | {individual.id} | {individual.fitness:.4f} | "
                f"{_fmt(c.loss_mean, c.loss_std) if c else '-'} | "
                f"{_fmt(c.speedup_mean, c.speedup_std, 2) if c else '-'} | {', '.join(found) or '-'} | "
                f"{'; '.join(diff) or '(the seed)'} |"
            )
    return lines + [
        "",
        f"Of {lineages} top-{CONFIRM_TOP} children, "
        + ", ".join(f"{n} carry a {edit} edit" for edit, n in counts.items())
        + ".",
        "",
    ]


def handicap_section(repo: Repository, programs: list[str], seeds: list[int]) -> list[str]:
    target = target_loss(repo)
    rows = []
    base_confirmed = {}
    base_campaign = repo.get_campaign(campaign_name(BASE, "evolution", 0))
    if base_campaign is not None:
        root = repo.roots(base_campaign.id)[0]
        base_confirmed = {
            r.training_seed: r.val_loss for r in repo.confirmations(base_campaign.id) if r.individual_id == root.id
        }
    for program in programs:
        for arm in ARMS:
            for s in seeds:
                campaign = repo.get_campaign(campaign_name(program, arm, s))
                if campaign is None or target is None:
                    continue
                hit = first_hit(repo, campaign.id, target)
                spent = 0.0
                screens = repo.screens(campaign.id)
                for individual in repo.finished_individuals(campaign.id):
                    spent += (individual.flops or 0.0) + sum(x.flops for x in screens.get(individual.id, []))
                    if hit is not None and individual.id == hit.id:
                        break
                runs = {
                    r.training_seed: r.val_loss
                    for r in repo.confirmations(campaign.id)
                    if hit is not None and r.individual_id == hit.id and r.val_loss is not None
                }
                wins = sum(runs[t] <= base_confirmed[t] for t in runs if t in base_confirmed)
                loss = (
                    _fmt(statistics.mean(runs.values()), statistics.stdev(runs.values()) if len(runs) > 1 else 0)
                    if runs
                    else "-"
                )
                root = repo.roots(campaign.id)[0]
                best = (repo.top(campaign.id, 1) or [root])[0]
                shown = hit or best  # what the hit changed, or (no hit) how far the campaign got
                diff = "; ".join(edits_of(repo, shown, parse_architecture(root.architecture_json))) or "(the seed)"
                rows.append(
                    f"| {program} | {arm} | {s} | {repo.count(campaign.id)} | {root.fitness:.4f} | "
                    f"{best.fitness:.4f} | {hit.birth if hit else 'none'} | {spent:.3g}{'' if hit else ' (all)'} | "
                    f"{f'{hit.fitness:.4f}' if hit else '-'} | {loss} | "
                    f"{f'{wins}/{len(runs)}' if runs else '-'} | {'' if hit else 'best: '}{diff} |"
                )
    if not rows:
        return []
    base = (
        _fmt(statistics.mean(base_confirmed.values()), statistics.stdev(base_confirmed.values()))
        if len(base_confirmed) > 1
        else "-"
    )
    return [
        "## Planted handicaps",
        "",
        f"A hit is the first individual whose search loss is at most the Transformer seed's ({target:.4f}); "
        f"its confirmation is against the Transformer's confirmed runs ({base}), training seed by training seed.",
        "",
        "| seed program | arm | campaign seed | individuals | seed's loss | best loss | hit (birth) "
        "| compute until the hit (FLOPs) | hit's search loss | hit confirmed | ≤ Transformer "
        "| what the hit (else the best) changed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def hurdle_signal() -> None:
    """Where a hurdle can judge: per training seed, the Spearman ρ over the seed table's
    FLOPs-matched runs between the validation loss at each tenth of the budget and the final."""
    import numpy as np

    from evaluator.provenance import read_jsonl

    runs = [
        r
        for r in read_jsonl(HERE.parent / "seed_table" / "results.jsonl")
        if r["protocol"] == "T128-1M-flops" and r["status"] == "ok"
    ]

    def ranks(values: list[float]) -> np.ndarray:
        return np.argsort(np.argsort(values))

    for training_seed in sorted({r["seed"] for r in runs}):
        mine = [r for r in runs if r["seed"] == training_seed]
        curves = [[p["val_loss"] for p in r["loss_curve"] if p["val_loss"] is not None] for r in mine]
        final = ranks([r["val_loss"] for r in mine])
        rhos = [np.corrcoef(ranks([c[i] for c in curves]), final)[0, 1] for i in range(min(map(len, curves)))]
        print(
            f"training seed {training_seed}, {len(mine)} seeds: rho at 0.1, 0.2, ... = "
            + ", ".join(f"{rho:.2f}" for rho in rhos)
        )


def machine_check() -> None:
    """Train the Transformer seed as every search campaign's first individual, here, in a scratch
    database, and print its search loss beside the recorded ones."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        repo = Repository(f"sqlite:///{scratch}/machine.db")
        config = config_for(BASE, "evolution", 0, max_evals=1)
        build_campaign(config, repo).run()
        here = repo.roots(repo.get_campaign(config.name).id)[0]
        repo.close()
    recorded = Repository(DB, readonly=True)
    losses = sorted(
        {
            f"{root.fitness:.6f}"
            for campaign in recorded.list_campaigns()
            if campaign.name.startswith(f"{BASE}-")
            for root in recorded.roots(campaign.id)
            if root.fitness is not None
        }
    )
    print(f"the Transformer seed here: {here.fitness:.6f} ({here.status}); recorded: {', '.join(losses)}")


def report(programs: list[str], seeds: list[int]) -> None:
    from cli.plots import plot_campaign

    repo = Repository(DB, readonly=True)
    lines = [
        "# Rediscovery on the cpu preset",
        "",
        "Generated by `.venv/bin/python experiments/rediscovery/run.py report` from `rediscovery.db`.",
        "",
        *search_section(repo, seeds),
        *handicap_section(repo, programs, seeds),
    ]
    for campaign in repo.list_campaigns():
        if campaign.name.startswith(f"{BASE}-"):
            plot_campaign(repo, campaign.id, HERE / "plots" / campaign.name)
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("signal", help="where a hurdle can judge: rho of each tenth's loss with the final")
    sub.add_parser("machine", help="this machine's search loss for the Transformer seed, beside the recorded ones")
    for name in ("search", "handicaps", "confirm", "report"):
        command = sub.add_parser(name)
        command.add_argument("--seeds", default="0,1,2", help="campaign seeds")
        command.add_argument("--programs", default="sigmoid,rezero,transformer_postln", help="handicapped seeds")
        command.add_argument("--arms", default=",".join(ARMS))
        command.add_argument("--jobs", type=int, default=2, help="campaigns at once")
        command.add_argument("--step", type=int, default=4, help="handicaps: individuals added per extension")
        command.add_argument("--cap", type=int, default=32, help="handicaps: most individuals per campaign")
    args = parser.parse_args()
    if args.command == "signal":
        return hurdle_signal()
    if args.command == "machine":
        return machine_check()
    seeds, arms, programs = [int(s) for s in args.seeds.split(",")], args.arms.split(","), args.programs.split(",")
    if args.command == "search":
        run_pool(args.jobs, run_campaign, [(BASE, arm, s) for s in seeds for arm in arms])
    elif args.command == "handicaps":
        run_pool(args.jobs, hunt, [(p, arm, s, args.step, args.cap) for p in programs for s in seeds for arm in arms])
    elif args.command == "confirm":
        repo = Repository(DB, readonly=True)
        finished = [c.name for c in repo.list_campaigns() if c.status == "finished"]
        reference = campaign_name(BASE, "evolution", 0)
        searches = [n for n in finished if n.startswith(f"{BASE}-")]
        calls = [(reference, "seed")] if reference in searches else []
        calls += [(n, "top") for n in searches] + [(n, "hit") for n in finished if n not in searches]
        run_pool(args.jobs, confirm_campaign, calls)
        if reference in searches:
            share_seed_runs(Repository(DB), reference, searches)
    else:
        report(programs, seeds)


if __name__ == "__main__":
    main()
