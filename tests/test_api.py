"""The Python API: ``import archevo`` gives the public names, and the example script runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import archevo

ROOT = Path(__file__).resolve().parents[1]


def test_the_public_names_are_importable():
    assert set(archevo.__all__) <= set(dir(archevo))
    assert archevo.seed("primer_ez").name == "primer_ez" and "cpu" in archevo.PRESETS


@pytest.mark.integration
def test_the_quickstart_example_runs(tmp_path):
    ran = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "quickstart.py"),
            "--db",
            f"sqlite:///{tmp_path / 'q.db'}",
            "--out",
            str(tmp_path / "export"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={"ARCHEVO_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"},
    )
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0].startswith("transformer: validation loss") and lines[1].startswith("primer_ez:")
    assert sum(line.startswith("individual ") for line in lines) == 3
    assert any(line.startswith("confirmed ") for line in lines)
    assert (tmp_path / "export" / "model.py").exists()
