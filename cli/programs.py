"""``archevo programs``: browse, validate and compare architectures (seeds or JSON files)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # each command imports the DSL when it runs: `--help` loads none of it
    from primitives.program import Architecture

programs = typer.Typer(help="The seed library and architecture files.", no_args_is_help=True, rich_markup_mode=None)
out = Console()


def load(reference: str) -> Architecture:
    """Resolve NAME|FILE.json or exit with a one-line error (status 2), never a traceback."""
    from primitives.program import ModelSpec
    from primitives.seeds import resolve
    from primitives.validate import ProgramError

    try:
        return resolve(reference, ModelSpec())
    except (ProgramError, KeyError) as error:
        typer.echo(f"error: {error.args[0] if isinstance(error, KeyError) else error}", err=True)
        raise typer.Exit(2) from None


@programs.command("list")
def list_seeds() -> None:
    """Every seed: name, description, parameters at the default ModelSpec."""
    from primitives.cost import parameter_count
    from primitives.program import ModelSpec
    from primitives.seeds import SEEDS, seed

    spec = ModelSpec()
    table = Table(title=f"seed library (d_model {spec.d_model}, {spec.n_layers} layers, vocab {spec.vocab_size})")
    for column in ("name", "parameters", "description"):
        table.add_column(column, justify="right" if column == "parameters" else "left")
    for name, entry in SEEDS.items():
        table.add_row(name, f"{parameter_count(spec, seed(name, spec)):,}", entry.description)
    out.print(table)


@programs.command("show")
def show(
    reference: str = typer.Argument(..., metavar="NAME|FILE.json"),
    as_json: bool = typer.Option(False, "--json", help="print JSON that `programs validate` accepts"),
) -> None:
    """The program listing, or its JSON."""
    from primitives.cost import parameter_count
    from primitives.graph import architecture_hash
    from primitives.listing import list_architecture
    from primitives.program import ModelSpec

    architecture = load(reference)
    if as_json:
        print(architecture.to_json())
        return
    print(list_architecture(architecture))
    print(f"\nhash {architecture_hash(architecture)[:16]}  parameters {parameter_count(ModelSpec(), architecture):,}")


@programs.command("validate")
def validate(path: str = typer.Argument(..., metavar="FILE.json")) -> None:
    """Check an architecture file: prints ok, or the error in one line (exit status 2)."""
    from primitives.graph import architecture_hash

    architecture = load(path)
    print(f"ok: {architecture.name} ({architecture_hash(architecture)[:16]})")


@programs.command("diff")
def diff(a: str = typer.Argument(..., metavar="A"), b: str = typer.Argument(..., metavar="B")) -> None:
    """What changes from A to B, in words (A and B: seed names or JSON files)."""
    from primitives.listing import diff_architectures

    changes = diff_architectures(load(a), load(b))
    print("\n".join(changes) if changes else "no differences")
