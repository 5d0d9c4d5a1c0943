"""The ladder fidelity study's report: rank signal of cheap looks, and stopping rules replayed.

Reads the seed table's FLOPs-matched runs (``../seed_table/results.jsonl``), the complete short
runs (``short_runs.jsonl``) and the rediscovery study's Transformer-seeded campaigns
(``../rediscovery/rediscovery.db``); writes ``table.md``. Nothing is trained here.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from evaluator.provenance import code_version, read_jsonl
from search.strategies import LADDER_MARGINS, LADDER_RUNGS  # what this study chose

HERE = Path(__file__).resolve().parent
SEED_TABLE = HERE.parent / "seed_table" / "results.jsonl"
SHORT = HERE / "short_runs.jsonl"
REDISCOVERY = HERE.parent / "rediscovery" / "rediscovery.db"
FULL_PROTOCOL = "T128-1M-flops"

LOOKS = (1 / 16, 1 / 8, 1 / 4, 1 / 2)
VAL_POINTS = (0.1, 0.2, 0.3, 0.5)
BOOTSTRAP = 2000
NEAR = 0.03  # a child within this of its seed's final loss is within the seed-to-seed spread


@dataclass(frozen=True)
class Run:
    """One training run reduced to what the replay needs: loss at a fraction of the budget."""

    name: str
    final: float
    curve: tuple[tuple[float, float], ...]  # (fraction of the budget, training loss)
    val: tuple[tuple[float, float], ...]  # (fraction, validation loss) where evaluated

    def train_at(self, fraction: float) -> float:
        """The training loss logged last at or before ``fraction`` of the budget."""
        before = [loss for f, loss in self.curve if f <= fraction + 1e-9]
        return before[-1] if before else math.inf

    def val_at(self, fraction: float) -> float:
        return next((loss for f, loss in self.val if abs(f - fraction) < 0.02), math.nan)


def _run(name: str, record: dict, budget: float, axis: str) -> Run:
    points = record["loss_curve"]
    return Run(
        name,
        record["val_loss"] if record["val_loss"] is not None else math.inf,
        tuple((p[axis] / budget, p["train_loss"]) for p in points if p["train_loss"] is not None),
        tuple((p[axis] / budget, p["val_loss"]) for p in points if p["val_loss"] is not None),
    )


def seed_table() -> dict[int, list[Run]]:
    """Training seed → every seed program's full FLOPs-matched run."""
    out: dict[int, list[Run]] = {}
    for r in read_jsonl(SEED_TABLE):
        if r["protocol"] == FULL_PROTOCOL:
            budget = float(r["budget"].removesuffix("flops"))
            out.setdefault(r["seed"], []).append(_run(r["arm"], r, budget, "flops"))
    return out


def short_runs() -> dict[tuple[str, int], dict[str, float]]:
    """(protocol, training seed) → arm → the short run's final validation loss."""
    out: dict[tuple[str, int], dict[str, float]] = {}
    for r in read_jsonl(SHORT):
        out.setdefault((r["protocol"], r["seed"]), {})[r["arm"]] = r["val_loss"] if r["val_loss"] else math.inf
    return out


def rho_interval(cheap: list[float], final: list[float], seed: int = 0) -> tuple[float, float, float]:
    """Spearman's ρ and a 95 % percentile bootstrap interval over the programs."""
    cheap_a, final_a = np.asarray(cheap), np.asarray(final)
    rho = float(spearmanr(cheap_a, final_a).statistic)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(BOOTSTRAP):
        pick = rng.integers(len(cheap_a), size=len(cheap_a))
        if len(set(pick)) > 2:
            samples.append(spearmanr(cheap_a[pick], final_a[pick]).statistic)
    low, high = np.nanpercentile(samples, [2.5, 97.5])
    return rho, float(low), float(high)


def fmt(r: tuple[float, float, float]) -> str:
    return f"{r[0]:.2f} [{r[1]:.2f}, {r[2]:.2f}]"


# --------------------------------------------------------------------------- stopping rules


