"""The campaign's ask(): the next candidate and everything learnt of it before training.

Evolution proposes (a seed, or a mutated tournament winner); the proposer then looks for an
evaluated twin (architecture hash, then the gate's functional fingerprint), checks a child's
cost against its seed's and scores a seed on the screen. What it returns says whether the
candidate is to be trained or has its result already (a duplicate, a cost rejection, a seed the
gate or the screen could not run). It reads storage and never writes: the ledger records.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

from evaluator.gate import GateRejected, GateReport, gate
from primitives.cost import TRAINING_MULTIPLIER, model_cost
from primitives.graph import architecture_hash
from primitives.program import Architecture, ModelSpec
from storage import EvalResult, IndividualRecord, Repository

from .config import CampaignConfig
from .evolution import Evolution, Member, Proposal
from .mutate import Child, MutationStats, mutate
from .screen import run_screen


Event = dict[str, Any]


def training_cost(spec: ModelSpec, architecture: Architecture) -> tuple[float, int]:
    """(training FLOPs per token, parameters) by the registry's cost model, in one walk."""
    flops, parameters = model_cost(spec, architecture)
    return TRAINING_MULTIPLIER * flops.total, parameters


@dataclass(frozen=True)
class Vetted:
    """What the gate and the duplicate checks found of a candidate."""

    arch_hash: str
    report: GateReport | None = None
    original: IndividualRecord | None = None  # an evaluated individual it duplicates
    rejection: str | None = None  # why the gate refused it

    @property
    def fingerprint(self) -> str | None:
        """Its own, or (a hash duplicate skips the gate) its original's."""
        return self.report.fingerprint if self.report else self.original.fingerprint if self.original else None


@dataclass(frozen=True)
class Candidate:
    """An individual to be: ``verdict`` is its result where it needs no training, else None."""

    proposal: Proposal
    vetted: Vetted
    verdict: EvalResult | None = None
    seed_scores: list[dict[str, Any]] | None = None  # a seed's screen scores: the bar of its children


