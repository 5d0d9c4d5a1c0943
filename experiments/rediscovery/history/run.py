"""Rediscovery (issue #5, part 2): does a search seeded only with the Transformer find Primer's edits?

Two campaigns with the same config (``config.toml``), one after the other on one core:

* ``rediscovery-evolution``: aging evolution, tournaments of ``sample`` (5);
* ``rediscovery-random``: the same with ``sample = 1``, a tournament of one, i.e. the parent is
  drawn uniformly from the same population window: the same mutations with no selection.

Then the ``--top`` best individuals of each arm (by search fitness, duplicates excluded), the
``transformer`` seed and ``primer_ez`` (for reference) are retrained under a larger equal FLOPs
budget at ``--repeats`` training seeds (interleaved: every program for seed 0, then seed 1, ...),
appended to ``results.jsonl`` as they finish; a rerun skips what is there, and a campaign that
did not finish is resumed. The same programs are then trained at the search's own budget and
data at ``--noise-repeats`` seeds (how noisy one evaluation is; seed 0 repeats the search's).
Finally ``table.md`` and the plots are written:

    nice -n 19 .venv/bin/python experiments/rediscovery/history/run.py
    .venv/bin/python experiments/rediscovery/history/run.py --summarize-only

Speedup is Primer's metric as computed by ``experiments/seed_table/history/run.py`` (imported, not
copied), on the FLOPs axis, each training seed against the Transformer of the same seed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))

from evaluator.provenance import read_jsonl
from evaluator.budget import parse_budget
from evaluator.tokenization import load_tokenized
from evaluator.train import TrainConfig, train
from primitives.graph import architecture_hash
from primitives.listing import diff_architectures
from primitives.seeds import seed
from search.campaign import build_campaign
from search.config import CampaignConfig
from storage import IndividualRecord, Repository


def _seed_table():
    """experiments/seed_table/run.py as a module (its name would clash with this file's)."""
    spec = importlib.util.spec_from_file_location(
        "seed_table_run", ROOT / "experiments" / "seed_table" / "history" / "run.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


seed_table = _seed_table()

ARMS = {"evolution": {}, "random": {"sample": 1}}
DEFAULT_DB = HERE / "rediscovery.db"


def campaign_name(arm: str) -> str:
    return f"rediscovery-{arm}"


def arm_config(arm: str, config_file: Path) -> CampaignConfig:
    return CampaignConfig.from_toml(config_file, name=campaign_name(arm), **ARMS[arm])


# --------------------------------------------------------------------------- the two campaigns


def run_arm(repo: Repository, arm: str, config_file: Path) -> None:
    config = arm_config(arm, config_file)
    stored = repo.get_campaign(config.name)
    if stored is not None:
        stored_config = CampaignConfig.from_stored(stored.config)
        if stored_config.model_dump(exclude={"train"}) != config.model_dump(exclude={"train"}):
            print(f"note: {config.name} was started with a different config; resuming with the stored one")
        if stored.status == "finished":
            print(f"{config.name}: finished, {repo.count(stored.id)} individuals")
            return
        config = stored_config
        print(f"{config.name}: resuming at birth {repo.next_birth(stored.id)}")
    start = time.monotonic()
    best = [math.inf]

    def on_event(event: dict) -> None:
        if event["kind"] != "recorded":
            return
        fitness = event.get("fitness")
        if fitness is not None and fitness < best[0]:
            best[0] = fitness
        shown = f"{fitness:.4f}" if fitness is not None else "-"
        print(
            f"[{time.monotonic() - start:6.0f}s] {config.name} #{event['birth']:3d} {event['status']:18s} "
            f"{shown:7s} best {best[0]:.4f}  {event.get('mutation') or '(seed)'}",
            flush=True,
        )

    build_campaign(config, repo, on_event=on_event).run()


# --------------------------------------------------------------------------- retraining


def candidates(repo: Repository, top: int, config_file: Path) -> list[dict]:
    """What is retrained: the seed, primer_ez, and the best ``top`` of each arm."""
    config = arm_config("evolution", config_file)
    spec = config.spec
    base = seed("transformer", spec)
    programs = [
        {"name": "transformer", "arm": "seed", "rank": None, "individual": None, "architecture": base},
        {
            "name": "primer_ez",
            "arm": "reference",
            "rank": None,
            "individual": None,
            "architecture": seed("primer_ez", spec),
        },
    ]
    for arm in ARMS:
        campaign = repo.get_campaign(campaign_name(arm))
        if campaign is None or campaign.status != "finished":
            continue
        for rank, individual in enumerate(repo.top(campaign.id, top), 1):
            programs.append(
                {
                    "name": f"{arm}#{rank}",
                    "arm": arm,
                    "rank": rank,
                    "individual": individual.id,
                    "search_fitness": individual.fitness,
                    "architecture": individual.architecture(),
                }
            )
    merged: dict[str, dict] = {}  # one entry per distinct program: "evolution#1 = random#2" when both arms found it
    for program in programs:
        key = architecture_hash(program["architecture"])
        if key in merged:
            merged[key]["name"] += f" = {program['name']}"
            continue
        merged[key] = {**program, "hash": key, "diff": diff_architectures(base, program["architecture"])}
    return list(merged.values())


def retrain(repo: Repository, budget: str, repeats: int, top: int, results: Path, config_file: Path) -> None:
    config = arm_config("evolution", config_file)
    spec = config.spec
    # At the search's own budget, the search's own data (so training seed 0 repeats the search's
    # evaluation); at any other budget the whole corpus, as experiments/seed_table does.
    search_budget = parse_budget(budget) == parse_budget(config.budget)
    data = load_tokenized(
        config.corpus, spec.vocab_size, max_train_tokens=config.max_train_tokens if search_budget else None
    )
    programs = candidates(repo, top, config_file)
    # (the records' "budget" is the trainer's spelling, "1.4e+12flops": compare parsed budgets)
    done = {(r["hash"], parse_budget(r["budget"]), r["repeat"]) for r in read_jsonl(results)}
    for repeat in range(repeats):
        for program in programs:
            if (program["hash"], parse_budget(budget), repeat) in done:
                continue
            result = train(
                spec, program["architecture"], data, parse_budget(budget), TrainConfig(seed=repeat, threads=1)
            )
            record = {
                "name": program["name"],
                "arm": program["arm"],
                "rank": program["rank"],
                "individual": program["individual"],
                "search_fitness": program.get("search_fitness"),
                "hash": program["hash"],
                "diff": program["diff"],
                "budget": budget,
                "repeat": repeat,
                **result.model_dump(mode="json"),
            }
            with results.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            done.add((program["hash"], parse_budget(budget), repeat))
            print(
                f"{budget} seed {repeat} {program['name']:14s} {result.status:8s} loss {result.val_loss} "
                f"tokens {result.tokens:,} in {result.seconds:.0f} s",
                flush=True,
            )


# --------------------------------------------------------------------------- summary


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def arm_stats(repo: Repository, arm: str) -> dict | None:
    campaign = repo.get_campaign(campaign_name(arm))
    if campaign is None:
        return None
    individuals = repo.finished_individuals(campaign.id)
    counts = repo.status_counts(campaign.id)
    starts = [i.started_at or i.created_at for i in individuals]
    ends = [i.finished_at for i in individuals if i.finished_at]
    best = repo.top(campaign.id, 1)
    return {
        "campaign": campaign,
        "individuals": individuals,
        "counts": counts,
        "flops": sum(i.flops or 0.0 for i in individuals),
        "seconds": sum(i.seconds or 0.0 for i in individuals),
        "tokens": sum(i.tokens or 0 for i in individuals),
        "trained": sum(1 for i in individuals if i.status != "duplicate"),
        "wall": (max(ends) - min(starts)).total_seconds() if ends else 0.0,
        "best": best[0] if best else None,
        "hurdles": repo.hurdle_pass_counts(campaign.id),
    }


def seed_diff(repo: Repository, individual: IndividualRecord) -> str:
    root = repo.lineage(individual.id)[-1]
    return "; ".join(diff_architectures(root.architecture(), individual.architecture())) or "(the seed itself)"


def summarize(repo: Repository, results: Path, top: int) -> str:
    lines = ["# rediscovery: results", ""]
    lines += [
        "## The two campaigns",
        "",
        (
            "| arm | individuals | trained | duplicates | stopped at a hurdle | failures | hurdle passes "
            "| training FLOPs | training seconds | tokens | wall-clock | best search loss |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    stats = {arm: arm_stats(repo, arm) for arm in ARMS}
    for arm, s in stats.items():
        if s is None:
            continue
        c = s["counts"]
        failures = sum(c.get(k, 0) for k in ("diverged", "error", "timeout"))
        passes = ", ".join(f"h{h} {p}/{r}" for h, r, p in s["hurdles"])
        best = f"{s['best'].fitness:.4f} (#{s['best'].birth}, id {s['best'].id})" if s["best"] else "–"
        lines.append(
            f"| {arm} | {len(s['individuals'])} | {s['trained']} | {c.get('duplicate', 0)} | "
            f"{c.get('stopped_at_hurdle', 0)} | {failures} | {passes} | {s['flops']:.3g} | "
            f"{s['seconds']:,.0f} | {s['tokens']:,} | {s['wall'] / 60:.1f} min | {best} |"
        )
    lines.append("")
    for arm, s in stats.items():
        if s is None:
            continue
        lines += [
            f"### top {top} of the {arm} arm (search budget)",
            "",
            "| rank | id | birth | search loss | parameters | diff from the seed |",
            "|---|---|---|---|---|---|",
        ]
        for rank, r in enumerate(repo.top(s["campaign"].id, top), 1):
            lines.append(f"| {rank} | {r.id} | {r.birth} | {r.fitness:.4f} | {r.parameters:,} | {seed_diff(repo, r)} |")
        lines.append("")

    records = read_jsonl(results)
    for budget in dict.fromkeys(r["budget"] for r in records):
        runs = [r for r in records if r["budget"] == budget]
        axis = seed_table.AXIS[parse_budget(budget).kind]
        vanilla = {r["repeat"]: r for r in runs if r["arm"] == "seed" and r["status"] == "ok"}
        lines += [
            f"## Retrained at {budget} (training seeds {sorted({r['repeat'] for r in runs})})",
            "",
            (
                "| program | search loss | val loss (mean ± std) | speedup vs transformer (mean ± std) "
                "| per-seed speedups | speedup on the tokens axis | parameters | FLOPs/token | failures "
                "| diff from the seed |"
            ),
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        rows = []
        for name in dict.fromkeys(r["name"] for r in runs):
            arm_runs = [r for r in runs if r["name"] == name]
            ok = [r for r in arm_runs if r["status"] == "ok" and r["val_loss"] is not None]
            loss, loss_std = _mean_std([r["val_loss"] for r in ok])
            speeds = [seed_table.speedup(r, vanilla[r["repeat"]], axis) if r["repeat"] in vanilla else None for r in ok]
            known = [s for s in speeds if s is not None]
            speed, speed_std = _mean_std(known)
            # The same metric on the tokens axis: sample efficiency, with FLOPs per token left out.
            per_token = [seed_table.speedup(r, vanilla[r["repeat"]], "tokens") for r in ok if r["repeat"] in vanilla]
            token_speed, token_std = _mean_std([s for s in per_token if s is not None])
            first = arm_runs[0]
            search = f"{first['search_fitness']:.4f}" if first.get("search_fitness") is not None else "–"
            rows.append(
                (
                    loss if ok else math.inf,
                    (
                        f"| {name} | {search} | {loss:.4f} ± {loss_std:.4f} | {speed:.2f}× ± {speed_std:.2f} | "
                        f"{', '.join('–' if s is None else f'{s:.2f}' for s in speeds)} | "
                        f"{token_speed:.2f}× ± {token_std:.2f} | "
                        f"{first['parameters']:,} | {first['flops_per_token'] / 1e6:.2f}M | "
                        f"{len(arm_runs) - len(ok)} | {'; '.join(first['diff']) or '(the seed itself)'} |"
                    ),
                )
            )
        lines += [row for _, row in sorted(rows)] + [""]
    return "\n".join(lines)


def plot(repo: Repository, results: Path, db_url: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, (by_eval, by_flops) = plt.subplots(1, 2, figsize=(12, 4.5))
    for arm, colour in zip(ARMS, ("C0", "C1")):
        s = arm_stats(repo, arm)
        if s is None:
            continue
        individuals = sorted(s["individuals"], key=lambda i: i.finish_order)
        fitness = np.array([i.fitness if i.fitness is not None else np.inf for i in individuals])
        final = np.array([i.fitness if i.status == "ok" and i.fitness is not None else np.nan for i in individuals])
        best = np.minimum.accumulate(np.where(np.isfinite(fitness), fitness, np.inf))
        flops = np.cumsum([i.flops or 0.0 for i in individuals])
        x = np.arange(1, len(individuals) + 1)
        by_eval.plot(x, best, color=colour, label=f"{arm}: best so far")
        by_eval.scatter(x, final, s=8, color=colour, alpha=0.4, label=f"{arm}: full-budget losses")
        by_flops.plot(flops, best, color=colour, label=f"{arm}: best so far")
    seed_loss = None
    for arm in ARMS:
        s = arm_stats(repo, arm)
        if s and s["individuals"]:
            seed_loss = s["individuals"][0].fitness
    for axes, xlabel in (
        (by_eval, "evaluations (individuals finished)"),
        (by_flops, "training FLOPs spent by the arm"),
    ):
        if seed_loss is not None:
            axes.axhline(seed_loss, color="grey", linestyle=":", label="transformer seed")
        axes.set(xlabel=xlabel, ylabel="validation loss at 4e11 FLOPs (nats/token)")
        axes.legend(fontsize=8)
    by_eval.set_title("search progress: evolution vs random search")
    figure.tight_layout()
    figure.savefig(HERE / "progress.png", dpi=120)
    plt.close(figure)

    records = [r for r in read_jsonl(results) if r["status"] == "ok" and r["repeat"] == 0]
    if records:  # the largest budget only
        largest = max((parse_budget(r["budget"]) for r in records), key=lambda b: b.amount)
        records = [r for r in records if parse_budget(r["budget"]) == largest]
        figure, axes = plt.subplots(figsize=(8, 5))
        for r in records:
            x, y = seed_table.curve(r, seed_table.AXIS[parse_budget(r["budget"]).kind])
            axes.plot(x, y, label=r["name"], linestyle="-" if r["arm"] in ("seed", "reference") else "--")
        axes.set(
            xlabel="training FLOPs",
            ylabel="training loss (nats/token, 3-point mean)",
            title=f"retrained at {records[0]['budget']}, training seed 0",
        )
        axes.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(HERE / "retrain_loss.png", dpi=120)
        plt.close(figure)

    archevo = str(ROOT / ".venv" / "bin" / "archevo")
    for arm in ARMS:
        if repo.get_campaign(campaign_name(arm)) is not None:
            subprocess.run(
                [archevo, "plot", campaign_name(arm), "-o", str(HERE / f"plots_{arm}"), "--db", db_url], check=True
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=HERE / "config.toml")
    parser.add_argument("--db", default=f"sqlite:///{DEFAULT_DB}", help="SQLAlchemy URL (default: %(default)s)")
    parser.add_argument("--budget", default="1.4e12flops", help="retraining budget")
    parser.add_argument("--repeats", type=int, default=3, help="training seeds per retrained program")
    parser.add_argument("--top", type=int, default=3, help="individuals of each arm to retrain")
    parser.add_argument(
        "--noise-repeats", type=int, default=3, help="training seeds per program at the search budget (0: skip)"
    )
    parser.add_argument("--results", type=Path, default=HERE / "results.jsonl")
    parser.add_argument("--summarize-only", action="store_true")
    parser.add_argument("--search-only", action="store_true", help="run the two campaigns, no retraining")
    args = parser.parse_args()
    repo = Repository(args.db)
    if not args.summarize_only:
        for arm in ARMS:
            run_arm(repo, arm, args.config)
        if not args.search_only:
            retrain(repo, args.budget, args.repeats, args.top, args.results, args.config)
            if args.noise_repeats:  # the same programs at the search budget: how noisy is one evaluation?
                retrain(
                    repo,
                    arm_config("evolution", args.config).budget,
                    args.noise_repeats,
                    args.top,
                    args.results,
                    args.config,
                )
    table = summarize(repo, args.results, args.top)
    (HERE / "table.md").write_text(table + "\n")
    plot(repo, args.results, args.db)
    print(table)


if __name__ == "__main__":
    main()
