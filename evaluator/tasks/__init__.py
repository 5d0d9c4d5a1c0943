"""Synthetic tasks in the manner of MAD: a score for any program, and a screen in campaigns."""

from .suite import DEFAULT_SUITE, TASKS, Task, TaskError, TaskRecipe, TaskScore, get_task, score_task

__all__ = ["DEFAULT_SUITE", "TASKS", "Task", "TaskError", "TaskRecipe", "TaskScore", "get_task", "score_task"]
