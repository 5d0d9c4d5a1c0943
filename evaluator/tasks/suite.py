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
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from primitives.cost import training_flops
from primitives.program import Architecture

from ..compiler import check_causality, compile_model
from ..runtime import LanguageModel
from .instances import IGNORE
from .registry import TaskError, TaskRecipe, TaskScore, get_task, task_data, task_spec


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
