"""The campaign driver: the loop that proposes, gates, dispatches and records.

The driver is the only writer. Every step leaves the database consistent: an individual is
stored (as running) before it is dispatched and its result is the commit point, so after a
crash ``resume`` re-runs exactly the individuals that were in flight and continues with the
next birth. The population window and the losses behind the hurdle thresholds are read from
the tables once and then kept current in memory (the driver is the only writer, so they stay
equal to the tables); duplicates are looked up by query.
"""

from __future__ import annotations

import gc
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import psutil
import torch

from evaluator.tokenization import load_tokenized
from primitives.cost import training_memory_bytes
from primitives.program import Architecture
from primitives.seeds import seed
from storage import CampaignBusy, CampaignRecord, EvalResult, IndividualRecord, Repository

from .backends import Backend, InProcessBackend, JobFunction, RayBackend
from .config import CampaignConfig, run_recipe
from .evolution import Evolution
from .ledger import Ledger
from .liveness import HEARTBEAT_S, refusal, this_driver
from .proposer import Event, Proposer
from .worker import EvalJob, run_job


def as_result(raw: EvalResult | dict[str, Any]) -> EvalResult:
    """What a backend returned, as a result: a worker's EvalResult, or a backend's failure dict.
    Anything else is the worker's error, recorded as one."""
    if isinstance(raw, EvalResult):
        return raw
    try:
        return EvalResult.model_validate(raw)
    except ValueError as error:
        return EvalResult.failed("error", f"the worker's result does not parse: {' '.join(str(error).split())}"[:500])


def gpu_memory_bytes() -> int | None:
    """The smallest local CUDA GPU's memory, or None where torch sees none (a CPU machine, or a
    remote cluster's GPUs, which this machine cannot see)."""
    if not torch.cuda.is_available():
        return None
    return min(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count()))


def _check_memory(config: CampaignConfig, seeds: dict[str, Architecture]) -> None:
    """Refuse a campaign whose seeds cannot train here, before anything is allocated: in host
    memory for CPU workers, in one GPU's memory (with the workers packed on it) for GPU ones."""
    if config.gpus_per_worker > 0 or config.train.device.startswith("cuda"):
        free = gpu_memory_bytes()
        if free is None:
            return  # a cluster's GPUs: nothing here to check them against
        sharing = min(config.workers, math.ceil(1 / config.gpus_per_worker)) if config.gpus_per_worker else 1
        where, knobs = "one GPU holds", "batch_size, workers, gpus_per_worker"
    else:
        free, sharing = psutil.virtual_memory().available, config.workers
        where, knobs = "is free", "batch_size, workers"
    for name, architecture in seeds.items():
        need = sharing * training_memory_bytes(config.spec, architecture, config.train.batch_size)
        if need > free:
            raise ValueError(
                f"{sharing} workers training {name} need about {need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB "
                f"{where}: check spec (layers, seq_len, d_model), {knobs}"
            )


def build_campaign(
    config: CampaignConfig,
    repository: Repository,
    backend: Backend | None = None,
    *,
    on_event: Callable[[Event], None] = lambda event: None,
    job: JobFunction = run_job,
    force: bool = False,
) -> Campaign:
    """A campaign ready to run (or resume): its seeds checked to fit in memory, the corpus
    tokenized, its backend (``backend``, else the configured one running ``job``), the campaign
    stored (or found), and the proposer and ledger over the workers' recipe. Everything that can
    fail is tried before the campaign is written: a failed start leaves nothing behind (no
    campaign whose name is taken and whose resume fails again). ``config`` is not changed."""
    seeds = {name: seed(name, config.spec) for name in config.seed_programs}
    if config.ray_address is None:  # the workers share this machine's memory
        _check_memory(config, seeds)
    run = run_recipe(config)
    recipe = run.recipe()
    stored = repository.get_campaign(config.name)
    if stored is not None:
        _check_recipe(repository, stored, recipe)
    on_event({"kind": "preparing", "message": f"tokenizing corpus {config.corpus!r}"})
    load_tokenized(config.corpus, config.vocab_size, max_train_tokens=config.max_train_tokens)
    backend = backend or make_backend(config, job)
    record = stored or repository.create_campaign(config.name, config.search_seed, config.model_dump(mode="json"))
    return Campaign(
        repository,
        record,
        run,
        Proposer(run, recipe, seeds, repository, record.id, on_event),
        Ledger(repository, record.id, recipe, run.hurdle_policy(), run),
        backend,
        on_event=on_event,
        force=force,
    )


