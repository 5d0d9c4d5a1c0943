"""Confirmation: retrain a campaign's best programs and its seeds at fresh training seeds.

A search's best loss is one draw, selected from many: it is biased low. A discovery is what
survives retraining at training seeds the search never used, compared with the seed program
trained at the same seeds. Each run is recorded (``Repository.record_confirmation``) as it
finishes, so an interrupted confirmation resumes where it stopped; a failed run is a
recorded failure. Runs go through the campaign's backend (Ray: in parallel).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from evaluator.budget import parse_budget
from evaluator.speedup import speedup, validation_curve
from storage import ConfirmationRecord, IndividualRecord, NotFound, Repository

from .backends import Backend
from .config import CampaignConfig

#: Confirmation seeds start here, past any training seed a campaign uses, so they are fresh.
SEED_OFFSET = 1000
#: Validation evaluations per confirmation run: the curve Primer's speedup is read from.
EVAL_POINTS = 10


def training_seeds(config: CampaignConfig, count: int) -> list[int]:
    return [config.train.seed + SEED_OFFSET + i for i in range(count)]


def candidates(repo: Repository, campaign_id: int, k: int) -> list[IndividualRecord]:
    """The campaign's top k and its seed individuals (each once, the seeds last)."""
    chosen = {r.id: r for r in repo.top(campaign_id, k)}
    for root in repo.roots(campaign_id):
        chosen.setdefault(root.id, root)
    return list(chosen.values())


def confirm(
    repo: Repository,
    config: CampaignConfig,
    k: int,
    seeds: int,
    budget: str,
    backend: Backend | None = None,
    on_run: Callable[[ConfirmationRecord | None, int, int], None] = lambda *a: None,
    job: Callable | None = None,
    individuals: list[IndividualRecord] | None = None,
    keep_weights: bool = False,
) -> dict[int, Confirmed]:
    """Run every (candidate, training seed) at ``budget`` not yet recorded. ``on_run(record,
    done, total)`` is called once before the first run (record None) and after each. The
    candidates are the top ``k`` and the seeds, or the campaign's ``individuals`` given. With
    ``keep_weights`` each run's weights stay in the campaign's weights folder, under
    ``confirm/ID-seedS.safetensors``. ``job``: the worker's function (default ``run_job``).
    Returns the campaign's confirmation summary at ``budget`` (``summarize``)."""
    from .campaign import as_result, make_backend  # torch: only when retraining (summaries stay light)
    from .worker import EvalJob, land_weights, run_job

    campaign = repo.get_campaign(config.name)
    if campaign is None:
        raise NotFound(f"no campaign named {config.name!r}")
    parse_budget(budget)
    recorded = {(r.individual_id, r.training_seed) for r in repo.confirmations(campaign.id) if r.budget == budget}
    chosen = candidates(repo, campaign.id, k) if individuals is None else individuals
    todo = [
        (individual, s)
        for s in training_seeds(config, seeds)
        for individual in chosen
        if (individual.id, s) not in recorded
    ]
    train = config.train.model_copy(
        update={"hurdle_fractions": [], "eval_points": max(config.train.eval_points, EVAL_POINTS)}
    )
    frame = EvalJob(
        architecture_json="",
        spec=config.spec,
        budget=budget,
        train=train,
        corpus=config.corpus,
        vocab_size=config.vocab_size,
        max_train_tokens=config.max_train_tokens,
        return_weights=keep_weights and config.ray_address is not None,
    ).model_dump(mode="json")
    kept = Path(config.weights_dir).resolve() / config.name / "confirm"
    backend = backend or make_backend(config.model_copy(update={"budget": budget}), job or run_job)
    total, done = len(todo), 0
    on_run(None, done, total)
    try:
        while todo or backend.in_flight():
            while todo and backend.in_flight() < backend.capacity:
                individual, s = todo.pop(0)
                backend.submit(
                    (individual.id, s),
                    {
                        **frame,
                        "architecture_json": individual.architecture_json,
                        "train": {**frame["train"], "seed": s},
                        "weights_path": str(kept / f"{individual.id}-seed{s}.safetensors") if keep_weights else None,
                    },
                )
            for key, result in backend.wait(timeout=1.0):
                individual_id, s = cast(tuple[int, int], key)
                done += 1
                on_run(repo.record_confirmation(individual_id, s, budget, land_weights(as_result(result))), done, total)
    finally:
        backend.shutdown()
    return summarize(repo, campaign.id, budget)


@dataclass(frozen=True)
class Confirmed:
    """One individual's confirmation at one budget: losses over training seeds, and Primer's
    speedup against its seed program, each training seed paired with the seed's own run."""

    individual_id: int
    root_seed: str
    budget: str
    runs: int
    failures: int
    loss_mean: float | None
    loss_std: float | None
    speedup_mean: float | None
    speedup_std: float | None
    wins: int  # training seeds on which it ended below the seed program
    paired: int  # training seeds with a finished run of both

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(repo: Repository, campaign_id: int, budget: str | None = None) -> dict[int, Confirmed]:
    """Every confirmed individual of the campaign at ``budget`` (default: the budget of the most
    recent run), keyed by individual id."""
    runs = repo.confirmations(campaign_id)
    if not runs:
        return {}
    budget = budget or max(runs, key=lambda r: r.id).budget
    runs = [r for r in runs if r.budget == budget]
    axis = parse_budget(budget).kind
    roots = {r.root_seed: r.id for r in repo.roots(campaign_id)}
    by_individual: dict[int, dict[int, ConfirmationRecord]] = {}
    for r in runs:
        by_individual.setdefault(r.individual_id, {})[r.training_seed] = r
    campaign = repo.get_campaign(campaign_id)
    if campaign is None:
        raise NotFound(f"no campaign with id {campaign_id}")
    vocab = CampaignConfig.from_stored(campaign.config).vocab_size
    out = {}
    for individual_id, mine in by_individual.items():
        individual = repo.get_individual(individual_id)
        if individual is None:
            raise NotFound(f"no individual with id {individual_id}")
        baseline = by_individual.get(roots.get(individual.root_seed, -1), {})
        finished = {s: (r, r.val_loss) for s, r in mine.items() if r.val_loss is not None}
        ups: list[float] = []
        wins, paired = 0, 0
        for s, (r, loss) in finished.items():
            base = baseline.get(s)
            if base is None or base.val_loss is None:
                continue
            paired += 1
            wins += loss < base.val_loss
            value = speedup(
                validation_curve(base.result.get("loss_curve", []), axis),
                validation_curve(r.result.get("loss_curve", []), axis),
                math.log(vocab),
            )
            if math.isfinite(value):
                ups.append(value)
        loss_mean, loss_std = _mean_std([loss for _, loss in finished.values()])
        up_mean, up_std = _mean_std(ups)
        out[individual_id] = Confirmed(
            individual_id,
            individual.root_seed,
            budget,
            len(mine),
            len(mine) - len(finished),
            loss_mean,
            loss_std,
            up_mean,
            up_std,
            wins,
            paired,
        )
    return out
