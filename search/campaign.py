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
import hashlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

import psutil
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from evaluator.budget import parse_budget
from evaluator.presets import DEFAULT_PRESET, get_preset
from evaluator.tasks import TASKS
from evaluator.tokenization import load_tokenized
from evaluator.train import RENAMED as TRAIN_RENAMED
from evaluator.train import TrainConfig
from primitives.cost import training_memory_bytes
from primitives.program import Architecture, ModelSpec
from primitives.renames import current_names, old_names
from primitives.seeds import SEEDS, seed
from storage import CampaignBusy, CampaignRecord, EvalResult, IndividualRecord, Repository

from .backends import Backend, InProcessBackend, JobFunction, RayBackend
from .evolution import AgingEvolution
from .hurdles import HurdlePolicy, halving_positions
from .ledger import Ledger
from .liveness import HEARTBEAT_S, refusal, this_driver
from .mutate import MUTATIONS
from .proposer import Event, Proposer
from .worker import EvalJob, run_job


#: CampaignConfig's renamed fields (old → new).
RENAMED = {"seed": "search_seed"}

#: A campaign name: safe in a path, a terminal and a URL (no separators, no markup).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class CampaignConfig(BaseModel):
    """A campaign's whole recipe; stored with the campaign so ``resume`` needs only its name.

    ``preset`` (evaluator.presets, default ``cpu``) gives ``spec``, ``train``, ``budget``,
    ``vocab_size`` and ``max_train_tokens`` wherever they are not given; a partial ``spec`` or
    ``train`` (a TOML table) updates the preset's. The search evaluates validation loss only at
    its hurdles (no ``eval_points``) unless ``train`` asks for them."""

    model_config = ConfigDict(extra="forbid")

    name: str = "demo"
    preset: str = DEFAULT_PRESET
    search_seed: int = Field(0, ge=0, lt=2**63)  # the search's draws and the screen's tasks (was `seed`)
    seed_programs: list[str] = Field(default_factory=lambda: ["transformer"], min_length=1)
    population: int = Field(16, ge=1, le=1_000_000)
    sample: int = Field(4, ge=1, le=1_000_000)
    max_evals: int = Field(32, ge=1, le=1_000_000_000)
    budget: str
    hurdles: int = Field(2, ge=0, le=8)
    # Where the hurdles stand, as fractions of the budget (strictly increasing, in (0, 1));
    # default: Primer's halving positions for ``hurdles``. Given, it sets ``hurdles``.
    hurdle_fractions: list[float] | None = Field(None, max_length=8)
    hurdle_rule: Literal["quantile", "mean"] = "quantile"
    hurdle_quantile: float = Field(0.5, gt=0, lt=1)
    hurdle_min_samples: int = Field(4, ge=1)
    workers: int = Field(2, ge=1, le=4096)
    backend: Literal["ray", "inprocess"] = "ray"
    ray_address: str | None = None
    gpus_per_worker: float = Field(0, ge=0)
    corpus: str = "default"
    vocab_size: int = Field(ge=256)  # these four come from the preset unless given
    max_train_tokens: int | None = None
    spec: ModelSpec
    train: TrainConfig
    max_parameters: int | None = None
    # A child's cost relative to its seed's (training FLOPs per token, parameters): outside
    # these bounds it is recorded as rejected, untrained. The defaults admit every known-good
    # edit of the calibration panel (within ±10 % of the seed) and rule out deleting a
    # sublayer (0.50-0.62× at the cpu preset); see experiments/calibration/README.md. None
    # (false in TOML) turns a bound off.
    max_flops_ratio: float | None = Field(1.25, gt=0)
    min_flops_ratio: float | None = Field(0.8, gt=0)
    max_parameters_ratio: float | None = Field(1.25, gt=0)
    mutation_weights: dict[str, float] | None = None
    # The task screen (evaluator.tasks): before training, a child scores these tasks; below
    # its seed's accuracy minus screen_margin on any of them it is recorded screened_out.
    screen: list[str] = Field(default_factory=list)
    screen_margin: float = Field(0.1, ge=0, le=1)
    screen_steps: int | None = Field(None, ge=1, le=1_000_000)  # training steps per task (default: the task's)
    eval_timeout_s: float | None = Field(None, gt=0)
    keep_weights: bool = False
    weights_dir: str = "archevo-weights"
    max_retries: int = Field(2, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = current_names(data, RENAMED, "campaign config")
        try:
            preset = get_preset(data.get("preset", DEFAULT_PRESET))
        except KeyError as error:
            raise ValueError(error.args[0]) from None
        spec = {**preset.spec.model_dump(), **_given(data.get("spec"))}
        if "vocab_size" in data:
            spec["vocab_size"] = data["vocab_size"]
        train = {
            **preset.train.model_dump(),
            "eval_points": 0,
            "threads": 1,
            **current_names(_given(data.get("train")), TRAIN_RENAMED, "train"),
        }
        return {
            **data,
            "spec": spec,
            "train": train,
            "vocab_size": spec["vocab_size"],
            "budget": data.get("budget", preset.budget),
            "max_train_tokens": data.get("max_train_tokens", preset.max_train_tokens),
        }

    @field_validator("max_flops_ratio", "min_flops_ratio", "max_parameters_ratio", mode="before")
    @classmethod
    def _false_is_off(cls, bound: Any) -> Any:
        return None if bound is False else bound  # TOML has no null: `max_flops_ratio = false`

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not NAME.fullmatch(name):
            raise ValueError(
                f"campaign name {name!r} is not a plain name: letters, digits, '_', '-', '.', "
                "starting with a letter or digit, at most 100 characters"
            )
        return name

    @model_validator(mode="after")
    def _sample_fits(self) -> "CampaignConfig":
        if self.sample > self.population:
            raise ValueError(f"sample {self.sample} is larger than the population {self.population}")
        return self

    @field_validator("budget")
    @classmethod
    def _budget_parses(cls, budget: str) -> str:
        parse_budget(budget)
        return budget

    @field_validator("hurdle_fractions")
    @classmethod
    def _increasing_fractions(cls, fractions: list[float] | None) -> list[float] | None:
        if fractions is not None and not all(a < b for a, b in zip([0.0, *fractions], [*fractions, 1.0])):
            raise ValueError(f"hurdle_fractions must increase strictly within (0, 1), got {fractions}")
        return fractions

    @model_validator(mode="after")
    def _hurdle_count(self) -> "CampaignConfig":
        if self.hurdle_fractions is not None:
            if "hurdles" in self.model_fields_set and self.hurdles != len(self.hurdle_fractions):
                raise ValueError(
                    f"hurdles = {self.hurdles} but hurdle_fractions has {len(self.hurdle_fractions)}: give one of them"
                )
            self.hurdles = len(self.hurdle_fractions)
        return self

    @field_validator("seed_programs")
    @classmethod
    def _seeds_exist(cls, names: list[str]) -> list[str]:
        return _known(names, SEEDS, "seed program")

    @field_validator("screen")
    @classmethod
    def _known_tasks(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError(f"a task is named twice in {names}")
        return _known(names, TASKS, "task")

    @field_validator("mutation_weights")
    @classmethod
    def _known_mutations(cls, weights: dict[str, float] | None) -> dict[str, float] | None:
        if weights and set(weights) - set(MUTATIONS):
            raise ValueError(
                f"unknown mutation(s) {sorted(set(weights) - set(MUTATIONS))}; known: {', '.join(MUTATIONS)}"
            )
        return weights

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> "CampaignConfig":
        with open(path, "rb") as handle:
            data = current_names(tomllib.load(handle), RENAMED, str(path))
        return cls.model_validate({**data, **{k: v for k, v in overrides.items() if v is not None}})

    def hurdle_policy(self) -> HurdlePolicy:
        positions = halving_positions(self.hurdles) if self.hurdle_fractions is None else self.hurdle_fractions
        return HurdlePolicy(
            tuple(positions), rule=self.hurdle_rule, quantile=self.hurdle_quantile, min_samples=self.hurdle_min_samples
        )

    def recipe(self) -> str:
        """What makes two evaluations comparable: fitness is reused only under the same recipe."""
        keys: tuple[str, ...] = ("spec", "budget", "train", "corpus", "vocab_size", "max_train_tokens", "hurdles")
        if self.hurdle_fractions is not None:  # (absent from older campaigns' recipes: they keep their hash)
            keys += ("hurdle_fractions",)
        if self.screen:  # a screened-out result is reused only under the same screen
            keys += ("screen", "screen_margin", "screen_steps", "search_seed")
        dump = self.model_dump(mode="json", include=set(keys))
        dump["train"] = old_names(dump["train"], TRAIN_RENAMED)  # the names stored campaigns hashed
        return hashlib.sha256(json.dumps(old_names(dump, RENAMED), sort_keys=True).encode()).hexdigest()[:16]

    def timeout(self) -> float:
        """Seconds before an evaluation is cancelled: ``eval_timeout_s``, else derived from the
        budget (a FLOPs or tokens budget assumes a slow machine: 200 tokens/s, 1 GFLOP/s)."""
        if self.eval_timeout_s is not None:
            return self.eval_timeout_s
        budget = parse_budget(self.budget)
        seconds = {"seconds": 3 * budget.amount, "tokens": budget.amount / 200, "flops": budget.amount / 1e9}
        return seconds[budget.kind] + 120


def _known(names: list[str], registry: dict[str, Any], what: str) -> list[str]:
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; known: {', '.join(registry)}")
    return names


def as_result(raw: EvalResult | dict[str, Any]) -> EvalResult:
    """What a backend returned, as a result: a worker's EvalResult, or a backend's failure dict.
    Anything else is the worker's error, recorded as one."""
    if isinstance(raw, EvalResult):
        return raw
    try:
        return EvalResult.model_validate(raw)
    except ValueError as error:
        return EvalResult.failed("error", f"the worker's result does not parse: {' '.join(str(error).split())}"[:500])


def _check_memory(config: CampaignConfig, seeds: dict[str, Architecture]) -> None:
    """Refuse a campaign whose seeds cannot train here, before anything is allocated."""
    free = psutil.virtual_memory().available
    for name, architecture in seeds.items():
        need = config.workers * training_memory_bytes(config.spec, architecture, config.train.batch_size)
        if need > free:
            raise ValueError(
                f"{config.workers} workers training {name} need about {need / 2**30:.1f} GiB, "
                f"{free / 2**30:.1f} GiB is free: check spec (layers, seq_len, d_model), batch_size, workers"
            )


def _given(value: Any) -> dict[str, Any]:
    """The fields a user gave: all of a model instance's, a dict's own."""
    if value is None:
        return {}
    return value.model_dump() if isinstance(value, BaseModel) else dict(value)


def run_recipe(config: CampaignConfig) -> CampaignConfig:
    """What the workers run: the config with its hurdle positions in the training loop. Derived,
    never written back: the caller's object and the stored config stay as given."""
    positions = list(config.hurdle_policy().positions)
    return config.model_copy(update={"train": config.train.model_copy(update={"hurdle_fractions": positions})})


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
    on_event({"kind": "preparing", "message": f"tokenizing corpus {config.corpus!r}"})
    load_tokenized(config.corpus, config.vocab_size, max_train_tokens=config.max_train_tokens)
    backend = backend or make_backend(config, job)
    record = repository.get_campaign(config.name) or repository.create_campaign(
        config.name, config.search_seed, config.model_dump(mode="json")
    )
    run = run_recipe(config)
    recipe = run.recipe()
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


class Campaign:
    """Runs (or resumes) one campaign until exactly ``max_evals`` individuals are recorded: the
    proposer asks, the backend trains, the ledger tells. ``build_campaign`` assembles one."""

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
    def evolution(self) -> AgingEvolution:
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
            while True:
                with self.repo.batch():
                    for key, raw in results:
                        self._emit(*self.ledger.tell(key, as_result(raw)))
                    dispatch: list[IndividualRecord] = []
                    while (
                        self.backend.in_flight() + len(dispatch) < self.backend.capacity
                        and birth < self.config.max_evals
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

    def _submit(self, individual: IndividualRecord, attempt: int) -> None:
        """Send a stored, running individual to the backend with the current thresholds."""
        thresholds = self.ledger.thresholds()
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
        return str((Path(self.config.weights_dir) / self.config.name / f"{individual.id}.safetensors").resolve())

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
                "invalid": dict(self.evolution.stats.invalid),
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
