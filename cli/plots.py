"""Campaign plots (PNG via matplotlib): progress, hurdle survival, parameters vs loss with the
Pareto front, the lineage of the best individual, and the task screen's scores."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import IO

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from storage import IndividualRecord, Repository, ScreenRecord  # noqa: E402

#: Where a figure goes: a file, or (the dashboard) an open binary stream.
Target = Path | IO[bytes]


def _loss(individual: IndividualRecord) -> float:
    return individual.fitness if individual.fitness is not None and math.isfinite(individual.fitness) else math.nan


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (parameters, loss) points no other point beats on both, by increasing parameters."""
    front, best = [], math.inf
    for params, loss in sorted(points):
        if loss < best:
            front.append((params, loss))
            best = loss
    return front


def plot_progress(individuals: list[IndividualRecord], path: Target, window: int) -> None:
    figure = progress_figure(individuals, window)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def progress_figure(individuals: list[IndividualRecord], window: int) -> plt.Figure:
    """Every individual's loss in finishing order, hurdle-stopped ones marked apart (their loss
    is the hurdle's, not the budget's), screened-out ones (no loss: never trained) as ticks
    along the bottom, with the best so far and a running median."""
    losses = np.array([_loss(i) for i in individuals])
    best = np.fmin.accumulate(np.where(np.isnan(losses), np.inf, losses))
    median = [
        np.nanmedian(losses[max(0, k - window + 1) : k + 1])
        if np.isfinite(losses[max(0, k - window + 1) : k + 1]).any()
        else np.nan
        for k in range(len(losses))
    ]
    stopped = np.array([i.status == "stopped_at_hurdle" for i in individuals], dtype=bool)
    order = np.arange(len(losses))
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.scatter(order[~stopped], losses[~stopped], s=8, alpha=0.4, label="full budget")
    axes.scatter(
        order[stopped],
        losses[stopped],
        s=10,
        alpha=0.5,
        marker="x",
        color="C7",
        label="stopped at a hurdle (loss at that hurdle)",
    )
    axes.plot(np.where(np.isinf(best), np.nan, best), label="best so far")
    axes.plot(median, label=f"median of the last {window}")
    screened = order[[i.status == "screened_out" for i in individuals]] if individuals else order
    if screened.size:
        axes.plot(
            screened,
            np.full(screened.size, axes.get_ylim()[0]),
            "|",
            color="C3",
            markersize=12,
            label="screened out by the task screen (not trained)",
        )
    axes.set(xlabel="evaluations (in finishing order)", ylabel="validation loss (nats/token)", title="search progress")
    axes.legend()
    figure.tight_layout()
    return figure


