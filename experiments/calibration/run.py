"""Calibration: on which cheap protocol do the papers' known effects reproduce?

A panel of seeds whose ordering the papers establish is trained at several training seeds
under candidate protocols (vocabulary, width, depth, sequence length, batch, budget in
tokens or in FLOPs). ``run`` appends one JSON line per run to ``results.jsonl`` (a rerun
skips what is recorded, so it resumes after a crash); ``report`` writes ``table.md`` and the
loss-curve plots from it. Runs use one torch thread each, ``--jobs`` at a time, and token or
FLOPs budgets, so the numbers do not depend on the machine's load.

    .venv/bin/python experiments/calibration/run.py run --protocol T128-1M --seeds 0,1,2
    .venv/bin/python experiments/calibration/run.py report
"""

from __future__ import annotations

import argparse
import math
import statistics
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from evaluator.provenance import append_jsonl, code_version, read_jsonl
from evaluator.budget import parse_budget
from evaluator.presets import PRESETS, Preset
from evaluator.speedup import speedup, validation_curve
from primitives.cost import parameter_count, training_flops
from primitives.seeds import ablated, seed

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.jsonl"

PANEL = [
    "transformer",
    "primer_ez",
    "squared_relu",
    "mdha",
    "gelu",
    "transformer_pp",
    "swiglu",
    "rmsnorm",
    "parallel",
    "rezero",
    "sigmoid",
    "fixup",
]

#: The papers' ordering of the panel, best first, as ranks (ties share the mean rank), from
#: ../shared/reference/architectures.md: Primer's LM1B table (§10: Primer-EZ > Transformer++ >
#: +GELU ≥ vanilla) and ablations (§4: squared ReLU and MDHA each strongly positive, MDHA alone
#: 1.76×), Narang et al.'s final losses (§9.3: SwiGLU 1.789 < RMSNorm 1.821 < GeLU = vanilla
#: 1.838 < sigmoid 1.867 < ReZero 1.939 < Fixup 2.067) and the parallel block ≈ Pre-LN (§7.8).
PAPER_RANK = {
    "primer_ez": 1,
    "mdha": 2.5,
    "squared_relu": 2.5,
    "transformer_pp": 4.5,
    "swiglu": 4.5,
    "rmsnorm": 6,
    "gelu": 7,
    "transformer": 8.5,
    "parallel": 8.5,
    "sigmoid": 10,
    "rezero": 11,
    "fixup": 12,
}

_CPU = PRESETS["cpu"]


def _variant(name: str, budget: str, description: str, **spec: object) -> Preset:
    return _CPU.model_copy(
        update={"name": name, "budget": budget, "description": description, "spec": _CPU.spec.model_copy(update=spec)}
    )


#: Candidate protocols. Budgets are tokens (or FLOPs) so that a loaded machine changes nothing.
PROTOCOLS: dict[str, Preset] = {
    p.name: p
    for p in (
        _variant("T128-0.5M", "5e5tokens", "cpu preset frame, half the tokens (~490 steps)"),
        _variant("T128-1M", "1e6tokens", "the cpu preset: V 1024, d 128, 4 layers, T 128, batch 8, ~980 steps"),
        _CPU.model_copy(
            update={
                "name": "T64-1M",
                "description": "sequences of 64, batch 16, ~980 steps",
                "spec": _CPU.spec.model_copy(update={"seq_len": 64}),
                "train": _CPU.train.model_copy(update={"batch_size": 16}),
            }
        ),
        _variant(
            "T128-1M-flops",
            f"{training_flops(_CPU.spec, seed('transformer', _CPU.spec)) * 1e6:.6g}flops",
            "the cpu preset FLOPs-matched: every arm gets the FLOPs the Transformer spends on 1e6 tokens",
        ),
    )
}


def train_one(protocol: Preset, arm: str, training_seed: int) -> dict:
    """One run in a worker process: one torch thread, the protocol's recipe at ``training_seed``."""
    from evaluator.tokenization import load_tokenized
    from evaluator.train import train

    data = load_tokenized("default", protocol.spec.vocab_size, max_train_tokens=protocol.max_train_tokens)
    config = protocol.train.model_copy(update={"seed": training_seed, "threads": 1})
    result = train(protocol.spec, seed(arm, protocol.spec), data, protocol.budget, config)
    return {
        **result.model_dump(mode="json"),
        "protocol": protocol.name,
        "arm": arm,
        "seed": training_seed,
        "budget": protocol.budget,
        "commit": code_version(HERE),
    }


