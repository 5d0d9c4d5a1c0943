"""One switch for the process-wide caches of the search loop (compiled sources, the gate's
probe programs and blocks, parsed architectures, program hashes and canonical forms).

Each cache is bounded by a count of recent programs, so none grows with a campaign's length;
clearing them matters to a benchmark that measures what is left, or to a notebook that wants
a cold start.
"""

from __future__ import annotations

from evaluator import gate
from evaluator.compiler import clear_compile_cache
from primitives import graph

from . import ledger


def clear_caches() -> None:
    """Empty every process-wide cache of archevo's search loop."""
    clear_compile_cache()
    gate._probe_program.cache_clear()
    gate._frame.cache_clear()
    gate._POOL.clear()
    ledger._parsed.cache_clear()
    graph._HASHES.clear()
    graph._CANONICAL_JSON.clear()
