"""A campaign's whole recipe, as the user gives it (TOML, the CLI, Python), validated field by
field, and the recipe its workers run, derived from it.

A preset (``evaluator.presets``) fills in the frame, the training recipe and the budget; old
field names are still read (``primitives.renames``); ``recipe()`` is the hash under which
fitness is reused, taken under the names stored campaigns hashed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from evaluator.budget import parse_budget
from evaluator.presets import DEFAULT_PRESET, get_preset
from evaluator.tasks import TASKS
from evaluator.training_config import RENAMED as TRAIN_RENAMED
from evaluator.training_config import TrainConfig
from primitives.program import ModelSpec, plain_name
from primitives.renames import current_names, old_names
from primitives.seeds import SEEDS

from .hurdles import HurdlePolicy, halving_positions
from .mutate import MUTATIONS, ProposalName
from .strategies import LADDER_MARGINS, LADDER_RUNGS, Strategy, StrategyName, Tournament, Uniform


#: CampaignConfig's renamed fields (old → new).
RENAMED = {"seed": "search_seed"}

#: What a campaign stored before these fields existed ran with (``from_stored`` reads them so).
LEGACY = {"strategy": "aging", "proposal": "uniform"}

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
    # How parents are chosen and runs stopped (search.strategies): aging (Primer's), random, or
    # ladder (stop-based successive halving inside the one schedule, over aging or random parents).
    strategy: StrategyName = "ladder"
    population: int = Field(16, ge=1, le=1_000_000)
    sample: int = Field(4, ge=1, le=1_000_000)
    ladder_parents: Literal["aging", "random"] = "aging"
    # The ladder's rungs, fractions of the budget (strictly increasing, in (0, 1)); a run goes on
    # past a rung while its loss there is within the rung's margin of its seed's (rung_rule
    # "seed") or in the top 1/eta of the runs that reached the rung ("top": ASHA).
    rungs: list[float] | None = Field(None, min_length=1, max_length=8)
    rung_rule: Literal["seed", "top"] = "seed"
    rung_margins: list[float] | None = Field(None, min_length=1, max_length=8)
    eta: int = Field(3, ge=2, le=100)
    # How a mutation draws what it inserts (search.mutate): "family" (an op family, then an op
    # in it, attribute defaults favoured) or "uniform" (any registry op: campaigns before it).
    proposal: ProposalName = "family"
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
    # A candidate trains on one device: a worker gets one GPU or a share of one (0.25: four
    # candidates packed on each GPU).
    gpus_per_worker: float = Field(0, ge=0, le=1)
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
    # The weights of the campaign's current top keep_weights individuals stay in weights_dir
    # (those that fall out are deleted, so disk stays bounded); 0 keeps none, "all" every one.
    keep_weights: Annotated[int, Field(ge=0)] | Literal["all"] = 10
    weights_dir: str = Field(default_factory=lambda: os.environ.get("ARCHEVO_WEIGHTS_DIR", "archevo-weights"))
    max_retries: int = Field(2, ge=0)
    # A campaign whose candidates fail this many times in a row with one cause (a full disk, a
    # damaged corpus cache) stops with that cause instead of spending its budget on failures.
    max_failures_in_a_row: int | None = Field(5, ge=1)

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

    @field_validator("keep_weights", mode="before")
    @classmethod
    def _keep_flag(cls, keep: Any) -> Any:
        if isinstance(keep, bool):  # campaigns stored before the count: true kept every one
            return "all" if keep else 0
        return keep

    def kept_weights(self) -> int | None:
        """How many individuals keep their weights (None: all of them)."""
        return None if self.keep_weights == "all" else self.keep_weights

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        return plain_name(name, NAME, "campaign name", "letters, digits, '_', '-', '.'")

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

    @field_validator("rungs")
    @classmethod
    def _rungs_inside_budget(cls, rungs: list[float] | None) -> list[float] | None:
        for rung in rungs or []:
            if not 0 < rung < 1:
                raise ValueError(f"rung {rung:g} is not inside the budget: rungs are fractions of it, in (0, 1)")
        if rungs is not None and any(a >= b for a, b in zip(rungs, rungs[1:])):
            raise ValueError(f"rungs must increase strictly, got {rungs}")
        return rungs

    @field_validator("rung_margins")
    @classmethod
    def _margins_finite(cls, margins: list[float] | None) -> list[float] | None:
        if margins is not None and not all(0 <= m < 100 for m in margins):
            raise ValueError(f"rung margins are nats in [0, 100), got {margins}")
        return margins

    @model_validator(mode="after")
    def _gpus_through_ray(self) -> "CampaignConfig":
        if self.backend == "ray" and self.train.device.startswith("cuda") and not self.gpus_per_worker:
            raise ValueError(
                f"train.device = {self.train.device!r} with the ray backend needs gpus_per_worker > 0: Ray then "
                "gives each worker its own GPU (or a share of one); without it every worker trains on GPU 0"
            )
        return self

    @model_validator(mode="after")
    def _ladder_fields(self) -> "CampaignConfig":
        ladder = self._changed("eta", "ladder_parents", "rung_margins", "rung_rule", "rungs")
        if self.strategy != "ladder" and ladder:
            raise ValueError(f"{ladder[0]}: only the ladder strategy has it (strategy = {self.strategy})")
        hurdles = self._changed("hurdle_fractions", "hurdles")
        if self.strategy == "ladder" and hurdles:
            raise ValueError(
                f'{hurdles[0]}: the ladder stops runs at its rungs; give rungs, or strategy = "aging" for Primer\'s hurdles'
            )
        if self.rung_rule == "seed" and len(self.margins()) != len(self.ladder_rungs()):
            raise ValueError(
                f"rung_margins: {len(self.margins())} margins for {len(self.ladder_rungs())} rungs; give one per rung"
            )
        return self

    def _changed(self, *fields: str) -> list[str]:
        """Which of ``fields`` differ from their defaults (a stored config holds every field)."""
        return [f for f in fields if getattr(self, f) != type(self).model_fields[f].default]

    def ladder_rungs(self) -> list[float]:
        return list(LADDER_RUNGS) if self.rungs is None else self.rungs

    def margins(self) -> list[float]:
        return list(LADDER_MARGINS) if self.rung_margins is None else self.rung_margins

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
    def from_stored(cls, stored: dict[str, Any]) -> "CampaignConfig":
        """A stored campaign's config: fields it predates read as what it ran with."""
        return cls.model_validate({**LEGACY, **stored})

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> "CampaignConfig":
        with open(path, "rb") as handle:
            data = current_names(tomllib.load(handle), RENAMED, str(path))
        return cls.model_validate({**data, **{k: v for k, v in overrides.items() if v is not None}})

    def hurdle_policy(self) -> HurdlePolicy:
        """Where runs are judged and by what rule: the ladder's rungs, or Primer's hurdles."""
        if self.strategy == "ladder":
            rungs = tuple(self.ladder_rungs())
            if self.rung_rule == "seed":
                return HurdlePolicy(rungs, rule="seed", margins=tuple(self.margins()))
            return HurdlePolicy(rungs, quantile=1 / self.eta, min_samples=self.hurdle_min_samples)
        positions = halving_positions(self.hurdles) if self.hurdle_fractions is None else self.hurdle_fractions
        return HurdlePolicy(
            tuple(positions), rule=self.hurdle_rule, quantile=self.hurdle_quantile, min_samples=self.hurdle_min_samples
        )

    def search_strategy(self) -> Strategy:
        """The named strategy: its parent selection over the window and its pruner."""
        parents = self.ladder_parents if self.strategy == "ladder" else self.strategy
        selection = Tournament(self.sample) if parents == "aging" else Uniform()
        return Strategy(self.strategy, selection, self.population, self.hurdle_policy())

    def recipe(self) -> str:
        """What makes two evaluations comparable: fitness is reused only under the same recipe."""
        keys: tuple[str, ...] = ("spec", "budget", "train", "corpus", "vocab_size", "max_train_tokens", "hurdles")
        if self.hurdle_fractions is not None:  # (absent from older campaigns' recipes: they keep their hash)
            keys += ("hurdle_fractions",)
        if self.screen:  # a screened-out result is reused only under the same screen
            keys += ("screen", "screen_margin", "screen_steps", "search_seed")
        dump = self.model_dump(mode="json", include=set(keys))
        if self.strategy == "ladder":  # the rungs are where its runs are judged (aging recipes keep their hash)
            dump["rungs"] = self.ladder_rungs()
        if dump["train"]["tf32"]:  # (absent from recipes before the switch: TF32 was always on)
            del dump["train"]["tf32"]
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