def run(
    protocol: Preset,
    arms: list[str],
    seeds: list[int],
    jobs: int,
    results: Path = RESULTS,
    budgets: dict[str, str] | None = None,
) -> None:
    """Train every (arm, training seed) not yet in ``results``, seed by seed, ``jobs`` at a time;
    ``budgets`` gives arms a budget of their own in place of the protocol's."""
    done = {(r["protocol"], r["arm"], r["seed"]) for r in read_jsonl(results)}
    todo = [(arm, s) for s in seeds for arm in arms if (protocol.name, arm, s) not in done]
    budgets = budgets or {}
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(train_one, protocol.model_copy(update={"budget": budgets.get(arm, protocol.budget)}), arm, s)
            for arm, s in todo
        ]
        for future in as_completed(futures):
            record = future.result()
            append_jsonl(results, record)
            print(
                f"{record['protocol']} {record['arm']:15s} seed {record['seed']} {record['status']:8s} "
                f"loss {record['val_loss']} ({record['wall_seconds']:.0f} s)",
                flush=True,
            )


# --------------------------------------------------------------------------- report


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's ρ: Pearson's correlation of the (mean, for ties) ranks."""

    def ranks(values: list[float]) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        order = values.argsort(kind="stable")
        out = np.empty(len(values))
        out[order] = np.arange(1, len(values) + 1)
        for value in np.unique(values):
            out[values == value] = out[values == value].mean()
        return out

    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def mean_std(values: list[float]) -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "–"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def speedups(rows: list[dict], baseline: dict[int, dict], axis: str, start_loss: float) -> list[float]:
    """Primer's speedup of each run against the baseline run of the same training seed."""
    out = []
    for r in rows:
        base = baseline.get(r["seed"])
        if base is not None and r["val_loss"] is not None:
            out.append(
                speedup(validation_curve(base["loss_curve"], axis), validation_curve(r["loss_curve"], axis), start_loss)
            )
    return out


