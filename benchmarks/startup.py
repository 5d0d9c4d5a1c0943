"""CLI start-up: CPU seconds (user + sys of the child process) of ``archevo --help``,
``--version`` and ``status`` on an empty database, for this working tree and a git revision
side by side in one run (the same interpreter and machine; the median of ``--repeat`` runs).

The revision is checked out into a temporary worktree and its packages put first on
``sys.path``; the working tree runs the same way, so both pay the same start-up.

    .venv/bin/python benchmarks/startup.py --against HEAD~1
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {"--help": ["--help"], "--version": ["--version"], "status (empty)": ["status", "--db", "{db}"]}
RUN = "import sys; sys.path.insert(0, sys.argv[1]); sys.argv = ['archevo', *sys.argv[2:]]; from cli.main import run; run()"


def cpu_seconds(tree: Path, args: list[str]) -> float:
    """User + sys CPU seconds of one ``archevo ARGS`` run from ``tree``'s packages."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", RUN, str(tree), *args], cwd=tree, capture_output=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", default="HEAD", help="the git revision to compare with (default HEAD)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        old = Path(scratch) / "old"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(old), args.against], cwd=ROOT, check=True, capture_output=True
        )
        try:
            db = f"sqlite:///{Path(scratch) / 'empty.db'}"
            subprocess.run([sys.executable, "-c", RUN, str(ROOT), "status", "--db", db], cwd=ROOT, capture_output=True)
            sys.path.insert(0, str(ROOT))
            from storage import Repository

            Repository(db).close()  # an empty archevo database
            print(f"CPU seconds, median of {args.repeat} (this machine: {os.cpu_count()} cores)")
            print(f"{'command':<16}{args.against:>12}{'this tree':>12}{'ratio':>8}")
            for name, command in COMMANDS.items():
                command = [part.format(db=db) for part in command]
                before = statistics.median(cpu_seconds(old, command) for _ in range(args.repeat))
                now = statistics.median(cpu_seconds(ROOT, command) for _ in range(args.repeat))
                print(f"{name:<16}{before:>12.2f}{now:>12.2f}{now / before:>7.2f}×")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
