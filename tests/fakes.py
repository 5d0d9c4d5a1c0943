"""Fake evaluators for the search tests and the search-loop benchmark.

They are module-level (Ray pickles them by reference, a subprocess driver imports them) and
deterministic: a candidate's loss is a function of its ``architecture_json`` alone, and the
hurdle record follows the thresholds in the job exactly as ``search.worker.run_job`` does
(a hurdle passes when its threshold is None or the loss is at most the threshold; the first
failed hurdle stops the run with status ``stopped_at_hurdle``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

from storage import EvalResult, HurdleOutcome

#: How much higher the loss is at each earlier hurdle than at the end (training improves it).
HURDLE_STEP = 0.5


def arch_loss(architecture_json: str) -> float:
    """A deterministic final loss in [3, 6) from the program text."""
    digest = hashlib.sha256(architecture_json.encode()).digest()
    return 3.0 + 3.0 * int.from_bytes(digest[:8], "big") / 2**64


def fake_result(job: dict[str, Any], loss: float | None = None) -> EvalResult:
    """The result ``run_job`` would return for ``job`` if training reached ``loss``."""
    loss = arch_loss(job["architecture_json"]) if loss is None else loss
    fractions = list(job.get("train", {}).get("hurdle_fractions", []))
    thresholds = list(job.get("thresholds", []))
    hurdles = []
    for index, fraction in enumerate(fractions):
        at_hurdle = loss + HURDLE_STEP * (len(fractions) - index)
        threshold = thresholds[index] if index < len(thresholds) else None
        passed = threshold is None or at_hurdle <= threshold
        hurdles.append(
            HurdleOutcome(fraction=fraction, loss=at_hurdle, step=index + 1, threshold=threshold, passed=passed)
        )
        if not passed:
            break
    stopped = bool(hurdles) and not hurdles[-1].passed
    final = None if stopped else loss
    return EvalResult(
        status="stopped_at_hurdle" if stopped else "ok",
        message=f"stopped at hurdle {len(hurdles) - 1}" if stopped else "",
        val_loss=final,
        perplexity=None if final is None else math.exp(final),
        bits_per_byte=None if final is None else final / math.log(2) / 3.5,
        parameters=1000 + int(loss * 1000) % 997,
        steps=10 * len(hurdles) + (0 if stopped else 10),
        tokens=1280,
        seconds=0.0,
        flops=1e6,
        flops_per_token=1e3,
        budget=job.get("budget", ""),
        hurdles=hurdles,
    )


def fake_job(job: dict[str, Any]) -> EvalResult:
    """An instant evaluator."""
    return fake_result(job)


#: Loss per instruction that a program is away from ``SIZE_ANCHOR`` (the transformer seed's 17).
SIZE_ANCHOR, SIZE_PENALTY = 17, 0.1


def instruction_count(architecture_json: str) -> int:
    architecture = json.loads(architecture_json)
    programs = [*architecture.get("prefix", []), *architecture["layers"], architecture["final"]]
    return sum(len(sub["body"]) for program in programs for sub in program["subprograms"])


def sized_job(job: dict[str, Any]) -> EvalResult:
    """An instant evaluator under which programs keep about a Transformer's size, as they do
    in a real search (with ``fake_job`` alone, a random drift can shrink every program to a
    few instructions, and the driver's cost per individual with them)."""
    text = job["architecture_json"]
    return fake_result(job, arch_loss(text) + SIZE_PENALTY * abs(instruction_count(text) - SIZE_ANCHOR))


#: Seconds ``slow_job`` takes: long enough to SIGKILL a driver in the middle of a job.
SLOW_SECONDS = float(os.environ.get("ARCHEVO_FAKE_SLEEP", "0.2"))


def slow_job(job: dict[str, Any]) -> EvalResult:
    time.sleep(SLOW_SECONDS)
    return fake_result(job)


class CountingJob:
    """Records the ``architecture_json`` (and thresholds) of every call; optionally fails.

    ``fail_every=(n, k)``: call number c (from 0) raises when c % n == k, and returns a
    ``diverged`` result when c % n == k + 1. For in-process backends only (the counters
    live in this object)."""

    def __init__(self, fail_every: tuple[int, int] | None = None):
        self.calls: list[str] = []
        self.thresholds: list[list[float | None]] = []
        self.fail_every = fail_every

    def __call__(self, job: dict[str, Any]) -> EvalResult:
        count = len(self.calls)
        self.calls.append(job["architecture_json"])
        self.thresholds.append(list(job.get("thresholds", [])))
        if self.fail_every is not None:
            n, k = self.fail_every
            if count % n == k:
                raise RuntimeError(f"fake failure of call {count}")
            if count % n == (k + 1) % n:
                return EvalResult(status="diverged", message="loss is nan at step 3", diverged_step=3, hurdles_passed=0)
        return fake_result(job)


class ScreenedJob(CountingJob):
    """The worker's real task screen (``search.worker.screen_step``), then the instant fake in
    place of training: ``calls`` lists every program dispatched, ``screened`` those the worker
    scored on the screen (not the seeds: the driver scores them), ``trained`` those trained."""

    def __init__(self, sleep: float = 0.0):
        super().__init__()
        self.screened: list[str] = []
        self.trained: list[str] = []
        self.sleep = sleep

    def __call__(self, job: dict[str, Any]) -> EvalResult:
        from primitives.validate import parse_architecture
        from search.worker import EvalJob, screen_step

        self.calls.append(job["architecture_json"])
        parsed = EvalJob.model_validate(job)
        if parsed.screen:
            self.screened.append(job["architecture_json"])
        scores, screened_out = screen_step(parsed, parse_architecture(parsed.architecture_json))
        if screened_out is not None:
            return screened_out
        time.sleep(self.sleep)
        self.trained.append(job["architecture_json"])
        return fake_result(job).model_copy(update={"screen": scores})


def screened_slow_job(job: dict[str, Any]) -> EvalResult:
    """ScreenedJob for a driver subprocess: each training takes ARCHEVO_FAKE_SLEEP seconds."""
    return ScreenedJob(SLOW_SECONDS)(job)


# --------------------------------------------------------------------------- Ray jobs
# Jobs for tests/test_backends.py: plain dicts, not EvalJobs.


def echo_job(job: dict[str, Any]) -> dict[str, Any]:
    return {"status": "ok", "val_loss": float(job["value"]), "pid": os.getpid()}


def environment_job(job: dict[str, Any], **shared: Any) -> dict[str, Any]:
    """What the worker sees: an environment variable and the backend's shared objects."""
    return {"status": "ok", "value": os.environ.get(job["variable"]), "shared": shared}


def raising_job(job: dict[str, Any]) -> dict[str, Any]:
    raise ValueError(f"bad candidate {job['value']}")


def crash_once_job(job: dict[str, Any]) -> dict[str, Any]:
    """Kills its own worker process on the first attempt (the marker file does not exist
    yet), succeeds on a retry."""
    marker = Path(job["marker"])
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        if job.get("how") == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(1)
    return {"status": "ok", "val_loss": float(job["value"]), "pid": os.getpid(), "crashed_pid": int(marker.read_text())}


def gpu_job(job: dict[str, Any]) -> dict[str, Any]:
    """Sleeps, then says which GPU Ray made visible to it."""
    time.sleep(float(job["sleep"]))
    return {"status": "ok", "val_loss": 1.0, "visible": os.environ.get("CUDA_VISIBLE_DEVICES")}


def sleepy_job(job: dict[str, Any]) -> dict[str, Any]:
    time.sleep(float(job["sleep"]))
    return {"status": "ok", "val_loss": 1.0, "pid": os.getpid()}
