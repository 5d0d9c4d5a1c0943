"""One driver per campaign, and a crashed driver told apart from a live one.

The driver records itself (host, pid) when it starts and refreshes a heartbeat while it runs
(``Repository.claim_driver``, ``heartbeat``). A second driver is refused while the first is
alive. On the same host the operating system says whether the recorded process still runs,
so a resume after a crash or a kill takes over at once; a driver on another host counts as
gone once its heartbeat is ``STALE_S`` old, and is taken over only with ``--force``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import datetime, timezone

from storage import DriverRecord

HEARTBEAT_S = 10.0
STALE_S = 60.0


def this_driver() -> tuple[str, int]:
    return socket.gethostname(), os.getpid()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process: alive
        return True
    return True


def heartbeat_age(holder: DriverRecord) -> float:
    return (datetime.now(timezone.utc) - holder.heartbeat_at).total_seconds()


def alive(holder: DriverRecord) -> bool:
    """Is the recorded driver still running? Asked of the OS on this host, else judged by
    its heartbeat."""
    if holder.host == socket.gethostname():
        return _pid_alive(holder.pid)
    return heartbeat_age(holder) < STALE_S


def refusal(name: str, force: bool) -> Callable[[DriverRecord], str | None]:
    """The claim policy: why ``name`` may not be taken from its holder, or None to take it."""

    def refuse(holder: DriverRecord) -> str | None:
        if force or (holder.host == socket.gethostname() and not _pid_alive(holder.pid)):
            return None
        age = heartbeat_age(holder)
        if alive(holder):
            return (
                f"campaign {name} is being driven by pid {holder.pid} on {holder.host} (heartbeat {age:.0f} s "
                "ago): wait for it to finish or stop it first"
            )
        return (
            f"campaign {name} was driven by pid {holder.pid} on {holder.host}, silent for {age:.0f} s: if that "
            f"driver is gone, `archevo search resume {name} --force` takes over"
        )

    return refuse
