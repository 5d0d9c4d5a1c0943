"""A finished database on read-only storage (an archive, a read-only mount) is read by every
reading command: SQLite cannot create its lock files there, so it is opened immutable."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from storage import Repository
from tests.console import archevo
from tests.databases import url_of


@pytest.fixture
def read_only_mount(tmp_path):
    """A small tmpfs holding a finished campaign's database, remounted read-only (needs root
    and mount; skipped, saying so, where the machine has neither)."""
    source = tmp_path / "source.db"
    repo = Repository(url_of(source))
    campaign = repo.create_campaign("archived", 0, {"name": "archived"})
    repo.set_campaign_status("archived", "finished")
    repo.checkpoint()
    repo.engine.dispose()
    assert campaign.id == 1
    mount = Path(f"/tmp/archevo-ro-{uuid.uuid4().hex[:8]}")
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True).returncode:
        mount.rmdir()
        pytest.skip("cannot mount a tmpfs here (not root, or no mount): read-only storage untested")
    try:
        shutil.copyfile(source, mount / "archive.db")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        yield mount / "archive.db"
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()


def test_a_database_on_read_only_storage_is_read(read_only_mount):
    for command in (["status"], ["top", "archived"]):
        result = archevo(*command, "--db", url_of(read_only_mount))
        assert result.returncode == 0, result.stderr
        assert "unable to open" not in result.stderr
    assert "archived" in archevo("status", "--db", url_of(read_only_mount)).stdout
