"""What one evaluation produced: the typed contract between the worker, the driver and the database.

The worker returns an ``EvalResult``, the driver completes it (fitness) and hands it to
``Repository.record_result``, which stores it whole as JSON and copies into the individual's
columns every field that the ``individuals`` table has a column of the same name for. Its
training metrics are ``primitives.measurement.Metrics``, which the trainer's record shares: a
new metric is one field there (see the README's developer notes); giving it a column is one more
in ``schema``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from primitives.measurement import Metrics

from .schema import FINAL_STATUSES

Status = Literal[FINAL_STATUSES]  # type: ignore[valid-type]  # the statuses a recorded result may have


class HurdleOutcome(BaseModel):
    """One hurdle as the run met it: where, the loss there, the bar in force and the verdict."""

    model_config = ConfigDict(extra="forbid")

    fraction: float
    loss: float | None
    step: int | None = None
    threshold: float | None = None  # None: too few results yet, everyone passes
    passed: bool = True


class EvalResult(Metrics):
    """One evaluation of one individual: how it ended, what training measured (``Metrics``) and
    what the driver found. Failures are results too (status and message)."""

    model_config = ConfigDict(extra="forbid")

    status: Status
    message: str = ""
    fitness: float | None = None  # what selection ranks: the final loss, or the loss at the hurdle that stopped it
    loss_curve: list[dict[str, Any]] = []  # the trainer's curve points, as JSON
    # the driver's findings
    fingerprint: str | None = None
    duplicate_of: int | None = None
    screen: list[dict[str, Any]] = []  # the task screen's scores (evaluator.tasks.TaskScore fields)
    hurdles: list[HurdleOutcome] = []
    hurdles_passed: int | None = None  # derived from ``hurdles``; a duplicate carries its original's
    # a remote worker's weights file on its way to the driver (never stored)
    weights_data: bytes | None = Field(None, exclude=True, repr=False)

    @model_validator(mode="after")
    def _count_passed(self) -> EvalResult:
        if self.hurdles_passed is None and self.hurdles:
            self.hurdles_passed = sum(h.passed for h in self.hurdles)
        return self

    @classmethod
    def failed(cls, status: Status, message: str) -> EvalResult:
        return cls(status=status, message=message)

    def with_fitness(self) -> EvalResult:
        """The result with its fitness: the final validation loss if it finished, the loss at the
        hurdle that stopped it, else None. A finished run without a usable loss is an error."""
        if self.status == "ok":
            loss = self.val_loss
        elif self.status == "stopped_at_hurdle":
            losses = [h.loss for h in self.hurdles if h.loss is not None]
            loss = losses[-1] if losses else None
        else:
            return self.model_copy(update={"fitness": None})
        if loss is not None and math.isfinite(loss):
            return self.model_copy(update={"fitness": loss})
        if self.status == "ok":  # a worker's claim the driver cannot use
            message = f"the worker reported ok with a validation loss of {self.val_loss!r}"
            return self.model_copy(update={"status": "error", "message": message, "fitness": None})
        return self.model_copy(update={"fitness": None})
