"""The tiny campaign the driver's tests run: a 1-layer model of width 32 on the json package's
source, trained for 1,280 tokens (an instant fake evaluator stands in for training where it can)."""

from __future__ import annotations

import sysconfig

from primitives.program import ModelSpec
from search.config import CampaignConfig

SPEC = ModelSpec(vocab_size=300, d_model=32, n_layers=1, n_heads=2, seq_len=16)
CORPUS = f"text:{sysconfig.get_paths()['stdlib']}/json/*.py"
#: The driver's mechanics are tested without the cost bounds (their own test turns them on).
NO_COST_BOUNDS = {"max_flops_ratio": None, "min_flops_ratio": None, "max_parameters_ratio": None}


def make_config(name: str = "t", **overrides) -> CampaignConfig:
    """Aging evolution (the driver's mechanics were written against it) unless ``strategy`` is given."""
    values = {
        "name": name,
        "strategy": "aging",
        "search_seed": 1,
        "backend": "inprocess",
        "corpus": CORPUS,
        "vocab_size": 300,
        "spec": SPEC,
        "budget": "1280tokens",
        "hurdles": 0,
        "population": 4,
        "sample": 2,
        "max_evals": 10,
        "max_train_tokens": None,
        **NO_COST_BOUNDS,
    }
    if overrides.get("strategy") == "ladder":  # the ladder's rungs take the hurdles' place
        del values["hurdles"]
    return CampaignConfig(**{**values, **overrides})
