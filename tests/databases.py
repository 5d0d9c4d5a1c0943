"""Which database the storage and campaign tests run on.

By default every test database is a SQLite file. With ``ARCHEVO_TEST_POSTGRES`` set to a
server's URL (``.ci/run`` starts one with scripts/postgres.sh) the same tests run on
PostgreSQL: each test path maps to a fresh database of its own on that server.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SERVER = os.environ.get("ARCHEVO_TEST_POSTGRES")
ON_POSTGRES = bool(SERVER)
sqlite_only = pytest.mark.skipif(ON_POSTGRES, reason="inspects the SQLite file itself")


def url_of(path: Path) -> str:
    """The URL of the test database named by ``path``: the SQLite file, or on PostgreSQL a
    database created for it (empty the first time a test asks for it)."""
    if not ON_POSTGRES:
        return f"sqlite:///{path}"
    name = "t_" + hashlib.sha1(str(path).encode()).hexdigest()[:20]
    server = make_url(SERVER)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server.set(database=name).render_as_string(hide_password=False)
