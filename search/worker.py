"""What a worker runs for one candidate: the task screen, then (if it passes) load the cached
corpus, train, report.

A job is plain data (it crosses process boundaries as JSON-able dicts); the result is the
trainer's record plus which hurdles were passed and the screen's scores. Nothing here writes
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
from evaluator.train import TrainConfig, train
from primitives.program import Architecture, ModelSpec
from primitives.validate import parse_architecture

from .hurdles import HurdlePolicy
from .screen import run_screen, shortfall


WEIGHTS_BYTES = "weights_bytes"  # the result key a remote worker's weights file travels under


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


def screen_step(job: EvalJob, architecture: Architecture) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(the screen's scores, the screened-out result if the child fails a bar, else None)."""
    scores = (
        run_screen(architecture, job.screen, job.screen_seed, job.screen_steps, job.train.threads) if job.screen else []
    )
    reason = shortfall(scores, job.screen_bars)
    return scores, None if reason is None else {"status": "screened_out", "message": reason, "screen": scores}


def run_job(job: dict[str, Any], corpus: TokenizedCorpus | None = None) -> dict[str, Any]:
    """Train one candidate; every failure comes back as a result, never as an exception.
    ``corpus``: the tokenized corpus when the driver shipped it (a cluster's other nodes have
    no cache of it), else the local cache is loaded."""
    job = EvalJob.model_validate(job)
    architecture = parse_architecture(job.architecture_json)
    try:
        scores, screened_out = screen_step(job, architecture)
    except Exception as error:  # noqa: BLE001 - a program the task frame cannot run fails as a candidate
        return {
            "status": "error",
            "message": f"task screen: {type(error).__name__}: {' '.join(str(error).split())}"[:500],
        }
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
        local = Path(folder) / "weights.safetensors" if job.return_weights else job.weights_path
        result = train(
            job.spec,
            architecture,
            data,
            parse_budget(job.budget),
            config,
            on_hurdle=on_hurdle,
            save_weights=local if job.weights_path else None,
        )
        record = result.model_dump(mode="json")
        if job.return_weights and result.weights:
            record["weights"], record[WEIGHTS_BYTES] = job.weights_path, Path(local).read_bytes()
    record["hurdles_passed"] = sum(passed)
    record["hurdle_passed"] = passed
    record["screen"] = scores
    return record


def land_weights(result: dict[str, Any]) -> dict[str, Any]:
    """The result without the weights a remote worker sent back, which are written (atomically)
    at the driver's path the job named."""
    if WEIGHTS_BYTES not in result:
        return result
    result = dict(result)
    data, target = result.pop(WEIGHTS_BYTES), Path(result["weights"])
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.part")
    scratch.write_bytes(data)
    os.replace(scratch, target)
    return result
