"""Read-only storage: a finished database on it (an archive, a read-only mount) is read by every
reading command (opened immutable: SQLite cannot create its lock files there), and a database
made read-only under a writer stops it with a message instead of a crash."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from storage import Repository
from tests.console import REPO_ROOT, archevo
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


WRITER = """
import subprocess, sys
from storage import Repository
from storage.engine_setup import ReadOnlyStorage
path = sys.argv[1]
repo = Repository("sqlite:///" + path)
repo.create_campaign("before", 0, {"name": "before"})
files = [path, path + "-wal", path + "-shm"]
subprocess.run(["chattr", "+i", *files], check=True)
try:
    repo.create_campaign("during", 0, {"name": "during"})
    print("wrote into an immutable database")
except ReadOnlyStorage as error:
    print("refused:", error)
finally:
    subprocess.run(["chattr", "-i", *files], check=True)
repo.create_campaign("after", 0, {"name": "after"})
print(sorted(c.name for c in repo.list_campaigns()))
"""


def test_a_database_made_read_only_under_a_writer_stops_it_with_a_message(tmp_path):
    """Files made immutable while a campaign holds them: SQLite faulted on its memory-mapped WAL
    index and the process died of SIGBUS; now the write is refused with a message, nothing
    lost, and writing goes on once the files are writable again (in a child process: before,
    it died)."""
    probe = tmp_path / "probe"
    probe.write_text("")
    if subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode:
        pytest.skip("chattr +i is not allowed here (not root, or the file system has no such attribute)")
    subprocess.run(["chattr", "-i", str(probe)], check=True)
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(tmp_path / "w.db")], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert done.returncode == 0, done.stderr[-1500:]
    assert "refused: the database file" in done.stdout and "every result recorded so far is kept" in done.stdout
    assert "['after', 'before']" in done.stdout
