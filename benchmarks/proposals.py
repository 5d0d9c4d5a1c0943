"""How often the proposal distribution draws known-good one-op edits, old and new side by side.

Draws one-step children of a seed program through the campaign's own proposer (mutation,
the gate, the cost bounds; no task screen: it trains, and it judges what an edit does, not how
often it is drawn) under each proposal distribution with the same search seeds, until each has
``--children`` trainable children, and prints per 10,000 trainable children the rate of named
edits, with the rejection reasons. The edits are recognised on the child's program
(``primitives.known_edits``); the proposal code names none of them.

    .venv/bin/python benchmarks/proposals.py --children 10000        # ~10 min a distribution
    .venv/bin/python benchmarks/proposals.py --children 2000 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from primitives.known_edits import EDITS, NAMED, known_edits  # noqa: E402
from primitives.program import Architecture  # noqa: E402
from primitives.seeds import seed  # noqa: E402
from search.config import CampaignConfig  # noqa: E402
from search.proposer import Proposer  # noqa: E402
from storage import Repository  # noqa: E402


class _Seed:
    """The seed individual, the only parent."""

    id = 1
    root_seed = "transformer"

    def __init__(self, architecture: Architecture):
        self._architecture = architecture

    def architecture(self) -> Architecture:
        return self._architecture


def measure(proposal: str, children: int, seed_name: str, search_seed: int) -> dict:
    """Draw until ``children`` trainable children: the named edits' counts and the rejections."""
    config = CampaignConfig.model_validate(
        {"name": f"proposals-{proposal}", "strategy": "aging", "proposal": proposal, "search_seed": search_seed}
    )
    parent = seed(seed_name, config.spec)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Repository(f"sqlite:///{tmp}/proposals.db")
        campaign = repo.create_campaign(config.name, search_seed, config.model_dump(mode="json"))
        proposer = Proposer(config, config.recipe(), {seed_name: parent}, repo, campaign.id, lambda e: None)
        member = _Seed(parent)
        edits: Counter = Counter()
        outcomes: Counter = Counter()
        trainable, birth, start = 0, 1, time.perf_counter()
        while trainable < children:
            candidate = proposer.ask(birth, [(1, None)], lambda i: member)
            birth += 1
            verdict = candidate.verdict
            outcomes["trainable" if verdict is None else verdict.status] += 1
            if verdict is not None:
                continue
            trainable += 1
            found = set(known_edits(parent, candidate.proposal.architecture))
            edits.update(found)
            edits["any named edit"] += bool(found & set(NAMED))
        stats = proposer.stats
        return {
            "proposal": proposal,
            "seed": seed_name,
            "search_seed": search_seed,
            "trainable": trainable,
            "children_drawn": birth - 1,
            "seconds": time.perf_counter() - start,
            "per_10k_trainable": {name: 1e4 * edits[name] / trainable for name in [*EDITS, "any named edit"]},
            "counts": dict(edits),
            "outcomes": dict(outcomes),
            "draws": sum(stats.tried.values()),
            "invalid": sum(stats.invalid.values()) - sum(proposer.rejections.values()),
            "unchanged": sum(stats.unchanged.values()),
            "gate_rejections": dict(proposer.rejections),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", type=int, default=10_000, help="trainable children per distribution")
    parser.add_argument("--seed-program", default="transformer")
    parser.add_argument("--search-seed", type=int, default=0)
    parser.add_argument("--proposals", default="uniform,family", help="comma-separated, old first")
    parser.add_argument("--json", action="store_true", help="one JSON object per distribution")
    args = parser.parse_args()
    results = [
        measure(p.strip(), args.children, args.seed_program, args.search_seed) for p in args.proposals.split(",")
    ]
    if args.json:
        for r in results:
            print(json.dumps(r))
        return
    names = [r["proposal"] for r in results]
    print(f"{args.children} trainable one-step children of {args.seed_program} each (search seed {args.search_seed})")
    print(f"{'per 10,000 trainable children':44s}" + "".join(f"{n:>12s}" for n in names) + "       ratio")
    for edit in [*EDITS, "any named edit"]:
        rates = [r["per_10k_trainable"][edit] for r in results]
        ratio = f"{rates[-1] / rates[0]:10.2f}×" if rates[0] else "         –"
        print(f"{edit:44s}" + "".join(f"{x:12.1f}" for x in rates) + ratio)
    print()
    for key in ("children_drawn", "draws", "invalid", "unchanged"):
        print(f"{key:44s}" + "".join(f"{r[key]:12d}" for r in results))
    for status in sorted({s for r in results for s in r["outcomes"]}):
        print(f"{'children ' + status:44s}" + "".join(f"{r['outcomes'].get(status, 0):12d}" for r in results))
    for reason in sorted({s for r in results for s in r["gate_rejections"]}):
        print(f"{'gate: ' + reason:44s}" + "".join(f"{r['gate_rejections'].get(reason, 0):12d}" for r in results))
    print(f"{'seconds':44s}" + "".join(f"{r['seconds']:12.0f}" for r in results))


if __name__ == "__main__":
    main()
