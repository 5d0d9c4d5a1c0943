"""The schema's version and migrations: an older database is brought up to date before anything
is written, a newer one is refused unchanged (storage.migrations)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from primitives.seeds import seed
from storage import Repository
from storage.migrations import SCHEMA_VERSION, SchemaError
from tests.configs import SPEC


def _database(path: Path) -> str:
    """A database with one campaign and one individual, written by this version."""
    url = f"sqlite:///{path}"
    repo = Repository(url)
    campaign = repo.create_campaign("old", 0, {"name": "old"})
    repo.add_individual(campaign.id, 0, seed("transformer", SPEC), "hash0", "transformer", "recipe")
    repo.checkpoint()
    repo.engine.dispose()
    return url


def _sql(path: Path, *statements: str) -> None:
    with sqlite3.connect(path) as connection:
        for statement in statements:
            connection.execute(statement)


def _columns(path: Path, table: str) -> set[str]:
    with sqlite3.connect(path) as connection:
        return {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}


def _dump(path: Path) -> str:
    """The database's schema and rows, as SQL."""
    with sqlite3.connect(path) as connection:
        return "\n".join(connection.iterdump())


def _version(path: Path) -> int | None:
    with sqlite3.connect(path) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return (
            connection.execute("SELECT version FROM archevo_schema").fetchone()[0]
            if "archevo_schema" in tables
            else None
        )


def test_a_database_from_before_versions_gets_what_it_lacks_and_keeps_its_rows(tmp_path):
    """Written before the version table, a column and a table: opened for writing, it gets
    them in one go and is stamped; its campaign and individual read back as they were."""
    path = tmp_path / "old.db"
    url = _database(path)
    _sql(
        path,
        "DROP TABLE archevo_schema",
        "DROP TABLE campaign_drivers",
        "ALTER TABLE individuals DROP COLUMN perplexity",
    )
    repo = Repository(url)
    assert _version(path) == SCHEMA_VERSION and "perplexity" in _columns(path, "individuals")
    assert "host" in _columns(path, "campaign_drivers")
    campaign = repo.get_campaign("old")
    assert campaign is not None and repo.count(campaign.id) == 1
    assert repo.population(campaign.id, 10) == [] and repo.get_individual(1).arch_hash == "hash0"


def test_a_newer_database_is_refused_unchanged_by_writers_and_readers(tmp_path):
    path = tmp_path / "new.db"
    url = _database(path)
    _sql(path, f"UPDATE archevo_schema SET version = {SCHEMA_VERSION + 1}")
    before = _dump(path)
    for readonly in (False, True):
        with pytest.raises(SchemaError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
            Repository(url, readonly=readonly)
    result = CliRunner().invoke(app, ["search", "resume", "old", "--max-evals", "50", "--db", url])
    assert result.exit_code == 2 and "newer than this archevo" in result.output, result.output
    assert _dump(path) == before


def test_a_migration_that_cannot_complete_changes_nothing(tmp_path):
    """A required column missing from rows that exist cannot be added: refused, and the
    tables it would have added first are not there either (one transaction)."""
    path = tmp_path / "broken.db"
    url = _database(path)
    _sql(
        path,
        "DROP TABLE archevo_schema",
        "DROP TABLE campaign_drivers",
        "DROP INDEX ix_individuals_arch_hash",
        "ALTER TABLE individuals DROP COLUMN arch_hash",
    )
    with pytest.raises(SchemaError, match="required column arch_hash"):
        Repository(url)
    assert _version(path) is None and "campaign_drivers" not in {
        row[0] for row in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")
    }
