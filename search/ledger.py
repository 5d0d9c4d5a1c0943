"""The campaign's tell(): what the driver learns, recorded, and the state it keeps from it.

The ledger is the driver's only writer. It stores each candidate before it is dispatched, each
result with its hurdle losses in the caller's transaction, and keeps in memory what the next
proposals and jobs need: the parent window (the most recently finished individuals, cost
rejections excepted, as ``Repository.parents``), the losses behind the hurdle thresholds (all
runs', and each seed's own for the ladder's seed rule) and the screen's bars. It reads them
from the tables once (``restore``); as the only writer it then keeps them equal to the tables.
"""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass, replace

from primitives.program import Architecture
from storage import EvalResult, IndividualRecord, NotFound, Repository

from .config import CampaignConfig
from .hurdles import HurdlePolicy, RecordedLosses
from .proposer import Candidate
from .screen import bars
from .worker import land_weights


@functools.lru_cache(maxsize=256)
def _parsed(architecture_json: str) -> Architecture:
    return Architecture.model_validate_json(architecture_json)


def clear_parsed_cache() -> None:
    """Forget the parents' parsed programs."""
    _parsed.cache_clear()


@dataclass(frozen=True)
class Parent:
    """An individual as evolution sees it. A window of P parents is drawn from again and again,
    so each program is parsed once (the parsed object is shared: mutations copy, never edit)."""

    record: IndividualRecord

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def root_seed(self) -> str:
        return self.record.root_seed

    def architecture(self) -> Architecture:
        return _parsed(self.record.architecture_json)