def table(protocol: Preset, runs: list[dict], order: list[str]) -> list[str]:
    """The ranked Markdown table of one protocol's runs (arms listed in ``order``), with the
    Spearman ρ of the arms the papers rank."""
    axis = parse_budget(protocol.budget).kind
    start_loss = math.log(protocol.spec.vocab_size)
    baseline = {r["seed"]: r for r in runs if r["arm"] == "transformer"}
    stats = []
    for arm in (a for a in order if any(r["arm"] == a for r in runs)):
        mine = [r for r in runs if r["arm"] == arm]
        ok = [r for r in mine if r["val_loss"] is not None]
        ups = [s for s in speedups(ok, baseline, axis, start_loss) if math.isfinite(s)]
        wins = sum(
            r["seed"] in baseline
            and baseline[r["seed"]]["val_loss"] is not None
            and r["val_loss"] < baseline[r["seed"]]["val_loss"]
            for r in ok
        )
        stats.append((arm, [r["val_loss"] for r in ok], ups, wins, len(mine), ok))
    stats.sort(key=lambda s: statistics.mean(s[1]) if s[1] else math.inf)
    ranked = [s[0] for s in stats if s[1] and s[0] in PAPER_RANK]
    rho = spearman([PAPER_RANK[a] for a in ranked], list(range(1, len(ranked) + 1))) if len(ranked) > 2 else math.nan
    lines = [
        f"Budget {protocol.budget}; spec {protocol.spec.model_dump()}; batch {protocol.train.batch_size}; "
        f"lr {protocol.train.lr:g}. "
        + (
            f"Spearman ρ against the papers' ordering: **{rho:.2f}** ({len(ranked)} arms the papers rank)."
            if math.isfinite(rho)
            else f"({len(ranked)} ranked arms: too few for a rank correlation.)"
        ),
        "",
        "| rank | arm | paper rank | val loss (mean ± std) | speedup vs transformer (mean ± std) | "
        "beats transformer | runs | failures | training FLOPs/token (cost model) | params | tokens seen | "
        "tokens/s (one core) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rank, (arm, losses, ups, wins, n, ok) in enumerate(stats, 1):
        up = (
            f"{statistics.mean(ups):.2f} ± {statistics.stdev(ups):.2f}"
            if len(ups) > 1
            else (f"{ups[0]:.2f}" if ups else "–")
        )
        architecture = seed(arm, protocol.spec)
        tokens = f"{statistics.mean(r['tokens'] for r in ok):,.0f}" if ok else "–"
        rate = f"{statistics.mean(r['tokens'] / r['seconds'] for r in ok if r['seconds']):,.0f}" if ok else "–"
        lines.append(
            f"| {rank} | {arm} | {PAPER_RANK.get(arm, '–')} | {mean_std(losses)} | {up} | {wins}/{len(ok)} | "
            f"{n} | {n - len(ok)} | {training_flops(protocol.spec, architecture) / 1e6:.3f}M | "
            f"{parameter_count(protocol.spec, architecture):,} | {tokens} | {rate} |"
        )
    return lines + [""]


def report() -> None:
    by_protocol: dict[str, list[dict]] = {}
    for r in read_jsonl(RESULTS):
        by_protocol.setdefault(r["protocol"], []).append(r)
    lines = [
        "# Calibration results",
        "",
        "Generated by `.venv/bin/python experiments/calibration/run.py report` from `results.jsonl`.",
        "",
    ]
    for name, runs in by_protocol.items():
        protocol = PROTOCOLS[name]
        lines += [f"## {name}: {protocol.description}", "", *table(protocol, runs, PANEL)]
        plot(HERE / f"loss_{name}.png", f"calibration protocol {name}", runs, PANEL)
        lines += [f"![loss curves, {name}](loss_{name}.png)", ""]
    lines += cost_ratios()
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def cost_ratios() -> list[str]:
    """Training FLOPs and parameters of each panel arm (and of two deletions) relative to the
    Transformer at the cpu preset: where the campaigns' default cost bounds come from."""
    spec = _CPU.spec
    base = seed("transformer", spec)
    arms = [(a, seed(a, spec)) for a in PANEL] + [
        (f"transformer without {s}", ablated(s, spec)) for s in ("attention", "ffn")
    ]
    lines = [
        "## Cost relative to the Transformer (cpu preset, registry cost model)",
        "",
        "| program | training FLOPs/token | × transformer | parameters | × transformer |",
        "|---|---|---|---|---|",
    ]
    for name, architecture in arms:
        flops, params = training_flops(spec, architecture), parameter_count(spec, architecture)
        lines.append(
            f"| {name} | {flops / 1e6:.3f}M | {flops / training_flops(spec, base):.3f} | {params:,} | "
            f"{params / parameter_count(spec, base):.3f} |"
        )
    return lines + [""]


def plot(out: Path, title: str, runs: list[dict], arms: list[str]) -> None:
    """Validation-loss curves of every run of ``arms`` (one hue per arm) on the budget's axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axis = parse_budget(runs[0]["budget"]).kind
    fig, ax = plt.subplots(figsize=(8, 5))
    colours = [*plt.get_cmap("tab10").colors, "black", "magenta"]  # twelve distinct hues, one per arm
    shown = [a for a in arms if any(r["arm"] == a for r in runs)]
    for i, arm in enumerate(shown):
        for j, r in enumerate(r for r in runs if r["arm"] == arm):
            curve = validation_curve(r["loss_curve"], axis)
            if curve:
                ax.plot(
                    *zip(*curve),
                    color=colours[i % len(colours)],
                    alpha=0.8,
                    label=arm if j == 0 else None,
                    linestyle="-" if i < 6 else "--",
                )
    ax.set_xlabel(axis)
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title(
        f"{title}: validation loss, every training seed\n(arms above the top of the axis: see the table)", fontsize=10
    )
    ax.legend(fontsize=7, ncol=2)
    lows = [min(p[1] for p in validation_curve(r["loss_curve"], axis)) for r in runs if r["val_loss"] is not None]
    if lows:
        ax.set_ylim(min(lows) - 0.05, min(lows) + 1.0)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run", help="train the panel under one protocol (skips recorded runs)")
    go.add_argument("--protocol", required=True, choices=sorted(PROTOCOLS))
    go.add_argument("--arms", default=",".join(PANEL), help="comma-separated seeds of the library")
    go.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    go.add_argument("--jobs", type=int, default=2)
    sub.add_parser("report", help="write table.md and the plots from results.jsonl")
    args = parser.parse_args()
    if args.command == "run":
        run(PROTOCOLS[args.protocol], args.arms.split(","), [int(s) for s in args.seeds.split(",")], args.jobs)
    else:
        report()


if __name__ == "__main__":
    main()
