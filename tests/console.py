"""The console script in a process of its own, as a user runs it (``cli.main.run``: its
one-line errors and exit statuses included)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def archevo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from cli.main import run; run()", *args], capture_output=True, text=True, cwd=REPO_ROOT
    )