@dataclass(frozen=True)
class Rule:
    """Stop a run at the first rung where its loss fails the bar. ``top``: ASHA (go on only in
    the top 1/η of the runs that reached the rung, the seed included); ``margins``: stop when
    the loss exceeds the seed's at the same rung by more than that rung's margin."""

    label: str
    rungs: tuple[float, ...]
    top: float | None = None
    margins: tuple[float, ...] = ()  # per rung

    def replay(self, runs: list[Run], seed: Run, look=Run.train_at) -> dict[str, float]:
        """Which runs get past every rung (batch replay: all runs compared at once) and the
        fraction of the budget each spends."""
        alive = set(range(len(runs)))
        spent = np.ones(len(runs))
        for rung in self.rungs:
            losses = {i: look(runs[i], rung) for i in alive}
            if self.top is not None:
                pool = sorted([*losses.values(), look(seed, rung)])
                bar = pool[max(0, math.ceil(self.top * len(pool)) - 1)]
            else:
                bar = look(seed, rung) + self.margins[self.rungs.index(rung)]
            for i, loss in losses.items():
                if not loss <= bar:
                    alive.discard(i)
                    spent[i] = rung
        return {"alive": alive, "spent": spent}


RULES = [
    Rule("no stopping", ()),
    Rule("today: top 1/2 at 0.5 (Primer's median hurdle)", (0.5,), top=0.5),
    Rule("ASHA η=2 at 1/8, 1/4, 1/2", (1 / 8, 1 / 4, 1 / 2), top=1 / 2),
    Rule("ASHA η=3 at 1/8, 1/4, 1/2", (1 / 8, 1 / 4, 1 / 2), top=1 / 3),
    Rule("ASHA η=3 at 1/4, 1/2", (1 / 4, 1 / 2), top=1 / 3),
    Rule("seed + 0.05 at 1/8, 1/4, 1/2", (1 / 8, 1 / 4, 1 / 2), margins=(0.05,) * 3),
    Rule("seed + 0.1 at 1/8, 1/4, 1/2", (1 / 8, 1 / 4, 1 / 2), margins=(0.1,) * 3),
    Rule("seed + 0.2 at 1/8, 1/4, 1/2", (1 / 8, 1 / 4, 1 / 2), margins=(0.2,) * 3),
    Rule("seed + 0.1 at 0.2", (0.2,), margins=(0.1,)),
    Rule("seed + 0.2, 0.1, 0.02 at 1/8, 1/4, 1/2", (1 / 8, 1 / 4, 1 / 2), margins=(0.2, 0.1, 0.02)),
    Rule("seed + 0.2, 0.1, 0.05, 0.02 at 1/16, 1/8, 1/4, 1/2", LADDER_RUNGS, margins=LADDER_MARGINS),
    Rule("seed + 0.1, 0.1, 0.0 at 1/8, 1/4, 1/2", (1 / 8, 1 / 4, 1 / 2), margins=(0.1, 0.1, 0.0)),
]


def rule_on_seed_table(rule: Rule, table: dict[int, list[Run]]) -> dict[str, float]:
    """Summed over training seeds: programs that beat the Transformer at the end (good) and
    how many a rule stopped, whether the final best and top 5 survive, and the compute spent."""
    good = good_stopped = best_kept = top5_kept = 0
    spent = []
    for runs in table.values():
        seed = next(r for r in runs if r.name == "transformer")
        others = [r for r in runs if r.name != "transformer"]
        replay = rule.replay(others, seed)
        ranked = sorted(range(len(others)), key=lambda i: others[i].final)
        for i, run in enumerate(others):
            if run.final < seed.final:
                good += 1
                good_stopped += i not in replay["alive"]
        best_kept += ranked[0] in replay["alive"]
        top5_kept += sum(i in replay["alive"] for i in ranked[:5])
        spent.extend(replay["spent"])
    return {
        "good": good,
        "good_stopped": good_stopped,
        "best_kept": best_kept,
        "top5_kept": top5_kept,
        "seeds": len(table),
        "spent": float(np.mean(spent)),
    }


