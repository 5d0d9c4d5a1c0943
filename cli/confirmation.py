"""``archevo confirm``: retrain a campaign's top k and its seeds at fresh training seeds."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from evaluator.budget import parse_budget


from .campaigns import DB_HELP, MAX_K, campaign_config, console, fail, find_campaign, open_repository, trusted_corpus
from .formatting import Column, fitted_table, log, terminal_width

if TYPE_CHECKING:
    from search.confirm import Confirmed


def _fmt(mean: float | None, std: float | None, digits: int) -> str:
    return "–" if mean is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def confirmed_table(rows: dict[int, Confirmed], title: str) -> Table:
    columns = [
        Column("id", justify="right"),
        Column("seed", drop=2),
        Column("loss (mean ± std)", justify="right"),
        Column("speedup vs seed", justify="right"),
        Column("wins", justify="right"),
        Column("runs", drop=1, text=True),
    ]
    cells = [
        [
            str(c.individual_id),
            c.root_seed,
            _fmt(c.loss_mean, c.loss_std, 4),
            _fmt(c.speedup_mean, c.speedup_std, 2),
            f"{c.wins}/{c.paired}",
            f"{c.runs}" + (f" ({c.failures} failed)" if c.failures else ""),
        ]
        for c in sorted(rows.values(), key=lambda c: (c.loss_mean is None, c.loss_mean or 0.0))
    ]
    return fitted_table(title, columns, cells, terminal_width())


def confirm_command(
    name: str = typer.Argument(..., help="the campaign"),
    k: int = typer.Option(5, "-k", help="how many of the best to retrain (the seeds are always retrained)"),
    seeds: int = typer.Option(3, "--seeds", help="fresh training seeds per program"),
    budget: Optional[str] = typer.Option(None, "--budget", help="per run (default: the campaign's budget)"),
    as_json: bool = typer.Option(False, "--json", help="the summary as a JSON list on stdout"),
    keep_weights: bool = typer.Option(
        False, "--keep-weights", help="keep each run's weights (the campaign's weights_dir, under confirm/)"
    ),
    corpus: Optional[str] = typer.Option(
        None, "--corpus", help="the campaign's corpus, when it is a path (never read from the database unasked)"
    ),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Retrain the top k and the seed programs at fresh training seeds; report loss mean ± std,
    Primer's speedup against the seed (paired by training seed) and wins. Resumable."""
    from search.confirm import confirm, summarize

    if not 1 <= k <= MAX_K:
        raise fail(f"-k {k}: retrain between 1 and {MAX_K:,} individuals")
    if not 1 <= seeds <= 1000:
        raise fail(f"--seeds {seeds}: between 1 and 1,000 training seeds")
    with open_repository(db) as repo:
        campaign = find_campaign(repo, name)
        config = campaign_config(campaign)
        budget = budget or config.budget
        try:
            parse_budget(budget)
        except ValueError as error:
            raise fail(f"--budget: {error}")
        trusted_corpus(config, corpus)
        columns = (
            TextColumn("confirming {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(f"{name} at {budget}", total=None, info="")

            def on_run(record, done: int, total: int) -> None:
                info = (
                    ""
                    if record is None
                    else f"last: {record.individual_id} seed {record.training_seed} {record.status}"
                )
                bar.update(task, total=total, completed=done, info=info)
                if record is not None and not console.is_terminal:
                    loss = f" loss {record.val_loss:.4f}" if record.val_loss is not None else ""
                    log(f"confirm {name}: {done}/{total} {info.removeprefix('last: ')}{loss}")

            confirm(repo, config, k, seeds, budget, on_run=on_run, keep_weights=keep_weights)
        rows = summarize(repo, campaign.id, budget)
    if as_json:
        print(json.dumps([c.as_dict() for c in rows.values()], indent=2))
    else:
        Console().print(confirmed_table(rows, f"confirmation of {name} at {budget}"))
