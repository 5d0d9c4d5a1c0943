"""How the commands and the dashboard write numbers, and long commands their log lines."""

from __future__ import annotations

import math
import sys
import time
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TextIO

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from pydantic import ValidationError


def number(value: float | None, digits: int = 4) -> str:
    """``value`` to ``digits`` places; a dash for a missing or non-finite one."""
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def log(message: str, stream: TextIO | None = None) -> None:
    """One timestamped line, flushed at once: what a long command writes where its output is a
    file (nohup, CI, a cluster job) instead of redrawing a progress bar."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=stream or sys.stderr, flush=True)


@dataclass(frozen=True)
class Column:
    """A table column: ``drop`` orders which columns go first when the table is wider than the
    terminal (0: never); a ``text`` column wraps at spaces, every other cell stays on one line."""

    header: str
    drop: int = 0
    text: bool = False
    justify: Literal["left", "right"] = "left"


#: Characters a rich table spends per column (a border and a space each side) and at its edge.
PER_COLUMN, EDGE = 3, 1


def fitted_table(title: str, columns: list[Column], rows: list[list[str]], width: int, wide: bool = False) -> Table:
    """A rich table that fits ``width`` without splitting a number or a word: columns are
    dropped in ``drop`` order (never with ``wide``) until the rest fits, free text wraps at
    spaces; the title names what was dropped."""

    def need(i: int) -> int:
        cells = [columns[i].header, *(row[i] for row in rows)]
        pieces = (
            [word for cell in cells for word in cell.split()]
            if columns[i].text
            else [line for cell in cells for line in cell.splitlines()]
        )
        return max((len(piece) for piece in pieces), default=1)

    kept = list(range(len(columns)))
    for i in sorted(range(len(columns)), key=lambda i: -columns[i].drop):
        if wide or columns[i].drop == 0 or sum(need(j) + PER_COLUMN for j in kept) + EDGE <= width:
            break
        kept.remove(i)
    dropped = [columns[i].header for i in range(len(columns)) if i not in kept]
    table = Table(
        title=title + (f" (without {', '.join(dropped)}: --wide shows them)" if dropped else ""),
        width=None if wide else min(width, sum(_full(columns[i], rows, i) + PER_COLUMN for i in kept) + EDGE),
    )
    for i in kept:
        column = columns[i]
        table.add_column(
            column.header,
            justify=column.justify,
            no_wrap=not column.text,
            min_width=need(i),
            overflow="fold",
        )
    for row in rows:
        table.add_row(*(row[i] for i in kept))
    return table


def _full(column: Column, rows: list[list[str]], i: int) -> int:
    """The column's width with nothing wrapped."""
    return max([len(column.header), *(len(line) for row in rows for line in row[i].splitlines())])


def terminal_width() -> int:
    """Columns of the terminal ($COLUMNS where set, as rich reads it; 80 when not a terminal)."""
    return Console().width


def validation_message(error: ValidationError) -> str:
    """A pydantic error as one line: where, then what (without pydantic's "Value error, ")."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def printable(text: str) -> str:
    """``text`` with its control characters (terminal escape sequences among them) written as
    escapes, line breaks and tabs kept: what a database holds is shown, never obeyed."""
    return "".join(c if c in "\n\t" or unicodedata.category(c)[0] != "C" else repr(c)[1:-1] for c in text)
