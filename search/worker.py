"""What a worker runs for one candidate: the task screen, then (if it passes) load the cached
corpus, train, report.

A job is plain data (it crosses process boundaries as JSON-able dicts); the result is an
``EvalResult``: the trainer's record, each hurdle with its bar and verdict, the screen's scores. Nothing here writes
to the database: the driver is the only writer.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from evaluator.budget import parse_budget
from evaluator.tokenization import TokenizedCorpus, load_tokenized
from evaluator.train import TrainConfig, TrainResult, train
from primitives.program import Architecture, ModelSpec
from primitives.validate import parse_architecture
from storage import EvalResult, HurdleOutcome

from .hurdles import HurdlePolicy
from .screen import run_screen, shortfall


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
    screen: list[str] = []  # task names; empty: no screen
    screen_bars: dict[str, float] = {}  # the accuracy each task needs (the seed's minus the margin)
    screen_seed: int = 0
    screen_steps: int | None = None
    return_weights: bool = False  # a worker on another machine sends the weights file back in the result


def assigned_device(configured: str) -> str:
    """Where this job trains: on CUDA when Ray reserved a GPU for the task (``gpus_per_worker``
    > 0; Ray makes it the task's only visible device), else the recipe's device."""
    try:
        import ray

        if ray.is_initialized() and ray.get_gpu_ids():
            return "cuda"
    except (ImportError, RuntimeError):
        pass
    return configured


def screen_step(job: EvalJob, architecture: Architecture) -> tuple[list[dict[str, Any]], EvalResult | None]:
    """(the screen's scores, the screened-out result if the child fails a bar, else None)."""
    scores = (
        run_screen(architecture, job.screen, job.screen_seed, job.screen_steps, job.train.threads) if job.screen else []
    )
    reason = shortfall(scores, job.screen_bars)
    return scores, None if reason is None else EvalResult(status="screened_out", message=reason, screen=scores)


def evaluation(trained: TrainResult, thresholds: list[float | None], passed: list[bool], screen: list) -> EvalResult:
    """The trainer's record as the campaign's result: each hurdle with the bar it faced."""
    hurdles = [
        HurdleOutcome(
            fraction=h.fraction,
            loss=h.loss,
            step=h.step,
            threshold=thresholds[i] if i < len(thresholds) else None,
            passed=passed[i] if i < len(passed) else True,
        )
        for i, h in enumerate(trained.hurdle_losses)
    ]
    return EvalResult(**trained.model_dump(mode="json", exclude={"hurdle_losses"}), hurdles=hurdles, screen=screen)


def run_job(payload: dict[str, Any], corpus: TokenizedCorpus | None = None) -> EvalResult:
    """Train one candidate; every failure comes back as a result, never as an exception.
    ``corpus``: the tokenized corpus when the driver shipped it (a cluster's other nodes have
    no cache of it), else the local cache is loaded."""
    job = EvalJob.model_validate(payload)
    architecture = parse_architecture(job.architecture_json)
    try:
        scores, screened_out = screen_step(job, architecture)
    except Exception as error:  # noqa: BLE001 - a program the task frame cannot run fails as a candidate
        return EvalResult.failed("error", f"task screen: {type(error).__name__}: {' '.join(str(error).split())}"[:500])
    if screened_out is not None:
        return screened_out
    data = (
        corpus
        if corpus is not None
        else load_tokenized(job.corpus, job.vocab_size, max_train_tokens=job.max_train_tokens)
    )
    passed: list[bool] = []

    def on_hurdle(index: int, fraction: float, loss: float) -> bool:
        passed.append(HurdlePolicy.passes(loss, job.thresholds[index] if index < len(job.thresholds) else None))
        return passed[-1]

    config = job.train.model_copy(update={"device": assigned_device(job.train.device)})
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder) / "weights.safetensors"  # sent back to the driver, not kept here
        local = scratch if job.return_weights else job.weights_path
        result = train(
            job.spec,
            architecture,
            data,
            parse_budget(job.budget),
            config,
            on_hurdle=on_hurdle,
            save_weights=local if job.weights_path else None,
        )
        outcome = evaluation(result, job.thresholds, passed, scores)
        if job.return_weights and result.weights:
            outcome = outcome.model_copy(update={"weights": job.weights_path, "weights_data": scratch.read_bytes()})
    return outcome


def land_weights(result: EvalResult) -> EvalResult:
    """The result without the weights a remote worker sent back, which are written (atomically)
    at the driver's path the job named."""
    if result.weights_data is None:
        return result
    if result.weights is None:
        raise ValueError("a worker sent weights back without the path to write them at")
    target = Path(result.weights)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.part")
    scratch.write_bytes(result.weights_data)
    os.replace(scratch, target)
    return result.model_copy(update={"weights_data": None})
