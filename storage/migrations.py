"""The schema's version, and the migrations that bring an older database to it.

A database records its schema version in a one-row table (``archevo_schema``). Opening one for
writing brings it to ``SCHEMA_VERSION`` in one transaction before anything else is written, so
a command that fails afterwards (a refused resume, say) finds a database that is either as it
was or fully migrated, never half. A database of a newer version is refused unchanged, by
writers and readers alike: this version of archevo cannot know what it means.

``MIGRATIONS[n]`` takes a database from version n to n + 1. Version 0 is every database written
before versions were recorded: it gets the tables and the nullable columns it predates.
"""

from __future__ import annotations

from typing import Callable

from sqlalchemy import Column, Connection, Engine, Integer, Table, inspect, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateColumn

from .schema import METADATA

SCHEMA_VERSION = 1

VERSION = Table("archevo_schema", METADATA, Column("version", Integer, nullable=False))


class SchemaError(RuntimeError):
    """A database this version cannot use (newer, or older with no way to migrate it); unchanged."""


def stored_version(connection: Connection) -> int | None:
    """The database's schema version: None for an empty database, 0 for one that predates versions."""
    names = set(inspect(connection).get_table_names())
    if VERSION.name not in names:
        return 0 if names & {t.name for t in METADATA.sorted_tables} else None
    return connection.execute(select(VERSION.c.version)).scalar_one_or_none() or 0


def _adopt_unversioned(connection: Connection) -> None:
    """0 → 1: add the tables and the nullable columns an unversioned database lacks."""
    inspector = inspect(connection)
    names = set(inspector.get_table_names())
    for table in METADATA.sorted_tables:
        if table.name not in names:
            table.create(connection)
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:
                raise SchemaError(
                    f"table {table.name} lacks the required column {column.name}, which cannot be added to the "
                    "rows it has; nothing was changed"
                )
            ddl = CreateColumn(column).compile(dialect=connection.dialect)
            connection.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {ddl}")


MIGRATIONS: dict[int, Callable[[Connection], None]] = {0: _adopt_unversioned}


def migrate(engine: Engine) -> int:
    """Create an empty database's tables, or bring an older one to ``SCHEMA_VERSION``, in one
    transaction; refuse a newer one unchanged. Returns the version it was at."""
    with engine.begin() as connection:
        found = stored_version(connection)
        if found is None:
            METADATA.create_all(connection)
        elif found > SCHEMA_VERSION:
            raise SchemaError(_newer(found))
        else:
            for version in range(found, SCHEMA_VERSION):
                MIGRATIONS[version](connection)
        if found is None or found == 0:
            connection.execute(insert(VERSION).values(version=SCHEMA_VERSION))
        elif found < SCHEMA_VERSION:
            connection.execute(update(VERSION).values(version=SCHEMA_VERSION))
    return found or 0


def check_readable(engine: Engine) -> None:
    """Refuse, for reading, a database written by a newer schema (one query: no reflection on
    the start-up path of the reading commands)."""
    try:
        with engine.connect() as connection:
            found = connection.execute(select(VERSION.c.version)).scalar_one_or_none()
    except DBAPIError:  # no version table: empty, or older than versions
        return
    if found is not None and found > SCHEMA_VERSION:
        raise SchemaError(_newer(found))


def _newer(found: int) -> str:
    return (
        f"the database has schema version {found}, newer than this archevo's {SCHEMA_VERSION}: "
        "upgrade archevo to use it (nothing was changed)"
    )
