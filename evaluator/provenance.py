"""Where a measurement came from: the code that ran it, and the JSON-lines files in which the
experiments keep one record per run (appended as runs finish, so a rerun resumes)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def code_version(where: Path) -> str:
    """The checked-out commit at ``where``, '+dirty' if tracked files were changed; 'unknown'
    outside a git checkout."""
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty=+dirty"], cwd=where, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def read_jsonl(path: Path) -> list[dict]:
    """Every record of a JSON-lines file (none if it does not exist)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def append_jsonl(path: Path, record: dict) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