# --------------------------------------------------------------------------- the rediscovery children


def rediscovery_children() -> list[tuple[Run, Run, float, float]]:
    """(child, its campaign's seed, child's validation loss at the 0.5 hurdle, seed's) for every
    trained child of the Transformer-seeded campaigns (curves up to where each stopped)."""
    con = sqlite3.connect(f"file:{REDISCOVERY}?mode=ro", uri=True)
    rows = con.execute(
        "SELECT c.name, i.id, i.birth, i.status, i.result_json, h.loss FROM individuals i "
        "JOIN campaigns c ON c.id = i.campaign_id LEFT JOIN hurdle_evaluations h ON h.individual_id = i.id "
        "WHERE c.name LIKE 'transformer-%' AND i.status IN ('ok', 'stopped_at_hurdle') ORDER BY c.name, i.birth"
    ).fetchall()
    by_campaign: dict[str, list] = {}
    for name, iid, birth, status, result_json, hurdle_loss in rows:
        record = json.loads(result_json)
        budget = float(record["budget"].removesuffix("tokens"))
        run = _run(str(iid), {**record, "val_loss": record["val_loss"] if status == "ok" else None}, budget, "tokens")
        by_campaign.setdefault(name, []).append((birth, run, hurdle_loss if hurdle_loss is not None else math.inf))
    out = []
    for members in by_campaign.values():
        (_, seed, seed_hurdle), *children = sorted(members, key=lambda m: m[0])
        out.extend((run, seed, hurdle, seed_hurdle) for _, run, hurdle in children)
    return out


def rule_on_children(rule: Rule, children: list[tuple[Run, Run, float, float]]) -> dict[str, float]:
    """The rules on the recorded children, each against its own campaign's seed (ASHA: against
    the campaign's earlier runs, the seed's included, after 4): good = finished below the
    seed's final loss; bad = > 0.1 behind the seed at the 0.5 hurdle. Rung 1/2 is judged on the
    recorded validation loss, earlier rungs on the training loss."""
    counts = {"good": 0, "good_stopped": 0, "near": 0, "near_stopped": 0, "bad": 0, "bad_stopped": 0}
    spent = []
    reached: dict[tuple[int, float], list[float]] = {}  # (campaign's seed, rung) → losses recorded there
    for run, seed, hurdle, seed_hurdle in children:
        stop = None
        for rung in rule.rungs:
            mine, seeds = run.train_at(rung), seed.train_at(rung)
            if rung == 0.5:  # the rediscovery campaigns' one hurdle: the validation loss was recorded
                mine, seeds = hurdle, seed_hurdle
            if rule.top is not None:  # ASHA as the engine runs it: against earlier runs, in birth order
                pool = reached.setdefault((id(seed), rung), [seeds])
                bar = sorted(pool)[max(0, math.ceil(rule.top * len(pool)) - 1)] if len(pool) >= 4 else math.inf
                pool.append(mine)
            else:
                bar = seeds + rule.margins[rule.rungs.index(rung)]
            if not mine <= bar:
                stop = rung
                break
        spent.append(stop if stop is not None else min(1.0, run.curve[-1][0]))
        if run.final < seed.final:
            counts["good"] += 1
            counts["good_stopped"] += stop is not None
        if run.final < seed.final + NEAR:
            counts["near"] += 1
            counts["near_stopped"] += stop is not None
        if hurdle > seed_hurdle + 0.1:
            counts["bad"] += 1
            counts["bad_stopped"] += stop is not None
    return {**counts, "spent": float(np.mean(spent)), "n": len(children)}


# --------------------------------------------------------------------------- the table


