"""Proxy-task validation: does the synthetic suite (evaluator.tasks) rank the library's seeds
as their language-modelling loss does, which tasks separate them, and does a screen built on
it reject the degenerate programs that short searches crowned?

``run`` scores every library seed and four degenerate programs on every task at 3 seeds,
appending one JSON line per (program, task, seed) to ``results.jsonl`` (a rerun skips what is
recorded). ``report`` writes ``table.md`` and the plots, beside the language-modelling loss
of each seed on the cpu preset (the calibration panel's 12 arms).

    .venv/bin/python experiments/proxy/run.py run --seeds 0,1,2 --jobs 2
    .venv/bin/python experiments/proxy/run.py report
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from evaluator.provenance import append_jsonl, code_version, read_jsonl
from evaluator.tasks import DEFAULT_SUITE, TaskRecipe
from primitives.builder import Builder
from primitives.program import Architecture, ModelSpec, Program
from primitives.seeds import SEEDS, T5_EPS, T5_FINAL, ablated, seed
from primitives.validate import validate_architecture

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = HERE / "results.jsonl"
#: The LM loss beside each score: the calibration panel's (the cpu preset, 3 training seeds
#: per arm); and, for a second ρ over every seed, the seed table's FLOPs-matched runs on the
#: same frame (one training seed per arm so far).
LM_SOURCES = (ROOT / "experiments" / "calibration" / "results.jsonl",)
LM_PROTOCOLS = ("T128-1M",)
LM_ALL = (ROOT / "experiments" / "seed_table" / "results.jsonl", "T128-1M-flops")
MARGIN = 0.1  # the campaigns' default screen_margin
GOOD_LOSS = 4.0  # nats: the calibration's working architectures lie below, ReZero/sigmoid/Fixup far above
_RECIPE = TaskRecipe()
FRAME = ModelSpec(d_model=_RECIPE.d_model, n_layers=_RECIPE.n_layers, n_heads=_RECIPE.n_heads)


# --------------------------------------------------------------------------- the degenerate programs


def evolution_winner() -> Architecture:
    """experiments/rediscovery's evolution winner: no FFN, attention whose keys and values are
    the scaled normalised input itself, no projections (its README lists the program)."""
    a = Builder("attention")
    h1 = a.cmul("x", value=1.446, out="h1")
    probs = a.causal_softmax(a.attn_logits(a.dense(h1, width=8, out="q"), h1, out="scores"), out="probs")
    attention = a.build(a.attend(probs, h1, out="heads"))
    m = Builder("main")
    h = m.add("x", m.call("attention", m.layernorm("x", eps=T5_EPS, out="norm1"), out="attn"), out="h")
    main = m.build(m.add(h, m.layernorm(h, eps=T5_EPS, out="norm2"), out="y"))
    return validate_architecture(
        Architecture(
            name="evolution_winner",
            layers=[Program(subprograms=[main, attention])],
            final=T5_FINAL,
            description="rediscovery's evolution winner",
        )
    )


def bag_of_words() -> Architecture:
    """experiments/rediscovery's random-search winner: a normalised running sum of the inputs."""
    m = Builder("main")
    main = m.build(m.cumsum(m.layernorm("x", eps=0.7473, out="h1"), out="norm1"))
    return validate_architecture(
        Architecture(
            name="bag_of_words",
            layers=[Program(subprograms=[main])],
            final=T5_FINAL,
            description="rediscovery's random-search winner",
        )
    )


DEGENERATE = {
    "no_attention": lambda: ablated("attention", FRAME),
    "no_ffn": lambda: ablated("ffn", FRAME),
    "evolution_winner": evolution_winner,
    "bag_of_words": bag_of_words,
}
PROGRAMS = [*SEEDS, *DEGENERATE]


def program(name: str) -> Architecture:
    return DEGENERATE[name]() if name in DEGENERATE else seed(name, FRAME)


# --------------------------------------------------------------------------- runs


def score_one(name: str, task: str, task_seed: int) -> dict:
    """One score in a worker process, on one torch thread."""
    import torch

    from evaluator.tasks import score_task

    torch.set_num_threads(1)
    score = score_task(program(name), task, task_seed)
    return {
        **score.model_dump(),
        "program": name,
        "seed": task_seed,
        "commit": code_version(HERE),
        "cpu": platform.processor(),
    }


def run(names: list[str], tasks: list[str], seeds: list[int], jobs: int) -> None:
    done = {(r["program"], r["task"], r["seed"]) for r in read_jsonl(RESULTS)}
    todo = [(n, t, s) for s in seeds for n in names for t in tasks if (n, t, s) not in done]
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(score_one, *key) for key in todo]
        for future in as_completed(futures):
            record = future.result()
            append_jsonl(RESULTS, record)
            print(
                f"{record['program']:18s} {record['task']:24s} seed {record['seed']} "
                f"accuracy {record['accuracy']:.3f} ({record['seconds']:.1f} s)",
                flush=True,
            )


