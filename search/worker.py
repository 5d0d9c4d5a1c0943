"""What a worker runs for one candidate: load the cached corpus, train, report.

A job is plain data (it crosses process boundaries as JSON-able dicts); the result is the
trainer's record plus which hurdles were passed. Nothing here writes to the database: the
driver is the only writer.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from evaluator.budget import parse_budget
from evaluator.tokenize import load_tokenized
from evaluator.train import TrainConfig, train
from primitives.program import ModelSpec
from primitives.validate import parse_architecture

from .hurdles import HurdlePolicy


class EvalJob(BaseModel):
    """Everything a worker needs; thresholds are the hurdle bars in force at dispatch."""

    model_config = ConfigDict(extra="forbid")

    architecture_json: str
    spec: ModelSpec
    budget: str
    train: TrainConfig
    corpus: str
    vocab_size: int
    max_train_tokens: int | None = None
    thresholds: list[float | None] = []
    weights_path: str | None = None


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train one candidate; every failure comes back as a result, never as an exception."""
    job = EvalJob.model_validate(job)
    data = load_tokenized(job.corpus, job.vocab_size, max_train_tokens=job.max_train_tokens)
    passed: list[bool] = []

    def on_hurdle(index: int, fraction: float, loss: float) -> bool:
        passed.append(HurdlePolicy.passes(loss, job.thresholds[index] if index < len(job.thresholds) else None))
        return passed[-1]

    result = train(job.spec, parse_architecture(job.architecture_json), data, parse_budget(job.budget),
                   job.train, on_hurdle=on_hurdle, save_weights=job.weights_path)
    record = result.model_dump(mode="json")
    record["hurdles_passed"] = sum(passed)
    record["hurdle_passed"] = passed
    return record
