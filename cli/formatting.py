"""How the commands and the dashboard write numbers."""

from __future__ import annotations

import math


def number(value: float | None, digits: int = 4) -> str:
    """``value`` to ``digits`` places; a dash for a missing or non-finite one."""
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"