class Proposer:
    """Draws and vets candidates for one campaign under one recipe."""

    def __init__(
        self,
        config: CampaignConfig,
        recipe: str,
        seeds: dict[str, Architecture],
        repository: Repository,
        campaign_id: int,
        on_event: Callable[[Event], None],
    ):
        self.config, self.recipe, self.repo, self.campaign_id = config, recipe, repository, campaign_id
        self.on_event = on_event
        self.stats = MutationStats()
        self.evolution = Evolution(seeds, config.search_strategy(), config.search_seed, self._mutate)
        self._seed_costs = {name: training_cost(config.spec, a) for name, a in seeds.items()}
        self.rejections: dict[str, int] = {}  # children the gate refused (redrawn), by reason

    def ask(
        self, birth: int, population: Sequence[tuple[int, float | None]], load: Callable[[int], Member]
    ) -> Candidate:
        """The candidate of ``birth``, drawn from ``population`` ((id, fitness), oldest first)."""
        proposal = self.evolution.propose(birth, population, load)
        vetted = proposal.verdict or self._vet(proposal.architecture)  # a child comes with the gate's report
        if vetted.rejection:  # only a seed gets here: children are redrawn instead
            return Candidate(
                proposal,
                vetted,
                EvalResult.failed("error", f"seed {proposal.root_seed} rejected by the gate: {vetted.rejection}"),
            )
        if proposal.parent_id is None and self.config.screen:
            scores, failure = self._screen_seed(proposal.root_seed, proposal.architecture)
            if failure:
                return Candidate(proposal, vetted, EvalResult.failed("error", failure))
            return Candidate(proposal, vetted, self._duplicate(vetted), seed_scores=scores)
        if vetted.original is not None:
            return Candidate(proposal, vetted, self._duplicate(vetted))
        if proposal.parent_id is not None and (reason := self._out_of_bounds(proposal)):
            return Candidate(proposal, vetted, EvalResult.failed("rejected", reason))
        return Candidate(proposal, vetted)

    def _mutate(self, parent: Architecture, rng: np.random.Generator) -> Child:
        """One valid child that the gate admits, under the campaign's proposal distribution."""
        config = self.config
        return mutate(
            parent, rng, self.stats, config.mutation_weights, accept=self._passes_gate, proposal=config.proposal
        )

    # ----------------------------------------------------------------- the checks

    def _vet(self, architecture: Architecture) -> Vetted:
        """Before any training: an already evaluated structure (hash), the gate, then an already
        evaluated function (fingerprint). A hash duplicate skips the gate: its original passed."""
        arch_hash = architecture_hash(architecture)
        original = self.repo.find_by_hash(self.campaign_id, arch_hash, self.recipe)
        if original is not None:
            return Vetted(arch_hash, original=original)
        try:
            report = gate(self.config.spec, architecture, self.config.max_parameters)
        except GateRejected as error:
            return Vetted(arch_hash, rejection=error.message)
        return Vetted(
            arch_hash, report, self.repo.find_by_fingerprint(self.campaign_id, report.fingerprint, self.recipe)
        )

    def _passes_gate(self, architecture: Architecture) -> Vetted | None:
        """The mutation loop's acceptance test: the gate's report, or None for a rejected child
        (which is redrawn, and counted)."""
        vetted = self._vet(architecture)
        if vetted.rejection:
            reason = vetted.rejection.split(":")[0]  # "not causal", "does not run", ...
            self.rejections[reason] = self.rejections.get(reason, 0) + 1
            return None
        return vetted

    def _out_of_bounds(self, proposal: Proposal) -> str | None:
        """Why a child's cost is outside the campaign's bounds relative to its seed, or None."""
        config = self.config
        if config.min_flops_ratio is config.max_flops_ratio is config.max_parameters_ratio is None:
            return None
        root = proposal.root_seed
        (flops, params), (seed_flops, seed_params) = (
            training_cost(config.spec, proposal.architecture),
            self._seed_costs[root],
        )
        checks = [
            ("FLOPs per token", flops / seed_flops, config.min_flops_ratio, config.max_flops_ratio),
            ("parameters", params / seed_params, None, config.max_parameters_ratio),
        ]
        for what, ratio, low, high in checks:
            if (low is not None and ratio < low) or (high is not None and ratio > high):
                bounds = f"[{low if low is not None else 0:g}, {high if high is not None else math.inf:g}]"
                return f"cost out of bounds: {what} {ratio:.3f}× the seed {root}'s, outside {bounds}"
        return None

    def _screen_seed(self, name: str, architecture: Architecture) -> tuple[list[dict[str, Any]], str | None]:
        """(the seed's screen scores, or why the screen could not run it). The driver's own
        work, once per seed: the bar its children face."""
        self.on_event(
            {"kind": "preparing", "message": f"scoring seed {name} on the screen ({', '.join(self.config.screen)})"}
        )
        try:
            return run_screen(architecture, self.config.screen, self.config.search_seed, self.config.screen_steps), None
        except Exception as error:  # noqa: BLE001 - recorded as the seed's failure; the campaign goes on
            return (
                [],
                f"seed {name} could not be scored on the screen: {type(error).__name__}: {' '.join(str(error).split())}",
            )

    def _duplicate(self, vetted: Vetted) -> EvalResult | None:
        """FEC: the fitness (and the screen scores) of a functionally equal individual, reused
        without training; None if there is none."""
        original = vetted.original
        if original is None:
            return None
        return EvalResult(
            status="duplicate",
            message=f"functionally equal to individual {original.id}"
            f"{' (screened out)' if original.status == 'screened_out' else ''}",
            screen=[asdict(s) for s in self.repo.screen_of(original.id)],
            duplicate_of=original.id,
            fitness=original.fitness,
            val_loss=original.val_loss,
            perplexity=original.perplexity,
            bits_per_byte=original.bits_per_byte,
            parameters=original.parameters,
            hurdles_passed=original.hurdles_passed,
        )
