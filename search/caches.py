"""One switch for the process-wide caches of the search loop (compiled sources, the gate's
probe programs and blocks, parsed architectures, program hashes and canonical forms).

Each cache is bounded by a count of recent programs, so none grows with a campaign's length;
clearing them matters to a benchmark that measures what is left, or to a notebook that wants
a cold start.
"""

from __future__ import annotations

from evaluator.compiler import clear_compile_cache
from evaluator.gate import clear_gate_caches
from primitives.graph import clear_graph_caches

from .ledger import clear_parsed_cache


def clear_caches() -> None:
    """Empty every process-wide cache of archevo's search loop (each module clears its own)."""
    clear_compile_cache()
    clear_gate_caches()
    clear_parsed_cache()
    clear_graph_caches()