def _check_recipe(repository: Repository, campaign: CampaignRecord, recipe: str) -> None:
    """A resumed campaign evaluates under the recipe its individuals were evaluated under: a
    stored config edited since (a budget, a training field) would mix two recipes in one ranking."""
    recorded = {root.recipe for root in repository.roots(campaign.id)}
    if recorded and recipe not in recorded:
        raise ValueError(
            f"campaign {campaign.name}'s stored config gives recipe {recipe}, but its individuals were "
            f"evaluated under {', '.join(sorted(recorded))}: the config was edited since (budget, training or "
            "frame); resuming would rank two recipes together. Start a new campaign for the new recipe"
        )


def job_frame(config: CampaignConfig) -> dict[str, Any]:
    """What every job of a campaign shares, validated and serialised once (``config``: the
    workers' recipe)."""
    return EvalJob(
        architecture_json="",
        spec=config.spec,
        budget=config.budget,
        train=config.train,
        corpus=config.corpus,
        vocab_size=config.vocab_size,
        max_train_tokens=config.max_train_tokens,
        screen=config.screen,
        screen_seed=config.search_seed,
        screen_steps=config.screen_steps,
        return_weights=config.ray_address is not None,
    ).model_dump(mode="json")


class CampaignFailing(RuntimeError):
    """Candidates keep failing with one cause: the campaign stops (resumable once it is fixed)."""


@dataclass
class FailureStreak:
    """The candidates that failed in a row with one cause: an error whose message is the same
    once its numbers (paths, ids, sizes) are blanked; any other result breaks the streak."""

    cause: str | None = None
    length: int = 0

    def add(self, result: EvalResult) -> None:
        cause = re.sub(r"\d+", "#", result.message)[:200] if result.status == "error" else None
        self.length = 0 if cause is None else self.length + 1 if cause == self.cause else 1
        self.cause = cause


