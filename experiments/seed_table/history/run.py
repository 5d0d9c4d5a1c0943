"""Every library seed trained under one budget on the default corpus: the equal-compute table.

Runs are interleaved (all seeds for repeat 0, then repeat 1, ...) so that a shared machine's
load falls on every arm alike, appended to ``results.jsonl`` as they finish (a rerun skips
what is there), then summarised into ``table.md`` and ``loss.png``:

    .venv/bin/python experiments/seed_table/history/run.py --budget 20s --repeats 3
    .venv/bin/python experiments/seed_table/history/run.py --summarize-only

Primer's speedup: the training compute the vanilla Transformer needs to reach its own final
loss, divided by what the variant needs to reach that loss (read off the smoothed training
loss curves on the budget's own axis: seconds, FLOPs or tokens, each repeat against the
Transformer of the same repeat); when the variant never gets there, the compute the
Transformer needs to reach the variant's final loss divided by what the variant needed.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np

from evaluator.provenance import append_jsonl, code_version, read_jsonl
from evaluator.budget import parse_budget
from evaluator.tokenization import load_tokenized
from evaluator.train import TrainConfig, train
from primitives.program import ModelSpec
from primitives.seeds import SEEDS, seed

HERE = Path(__file__).resolve().parent
AXIS = {"seconds": "seconds", "flops": "flops", "tokens": "tokens"}


def run(budget: str, repeats: int, names: list[str], threads: int, results: Path, tag: str) -> None:
    spec = ModelSpec()
    data = load_tokenized("default", spec.vocab_size)
    done = {(r["name"], group(r), r["repeat"]) for r in read_jsonl(results)}
    for repeat in range(repeats):
        for name in names:
            if (name, (str(parse_budget(budget)), tag), repeat) in done:
                continue
            config = TrainConfig(seed=repeat, threads=threads)
            result = train(spec, seed(name, spec), data, parse_budget(budget), config)
            record = {
                **result.model_dump(mode="json"),
                "name": name,
                "budget": budget,
                "repeat": repeat,
                "tag": tag,
                "commit": code_version(HERE),
            }
            append_jsonl(results, record)
            print(
                f"{budget} repeat {repeat} {name:20s} {result.status:8s} loss {result.val_loss} "
                f"tokens/s {result.tokens / max(result.seconds, 1e-9):,.0f}",
                flush=True,
            )


def group(record: dict) -> tuple[str, str]:
    """Runs compared with each other: the same budget and the same tag."""
    return str(parse_budget(record["budget"])), record.get("tag", "")


def curve(record: dict, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """(budget spent, training loss) with a centred 3-point running mean (ends dropped)."""
    points = [(p[axis], p["train_loss"]) for p in record["loss_curve"] if p["train_loss"] is not None]
    x = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    if len(points) < 3:
        return x, y
    return x[1:-1], np.convolve(y, np.ones(3) / 3, mode="valid")


def reach(x: np.ndarray, y: np.ndarray, loss: float) -> float | None:
    """The first budget position where the curve is at or below ``loss``."""
    hits = np.nonzero(y <= loss)[0]
    return float(x[hits[0]]) if hits.size else None


def speedup(variant: dict, vanilla: dict, axis: str) -> float | None:
    xv, yv = curve(variant, axis)
    xt, yt = curve(vanilla, axis)
    if not len(xv) or not len(xt):
        return None
    # Both arms are timed the same way, "first point at or below the target", so that noise in
    # a curve that dips below its final value before the end cancels (vanilla vs itself = 1).
    target = yt[-1]
    at = reach(xv, yv, target)
    if at is not None:
        return reach(xt, yt, target) / at
    back = reach(xt, yt, yv[-1])
    return back / reach(xv, yv, yv[-1]) if back is not None else None


def summarize(results: Path) -> str:
    records = [r for r in read_jsonl(results)]
    by_group: dict[tuple[str, str], dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        by_group[group(r)][r["name"]].append(r)
    lines = []
    for (budget, tag), arms in by_group.items():
        axis = AXIS[parse_budget(budget).kind]
        vanilla = {r["repeat"]: r for r in arms.get("transformer", [])}
        lines += [
            f"### budget {budget}{f' — {tag}' if tag else ''} ({len(next(iter(arms.values())))} repeats)",
            "",
            "| seed | val loss (mean ± std) | bits/byte | parameters | tokens seen | tokens/s "
            "| speedup vs transformer | failures |",
            "|---|---|---|---|---|---|---|---|",
        ]
        rows = []
        for name, runs in arms.items():
            ok = [r for r in runs if r["status"] == "ok" and r["val_loss"] is not None]
            losses = [r["val_loss"] for r in ok]
            mean = statistics.mean(losses) if losses else math.inf
            std = statistics.stdev(losses) if len(losses) > 1 else 0.0
            speeds = [
                s
                for r in ok
                if r["repeat"] in vanilla
                for s in [speedup(r, vanilla[r["repeat"]], axis)]
                if s is not None
            ]
            tokens_per_s = statistics.mean(r["tokens"] / r["seconds"] for r in ok) if ok else 0
            rows.append(
                (
                    mean,
                    f"| {name} | {mean:.4f} ± {std:.4f} | "
                    f"{statistics.mean(r['bits_per_byte'] for r in ok):.3f} | {ok[0]['parameters']:,} | "
                    f"{statistics.mean(r['tokens'] for r in ok):,.0f} | {tokens_per_s:,.0f} | {statistics.mean(speeds):.2f}× | {len(runs) - len(ok)} |"
                    if ok
                    else f"| {name} | – | – | – | – | – | – | {len(runs)} |",
                )
            )
        lines += [row for _, row in sorted(rows)] + [""]
    return "\n".join(lines)


def plot(results: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_jsonl(results)
    groups = list(dict.fromkeys(group(r) for r in records))
    figure, panels = plt.subplots(1, len(groups), figsize=(7 * len(groups), 5), squeeze=False)
    shown = ("transformer", "primer_ez", "primer", "transformer_pp", "swiglu", "sas", "sas_p", "gelu")
    for axes, (budget, tag) in zip(panels[0], groups):
        axis = AXIS[parse_budget(budget).kind]
        for name in shown:
            runs = [r for r in records if r["name"] == name and group(r) == (budget, tag) and r["status"] == "ok"]
            if runs:
                axes.plot(*curve(runs[0], axis), label=name)
        axes.set(
            xlabel=f"training budget spent ({axis})",
            ylabel="training loss (nats/token, 3-point mean)",
            title=f"budget {budget}{f' ({tag})' if tag else ''}: loss curves, repeat 0",
        )
        axes.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", default="20s")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", default=",".join(SEEDS), help="comma-separated seed names")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", type=Path, default=HERE / "results.jsonl")
    parser.add_argument(
        "--tag",
        default="",
        help="label of this table's runs (e.g. the code change they test); "
        "runs are compared only within the same budget and tag",
    )
    parser.add_argument("--summarize-only", action="store_true")
    args = parser.parse_args()
    if not args.summarize_only:
        run(args.budget, args.repeats, args.seeds.split(","), args.threads, args.results, args.tag)
    (HERE / "table.md").write_text(summarize(args.results))
    plot(args.results, HERE / "loss.png")
    print(summarize(args.results))


if __name__ == "__main__":
    main()
