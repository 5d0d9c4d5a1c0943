"""Search logic without training: mutations, tournament, aging, hurdles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from primitives.graph import architecture_hash
from primitives.seeds import seed
from primitives.program import Instruction, Program, Subprogram
from primitives.types import MODEL_UNITS, seq
from primitives.validate import infer_types, validate_architecture, validate_program
from search.evolution import Evolution
from search.strategies import Strategy, Tournament, Uniform, tournament
from search.hurdles import HurdlePolicy, expected_cost, halving_positions
from search.mutate import MUTATIONS, Draws, MutationStats, first_call_types, mutate


def aging(seeds, population_size, sample_size, campaign_seed, accept=lambda a: True, max_tries=1000, stats=None):
    """Aging evolution over ``seeds`` with the engine's mutation (``accept``: the gate)."""
    stats = stats if stats is not None else MutationStats()
    strategy = Strategy("aging", Tournament(sample_size), population_size, HurdlePolicy(()))
    return Evolution(
        seeds, strategy, campaign_seed, lambda parent, rng: mutate(parent, rng, stats, None, max_tries, accept)
    )


@dataclass
class FakeMember:
    id: int
    root_seed: str = "transformer"

    def architecture(self):
        return seed("transformer")


@pytest.mark.parametrize("kind", MUTATIONS)
def test_each_mutation_type_gives_a_valid_changed_child(kind):
    parent = seed("primer_ez")
    stats = MutationStats()
    for birth in range(5):
        child = mutate(parent, np.random.default_rng([7, birth]), stats, weights={kind: 1.0})
        assert child.kind == kind
        assert validate_architecture(child.architecture) == child.architecture
        assert architecture_hash(child.architecture) != architecture_hash(parent)
        assert child.description  # the diff in words is never empty
    assert set(stats.tried) == {kind}


def test_change_value_keeps_epsilons_positive_and_small():
    """ε moves by factors of 10^X (Primer's additive Y would give ε = 0.3 or a negative)."""
    from search.mutate import _change_value

    norm = seed("transformer").final.main
    epsilons = [_change_value(norm, {}, np.random.default_rng(s), Draws()).body[0].attrs["eps"] for s in range(200)]
    assert all(0 < eps < 1e-5 * 10**4 for eps in epsilons)
    assert len(set(epsilons)) == 200


def test_mutation_is_reproducible_from_its_seed():
    parent = seed("transformer")
    first = mutate(parent, np.random.default_rng([3, 42]))
    again = mutate(parent, np.random.default_rng([3, 42]))
    assert first == again


def test_insert_splices_the_new_value_in():
    child = mutate(seed("transformer"), np.random.default_rng([0, 4]), weights={"insert": 1.0})
    assert child.description.count("+") + child.description.count("→") >= 1


def test_invalid_children_are_counted_per_type_and_redrawn():
    stats = MutationStats()
    for birth in range(30):
        mutate(seed("sas"), np.random.default_rng([1, birth]), stats)
    assert sum(stats.invalid.values()) > 0
    assert sum(stats.tried.values()) == 30 + sum(stats.invalid.values()) + sum(stats.unchanged.values())


def test_gate_rejections_are_redrawn():
    rejected = []

    def accept(architecture):
        rejected.append(architecture)
        return len(rejected) > 3

    stats = MutationStats()
    mutate(seed("transformer"), np.random.default_rng(0), stats, accept=accept)
    assert len(rejected) == 4 and sum(stats.invalid.values()) >= 3


def test_a_subprogram_is_typed_as_the_layer_first_calls_it():
    """Mutation edits a subprogram in the types of its first call as the layer runs: ``act``,
    called at width 4 inside ``ffn`` and then at the model width by main, is edited at width 4."""
    act = Subprogram(name="act", params=["v"], body=[Instruction(out="n", op="relu", inputs=["v"])], output="n")
    ffn = Subprogram(
        name="ffn",
        params=["x"],
        body=[
            Instruction(out="u", op="dense", inputs=["x"], attrs={"width": 4}),
            Instruction(out="m", op="call", inputs=["u"], attrs={"target": "act"}),
            Instruction(out="d", op="dense", inputs=["m"], attrs={"width": MODEL_UNITS}),
        ],
        output="d",
    )
    main = Subprogram(
        name="main",
        params=["x"],
        body=[
            Instruction(out="f", op="call", inputs=["x"], attrs={"target": "ffn"}),
            Instruction(out="g", op="call", inputs=["f"], attrs={"target": "act"}),
        ],
        output="g",
    )
    program = validate_program(Program(subprograms=[main, ffn, act]))
    types = first_call_types(program)
    assert types[0] == infer_types(program, 0, [seq(MODEL_UNITS)])
    assert types[2]["v"] == seq(4) and types[1]["x"] == seq(MODEL_UNITS)


