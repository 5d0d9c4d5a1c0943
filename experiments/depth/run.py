"""Post-LN, Pre-LN and DeepNorm at increasing depth: which diverge (DeepNet, Wang et al. 2022).

DeepNet reports that Post-LN stops training as the stack deepens while DeepNorm (Post-LN with
the skip up-weighted by α and the FFN/V/O inits shrunk by β, both set by the depth) trains at
any depth. Every arm here sees the same data: a tokens budget, the same batch stream per seed
and the same recipe; only the depth (and so the compute) changes. DeepNorm is built with the
spec of its own depth, so α = (2L)^¼ and β = (8L)^-¼ follow L.

Runs are interleaved (every arm and depth for seed 0, then seed 1, ...) so that a shared
machine's load falls on every arm alike, appended to ``results.jsonl`` as they finish (a rerun
skips what is there), then summarised into ``table.md`` and ``loss.png``:

    nice -n 19 .venv/bin/python experiments/depth/run.py
    .venv/bin/python experiments/depth/run.py --summarize-only

Another budget goes to its own file, e.g. ``--results experiments/depth/results_long.jsonl``,
summarised into ``table_long.md`` and ``loss_long.png`` (README.md has the follow-up's command).

The library marks a run "diverged" only when a loss becomes NaN/Inf. A deep Post-LN stack
under gradient clipping can instead fail without a NaN, stuck near the unigram loss, so the
table also counts runs whose final validation loss is no better than a unigram model's
(token frequencies of the train split, scored on the same validation windows).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np

from evaluator.provenance import read_jsonl
from evaluator.budget import parse_budget
from evaluator.tokenization import load_tokenized
from evaluator.train import TrainConfig, train, validation_windows
from primitives.program import ModelSpec
from primitives.seeds import seed

HERE = Path(__file__).resolve().parent
ARMS = {"transformer_postln": "Post-LN", "transformer": "Pre-LN", "deepnorm": "DeepNorm"}
COLORS = {"transformer_postln": "tab:red", "transformer": "tab:blue", "deepnorm": "tab:green"}
# Post-LN wide and DeepNorm dashed on top: on the unigram plateau their curves coincide.
STYLES = {"transformer_postln": ("-", 2.4), "transformer": ("-", 1.2), "deepnorm": ("--", 1.2)}


def spec_at(depth: int, args: argparse.Namespace) -> ModelSpec:
    return ModelSpec(vocab_size=4096, d_model=args.d_model, n_layers=depth, n_heads=args.n_heads, seq_len=args.seq_len)


def run(args: argparse.Namespace) -> None:
    data = load_tokenized("default", 4096)
    done = {key(r) for r in read_jsonl(args.results)}
    for repeat in range(args.seeds):
        for lr in args.lrs:
            for depth in args.depths:
                spec = spec_at(depth, args)
                for arm in args.arms:
                    if (arm, depth, lr, repeat, args.budget, args.d_model, args.batch_size) in done:
                        continue
                    config = TrainConfig(
                        seed=repeat, threads=1, lr=lr, batch_size=args.batch_size, warmup_fraction=args.warmup
                    )
                    # seed(arm, spec): DeepNorm's α and β are read from spec.n_layers.
                    result = train(spec, seed(arm, spec), data, parse_budget(args.budget), config)
                    record = {
                        "arm": arm,
                        "n_layers": depth,
                        "lr": lr,
                        "repeat": repeat,
                        "budget": args.budget,
                        "d_model": args.d_model,
                        "n_heads": args.n_heads,
                        "seq_len": args.seq_len,
                        "batch_size": args.batch_size,
                        "warmup_fraction": args.warmup,
                        **result.model_dump(mode="json"),
                    }
                    with args.results.open("a") as handle:
                        handle.write(json.dumps(record) + "\n")
                    print(
                        f"seed {repeat} lr {lr:g} L{depth:<3d} {arm:20s} {result.status:8s} "
                        f"loss {result.val_loss} steps {result.steps} {result.wall_seconds:.0f}s",
                        flush=True,
                    )


def key(r: dict) -> tuple:
    return r["arm"], r["n_layers"], r["lr"], r["repeat"], r["budget"], r["d_model"], r["batch_size"]


def unigram_loss(seq_len: int, batch_size: int) -> float:
    """Cross-entropy (nats/token) of the train split's token frequencies (add-one) on the
    validation windows ``train`` scores: the loss of a model that learned no context."""
    data = load_tokenized("default", 4096)
    counts = np.bincount(np.asarray(data.train), minlength=4096).astype(float) + 1.0
    logp = np.log(counts / counts.sum())
    targets = validation_windows(data.validation, seq_len, TrainConfig().eval_batches * batch_size)[:, 1:]
    return float(-logp[targets].mean())


def summarize(results: Path) -> str:
    records = read_jsonl(results)
    if not records:
        return "no results yet"
    first = records[0]
    floor = unigram_loss(first["seq_len"], first["batch_size"])
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        groups[(r["lr"], r["n_layers"], r["arm"])].append(r)
    lines = [
        (
            f"d_model {first['d_model']}, {first['n_heads']} heads, seq {first['seq_len']}, batch "
            f"{first['batch_size']}, budget {first['budget']}, warmup {first['warmup_fraction']:g} of the "
            f"budget. Unigram loss on the validation windows: {floor:.3f} nats/token "
            f"(initial loss ≈ ln 4096 = {math.log(4096):.3f})."
        ),
        "",
        ("| lr | depth | arm | val loss (mean ± std) | per seed | diverged (NaN) | ≥ unigram | steps | parameters |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for lr in sorted({k[0] for k in groups}):
        for depth in sorted({k[1] for k in groups}):
            for arm, label in ARMS.items():
                runs = sorted(groups.get((lr, depth, arm), []), key=lambda r: r["repeat"])
                if not runs:
                    continue
                losses = [r["val_loss"] for r in runs if r["status"] == "ok" and r["val_loss"] is not None]
                mean = f"{statistics.mean(losses):.3f}" if losses else "–"
                std = f" ± {statistics.stdev(losses):.3f}" if len(losses) > 1 else ""
                per = ", ".join(
                    f"{r['val_loss']:.3f}" if r["val_loss"] is not None else f"NaN@{r['diverged_step']}" for r in runs
                )
                nan = sum(r["status"] == "diverged" for r in runs)
                stuck = sum(r["status"] == "diverged" or r["val_loss"] is None or r["val_loss"] >= floor for r in runs)
                steps = sorted({r["steps"] for r in runs})
                lines.append(
                    f"| {lr:g} | {depth} | {label} | {mean}{std} | {per} | {nan}/{len(runs)} "
                    f"| {stuck}/{len(runs)} | {'/'.join(map(str, steps))} | {runs[0]['parameters']:,} |"
                )
    return "\n".join(lines) + "\n"


def plot(results: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_jsonl(results)
    lrs = sorted({r["lr"] for r in records})
    depths = sorted({r["n_layers"] for r in records})
    floor = unigram_loss(records[0]["seq_len"], records[0]["batch_size"])
    figure, axes = plt.subplots(
        len(lrs), len(depths), figsize=(4.2 * len(depths), 3.4 * len(lrs)), sharex=True, sharey=True, squeeze=False
    )
    tokens_per_step = records[0]["batch_size"] * records[0]["seq_len"]
    for i, lr in enumerate(lrs):
        for j, depth in enumerate(depths):
            ax = axes[i][j]
            for arm, label in ARMS.items():
                runs = sorted(
                    (r for r in records if r["lr"] == lr and r["n_layers"] == depth and r["arm"] == arm),
                    key=lambda r: r["repeat"],
                )
                for n, r in enumerate(runs):
                    points = [
                        (p["tokens"] / tokens_per_step, p["train_loss"])
                        for p in r["loss_curve"]
                        if p["train_loss"] is not None
                    ]
                    if not points:
                        continue
                    x, y = zip(*points)
                    ax.plot(
                        x,
                        y,
                        color=COLORS[arm],
                        ls=STYLES[arm][0],
                        lw=STYLES[arm][1],
                        alpha=0.8,
                        label=label if n == 0 else None,
                    )
                    if r["status"] == "diverged":
                        ax.plot(x[-1], y[-1], "x", color=COLORS[arm], ms=9, mew=2)
            ax.axhline(floor, color="grey", ls="--", lw=0.8, label="unigram" if i == j == 0 else None)
            ax.set_title(f"{depth} layers, lr {lr:g}")
            ax.set_ylim(floor - 2.0, math.log(4096) + 1.0)
            ax.grid(alpha=0.3)
            if i == len(lrs) - 1:
                ax.set_xlabel("step")
            if j == 0:
                ax.set_ylabel("train loss (nats/token)")
    axes[0][0].legend(fontsize=8)
    figure.suptitle(f"training loss, every seed, {records[0]['budget']} (x: loss became NaN)", fontsize=11)
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", default="6,24,96")
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated seed names")
    parser.add_argument("--lrs", default="3e-3,1e-2", help="comma-separated peak learning rates")
    parser.add_argument("--seeds", type=int, default=2, help="repeats, with training seeds 0, 1, ...")
    parser.add_argument("--budget", default="76800tokens")
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--n-heads", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=0.05, help="warmup, a fraction of the budget")
    parser.add_argument("--results", type=Path, default=HERE / "results.jsonl")
    parser.add_argument("--summarize-only", action="store_true")
    args = parser.parse_args()
    args.depths = [int(d) for d in args.depths.split(",")]
    args.arms = args.arms.split(",")
    args.lrs = [float(lr) for lr in args.lrs.split(",")]
    if not args.summarize_only:
        run(args)
    # results.jsonl → table.md, loss.png; results_long.jsonl → table_long.md, loss_long.png
    stem = args.results.stem
    suffix = stem[len("results") :] if stem.startswith("results") else f"_{stem}"
    table = summarize(args.results)
    (args.results.parent / f"table{suffix}.md").write_text(table)
    plot(args.results, args.results.parent / f"loss{suffix}.png")
    print(table)


if __name__ == "__main__":
    main()
