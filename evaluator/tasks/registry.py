"""The synthetic tasks: their recipe, their data and their registry (numpy only, so that the
campaign config and the CLI can name and check tasks without loading torch; scoring a program
on a task is ``suite.score_task``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from primitives.program import ModelSpec

from . import instances
from .instances import Settings

Generate = Callable[[np.random.Generator, int, Any, bool], tuple[np.ndarray, np.ndarray]]


class TaskError(ValueError):
    """A task name, setting or program that cannot be scored; the message is one line."""


class TaskRecipe(BaseModel):
    """The frame and the training every task shares; ``steps`` overrides every task's own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    d_model: int = Field(64, ge=8)
    n_layers: int = Field(2, ge=1, le=64)
    n_heads: int = Field(4, ge=1)
    steps: int | None = Field(None, ge=1, le=1_000_000)  # None: each task's own
    batch_size: int = Field(16, ge=1, le=4096)
    lr: float = Field(3e-3, gt=0)
    warmup_fraction: float = Field(0.1, ge=0, lt=1)
    train_examples: int = Field(4096, ge=1)
    test_examples: int = Field(256, ge=1)


@dataclass(frozen=True)
class Task:
    """One task of the suite: its instances, default settings and what guessing scores."""

    name: str
    description: str
    generate: Generate
    settings: Settings
    chance: Callable[[Any], float]
    readout: Literal["tokens", "probe"] = "tokens"  # probe: decode the last position (compression)
    steps: int = 400

    def configure(self, overrides: dict[str, Any] | None) -> Settings:
        """The default settings updated by ``overrides``, validated (TaskError names the bad one)."""
        try:
            cls = type(self.settings)
            return cls.model_validate({**self.settings.model_dump(exclude=set(cls.derived)), **(overrides or {})})
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            message = problem["msg"].removeprefix("Value error, ")
            raise TaskError(
                f"task {self.name}: {f'{where}: ' if where else ''}{message} (known settings: "
                f"{', '.join(f for f in type(self.settings).model_fields if f not in type(self.settings).derived)})"
            ) from None


TASKS: dict[str, Task] = {}


def _register(task: Task) -> None:
    TASKS[task.name] = task


_register(
    Task(
        "in_context_recall",
        "MAD's multi-query recall: adjacent key and value tokens; asks a value whose "
        "key came before (needs binding a value to its key, then retrieval)",
        instances.in_context_recall,
        instances.RecallSettings(),
        chance=lambda s: 2 / (s.vocab_size - s.noise_vocab),
    )
)
_register(
    Task(
        "noisy_in_context_recall",
        "in-context recall with noise pairs from a separate vocabulary "
        "(MAD: vocabulary 32 with 16 noise tokens, 20 % noise)",
        instances.in_context_recall,
        instances.RecallSettings(vocab_size=32, noise_vocab=16, frac_noise=0.2),
        chance=lambda s: 2 / (s.vocab_size - s.noise_vocab),
    )
)
_register(
    Task(
        "fuzzy_in_context_recall",
        "in-context recall whose keys and values are motifs of 1-2 tokens "
        "(MAD: 1-3); test keys at the largest motif size",
        instances.fuzzy_in_context_recall,
        instances.FuzzyRecallSettings(),
        chance=lambda s: 1 / ((s.vocab_size - 1) // 2),
    )
)
_register(
    Task(
        "pair_recall",
        "in-context recall with each key-value pair one token: retrieval by content "
        "alone, which one attention layer learns in a few hundred steps",
        instances.pair_recall,
        instances.PairRecallSettings(),
        chance=lambda s: 1 / s.n_values,
    )
)
_register(
    Task(
        "selective_copying",
        "copy the non-blank tokens, in order, after the copy token",
        instances.selective_copying,
        instances.CopySettings(),
        chance=lambda s: 1 / (s.vocab_size - 2),
    )
)
_register(
    Task(
        "memorization",
        "a fixed key → value map shared by every instance (what the weights store)",
        instances.memorization,
        instances.MemorizationSettings(),
        chance=lambda s: 1 / ((s.vocab_size - 1) // 2),
    )
)
_register(
    Task(
        "compression",
        "every earlier token read back by a linear probe from the state at the last "
        "position (MAD's encoder-decoder bottleneck, decoder-only)",
        instances.compression,
        instances.CompressionSettings(),
        chance=lambda s: 1 / (s.vocab_size - 1),
        readout="probe",
    )
)

DEFAULT_SUITE = tuple(TASKS)


class TaskScore(BaseModel):
    """A program's result on one task."""

    task: str
    accuracy: float
    chance: float
    status: Literal["ok", "diverged"] = "ok"
    final_loss: float | None = None
    steps: int
    tokens: int  # trained on: steps × batch × sequence length
    flops: float  # training FLOPs of those tokens (registry cost model, as for language modelling)
    seconds: float
    settings: dict[str, Any]


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]


def task_spec(settings: Settings, recipe: TaskRecipe) -> ModelSpec:
    return ModelSpec(
        vocab_size=settings.vocab_size,
        d_model=recipe.d_model,
        n_layers=recipe.n_layers,
        n_heads=recipe.n_heads,
        seq_len=settings.seq_len,
    )


def task_data(
    task: Task, settings: Settings, recipe: TaskRecipe, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(training set, test set) from generators seeded by (seed, task): the same on every
    machine. Test instances whose input equals a training input are dropped."""
    stream = zlib.crc32(task.name.encode())
    train = task.generate(np.random.default_rng([seed, stream, 0]), recipe.train_examples, settings, False)
    seen = {row.tobytes() for row in train[0]}
    inputs, targets = task.generate(np.random.default_rng([seed, stream, 1]), 2 * recipe.test_examples, settings, True)
    fresh = np.array([row.tobytes() not in seen for row in inputs])
    if fresh.sum() < recipe.test_examples // 2:
        raise TaskError(
            f"task {task.name}: only {fresh.sum()} test instances differ from the training set; "
            "raise seq_len or vocab_size"
        )
    return train, (inputs[fresh][: recipe.test_examples], targets[fresh][: recipe.test_examples])
