"""Synthetic tasks in the manner of MAD: a score for any program, and a screen in campaigns.

The registry (``registry``) is numpy only; ``score_task`` trains a program (``suite``, torch) and
is imported on first use, so that naming and checking tasks never loads torch.
"""

from typing import Any

from .registry import DEFAULT_SUITE, TASKS, Task, TaskError, TaskRecipe, TaskScore, get_task

__all__ = ["DEFAULT_SUITE", "TASKS", "Task", "TaskError", "TaskRecipe", "TaskScore", "get_task", "score_task"]


def __getattr__(name: str) -> Any:
    if name == "score_task":
        from .suite import score_task

        return score_task
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
