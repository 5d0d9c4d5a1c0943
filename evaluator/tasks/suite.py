"""Train a program on each synthetic task and score it: accuracy on the asked positions of
held-out instances.

Why: a language-modelling loss after a few hundred steps rewards deleting attention; these
tasks ask for what attention does (recall from the context, copying across noise) and what
the weights do (memorization, compression), and they take seconds on a CPU. MAD (Poli et
al. 2024) found such scores track compute-optimal perplexity at scale.

Each task trains the program's layers in a small frame of its own (``TaskRecipe``: width 64,
2 layers, the task's vocabulary and sequence length) with AdamW on a fixed training set and
scores a test set that shares no input sequence with it. Data and initial weights come from
the task's seed alone, so a score is the same on every machine (up to floating point).
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from primitives.cost import training_flops
from primitives.program import Architecture, ModelSpec

from ..compiler import check_causality, compile_model
from ..runtime import LanguageModel
from . import instances
from .instances import IGNORE, Settings

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


class _Probe(nn.Module):
    """Compression's readout: every earlier token from the residual stream at the last position."""

    def __init__(self, model: LanguageModel, d_model: int, tokens: int, vocab_size: int):
        super().__init__()
        self.model, self.tokens, self.vocab_size = model, tokens, vocab_size
        self.head = nn.Linear(d_model, tokens * vocab_size)

    def forward(self, idx: torch.Tensor) -> tuple[torch.Tensor, None]:
        """(logits [batch, tokens, vocab], None): the language model's output shape."""
        last = self.model.body(self.model.embed(idx))[:, -1]
        return self.head(last).view(idx.shape[0], self.tokens, self.vocab_size), None


def score_task(
    architecture: Architecture,
    name: str,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    recipe: TaskRecipe | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TaskScore:
    """Train ``architecture`` on task ``name`` and score it on held-out instances. TaskError for
    an unknown task, a bad setting or a program that looks ahead (not causal)."""
    task = get_task(name)
    recipe = recipe or TaskRecipe()
    settings = task.configure(overrides)
    spec = task_spec(settings, recipe)
    steps = recipe.steps or task.steps
    (train_x, train_y), (test_x, test_y) = task_data(task, settings, recipe, seed)
    start = time.perf_counter()
    torch.manual_seed(seed)
    lm = compile_model(spec, architecture)
    if task.readout == "tokens":
        try:
            check_causality(lm, spec, seed=seed)
        except ValueError as error:
            raise TaskError(f"program {architecture.name}: {error}") from None
    model = _Probe(lm, spec.d_model, train_y.shape[1], spec.vocab_size) if task.readout == "probe" else lm
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(0.9, 0.98), weight_decay=0.0)
    batches = np.random.default_rng([seed, zlib.crc32(task.name.encode()), 2])
    inputs, targets = torch.from_numpy(train_x), torch.from_numpy(train_y)
    warmup = max(1, int(recipe.warmup_fraction * steps))
    loss = torch.tensor(math.nan)
    status = "ok"
    tokens = recipe.batch_size * spec.seq_len  # per step
    for step in range(steps):
        for group in optimizer.param_groups:  # linear warmup, cosine decay to a tenth
            group["lr"] = recipe.lr * (
                min(1.0, (step + 1) / warmup)
                if step < warmup
                else 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
            )
        rows = torch.from_numpy(batches.integers(0, len(inputs), recipe.batch_size))
        logits = model(inputs[rows])[0]
        loss = F.cross_entropy(logits.flatten(0, 1), targets[rows].flatten(), ignore_index=IGNORE)
        if not torch.isfinite(loss):
            status = "diverged"
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if progress is not None:
            progress(step + 1, steps)
    accuracy = _accuracy(model, test_x, test_y) if status == "ok" else 0.0
    return TaskScore(
        task=name,
        accuracy=accuracy,
        chance=task.chance(settings),
        status=status,
        final_loss=loss.item() if torch.isfinite(loss) else None,
        steps=step + 1,
        tokens=tokens * (step + 1),
        flops=training_flops(spec, architecture) * tokens * (step + 1),
        seconds=time.perf_counter() - start,
        settings=settings.model_dump(),
    )


@torch.no_grad()
def _accuracy(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, batch: int = 64) -> float:
    """Share of the asked positions where the most likely token is the target."""
    model.eval()
    hits = asked = 0
    for i in range(0, len(inputs), batch):
        predicted = model(torch.from_numpy(inputs[i : i + batch]))[0].argmax(-1)
        target = torch.from_numpy(targets[i : i + batch])
        mask = target != IGNORE
        hits += int((predicted == target)[mask].sum())
        asked += int(mask.sum())
    return hits / max(asked, 1)