def test_tournament_picks_the_best_of_its_sample():
    population = [(i, float(10 - i)) for i in range(10)]
    assert tournament(population, 100, np.random.default_rng(0)) == 9
    assert tournament([(0, None), (1, 5.0)], 50, np.random.default_rng(0)) == 1


def test_tournament_of_one_is_random_search():
    population = [(i, float(i)) for i in range(10)]
    assert len({tournament(population, 1, np.random.default_rng(s)) for s in range(100)}) > 5


def test_random_selection_ignores_fitness_but_keeps_to_the_window():
    window = [(i, float(i)) for i in range(20)]
    strategy = Strategy("random", Uniform(), 5, HurdlePolicy(()))
    picks = {strategy.parent(window, np.random.default_rng(s)) for s in range(200)}
    assert picks == {15, 16, 17, 18, 19}  # every member of the last five, the worst included


def test_aging_selects_only_from_the_most_recent():
    """The population is the P most recently finished: the best-ever but oldest member is gone."""
    evolution = aging({"transformer": seed("transformer")}, population_size=3, sample_size=50, campaign_seed=0)
    history = [(0, 0.1)] + [(i, 5.0 + i) for i in range(1, 6)]
    proposal = evolution.propose(10, history, load=FakeMember)
    assert proposal.parent_id == 3  # best of the last three (3, 4, 5), not the oldest best (0)


def test_seeds_come_first_then_children_of_seed_individuals():
    seeds = {"transformer": seed("transformer"), "primer_ez": seed("primer_ez")}
    evolution = aging(seeds, population_size=4, sample_size=2, campaign_seed=0)
    assert [evolution.propose(b, [], load=FakeMember).root_seed for b in range(2)] == ["transformer", "primer_ez"]
    assert evolution.propose(0, [], load=FakeMember).mutation is None
    child = evolution.propose(2, [(7, None)], load=FakeMember)
    assert child.parent_id == 7 and child.mutation


def test_a_parent_without_valid_children_gives_way_and_the_campaign_goes_on():
    """When no child of the tournament winners passes, the seed is proposed again (the driver
    stores it as a duplicate of its first evaluation) instead of stopping the campaign."""
    seeds = {"transformer": seed("transformer")}
    stats = MutationStats()
    evolution = aging(
        seeds, population_size=4, sample_size=2, campaign_seed=0, accept=lambda a: False, max_tries=5, stats=stats
    )
    proposal = evolution.propose(3, [(7, 5.0), (8, 4.0)], load=FakeMember)
    assert proposal.parent_id is None and proposal.root_seed == "transformer"
    assert architecture_hash(proposal.architecture) == architecture_hash(seeds["transformer"])
    assert proposal.mutation.startswith("reseeded: no valid child of individuals ")
    assert sum(stats.tried.values()) == 3 * 5  # three tournaments, five draws each


def test_halving_hurdles_match_primer():
    assert halving_positions(4) == pytest.approx([1 / 31, 3 / 31, 7 / 31, 15 / 31])
    # 25,200 s budget: hurdles at 812.9, 2438.7, 5690.3, 12193.5 s; expected cost 5c = 4064.5 s
    assert [25200 * p for p in halving_positions(4)] == pytest.approx([812.9, 2438.7, 5690.3, 12193.5], abs=0.1)
    assert 25200 * expected_cost(halving_positions(4)) == pytest.approx(4064.5, abs=0.1)
    assert halving_positions(0) == []


def test_threshold_is_the_median_once_enough_are_recorded():
    policy = HurdlePolicy.halving(2, min_samples=3)
    assert policy.threshold([1.0, 2.0]) is None
    assert policy.passes(100.0, None)
    assert policy.threshold([3.0, 1.0, 2.0, 4.0, 5.0]) == 3.0
    assert policy.passes(3.0, 3.0) and not policy.passes(3.1, 3.0)
    assert not policy.passes(float("nan"), 3.0)


def test_failed_runs_count_as_worst_and_mean_rule():
    quantile = HurdlePolicy.halving(1, min_samples=1, quantile=0.5)
    assert quantile.threshold([1.0, float("nan"), None, 2.0, 3.0]) == 3.0
    mean = HurdlePolicy.halving(1, min_samples=2, rule="mean")
    assert mean.threshold([1.0, 3.0, float("inf")]) == 2.0
