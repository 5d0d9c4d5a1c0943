"""How the commands and the dashboard write numbers, and long commands their log lines."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO


def number(value: float | None, digits: int = 4) -> str:
    """``value`` to ``digits`` places; a dash for a missing or non-finite one."""
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def log(message: str, stream: TextIO | None = None) -> None:
    """One timestamped line, flushed at once: what a long command writes where its output is a
    file (nohup, CI, a cluster job) instead of redrawing a progress bar."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=stream or sys.stderr, flush=True)