def plot_hurdles(counts: list[tuple[int, int, int]], total: int, path: Target) -> None:
    figure, axes = plt.subplots(figsize=(6, 4))
    labels = ["started"] + [f"hurdle {h}" for h, _, _ in counts]
    survivors = [total] + [passed for _, _, passed in counts]
    axes.bar(labels, survivors)
    for x, (label, value) in enumerate(zip(labels, survivors)):
        axes.text(x, value, f"{value}", ha="center", va="bottom")
    axes.set(ylabel="individuals", title="hurdle survival")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_pareto(individuals: list[IndividualRecord], path: Target) -> None:
    points = [(float(i.parameters), _loss(i)) for i in individuals if i.parameters and not math.isnan(_loss(i))]
    figure, axes = plt.subplots(figsize=(6, 4))
    if points:
        parameters, losses = zip(*points)
        axes.scatter(parameters, losses, s=10, alpha=0.5, label="individual")
        axes.step(*zip(*pareto_front(points)), where="post", color="C3", label="Pareto front")
        axes.legend()
    axes.set(xlabel="parameters", ylabel="validation loss (nats/token)", title="parameters vs loss")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_lineage(lineage: list[IndividualRecord], path: Target) -> None:
    """The best individual's ancestry: loss per generation, and each generation's mutation
    listed in full beside the plot (annotations on the points overlap and get cut)."""
    chain = lineage[::-1]  # seed first
    labels = [f"{x}: {member.mutation or f'seed {member.root_seed}'}" for x, member in enumerate(chain)]
    figure, (axes, text) = plt.subplots(
        1, 2, figsize=(13, 4 + 0.18 * len(chain)), gridspec_kw={"width_ratios": [1, 1.3]}
    )
    axes.plot(range(len(chain)), [_loss(i) for i in chain], marker="o")
    for x, member in enumerate(chain):
        axes.annotate(str(x), (x, _loss(member)), fontsize=8, xytext=(3, 4), textcoords="offset points")
    axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes.set(xlabel="generation", ylabel="validation loss (nats/token)", title=f"lineage of individual {lineage[0].id}")
    text.axis("off")
    wrapped = "\n".join(textwrap.fill(label, 90, subsequent_indent="    ") for label in labels)
    text.text(0, 1, wrapped, va="top", ha="left", fontsize=7, family="monospace", transform=text.transAxes)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_curve(result: dict, hurdles: list, budget_tokens: float | None, path: Target) -> None:
    """One individual's training curve (mean train loss, validation points) on the tokens axis,
    with its hurdle losses and thresholds at their fraction of the budget."""
    curve = result.get("loss_curve", [])
    figure, axes = plt.subplots(figsize=(7, 4))
    train = [(p["tokens"], p["train_loss"]) for p in curve if p.get("train_loss") is not None]
    if train:
        axes.plot(*zip(*train), label="train loss", alpha=0.7)
    validation = [(p["tokens"], p["val_loss"]) for p in curve if p.get("val_loss") is not None]
    if validation:
        axes.plot(*zip(*validation), "o-", label="validation loss")
    if budget_tokens:
        for h in hurdles:
            x = h.fraction * budget_tokens
            if h.loss is not None:
                axes.plot(
                    [x],
                    [h.loss],
                    "s",
                    color="C3" if not h.passed else "C2",
                    markersize=8,
                    label=f"hurdle {h.hurdle} ({'passed' if h.passed else 'stopped'})",
                )
            if h.threshold is not None:
                axes.plot([x], [h.threshold], "_", color="black", markersize=16)
    axes.set(xlabel="tokens", ylabel="loss (nats/token)", title="training curve and hurdles (threshold: black bar)")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_screen(individuals: list[IndividualRecord], screens: dict[int, list[ScreenRecord]], path: Path) -> None:
    """Each screened individual's accuracy per task in finishing order, the screened-out ones
    in red, and the seeds' scores (the bars are those minus the margin) as lines."""
    tasks = list(dict.fromkeys(s.task for scores in screens.values() for s in scores))
    figure, panels = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for axes, task in zip(panels[0], tasks):
        points = [
            (k, i, next(s for s in screens[i.id] if s.task == task))
            for k, i in enumerate(individuals)
            if any(s.task == task for s in screens.get(i.id, []))
        ]
        out = [(k, s.accuracy) for k, i, s in points if i.status == "screened_out"]
        kept = [(k, s.accuracy) for k, i, s in points if i.status != "screened_out"]
        for group, colour, label in ((kept, "C0", "passed"), (out, "C3", "screened out")):
            if group:
                axes.scatter(*zip(*group), s=10, color=colour, alpha=0.6, label=label)
        for k, i, s in points:
            if i.parent_id is None:
                axes.axhline(s.accuracy, color="C2", linewidth=1, label=f"seed {i.root_seed}")
        axes.axhline(points[0][2].chance if points else 0, color="C7", linestyle=":", label="chance")
        axes.set(
            xlabel="evaluations (in finishing order)",
            ylabel="accuracy on held-out instances",
            title=f"task screen: {task}",
            ylim=(-0.02, 1.02),
        )
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_campaign(repo: Repository, campaign_id: int, directory: Path, window: int = 16) -> list[Path]:
    """Write progress.png, hurdles.png, pareto.png, lineage.png and (a campaign with a task
    screen) screen.png; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    individuals = repo.finished_individuals(campaign_id)
    paths = [directory / name for name in ("progress.png", "hurdles.png", "pareto.png", "lineage.png", "screen.png")]
    for path in paths:  # a figure this campaign does not have must not be another campaign's
        path.unlink(missing_ok=True)
    plot_progress(individuals, paths[0], window)
    plot_hurdles(repo.hurdle_pass_counts(campaign_id), len(individuals), paths[1])
    plot_pareto(individuals, paths[2])
    best = repo.top(campaign_id, 1)
    if best:
        plot_lineage(repo.lineage(best[0].id), paths[3])
    if screens := repo.screens(campaign_id):
        plot_screen(individuals, screens, paths[4])
    return [p for p in paths if p.exists()]
