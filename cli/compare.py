"""Several campaigns side by side: best-so-far against the compute each has spent.

Compute is what the campaign paid for, in training FLOPs: every trained individual's
language-model FLOPs (a hurdle-stopped one's up to its hurdle) plus its task-screen FLOPs,
accumulated in finishing order. Two campaigns compare fairly on this axis whatever their
budgets, hurdles or screens.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from storage import CampaignRecord, Repository

from search.confirm import Confirmed, summarize


@dataclass(frozen=True)
class CampaignSummary:
    name: str
    individuals: int
    trained: int
    best: float | None
    median: float | None
    compute: float  # training FLOPs, screen included
    curve: list[tuple[float, float]]  # (compute so far, best loss so far), one point per improvement
    confirmed: Confirmed | None  # the confirmed individual with the best mean loss


def summarize_campaign(repo: Repository, campaign: CampaignRecord) -> CampaignSummary:
    individuals = repo.finished_individuals(campaign.id)
    screens = repo.screens(campaign.id)
    spent, best, curve = 0.0, math.inf, []
    losses = []
    for individual in individuals:
        spent += (individual.flops or 0.0) + sum(s.flops for s in screens.get(individual.id, []))
        loss = individual.fitness
        if loss is not None and math.isfinite(loss):
            losses.append(loss)
            if loss < best:
                best = loss
                curve.append((spent, best))
    confirmed = [c for c in summarize(repo, campaign.id).values() if c.loss_mean is not None]
    return CampaignSummary(
        name=campaign.name,
        individuals=len(individuals),
        trained=sum(bool(i.flops) for i in individuals),
        best=min(losses) if losses else None,
        median=statistics.median(losses) if losses else None,
        compute=spent,
        curve=curve + ([(spent, best)] if curve else []),
        confirmed=min(confirmed, key=lambda c: math.inf if c.loss_mean is None else c.loss_mean) if confirmed else None,
    )


def plot_comparison(summaries: list[CampaignSummary], path) -> None:
    """Best-so-far against compute, one step line per campaign."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    for summary in summaries:
        if summary.curve:
            x, y = zip(*summary.curve)
            axes.step(x, y, where="post", label=f"{summary.name} (best {summary.best:.4f})")
    axes.set(
        xscale="log",
        xlabel="training FLOPs spent (screen included)",
        ylabel="best validation loss so far",
        title="campaigns compared at equal compute",
    )
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
