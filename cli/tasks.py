"""``archevo tasks``: score one program on the synthetic task suite (evaluator.tasks)."""

from __future__ import annotations

import functools
import json
import statistics
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table


from .formatting import log
from .training import _fail

err = Console(stderr=True)


def _advance(bar: Progress, task: TaskID, done: int, total: int) -> None:
    bar.update(task, completed=done, total=total)


def parse_settings(assignments: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
    """``[TASK.]KEY=VALUE`` → per-task overrides (no task: every selected task that has KEY)."""
    from evaluator.tasks import TASKS, TaskError

    out: dict[str, dict[str, Any]] = {name: {} for name in names}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or not key.strip():
            raise TaskError(f"--set {assignment!r}: expected [TASK.]KEY=VALUE, e.g. seq_len=64")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        task, _, field = key.strip().rpartition(".")
        targets = [task] if task else [n for n in names if field in type(TASKS[n].settings).model_fields]
        if task and task not in out:
            raise TaskError(f"--set {assignment!r}: task {task!r} is not selected (--tasks {','.join(names)})")
        if not targets:
            raise TaskError(f"--set {assignment!r}: no selected task has a setting {field!r}")
        for target in targets:
            out[target][field] = value
    return out


def tasks_command(
    reference: str = typer.Argument(..., metavar="NAME|FILE.json", help="a seed name or an architecture JSON file"),
    tasks: str | None = typer.Option(None, "--tasks", help="comma-separated task names (default: the whole suite)"),
    seed: int = typer.Option(0, "--seed", min=0, max=2**63 - 1, help="data and initialisation seed"),
    settings: list[str] = typer.Option(
        [],
        "--set",
        metavar="[TASK.]KEY=VALUE",
        help="a harder setting, e.g. seq_len=128 or in_context_recall.vocab_size=64",
    ),
    steps: int | None = typer.Option(None, "--steps", min=1, help="training steps per task (default: the task's)"),
    threads: int = typer.Option(1, "--threads", min=1, max=1024, help="torch CPU threads"),
    as_json: bool = typer.Option(False, "--json", help="print the scores as one JSON object on stdout"),
) -> None:
    """Train a program on each synthetic task and print its accuracy on held-out instances."""
    import torch

    from evaluator.tasks import DEFAULT_SUITE, TaskError, TaskRecipe, get_task
    from evaluator.tasks.suite import score_task  # torch: only when scoring
    from primitives.program import ModelSpec
    from primitives.seeds import resolve
    from primitives.validate import ProgramError

    names = [n.strip() for n in (",".join(DEFAULT_SUITE) if tasks is None else tasks).split(",") if n.strip()]
    recipe = TaskRecipe(steps=steps)
    try:
        if not names:
            raise TaskError("--tasks is empty")
        for name in names:
            get_task(name)
        overrides = parse_settings(settings, names)
        for name in names:
            get_task(name).configure(overrides[name])
        architecture = resolve(
            reference, ModelSpec(d_model=recipe.d_model, n_layers=recipe.n_layers, n_heads=recipe.n_heads)
        )
    except TaskError as error:
        raise _fail(str(error)) from None
    except (ProgramError, KeyError) as error:
        raise _fail(str(error.args[0] if isinstance(error, KeyError) else error)) from None
    torch.set_num_threads(threads)
    scores = []
    columns = (
        TextColumn("{task.description:26s}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=as_json) as bar:
        for name in names:
            task = bar.add_task(name, total=recipe.steps or get_task(name).steps)
            try:
                scores.append(
                    score_task(
                        architecture,
                        name,
                        seed,
                        overrides[name],
                        recipe,
                        progress=functools.partial(_advance, bar, task),
                    )
                )
            except TaskError as error:
                raise _fail(str(error)) from None
            if not err.is_terminal:
                log(
                    f"tasks {architecture.name}: {name} accuracy {scores[-1].accuracy:.3f} in {scores[-1].seconds:.0f} s"
                )
    mean = statistics.mean(s.accuracy for s in scores)
    if as_json:
        print(
            json.dumps(
                {
                    "program": architecture.name,
                    "seed": seed,
                    "mean_accuracy": mean,
                    "scores": [s.model_dump() for s in scores],
                }
            )
        )
        return
    table = Table(title=f"{architecture.name} on the task suite (seed {seed})")
    for column in ("task", "accuracy", "chance", "steps", "seconds", "status"):
        table.add_column(column, justify="left" if column in ("task", "status") else "right")
    for s in scores:
        table.add_row(s.task, f"{s.accuracy:.3f}", f"{s.chance:.3f}", str(s.steps), f"{s.seconds:.1f}", s.status)
    table.add_row("[bold]mean[/bold]", f"[bold]{mean:.3f}[/bold]", "", "", f"{sum(s.seconds for s in scores):.1f}", "")
    Console().print(table)
