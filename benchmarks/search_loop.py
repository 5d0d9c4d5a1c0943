"""The search loop alone: how many individuals per second the driver proposes, validates,
gates (compile, causality, fingerprint), records and selects from, and whether its memory
stays flat as the campaign grows.

The evaluator is an instant fake (tests/fakes.sized_job: a loss from a hash of the program plus
a penalty for drifting from a Transformer's size, so programs stay as large as in a real search;
hurdle losses consistent with the thresholds), the backend is in-process, the database a SQLite
file (WAL) in a temporary directory, torch runs on one thread. Population P = 100, tournament
S = 10, as in Primer. Times are the driver process's CPU seconds (one core: torch runs on one
thread), so other work on a shared machine does not count; ``--wall`` times the wall clock.
Every driver call is timed *exclusively* (time in a nested timed call is
charged to the inner one), so the sections add up to the loop's wall time.

    .venv/bin/python benchmarks/search_loop.py                   # 20,000 individuals
    .venv/bin/python benchmarks/search_loop.py --quick           # 2,000
    .venv/bin/python benchmarks/search_loop.py --individuals 3000 --profile   # + cProfile top functions
    .venv/bin/python benchmarks/search_loop.py --trace-window 0  # no tracemalloc at all
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import io
import json
import os
import pstats
import sys
import sysconfig
import tempfile
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

import psutil
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import evaluator.gate as gate_module
import search.ledger as ledger_module
import search.proposer as proposer_module
import search.evolution as evolution_module
from primitives.program import ModelSpec
from search.backends import InProcessBackend
from search.caches import clear_caches
from search.campaign import build_campaign
from search.config import CampaignConfig
from storage import Repository
from tests import fakes

# --------------------------------------------------------------------------- exclusive timers

#: The driver's own CPU time by default (torch on one thread, so one core's seconds): on a shared
#: machine, time spent waiting for a core is not the loop's cost. ``--wall`` uses wall time.
clock = time.process_time


class Timers:
    """Exclusive wall time and call count per section; nested sections are subtracted from
    the enclosing one, so the sections partition the time spent inside any of them."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list] = []  # [name, start, time charged to children]

    def wrap(self, name: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            frame = [name, clock(), 0.0]
            self._stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                self._stack.pop()
                elapsed = clock() - frame[1]
                self.seconds[name] += elapsed - frame[2]
                self.calls[name] += 1
                if self._stack:
                    self._stack[-1][2] += elapsed

        return timed

    def snapshot(self) -> tuple[dict[str, float], dict[str, int]]:
        return dict(self.seconds), dict(self.calls)


#: section -> (group, where the callable lives, attribute)
SECTIONS = {
    "mutate + validate": ("propose", evolution_module, "mutate"),
    "parse parent program": ("propose", ledger_module.Parent, "architecture"),
    "gate: parameter count": ("gate", gate_module, "parameter_count"),
    "gate: compile a new program": ("gate", gate_module, "ProbeProgram"),
    "gate: probe (causality + fingerprint)": ("gate", gate_module, "probe"),
    "gate: other": ("gate", proposer_module, "gate"),
    "architecture hash (driver)": ("propose", proposer_module, "architecture_hash"),
    "evaluator (fake)": ("evaluate", None, None),
}
WRITES = ("add_individual", "set_fingerprint", "mark_running", "record_result", "record_hurdle")
QUERIES = (
    "population",
    "hurdle_losses",
    "find_by_hash",
    "find_by_fingerprint",
    "next_birth",
    "unfinished",
    "get_individual",
    "get_campaign",
)


def instrument(timers: Timers) -> None:
    """Wrap every section that exists (the gate's helpers differ between versions)."""
    for name, (_, owner, attribute) in SECTIONS.items():
        if owner is not None and hasattr(owner, attribute):
            setattr(owner, attribute, timers.wrap(name, getattr(owner, attribute)))
    for kind, methods in (("write", WRITES), ("query", QUERIES)):
        for method in methods:
            if hasattr(Repository, method):
                setattr(Repository, method, timers.wrap(f"{kind}: {method}", getattr(Repository, method)))


def group_of(section: str) -> str:
    if section.startswith("write:"):
        return "storage writes"
    if section.startswith("query:"):
        return "population/threshold/dedup queries"
    return {
        "propose": "mutate + validate + hash",
        "gate": "gate (compile/causality/fingerprint)",
        "evaluate": "evaluator (fake)",
    }[SECTIONS[section][0]]


# --------------------------------------------------------------------------- the run


def mib(n: float) -> str:
    return f"{n / 2**20:7.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--individuals", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="2,000 individuals")
    parser.add_argument("--hurdles", type=int, default=2)
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="campaign seed (the fake fitness is random: "
        "each seed drifts to other programs, so compare rates over several)",
    )
    parser.add_argument("--seeds", default="transformer", help="comma-separated seed programs")
    parser.add_argument("--db", help="SQLAlchemy URL (default: a SQLite file in a temporary directory)")
    parser.add_argument("--profile", action="store_true", help="also run under cProfile and print the top functions")
    parser.add_argument(
        "--trace-window",
        type=int,
        default=100,
        help="trace allocations (tracemalloc, ~4x slower) over this many individuals before each checkpoint; 0: never",
    )
    parser.add_argument("--json", type=Path, help="write the numbers here")
    parser.add_argument(
        "--wall", action="store_true", help="time with the wall clock instead of the process's CPU time"
    )
    args = parser.parse_args()
    if args.wall:
        global clock
        clock = time.perf_counter
    total = 2_000 if args.quick else args.individuals

    torch.set_num_threads(1)
    workdir = Path(tempfile.mkdtemp(prefix="archevo-bench-"))
    os.environ.setdefault("ARCHEVO_CACHE_DIR", str(workdir / "cache"))
    url = args.db or f"sqlite:///{workdir / 'search.db'}"
    config = CampaignConfig(
        name="bench",
        seed=args.seed,
        seed_programs=args.seeds.split(","),
        population=100,
        sample=10,
        max_evals=total,
        strategy="aging",
        hurdles=args.hurdles,
        hurdle_min_samples=5,
        backend="inprocess",
        corpus=f"text:{sysconfig.get_paths()['stdlib']}/json/*.py",
        vocab_size=300,
        max_train_tokens=None,
        budget="12s",
        spec=ModelSpec(),
    )

    timers = Timers()
    instrument(timers)
    evaluator = timers.wrap("evaluator (fake)", fakes.sized_job)
    repo = Repository(url)
    process = psutil.Process()
    checkpoints = [c for c in (1_000, 5_000, 20_000) if c < total] + [total]
    window = min(args.trace_window, min(checkpoints) - 1)
    traced_from = {c - window: c for c in checkpoints} if window > 0 else {}
    rows: list[dict] = []
    untraced: dict[str, float] = defaultdict(float)  # section seconds outside the traced windows
    state = {
        "done": 0,
        "t": None,
        "from": 1,
        "snapshot": timers.snapshot(),
        "start": None,
        "traced_s": 0.0,
        "traced_n": 0,
        "trace_t": 0.0,
    }

    def close_timing_window() -> None:
        """Rate and breakdown over the untraced individuals since the last checkpoint."""
        now = clock()
        seconds, _ = timers.snapshot()
        old, _ = state["snapshot"]
        count = max(state["done"] - state["from"], 1)
        for k, v in seconds.items():
            untraced[k] += v - old.get(k, 0.0)
        rows.append(
            {
                "individuals": state["done"],
                "rate": count / (now - state["t"]),
                "ms_per_individual": {k: (v - old.get(k, 0.0)) / count * 1e3 for k, v in seconds.items()},
            }
        )

    def on_event(event: dict) -> None:
        if event["kind"] != "recorded":
            return
        state["done"] += 1
        done = state["done"]
        if state["start"] is None:  # the clock starts at the first record (tokenizing excluded)
            state["start"] = state["t"] = clock()
        if done in traced_from:  # trace the last `window` individuals before the checkpoint
            close_timing_window()
            gc.collect()
            tracemalloc.start()
            state["trace_t"] = clock()
        if done not in checkpoints:
            return
        row = rows[-1] if traced_from else None
        if not traced_from:
            close_timing_window()
            row = rows[-1]
        row["individuals"] = done
        if tracemalloc.is_tracing():
            gc.collect()
            snapshot = tracemalloc.take_snapshot()
            row["retained_in_window"], row["peak_in_window"] = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            state["traced_s"] += clock() - state["trace_t"]
            state["traced_n"] += window
            row["retained_by"] = [(str(stat.traceback[0]), stat.size) for stat in snapshot.statistics("lineno")[:3]]
        gc.collect()
        row.update(rss=process.memory_info().rss, blocks=sys.getallocatedblocks(), objects=len(gc.get_objects()))
        clear_caches()  # each is bounded by a count of recent programs: what is left grows with the campaign
        gc.collect()
        row["blocks_without_caches"] = sys.getallocatedblocks()
        print(
            f"  {done:>6} individuals  {row['rate']:6.1f}/s   RSS {mib(row['rss'])}   python blocks "
            f"{row['blocks']:,} ({row['blocks_without_caches']:,} without the bounded caches)   gc objects {row['objects']:,}"
            + (
                f"   retained over the last {window} (traced): {row['retained_in_window'] / 1024:.0f} KiB"
                if "retained_in_window" in row
                else ""
            ),
            flush=True,
        )
        state["from"], state["t"], state["snapshot"] = done, clock(), timers.snapshot()

    collecting = {"since": 0.0, "seconds": 0.0, "collections": 0}

    def on_gc(phase: str, info: dict) -> None:  # automatic collections, charged to whatever allocated
        if phase == "start":
            collecting["since"] = clock()
        else:
            collecting["seconds"] += clock() - collecting["since"]
            collecting["collections"] += 1

    gc.callbacks.append(on_gc)
    campaign = build_campaign(config, repo, backend=InProcessBackend(evaluator), on_event=on_event)
    print(
        f"search loop: {total:,} individuals, P=100 S=10, {args.hurdles} hurdles, seeds {args.seeds}, "
        f"in-process fake evaluator, {url}, torch threads {torch.get_num_threads()}",
        flush=True,
    )
    print(
        f"  RSS before the loop {mib(process.memory_info().rss)}; tracemalloc runs only over the "
        f"{window} individuals before each checkpoint (rates exclude those)"
    )
    profiler = cProfile.Profile() if args.profile else None
    wall = clock()
    if profiler:
        profiler.enable()
    campaign.run()
    if profiler:
        profiler.disable()
    wall = clock() - wall
    loop_seconds = clock() - state["start"] - state["traced_s"]
    measured = total - 1 - state["traced_n"]

    # ------------------------------------------------------------------ report
    _, calls = timers.snapshot()
    rate = measured / loop_seconds
    print(
        f"\n{total:,} individuals: {rate:.1f} individuals per {'wall' if args.wall else 'CPU'} second over the {measured:,} untraced ones "
        f"({loop_seconds:.1f} s; whole run incl. tokenizing and traced windows {wall:.1f} s)"
    )
    counts = repo.status_counts(campaign.campaign.id)
    sizes = [
        sum(len(sub.body) for program in individual.architecture().programs().values() for sub in program.subprograms)
        for individual in repo.finished_individuals(campaign.campaign.id)
    ]
    print(
        f"programs drifted to {sum(sizes) / len(sizes):.1f} instructions on average "
        f"(last 1,000: {sum(sizes[-1000:]) / len(sizes[-1000:]):.1f}; seed {sizes[0]})"
    )
    stats = campaign.proposer.stats
    print(
        f"statuses {counts}; mutations tried {sum(stats.tried.values())}, invalid {sum(stats.invalid.values())} "
        f"(of which gate rejections {sum(campaign.proposer.rejections.values())}: {campaign.proposer.rejections}), unchanged {sum(stats.unchanged.values())}"
    )

    print("\nwhere the time goes (exclusive ms per individual, untraced individuals; 'other' = untimed driver code):")
    groups: dict[str, float] = defaultdict(float)
    for name, value in untraced.items():
        groups[group_of(name)] += value
    groups["other (loop, tournament, events, job dumps)"] = loop_seconds - sum(untraced.values())
    for name, value in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<48} {value / measured * 1e3:8.3f} ms  {value / loop_seconds:6.1%}")
    print(
        f"  of all this, automatic garbage collection          {collecting['seconds'] / measured * 1e3:8.3f} ms  "
        f"({collecting['collections'] / total:.2f} collections/individual; charged to whichever section allocated)"
    )
    print("\n  by section:")
    for name, value in sorted(untraced.items(), key=lambda kv: -kv[1]):
        print(
            f"  {name:<48} {value / measured * 1e3:8.3f} ms  {value / loop_seconds:6.1%}  "
            f"({calls[name] / total:5.2f} calls/individual)"
        )

    if len(rows) > 1:
        print(
            f"\n  growth: ms per individual in the window before {rows[0]['individuals']:,} and before "
            f"{rows[-1]['individuals']:,} (largest changes)"
        )
        first, last = rows[0]["ms_per_individual"], rows[-1]["ms_per_individual"]
        for name in sorted(untraced, key=lambda n: -abs(last.get(n, 0) - first.get(n, 0)))[:6]:
            print(f"  {name:<48} {first.get(name, 0):8.3f} -> {last.get(name, 0):8.3f}")

    print("\nmemory of the driver:")
    for row in rows:
        line = (
            f"  after {row['individuals']:>6}: RSS {mib(row['rss'])}, python blocks {row['blocks']:,} "
            f"({row['blocks_without_caches']:,} without the bounded caches), gc objects {row['objects']:,}"
        )
        if "retained_in_window" in row:
            line += (
                f"; tracemalloc over the last {window}: {row['retained_in_window'] / 1024:.0f} KiB still "
                f"allocated ({row['retained_in_window'] / window:.0f} B/individual), peak "
                f"{mib(row['peak_in_window'])}; largest: "
                + ", ".join(f"{where} {size / 1024:.0f} KiB" for where, size in row["retained_by"])
            )
        print(line)

    if profiler:
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(25)
            print(f"\ncProfile, top 25 by {order}:\n" + out.getvalue().split("\n", 6)[-1])
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "individuals": total,
                    "measured": measured,
                    "seconds": loop_seconds,
                    "rate": rate,
                    "sections_s": untraced,
                    "calls": calls,
                    "checkpoints": rows,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
