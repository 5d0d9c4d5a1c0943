"""Where a measurement came from: the code that ran it, and the JSON-lines files in which the
experiments keep one record per run (appended as runs finish, so a rerun resumes)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType


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


def load_script(name: str, path: Path) -> ModuleType:
    """Another study's script as a module ``name`` (its file name, run.py, would clash with the
    caller's); registered in ``sys.modules`` so that worker processes can unpickle its functions."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
