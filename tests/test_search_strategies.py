"""The search strategies: the ladder's pruner, the config that names them, and the offline
check on NAS-Bench-201 that selection beats chance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from search.config import CampaignConfig
from search.hurdles import HurdlePolicy, RecordedLosses
from search.strategies import LADDER_MARGINS, LADDER_RUNGS, Tournament, Uniform


def test_the_seed_rule_asks_for_the_seeds_loss_plus_the_margin_where_the_seed_got():
    policy = HurdlePolicy((0.25, 0.5), rule="seed", margins=(0.1, 0.02))
    recorded = [RecordedLosses([9.0] * 10), RecordedLosses([9.0] * 10)]  # other runs do not matter
    assert policy.thresholds(recorded, []) == [None, None]  # the seed has not reached a rung yet
    assert policy.thresholds(recorded, [5.0]) == [pytest.approx(5.1), None]
    assert policy.thresholds(recorded, [5.0, 4.0]) == [pytest.approx(5.1), pytest.approx(4.02)]


def test_asha_keeps_the_top_one_in_eta_of_those_that_reached_the_rung():
    policy = CampaignConfig(name="a", strategy="ladder", rung_rule="top", eta=3, rungs=[0.5]).hurdle_policy()
    assert policy.rule == "quantile" and policy.quantile == pytest.approx(1 / 3)
    losses = [RecordedLosses([float(x) for x in range(1, 10)])]
    (bar,) = policy.thresholds(losses, [])
    assert bar == 3.0  # 3 of 9 pass
    assert policy.passes(3.0, bar) and not policy.passes(3.5, bar)


def test_the_default_strategy_is_the_ladder_the_fidelity_study_chose():
    config = CampaignConfig(name="d")
    assert config.strategy == "ladder" and config.proposal == "family"
    policy = config.hurdle_policy()
    assert policy.positions == LADDER_RUNGS and policy.margins == LADDER_MARGINS and policy.rule == "seed"
    assert isinstance(config.search_strategy().selection, Tournament)
    assert config.train.hurdle_fractions == []  # the workers get the rungs from the run recipe


def test_strategies_pick_their_parents_and_stopping():
    aging = CampaignConfig(name="a", strategy="aging", hurdle_fractions=[0.5]).search_strategy()
    assert isinstance(aging.selection, Tournament) and aging.stopping.positions == (0.5,)
    random = CampaignConfig(name="r", strategy="random").search_strategy()
    assert isinstance(random.selection, Uniform)
    ladder = CampaignConfig(name="l", strategy="ladder", ladder_parents="random").search_strategy()
    assert isinstance(ladder.selection, Uniform) and ladder.stopping.rule == "seed"


def test_a_stored_campaign_without_the_new_fields_resumes_as_it_ran():
    stored = CampaignConfig(name="old", strategy="aging").model_dump(mode="json")
    del stored["strategy"], stored["proposal"]
    config = CampaignConfig.from_stored(stored)
    assert config.strategy == "aging" and config.proposal == "uniform"


def test_the_recipe_of_an_aging_campaign_is_unchanged_by_the_ladder_fields():
    """Fitness is reused under the same recipe: the aging recipe hashes as before the ladder."""
    aging = CampaignConfig(name="a", strategy="aging", hurdle_fractions=[0.5])
    assert (
        aging.recipe()
        == CampaignConfig(name="b", strategy="aging", hurdle_fractions=[0.5], proposal="uniform").recipe()
    )
    assert CampaignConfig(name="c").recipe() != CampaignConfig(name="c", rungs=[0.1, 0.2, 0.3, 0.4]).recipe()


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"strategy": "annealing"}, "strategy"),
        ({"rungs": [0.5, 0.25]}, "rungs"),
        ({"rungs": [0.25, 0.25]}, "rungs"),
        ({"rungs": [0.5, 1.5]}, "rungs"),
        ({"rungs": [0.5, 0.75], "rung_margins": [0.1]}, "rung_margins"),
        ({"strategy": "aging", "rungs": [0.5]}, "rungs"),
        ({"hurdle_fractions": [0.5]}, "hurdle_fractions"),
        ({"eta": 1}, "eta"),
    ],
)
def test_bad_strategy_fields_name_the_field(fields, field):
    with pytest.raises(ValidationError) as error:
        CampaignConfig.model_validate({"name": "x", **fields})
    first = error.value.errors()[0]
    assert field in ".".join(map(str, first["loc"])) + first["msg"]


# --------------------------------------------------------------------------- NAS-Bench-201

nb201 = pytest.importorskip("search.nb201")


def test_nb201_tables_load_with_the_published_optimum():
    table = nb201.load_table("cifar10")
    assert len(table.accuracies) == 5**6
    assert table.optimum == pytest.approx(91.61, abs=0.01)


def test_one_edge_mutation_changes_exactly_one_edge():
    rng = np.random.default_rng(0)
    cell = (0, 1, 2, 3, 4, 0)
    for _ in range(50):
        child = nb201.mutate_cell(cell, rng).architecture
        assert sum(a != b for a, b in zip(cell, child)) == 1


def test_a_campaign_replays_exactly_and_its_regret_never_rises():
    table = nb201.load_table("cifar10")
    first = nb201.run_campaign(table, nb201.strategy("aging"), 64, campaign_seed=3)
    assert first == nb201.run_campaign(table, nb201.strategy("aging"), 64, campaign_seed=3)
    assert all(math.isfinite(r) and r >= 0 for r in first)


def test_aging_beats_random_on_nb201():
    """The reduced benchmark: 60 campaigns of 100 evaluations each (seconds). Aging's edge at this
    budget is large (P(beats random) about 0.85 at 300 campaigns); p < 0.001 here."""
    from scipy.stats import mannwhitneyu

    table = nb201.load_table("cifar10")
    regret = {
        name: [nb201.run_campaign(table, nb201.strategy(name), 100, s)[-1] for s in range(60)]
        for name in ("aging", "random")
    }
    assert np.mean(regret["aging"]) < np.mean(regret["random"])
    assert mannwhitneyu(regret["aging"], regret["random"], alternative="less").pvalue < 1e-3


def test_unknown_data_set_and_strategy_are_named():
    with pytest.raises(ValueError, match="unknown NB201 data set 'mnist'"):
        nb201.load_table("mnist")
    with pytest.raises(ValueError, match="'ladder' cannot run on NB201"):
        nb201.strategy("ladder")
