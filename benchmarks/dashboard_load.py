"""The dashboard under bursts of concurrent requests: its threads and its memory.

Starts ``archevo dashboard`` on a database (a process of its own, as a user runs it), sends
``--bursts`` bursts of ``--requests`` concurrent requests spread over a campaign's pages and
figures, and prints, after each burst, the server's resident memory and the most threads it
held during it. A server that starts a thread per request (werkzeug's threaded mode) held one
per request in flight and grew by hundreds of MB a burst; the dashboard answers on a fixed pool.

    .venv/bin/python benchmarks/dashboard_load.py --db sqlite:///archevo.db --campaign demo
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def start(db: str) -> tuple[subprocess.Popen, str]:
    """The dashboard on a free port, and its address."""
    server = subprocess.Popen(
        [sys.executable, "-c", "from cli.main import run; run()", "dashboard", "--port", "0", "--db", db],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = server.stdout.readline() if server.stdout else ""
    found = re.search(r"http://127\.0\.0\.1:\d+", line)
    if not found:
        server.kill()
        raise SystemExit(f"the dashboard did not start: {line!r}")
    return server, found.group(0)


def burst(base: str, paths: list[str], requests: int, pid: int) -> dict:
    """``requests`` GETs at once over ``paths``: their statuses and the server's peak threads."""
    process, peak, done = psutil.Process(pid), 0, threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.num_threads())
            time.sleep(0.01)

    def get(i: int) -> int:
        try:
            with urllib.request.urlopen(base + paths[i % len(paths)], timeout=120) as response:
                response.read()
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    watcher = threading.Thread(target=watch)
    watcher.start()
    with ThreadPoolExecutor(requests) as pool:
        statuses = list(pool.map(get, range(requests)))
    done.set()
    watcher.join()
    return {"statuses": statuses, "peak_threads": peak, "rss_mb": process.memory_info().rss / 2**20}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--campaign", required=True)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--bursts", type=int, default=3)
    args = parser.parse_args(argv)
    figures = ["progress", "pareto", "hurdles", "lineage"]
    paths = [f"/campaign/{args.campaign}/{f}.png" for f in figures] + [f"/campaign/{args.campaign}", "/"]
    server, base = start(args.db)
    try:
        rss = psutil.Process(server.pid).memory_info().rss / 2**20
        print(f"dashboard at {base}: {rss:.0f} MB before; {args.requests} concurrent requests a burst")
        results = []
        for i in range(args.bursts):
            result = burst(base, paths, args.requests, server.pid)
            ok = sum(status == 200 for status in result["statuses"])
            print(
                f"burst {i + 1}: {ok}/{args.requests} ok, peak {result['peak_threads']} threads, {result['rss_mb']:.0f} MB"
            )
            results.append(result)
        return results
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
