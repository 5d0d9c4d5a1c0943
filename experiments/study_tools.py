"""What the search studies (``rediscovery``, ``search_power``) share: running campaigns side by
side, picking and confirming their best children, sharing the seed's confirmation runs, and
reading and plotting best-so-far against compute."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

from cli.compare import CampaignSummary
from search.config import CampaignConfig
from search.confirm import confirm
from storage import IndividualRecord, Repository

#: What may differ between two campaigns whose seed individuals are the same training run.
SEARCH_ONLY = {
    "name",
    "search_seed",
    "sample",
    "max_evals",
    "population",
    "strategy",
    "ladder_parents",
    "proposal",
    "keep_weights",
    "weights_dir",
}


def run_pool(jobs: int, fn: Callable[..., str], calls: list[tuple]) -> None:
    """``fn(*call)`` for every call, ``jobs`` processes at once (spawned: each its own torch),
    printing what each returns."""
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        for message in pool.map(fn, *zip(*calls)) if calls else []:
            print(message, flush=True)


def top_children(repo: Repository, campaign_id: int, k: int) -> list[IndividualRecord]:
    """The campaign's best ``k`` children (the seed, where it is among the best, is confirmed as
    the reference, not as a winner)."""
    ranked = repo.top(campaign_id, k + len(repo.roots(campaign_id)))
    return [r for r in ranked if r.parent_id is not None][:k]


def confirm_individuals(repo: Repository, name: str, individuals: list[IndividualRecord], seeds: int) -> None:
    """Retrain ``individuals`` of campaign ``name`` at ``seeds`` confirmation seeds and its budget
    (``archevo confirm``'s code: resumable, recorded runs are not repeated)."""
    config = CampaignConfig.from_stored(repo.get_campaign(name).config)
    confirm(
        repo,
        config,
        len(individuals),
        seeds,
        config.budget,
        individuals=individuals,
        on_run=lambda record, done, total: print(f"{name}: confirmation {done}/{total}", flush=True),
    )


def share_seed_runs(repo: Repository, reference: str, campaigns: list[str]) -> None:
    """Give each of ``campaigns`` the ``reference`` campaign's confirmation runs of its seed: the
    same program under the same recipe at the same training seeds is the same run (training is
    deterministic on one machine, and every confirmation run is made on one), so retraining it
    once per campaign would spend runs on copies. A campaign whose seed or recipe differs is
    named and left to be confirmed on its own."""
    source = repo.get_campaign(reference)
    source_root = repo.roots(source.id)[0]
    runs = [r for r in repo.confirmations(source.id) if r.individual_id == source_root.id]

    def recipe(config: dict) -> dict:  # read through the model: stored configs may use old names
        return CampaignConfig.from_stored(config).model_dump(mode="json", exclude=SEARCH_ONLY)

    for name in campaigns:
        campaign = repo.get_campaign(name)
        if campaign is None or campaign.id == source.id:
            continue
        root = repo.roots(campaign.id)[0]
        if root.arch_hash != source_root.arch_hash or recipe(campaign.config) != recipe(source.config):
            print(f"{campaign.name}: its seed is not the reference's run; confirm it on its own", flush=True)
            continue
        recorded = {(r.training_seed, r.budget) for r in repo.confirmations(campaign.id) if r.individual_id == root.id}
        for run in runs:
            if (run.training_seed, run.budget) not in recorded:
                repo.record_confirmation(root.id, run.training_seed, run.budget, run.result)


def best_at(summary: CampaignSummary, compute: float) -> float | None:
    """Best-so-far loss once ``compute`` FLOPs were spent (None before the first result)."""
    below = [loss for spent, loss in summary.curve if spent <= compute]
    return below[-1] if below else None


def plot_best_so_far(arms: dict[str, list[tuple[CampaignSummary, float]]], path: Path, title: str) -> None:
    """Each arm's best-so-far against compute, relative to each campaign's own seed loss (the
    pairs of ``arms``): every campaign thin, and the arm's mean with its range (the band) as far
    as all of its campaigns reach."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    drawn = [pair for pairs in arms.values() for pair in pairs if pair[0].curve]
    if not drawn:
        return
    figure, axes = plt.subplots(figsize=(7, 4))
    grid = np.geomspace(min(s.curve[0][0] for s, _ in drawn), max(s.compute for s, _ in drawn), 300)

    def relative(summary: CampaignSummary, seed_loss: float) -> np.ndarray:
        values = [best_at(summary, x) if x <= summary.compute else None for x in grid]
        return np.array([np.nan if v is None else v - seed_loss for v in values], dtype=float)

    for (arm, pairs), colour in zip(arms.items(), ("tab:blue", "tab:orange", "tab:green")):
        mine = [(s, loss) for s, loss in pairs if s.curve]
        if not mine:
            continue
        ys = np.array([relative(s, loss) for s, loss in mine])
        for row in ys:
            axes.plot(grid, row, color=colour, alpha=0.35, linewidth=0.8)
        common = (grid <= min(s.compute for s, _ in mine)) & ~np.isnan(ys).any(axis=0)
        x, ys = grid[common], ys[:, common]
        axes.plot(x, ys.mean(axis=0), color=colour, linewidth=2, label=f"{arm}: mean of {len(mine)} campaign seeds")
        axes.fill_between(x, ys.min(axis=0), ys.max(axis=0), color=colour, alpha=0.15)
    axes.set(
        xscale="log", xlabel="training FLOPs spent (screen included)", ylabel="best search loss so far − its seed's"
    )
    axes.set_title(title)
    axes.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