def write_report() -> None:
    table = seed_table()
    lines = [
        "# Ladder fidelity: tables",
        "",
        f"Written by `run.py report` at {code_version(HERE)}; Spearman ρ with 95 % bootstrap intervals "
        f"({BOOTSTRAP} resamples of the programs). Each row: the 35 seed programs at one training seed "
        "(cpu preset, FLOPs-matched to the Transformer's 1e6 tokens).",
        "",
        "## Rank signal against the full run's final validation loss",
        "",
        "| cheap look | " + " | ".join(f"training seed {s}" for s in sorted(table)) + " |",
        "|---|" + "---|" * len(table),
    ]
    looks = [(f"training loss at {f:g}", f, Run.train_at) for f in LOOKS]
    looks += [(f"validation loss at {f:g}", f, Run.val_at) for f in VAL_POINTS]
    for label, f, look in looks:
        cells = [fmt(rho_interval([look(r, f) for r in table[s]], [r.final for r in table[s]])) for s in sorted(table)]
        lines.append(f"| {label} of the schedule | " + " | ".join(cells) + " |")
    shorts = short_runs()
    for protocol in sorted({p for p, _ in shorts}, key=lambda p: float(p.removeprefix("T128-flops-"))):
        cells = []
        for s in sorted(table):
            arms, runs = shorts.get((protocol, s), {}), {r.name: r for r in table[s]}
            common = [a for a in arms if a in runs]
            cells.append(
                f"{fmt(rho_interval([arms[a] for a in common], [runs[a].final for a in common]))}"
                + ("" if len(common) == len(runs) else f" ({len(common)} programs)")
                if len(common) > 3
                else "–"
            )
        fraction = float(protocol.removeprefix("T128-flops-"))
        lines.append(f"| complete run of {fraction:g} of the budget, its own schedule | " + " | ".join(cells) + " |")
    children = rediscovery_children()
    finished = [(run, hurdle) for run, _, hurdle, _ in children if math.isfinite(run.final)]
    lines += [
        "",
        f"The rediscovery study's children that trained to the end ({len(finished)} of the {len(children)} "
        "trained children of the 6 Transformer-seeded campaigns; each campaign's own children, pooled): "
        "ρ against their final validation loss.",
        "",
        "| cheap look | children |",
        "|---|---|",
    ]
    for f in LOOKS:
        cheap = [run.train_at(f) for run, _ in finished]
        lines.append(f"| training loss at {f:g} | {fmt(rho_interval(cheap, [run.final for run, _ in finished]))} |")
    cheap = [hurdle for _, hurdle in finished]
    lines.append(
        f"| validation loss at 0.5 (the hurdle) | {fmt(rho_interval(cheap, [r.final for r, _ in finished]))} |"
    )
    lines += [
        "",
        "## Stopping rules replayed on the seed table",
        "",
        "Training loss at each rung (the engine judges a rung on validation loss; the two rank alike, "
        "above). Good: beat the Transformer's final loss at the same training seed. ASHA rows are a "
        "batch replay (all 34 other programs and the Transformer compared at once); seed rows compare "
        "with the Transformer at the same rung.",
        "",
        "| rule | good programs stopped | final best kept | final top 5 kept | mean budget spent |",
        "|---|---|---|---|---|",
    ]
    for rule in RULES:
        r = rule_on_seed_table(rule, table)
        lines.append(
            f"| {rule.label} | {r['good_stopped']} of {r['good']} | {r['best_kept']} of {r['seeds']} | "
            f"{r['top5_kept']} of {5 * r['seeds']} | {r['spent']:.2f} |"
        )
    lines += [
        "",
        f"## Seed-relative rules replayed on the rediscovery children ({len(children)} trained children of the "
        "6 Transformer-seeded campaigns)",
        "",
        "Good: finished below its campaign's seed. Bad: > 0.1 nats behind the seed at the 0.5 hurdle. "
        "Spent: the budget fraction each child would have used (children the 0.5 hurdle stopped count at "
        "most 0.5, as recorded).",
        "",
        f"| rule | good stopped | within {NEAR} of the seed (or better) stopped | bad stopped | mean budget spent |",
        "|---|---|---|---|---|",
    ]
    for rule in RULES:
        r = rule_on_children(rule, children)
        lines.append(
            f"| {rule.label} | {r['good_stopped']} of {r['good']} | {r['near_stopped']} of {r['near']} | "
            f"{r['bad_stopped']} of {r['bad']} | {r['spent']:.2f} |"
        )
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
