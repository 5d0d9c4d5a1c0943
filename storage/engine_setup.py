"""The SQLAlchemy engine for a URL: SQLite in WAL mode with a busy timeout and write transactions
that take the lock up front (see ``repository``'s design rules); other databases as they come."""

from __future__ import annotations

import os
import weakref
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

BUSY_TIMEOUT_MS = 30_000


class ReadOnlyStorage(RuntimeError):
    """The database's files stopped being writable while a writer had them open."""


def sqlite_files(url: str) -> list[str]:
    """The files of a SQLite database at ``url`` (the database, its WAL and WAL index); none for
    an in-memory or non-SQLite one."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or parsed.query.get("mode") == "memory":
        return []
    path = str(Path(database.removeprefix("file:")).resolve())
    return [path, f"{path}-wal", f"{path}-shm"]


def check_writable(files: list[str]) -> None:
    """Refuse a write once the database's files cannot be written (made read-only or immutable
    while in use): SQLite would fault on its memory-mapped WAL index (SIGBUS) and kill the
    process; this says so before a connection is touched, every committed row intact."""
    for name in files:
        if not os.access(name, os.W_OK) and os.path.exists(name):
            raise ReadOnlyStorage(
                f"the database file {name} can no longer be written (made read-only while in use): every result "
                "recorded so far is kept; make it writable again and `archevo search resume NAME` continues"
            )


def sqlite_listeners(engine: Engine, *, memory: bool, readonly: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # We emit BEGIN ourselves (below): pysqlite's implicit transactions would start
        # writes lazily as DEFERRED transactions and skip the busy handler on upgrade.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if not memory and not readonly:
            cursor.execute("PRAGMA journal_mode=WAL")  # persistent in the file
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        if readonly:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        # Writes take the write lock up front (waiting up to busy_timeout for it). Reads are
        # single statements, each its own consistent snapshot in autocommit mode: no BEGIN.
        # (The DBAPI connection directly: a BEGIN through SQLAlchemy costs a whole execute.)
        if connection.get_execution_options().get("archevo_write"):
            connection.connection.driver_connection.execute("BEGIN IMMEDIATE")


def make_engine(url: str, readonly: bool) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    database = parsed.database or ""
    memory = database in ("", ":memory:") or parsed.query.get("mode") == "memory"
    if memory:
        engine = create_engine(parsed, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        if not parsed.query.get("uri"):
            path = Path(database)
            if readonly and not path.exists():
                raise FileNotFoundError(f"no archevo database at {path.resolve()}")
            if not readonly:
                path.parent.mkdir(parents=True, exist_ok=True)
            elif not os.access(path.resolve().parent, os.W_OK):
                # read-only storage (a mount, a finished study's archive): SQLite cannot make its
                # lock files beside the file, so it is opened immutable, as a file nobody writes
                parsed = make_url(f"sqlite:///file:{path.resolve()}?mode=ro&immutable=1&uri=true")
        engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    sqlite_listeners(engine, memory=memory, readonly=readonly)
    return engine


def dispose_after_fork(engine_ref: weakref.ref) -> None:
    engine = engine_ref()
    if engine is not None:  # a forked child must not reuse the parent's connections
        engine.dispose(close=False)
