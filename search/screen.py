"""The task screen of a campaign: a child scores the campaign's tasks before any language-model
training, and one that falls below its seed's score minus the margin is not trained.

Why: at the budgets a search can afford, the language-modelling loss rewards deleting
attention; the recall and copying tasks (evaluator.tasks) do not. The seed's scores are the
bar, computed once by the driver when it records the seed; the children's are computed on
the workers. Scores depend only on the program, the task and ``seed``, so every machine
computes the same bar and a functionally equal twin can reuse them.
"""

from __future__ import annotations

from typing import Any

import torch

from evaluator.tasks import TaskRecipe, score_task
from primitives.program import Architecture


def run_screen(
    architecture: Architecture, tasks: list[str], seed: int, steps: int | None = None, threads: int | None = None
) -> list[dict[str, Any]]:
    """The program's score on each task, with the seconds and training FLOPs each took, on
    ``threads`` torch threads (as its training would use; default: unchanged)."""
    before = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        scores = [score_task(architecture, name, seed, recipe=TaskRecipe(steps=steps)) for name in tasks]
    finally:
        torch.set_num_threads(before)
    return [
        {"task": s.task, "accuracy": s.accuracy, "chance": s.chance, "seconds": s.seconds, "flops": s.flops}
        for s in scores
    ]


def bars(seed_scores: list[dict[str, Any]] | list[Any], margin: float) -> dict[str, float]:
    """What a child of this seed must reach on each task: the seed's accuracy minus ``margin``."""
    return {_get(s, "task"): _get(s, "accuracy") - margin for s in seed_scores}


def shortfall(scores: list[dict[str, Any]], bars: dict[str, float]) -> str | None:
    """Why the scores fail the bars (the first task below its bar), or None if they pass."""
    for score in scores:
        bar = bars.get(score["task"])
        if bar is not None and score["accuracy"] < bar:
            return (
                f"screened out: {score['task']} accuracy {score['accuracy']:.3f} < {bar:.3f} "
                f"(the seed's score minus the margin)"
            )
    return None


def _get(score: Any, field: str) -> Any:
    return score[field] if isinstance(score, dict) else getattr(score, field)
