"""What a training run measures: the one declaration of the metrics that the trainer fills
(``evaluator.train.TrainResult``) and storage remembers (``storage.EvalResult``).

It lives here, in pure data, because it is the one room both may import (storage knows only
primitives). Both records derive from ``Metrics``, so a new metric is one field below; storage
gives it a column when ``storage.schema`` has one of the same name. (The loss curve is declared
by each record: typed points for the trainer, their JSON for storage.)
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel

TrainStatus = Literal["ok", "stopped_at_hurdle", "diverged", "error", "timeout"]
#: How a training run can end (a recorded result may also be a duplicate, rejected or screened out).
TRAINING_STATUSES: tuple[str, ...] = get_args(TrainStatus)


class Metrics(BaseModel):
    """What training reached and what it cost; None where it was not measured (a run that never
    started, a result the driver made without training)."""

    val_loss: float | None = None
    perplexity: float | None = None
    bits_per_byte: float | None = None
    steps: int | None = None
    tokens: int | None = None
    seconds: float | None = None  # training time, evaluations excluded (what a seconds budget counts)
    wall_seconds: float | None = None  # everything: compile, FLOP count, evaluations
    compile_seconds: float | None = None  # the warm-up step (torch.compile, CUDA start-up): never budgeted
    flops: float | None = None
    parameters: int | None = None
    flops_per_token: float | None = None  # training (forward + backward) FLOPs per token, by the cost model
    forward_flops_per_token: float | None = None
    budget: str = ""
    diverged_step: int | None = None
    weights: str | None = None  # safetensors file of the trained weights, when kept