class Campaign:
    """Runs (or resumes) one campaign until exactly ``max_evals`` individuals are recorded: the
    proposer asks, the backend trains, the ledger tells. ``build_campaign`` assembles one.

    ``on_event(event)`` hears what happens, one dict per event (``archevo``'s live view, log
    lines and TensorBoard writer are such listeners): ``{"kind": "preparing", "message"}`` while
    the corpus is tokenized and the seeds screened; ``{"kind": "dispatched", "id", "birth"}``
    when a candidate is sent to a worker; ``{"kind": "recorded", "id", "birth", "status",
    "fitness", "mutation", "rejections", "invalid"}`` when its result is stored; ``{"kind":
    "finished"}`` at the end."""

    def __init__(
        self,
        repository: Repository,
        campaign: CampaignRecord,
        config: CampaignConfig,
        proposer: Proposer,
        ledger: Ledger,
        backend: Backend,
        on_event: Callable[[Event], None] = lambda event: None,
        force: bool = False,
    ):
        self.repo, self.campaign, self.config = repository, campaign, config  # config: the workers' recipe
        self.proposer, self.ledger, self.backend = proposer, ledger, backend
        self.on_event, self.force = on_event, force
        self.seeds = proposer.evolution.seeds
        self._job_frame = job_frame(config)

    @property
    def evolution(self) -> Evolution:
        return self.proposer.evolution

    # ----------------------------------------------------------------- the loop

    def run(self) -> None:
        """Drive the campaign to its end; CampaignBusy if another live driver holds it. The
        process state it sets for the run (torch threads, a frozen collector) is restored after."""
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the driver's torch work (the gate) is tiny; leave the cores to workers
        try:
            self._run()
        finally:
            torch.set_num_threads(threads)
            gc.unfreeze()

    def _run(self) -> None:
        cid = self.campaign.id
        host, pid = this_driver()
        try:
            self.repo.claim_driver(cid, host, pid, refusal(self.config.name, self.force))
        except CampaignBusy:
            self.backend.shutdown()
            raise
        try:
            self._drive(cid, host, pid)
        finally:
            self.repo.release_driver(cid, host, pid)
        self.repo.set_campaign_status(self.config.name, "finished")
        self.repo.checkpoint()  # the database file alone now holds the whole campaign
        self.on_event({"kind": "finished"})

    def _drive(self, cid: int, host: str, pid: int) -> None:
        """Ask for candidates while the backend has room, tell it each result, until every birth
        is recorded. Each batch of results and the proposals they make room for is one commit."""
        self.ledger.restore()
        for individual in self.repo.unfinished(cid):  # in flight when the last driver stopped
            self._submit(individual, self.repo.mark_running(individual.id))
        birth = self.repo.next_birth(cid)
        # Everything alive now (torch, pydantic, the corpus) lives as long as the driver: keep it
        # out of the collector's scans, which otherwise cost ~1 ms per individual.
        gc.freeze()
        beat = time.monotonic()
        try:
            results: list = []
            streak = FailureStreak()
            while True:
                with self.repo.batch():
                    for key, raw in results:
                        individual, result = self.ledger.tell(key, as_result(raw))
                        self._emit(individual, result)
                        streak.add(result)
                    dispatch: list[IndividualRecord] = []
                    while (
                        self.backend.in_flight() + len(dispatch) < self.backend.capacity
                        and birth < self.config.max_evals
                        and not (birth >= len(self.seeds) and self._awaits_seeds(dispatch))
                    ):
                        candidate = self.proposer.ask(
                            birth, self.ledger.population(len(self.seeds)), self.ledger.member
                        )
                        individual = self.ledger.admit(birth, candidate)
                        if candidate.verdict is None:
                            dispatch.append(individual)
                        else:
                            self._emit(individual, candidate.verdict)
                        birth += 1
                limit = self.config.max_failures_in_a_row
                if limit is not None and streak.length >= limit:  # after the commit: every failure is recorded
                    raise CampaignFailing(
                        f"campaign {self.config.name} stopped: {streak.length} candidates in a row failed with "
                        f"the same cause: {streak.cause}; fix it, then `archevo search resume {self.config.name}`"
                    )
                if results:
                    self._prune_weights()
                for individual in dispatch:  # after the commit: a worker never sees an unstored individual
                    self._submit(individual, individual.attempt)
                if self.backend.in_flight() == 0:
                    break
                results = self.backend.wait(timeout=1.0)
                if time.monotonic() - beat > HEARTBEAT_S:
                    if not self.repo.heartbeat(cid, host, pid):
                        raise CampaignBusy(
                            f"campaign {self.config.name} was taken over by another driver "
                            "(search resume --force); this one stops"
                        )
                    beat = time.monotonic()
        finally:
            self.backend.shutdown()

    def _awaits_seeds(self, dispatch: list[IndividualRecord]) -> bool:
        """Whether children wait for the seeds (the ladder's seed rule) while a seed is training."""
        return (self.backend.in_flight() > 0 or bool(dispatch)) and self.ledger.awaits_seeds(len(self.seeds))

    def _submit(self, individual: IndividualRecord, attempt: int) -> None:
        """Send a stored, running individual to the backend with the current thresholds."""
        thresholds = self.ledger.thresholds(individual.root_seed)
        self.ledger.sent(individual, attempt, thresholds)
        screen: dict[str, Any] = (
            {"screen": [], "screen_bars": {}}
            if individual.parent_id is None
            else {"screen_bars": self.ledger.screen_bars(individual.root_seed)}
        )  # a seed's scores are recorded already
        job = {
            **self._job_frame,
            **screen,
            "architecture_json": individual.architecture_json,
            "thresholds": thresholds,
            "weights_path": self._weights_path(individual) if self.config.keep_weights else None,
        }
        self.backend.submit((individual.id, attempt), job)
        self.on_event({"kind": "dispatched", "id": individual.id, "birth": individual.birth})

    def _weights_path(self, individual: IndividualRecord) -> str:
        return str((self._weights_folder() / f"{individual.id}.safetensors").resolve())

    def _weights_folder(self) -> Path:
        return Path(self.config.weights_dir) / self.config.name

    def _prune_weights(self) -> None:
        """Delete the kept weights of finished individuals outside the current top
        ``keep_weights`` (in-flight ones may be writing theirs), so disk stays bounded."""
        keep = self.config.kept_weights()
        folder = self._weights_folder()
        if keep is None or not folder.is_dir():
            return
        kept = {i.id for i in [*self.repo.top(self.campaign.id, keep), *self.repo.unfinished(self.campaign.id)]}
        for path in folder.glob("*.safetensors"):
            if path.stem.isdigit() and int(path.stem) not in kept:
                path.unlink(missing_ok=True)

    def _emit(self, individual: IndividualRecord, result: EvalResult) -> None:
        self.on_event(
            {
                "kind": "recorded",
                "id": individual.id,
                "birth": individual.birth,
                "status": result.status,
                "fitness": result.fitness,
                "mutation": individual.mutation,
                "rejections": dict(self.proposer.rejections),
                "invalid": dict(self.proposer.stats.invalid),
            }
        )


def make_backend(config: CampaignConfig, job: JobFunction = run_job) -> Backend:
    """The configured backend. On a cluster the driver joins (``ray_address``), the tokenized
    corpus travels through Ray's object store: the other nodes have no cache of it."""
    if config.backend == "inprocess":
        return InProcessBackend(job)
    shared = (
        None
        if config.ray_address is None
        else {
            "corpus": load_tokenized(
                config.corpus, config.vocab_size, max_train_tokens=config.max_train_tokens
            ).detached()
        }
    )
    return RayBackend(
        job,
        config.workers,
        address=config.ray_address,
        gpus_per_worker=config.gpus_per_worker,
        max_retries=config.max_retries,
        timeout_s=config.timeout(),
        shared=shared,
    )