class Ledger:
    """Records one campaign's individuals and results under one recipe."""

    def __init__(
        self, repository: Repository, campaign_id: int, recipe: str, policy: HurdlePolicy, config: CampaignConfig
    ):
        self.repo, self.campaign_id, self.recipe, self.policy = repository, campaign_id, recipe, policy
        self.population_size, self.screen_margin = config.population, config.screen_margin
        self._window: deque[IndividualRecord] = deque(maxlen=config.population)  # finished, oldest first
        self._hurdle_losses: list[RecordedLosses] = []
        self._seed_hurdles: dict[str, list[float | None]] = {}  # root seed → its own run's hurdle losses
        self._seeds_finished: set[str] = set()  # root seeds whose own individual has its result
        self._screen_bars: dict[str, dict[str, float]] = {}  # root seed → what its children must score
        # (id, attempt) of each dispatched job → the individual and the thresholds it was sent
        self._in_flight: dict[tuple[int, int], tuple[IndividualRecord, list[float | None]]] = {}

    def restore(self) -> None:
        """Read the state the campaign's tables hold (on start and on resume)."""
        cid = self.campaign_id
        self._window.extend(self.repo.parents(cid, self.population_size))
        for root in self.repo.roots(cid):  # the seeds' screen scores and hurdles, recorded with them
            if root.finished:
                self._seeds_finished.add(root.root_seed)
            if scores := self.repo.screen_of(root.id):
                self._screen_bars[root.root_seed] = bars(scores, self.screen_margin)
            if (hurdles := self.repo.hurdles(root.id)) and root.root_seed not in self._seed_hurdles:
                self._seed_hurdles[root.root_seed] = [h.loss for h in hurdles]
        self._hurdle_losses = [
            RecordedLosses(self.repo.hurdle_losses(cid, i)) for i in range(len(self.policy.positions))
        ]

    # ----------------------------------------------------------------- what proposals read

    def population(self, seeds: int) -> list[tuple[int, float | None]]:
        """(id, fitness) of the parent window, oldest first; before anything has finished, the
        first ``seeds`` individuals (the seed programs)."""
        if self._window:
            return [(member.id, member.fitness) for member in self._window]
        return [(i.id, None) for i in self.repo.unfinished(self.campaign_id) if i.birth < seeds]

    def member(self, individual_id: int) -> Parent:
        """A tournament winner: a member of the window (the seeds before it fills)."""
        found = next((m for m in self._window if m.id == individual_id), None) or self.repo.get_individual(
            individual_id
        )
        if found is None:
            raise NotFound(f"no individual with id {individual_id}")
        return Parent(found)

    def thresholds(self, root_seed: str) -> list[float | None]:
        """Each hurdle's bar now for a descendant of ``root_seed`` (None until there is enough to judge)."""
        return self.policy.thresholds(self._hurdle_losses, self._seed_hurdles.get(root_seed, []))

    def awaits_seeds(self, seeds: int) -> bool:
        """Under the seed rule, children wait until every seed individual has finished: a child
        sent before its seed reached the rungs would have no bar there and train to the end."""
        return self.policy.rule == "seed" and len(self._seeds_finished) < seeds

    def screen_bars(self, root_seed: str) -> dict[str, float]:
        return self._screen_bars.get(root_seed, {})

    # ----------------------------------------------------------------- what the driver tells

    def admit(self, birth: int, candidate: Candidate) -> IndividualRecord:
        """Store the candidate of ``birth`` (in the caller's transaction), with its verdict if it
        has one (then it is finished); else it is to be trained."""
        proposal, vetted = candidate.proposal, candidate.vetted
        individual = self.repo.add_individual(
            self.campaign_id,
            birth,
            proposal.architecture.to_json(indent=None),
            vetted.arch_hash,
            proposal.root_seed,
            self.recipe,
            proposal.parent_id,
            proposal.mutation,
            fingerprint=vetted.fingerprint,
            dispatched=candidate.verdict is None,
        )
        if candidate.seed_scores:
            self.repo.record_screen(individual.id, candidate.seed_scores)
            self._screen_bars[proposal.root_seed] = bars(candidate.seed_scores, self.screen_margin)
        if candidate.verdict is None:
            return individual
        return self._finished(individual, candidate.verdict, self._store(individual.id, 0, candidate.verdict))

    def sent(self, individual: IndividualRecord, attempt: int, thresholds: list[float | None]) -> None:
        """A job for ``individual`` went out with these thresholds (its result will be judged by them)."""
        self._in_flight[(individual.id, attempt)] = individual, thresholds

    def tell(self, key: tuple[int, int], result: EvalResult) -> tuple[IndividualRecord, EvalResult]:
        """Record a job's result and its hurdles (in the caller's transaction: together, or not at
        all); a stale attempt's result is dropped. Returns the individual and the result."""
        individual_id, attempt = key
        individual, thresholds = self._in_flight.pop(key)
        result = land_weights(result).with_fitness()
        recorded = self._store(individual_id, attempt, result)
        for index, hurdle in enumerate(result.hurdles if recorded else []):  # the bars the driver set, not the worker
            threshold = thresholds[index] if index < len(thresholds) else None
            self.repo.record_hurdle(individual_id, index, hurdle.fraction, hurdle.loss, threshold, hurdle.passed)
        if recorded:
            for index, hurdle in enumerate(result.hurdles[: len(self._hurdle_losses)]):
                self._hurdle_losses[index].add(hurdle.loss)
            if individual.parent_id is None and result.hurdles:
                self._seed_hurdles.setdefault(individual.root_seed, [h.loss for h in result.hurdles])
        return self._finished(individual, result, recorded), result

    def _store(self, individual_id: int, attempt: int, result: EvalResult) -> bool:
        """Record a result and its screen scores; False if the attempt is stale."""
        recorded = self.repo.record_result(individual_id, attempt, result)
        if recorded:
            self.repo.record_screen(individual_id, result.screen)
        return recorded

    def _finished(self, individual: IndividualRecord, result: EvalResult, recorded: bool) -> IndividualRecord:
        """Keep the window equal to ``repo.parents``: a trained (or failed) individual joins it, a
        cost rejection (never trained) does not."""
        if recorded:
            individual = replace(individual, status=result.status, fitness=result.fitness)
            if individual.parent_id is None:
                self._seeds_finished.add(individual.root_seed)
            if result.status != "rejected":
                self._window.append(individual)
        return individual