# --------------------------------------------------------------------------- report


def lm_losses(sources: tuple = tuple(zip(LM_SOURCES, LM_PROTOCOLS))) -> dict[str, tuple[float, int, str]]:
    """Each seed's validation loss on the cpu preset: (mean over training seeds, runs, protocol)."""
    out: dict[str, tuple[float, int, str]] = {}
    for source, protocol in sources:
        runs: dict[str, list[float]] = {}
        for r in read_jsonl(source):
            if r["protocol"] == protocol and r["val_loss"] is not None:
                runs.setdefault(r["arm"], []).append(r["val_loss"])
        for arm, losses in runs.items():
            out.setdefault(arm, (statistics.mean(losses), len(losses), protocol))
    return out


def spearman(a: list[float], b: list[float]) -> float:
    def ranks(values: list[float]) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        out = np.empty(len(values))
        out[values.argsort(kind="stable")] = np.arange(1, len(values) + 1)
        for value in np.unique(values):
            out[values == value] = out[values == value].mean()
        return out

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def report() -> None:
    rows = read_jsonl(RESULTS)
    lm = lm_losses()
    lm_all = lm_losses((LM_ALL,))
    scores: dict[tuple[str, str], list[float]] = {}
    seconds: dict[str, list[float]] = {}
    for r in rows:
        scores.setdefault((r["program"], r["task"]), []).append(r["accuracy"])
        seconds.setdefault(r["task"], []).append(r["seconds"])
    tasks = [t for t in DEFAULT_SUITE if t in seconds]
    names = [n for n in PROGRAMS if any((n, t) in scores for t in tasks)]
    mean = {k: statistics.mean(v) for k, v in scores.items()}
    lines = [
        "# Proxy-task validation: results",
        "",
        f"Generated by `.venv/bin/python experiments/proxy/run.py report` from `results.jsonl` ({len(rows)} scores).",
        "",
        "## Accuracy on held-out instances (mean ± std over task seeds)",
        "",
        "| program | LM loss (cpu preset) | " + " | ".join(tasks) + " | mean |",
        "|---|---|" + "---|" * (len(tasks) + 1),
    ]
    for name in sorted(names, key=lambda n: lm.get(n, (math.inf,))[0]):
        cells = []
        for task in tasks:
            values = scores.get((name, task), [])
            cells.append(
                f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"
                if len(values) > 1
                else f"{values[0]:.3f}"
                if values
                else "–"
            )
        loss = f"{lm[name][0]:.4f} ({lm[name][1]} run{'s' * (lm[name][1] > 1)})" if name in lm else "–"
        overall = [mean[(name, t)] for t in tasks if (name, t) in mean]
        lines.append(f"| {name} | {loss} | " + " | ".join(cells) + f" | {statistics.mean(overall):.3f} |")
    chance = {r["task"]: r["chance"] for r in rows}
    lines += [
        "",
        "Chance per task: " + ", ".join(f"{t} {chance[t]:.3f}" for t in tasks) + ".",
        "",
        "## Per task: agreement with the LM loss, separation, runtime",
        "",
        "ρ is Spearman's rank correlation, over the library seeds with an LM loss, between the task's "
        "mean accuracy and minus the LM loss (positive: the task ranks the seeds as language modelling "
        "does). Spread: the standard deviation of the seeds' mean accuracies; noise: the mean standard "
        "deviation over task seeds of one seed (spread well above noise: the task tells the seeds apart).",
        f"ρ (good): the same over the seeds whose LM loss is below {GOOD_LOSS} nats (the cluster of "
        "working architectures, without the far-behind ReZero, sigmoid and Fixup). ρ (all seeds): over "
        "every library seed, against the seed table's FLOPs-matched LM loss (training seed 0; 0-2 for the "
        "Transformer and Primer-EZ).",
        "",
        "| task | ρ (accuracy, −LM loss) | ρ (good) | ρ (all seeds) | seeds | spread | noise | "
        "seeds above chance + 0.1 | seconds per score |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    library = [n for n in names if n in SEEDS and n in lm]
    for task in tasks:
        present = [n for n in library if (n, task) in mean]
        rho = spearman([mean[(n, task)] for n in present], [-lm[n][0] for n in present])
        good = [n for n in present if lm[n][0] < GOOD_LOSS]
        rho_good = spearman([mean[(n, task)] for n in good], [-lm[n][0] for n in good])
        every = [n for n in SEEDS if n in lm_all and (n, task) in mean]
        rho_all = spearman([mean[(n, task)] for n in every], [-lm_all[n][0] for n in every])
        between = statistics.pstdev([mean[(n, task)] for n in present]) if len(present) > 1 else math.nan
        within = (
            statistics.mean(statistics.stdev(scores[(n, task)]) for n in present if len(scores[(n, task)]) > 1)
            if any(len(scores[(n, task)]) > 1 for n in present)
            else math.nan
        )
        lines.append(
            f"| {task} | {rho:.2f} | {rho_good:.2f} | {rho_all:.2f} ({len(every)}) | {len(present)} | "
            f"{between:.3f} | {within:.3f} | "
            f"{sum(mean[(n, task)] > chance[task] + 0.1 for n in present)}/{len(present)} | "
            f"{statistics.mean(seconds[task]):.1f} |"
        )
    suite = [n for n in library if all((n, t) in mean for t in tasks)]
    suite_mean = {n: statistics.mean(mean[(n, t)] for t in tasks) for n in suite}
    good = [n for n in suite if lm[n][0] < GOOD_LOSS]
    every = [n for n in SEEDS if n in lm_all and all((n, t) in mean for t in tasks)]
    every_mean = {n: statistics.mean(mean[(n, t)] for t in tasks) for n in every}
    lines.append(
        f"| **suite mean** | {spearman([suite_mean[n] for n in suite], [-lm[n][0] for n in suite]):.2f} | "
        f"{spearman([suite_mean[n] for n in good], [-lm[n][0] for n in good]):.2f} | "
        f"{spearman([every_mean[n] for n in every], [-lm_all[n][0] for n in every]):.2f} ({len(every)}) | "
        f"{len(suite)} | | | | |"
    )
    lines += [
        "",
        f"The whole suite: {sum(statistics.mean(seconds[t]) for t in tasks):.0f} s per program (mean over "
        "every score recorded; one torch thread, two scores side by side on the 2-core VM).",
        "",
        f"## Does a screen reject the degenerate programs? (bar: the Transformer's mean − {MARGIN})",
        "",
        "| program | " + " | ".join(tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    for name in [n for n in DEGENERATE if n in names]:
        cells = []
        for task in tasks:
            if (name, task) in mean and ("transformer", task) in mean:
                bar = mean[("transformer", task)] - MARGIN
                cells.append(f"{mean[(name, task)]:.3f} {'**rejected**' if mean[(name, task)] < bar else 'passes'}")
            else:
                cells.append("–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Which library seeds would a screen of one task screen out? (same bar)",
        "",
        "Seeds with an LM loss are marked with their rank by that loss (1 = best of "
        f"{len(library)}); a screen should spare the good ones.",
        "",
        "| task | bar | screened out |",
        "|---|---|---|",
    ]
    rank = {n: i for i, n in enumerate(sorted(library, key=lambda n: lm[n][0]), 1)}
    for task in tasks:
        bar = mean[("transformer", task)] - MARGIN
        out = sorted((n for n in names if n in SEEDS and mean.get((n, task), 1.0) < bar), key=lambda n: rank.get(n, 99))
        lines.append(
            f"| {task} | {bar:.3f} | "
            + (", ".join(f"{n}{f' (#{rank[n]})' if n in rank else ''}" for n in out) or "none")
            + " |"
        )
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    plot(tasks, mean, lm, library)
    print("\n".join(lines))


def plot(tasks: list[str], mean: dict, lm: dict, library: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, panels = plt.subplots(2, (len(tasks) + 1) // 2, figsize=(4 * ((len(tasks) + 1) // 2), 7.5), squeeze=False)
    for axes, task in zip(panels.flat, tasks):
        present = [n for n in library if (n, task) in mean]
        axes.scatter([lm[n][0] for n in present], [mean[(n, task)] for n in present], s=14)
        for n in present:
            if n in ("transformer", "primer_ez", "mdha", "rezero", "sigmoid", "fixup", "sas"):
                axes.annotate(n, (lm[n][0], mean[(n, task)]), fontsize=7, xytext=(2, 2), textcoords="offset points")
        axes.set(title=task, xlabel="LM validation loss (cpu preset)", ylabel="task accuracy", ylim=(-0.02, 1.02))
    for axes in list(panels.flat)[len(tasks) :]:
        axes.axis("off")
    figure.suptitle(
        "task accuracy (mean over 3 task seeds) against language-modelling loss, library seeds", fontsize=10
    )
    figure.tight_layout()
    figure.savefig(HERE / "accuracy_vs_loss.png", dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run", help="score programs on tasks (skips recorded scores)")
    go.add_argument("--programs", default=",".join(PROGRAMS))
    go.add_argument("--tasks", default=",".join(DEFAULT_SUITE))
    go.add_argument("--seeds", default="0,1,2")
    go.add_argument("--jobs", type=int, default=2)
    sub.add_parser("report", help="write table.md and accuracy_vs_loss.png from results.jsonl")
    args = parser.parse_args()
    if args.command == "run":
        run(args.programs.split(","), args.tasks.split(","), [int(s) for s in args.seeds.split(",")], args.jobs)
    else:
        report()


if __name__ == "__main__":
    main()
