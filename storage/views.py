"""A campaign as a table: one record per finished individual, for notebooks (``records``) and
pandas (``frame``, when pandas is installed; archevo does not need it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .records import NotFound

if TYPE_CHECKING:
    from .repository import Repository

#: The columns of a record, in order.
COLUMNS = (
    "id",
    "birth",
    "parent_id",
    "root_seed",
    "mutation",
    "status",
    "loss",
    "bits_per_byte",
    "parameters",
    "flops_per_token",
    "tokens",
    "flops",
    "seconds",
    "hurdles_passed",
    "duplicate_of",
    "error",
)


def records(repo: Repository, campaign: str) -> list[dict[str, Any]]:
    """Every finished individual of ``campaign``, in the order they finished, as plain dicts
    (``loss`` is the search's fitness: the validation loss at the end or at the rung it stopped)."""
    found = repo.get_campaign(campaign)
    if found is None:
        raise NotFound(f"no campaign named {campaign!r}")
    return [
        {name: individual.fitness if name == "loss" else getattr(individual, name) for name in COLUMNS}
        for individual in repo.finished_individuals(found.id)
    ]


def frame(repo: Repository, campaign: str) -> Any:
    """``records`` as a pandas DataFrame indexed by individual id."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("archevo.frame needs pandas (pip install pandas); archevo.records needs nothing") from None
    return pd.DataFrame.from_records(records(repo, campaign), columns=list(COLUMNS), index="id")
