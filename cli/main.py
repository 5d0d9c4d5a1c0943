"""The ``archevo`` command line: one typer app, with each group of commands in its own module."""

from __future__ import annotations

import os
import sys

import typer
from .campaigns import compare, dashboard, export, plot, search, show, status, top
from .config import config
from .confirmation import confirm_command
from .programs import programs
from .tasks import tasks_command
from .training import presets, train

app = typer.Typer(
    help="Evolutionary architecture search over the primitives of a Transformer layer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: rich's renderer costs 0.2 s of start-up
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"archevo {version('archevo')}")
        raise typer.Exit()


@app.callback()
def main(
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Evolutionary architecture search over the primitives of a Transformer layer."""


app.add_typer(programs, name="programs")
app.add_typer(search, name="search")
app.add_typer(config, name="config")
app.command("train")(train)
app.command("presets")(presets)
app.command("confirm")(confirm_command)
app.command("tasks")(tasks_command)
for command in (status, top, show, export, plot, compare, dashboard):
    app.command()(command)


def run() -> None:
    """The console script: a database damaged in a way the opening check missed is one line
    and exit status 2, never a traceback."""
    try:
        app()
    except Exception as error:
        from sqlalchemy.exc import DatabaseError  # loaded already by any command that read a database

        from storage import CorruptRecord
        from storage.engine_setup import ReadOnlyStorage

        if isinstance(error, ReadOnlyStorage):
            # Out at once: closing SQLite's connections would touch the read-only WAL index
            # (SIGBUS); the committed rows need nothing more.
            typer.echo(f"error: {error}", err=True)
            sys.stdout.flush()
            os._exit(2)
        elif isinstance(error, DatabaseError):
            cause = " ".join(str(error.orig).split())[:300]
            if "full" in cause.lower() or "no space" in cause.lower():  # SQLite; PostgreSQL: "No space left"
                typer.echo(
                    f"error: the disk holding the database is full ({cause}): free space, then "
                    "`archevo search resume NAME` continues a campaign where it stopped",
                    err=True,
                )
            else:
                typer.echo(f"error: the database failed: {cause}", err=True)
        elif isinstance(error, CorruptRecord):
            typer.echo(f"error: {error}", err=True)
        else:
            raise
        raise SystemExit(2) from None
