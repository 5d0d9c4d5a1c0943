"""Execution backends: where jobs run. The driver submits and collects; it does not care how.

``RayBackend`` runs each evaluation as a Ray task with CPU/GPU resource requests, a
timeout, and bounded retries when the worker process dies (Ray re-executes the task).
``InProcessBackend`` runs jobs in the driver, one at a time, for tests and debugging.
"""

from __future__ import annotations

import importlib
import math
import os
import socket
import time
from collections import deque
from typing import Any, Callable, Hashable, Protocol

Job = dict[str, Any]
Result = Any  # what the job function returns (archevo's worker: an EvalResult); a failure dict
JobFunction = Callable[..., Result]  # fn(job) or, with RayBackend's shared objects, fn(job, **shared)


class Backend(Protocol):
    capacity: int

    def submit(self, key: Hashable, job: Job) -> None: ...

    def wait(self, timeout: float) -> list[tuple[Hashable, Result]]:
        """Results that finished within ``timeout`` seconds (possibly none)."""

    def in_flight(self) -> int: ...

    def shutdown(self) -> None: ...


def failure(status: str, message: str) -> Result:
    return {"status": status, "message": message}


class InProcessBackend:
    """Runs each job synchronously inside ``wait``; capacity 1, fully deterministic."""

    capacity = 1

    def __init__(self, fn: JobFunction):
        self.fn = fn
        self.queue: deque[tuple[Hashable, Job]] = deque()

    def submit(self, key: Hashable, job: Job) -> None:
        self.queue.append((key, job))

    def wait(self, timeout: float) -> list[tuple[Hashable, Result]]:
        if not self.queue:
            return []
        key, job = self.queue.popleft()
        try:
            return [(key, self.fn(job))]
        except Exception as error:  # noqa: BLE001 - a crashing job is a recorded failure
            return [(key, failure("error", f"{type(error).__name__}: {error}"))]

    def in_flight(self) -> int:
        return len(self.queue)

    def shutdown(self) -> None:
        self.queue.clear()


QUIET: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}


def start_local_ray(num_cpus: float, num_gpus: float | None = None) -> None:
    """A private Ray cluster on this machine, bound to loopback: reachable from nowhere else.

    Ray turns a requested 127.0.0.1 into the machine's reachable address (for clusters); its
    single-machine mode, the one it runs on macOS and Windows, keeps loopback. That mode is a
    module constant Ray reads when it picks the address, set here for this process's cluster."""
    import ray
    from ray._private import ray_constants

    # "local": a new cluster even where `ray start` left one (ray.init would join that)
    options = {"address": "local", "num_cpus": num_cpus, "num_gpus": num_gpus, "dashboard_host": "127.0.0.1", **QUIET}
    previous, ray_constants.ENABLE_RAY_CLUSTER = ray_constants.ENABLE_RAY_CLUSTER, False
    try:
        ray.init(**{k: v for k, v in options.items() if v is not None})
    finally:  # only for this cluster's start: a later join of a real cluster must see Ray's own mode
        ray_constants.ENABLE_RAY_CLUSTER = previous


class BackendError(RuntimeError):
    """The backend cannot start: an unreachable cluster, say. The message names the input."""


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a ``host:port`` nobody listens on (``ray.init`` would retry for minutes)."""
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if address in ("auto", "local") or not port.isdigit():
        return  # Ray's own ways of finding a cluster
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise BackendError(
            f"cannot reach the Ray cluster at {address} within {timeout_s:g} s: {error.strerror or error}"
        ) from None


def local_gpus(gpus_per_worker: float) -> int | None:
    """The CUDA GPUs a private cluster may hand out: this machine's own (None when none are
    asked for). Refuses a request one task cannot get, which Ray would otherwise queue forever."""
    if not gpus_per_worker:
        return None
    import torch

    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if have < math.ceil(gpus_per_worker):
        raise BackendError(
            f"gpus_per_worker = {gpus_per_worker:g}, but this machine has {have} CUDA GPU(s): "
            "set gpus_per_worker = 0 to train on the CPU, or --ray-address a cluster with GPUs"
        )
    return have


#: The project's packages: what a worker on a cluster the driver did not start must import.
PACKAGES = ("archevo", "primitives", "evaluator", "search", "storage")


def worker_env() -> dict[str, Any]:
    """A task's runtime_env: the driver's ``ARCHEVO_*`` variables, which the nodes of a cluster
    started with ``ray start`` (or a private cluster started before they were set) lack."""
    return {"env_vars": {k: v for k, v in os.environ.items() if k.startswith("ARCHEVO_")}}


def project_code() -> dict[str, Any]:
    """The runtime_env of a driver joining a cluster: the project's packages, which Ray uploads
    to every node (``py_modules``). Third-party packages (torch, tokenizers, ...) must be
    installed on the nodes."""
    return {"py_modules": [importlib.import_module(name) for name in PACKAGES]}


def gpu_slots(cluster_gpus: float, gpus_per_worker: float) -> int:
    """How many tasks of ``gpus_per_worker`` the cluster's GPUs run at once."""
    return math.floor(cluster_gpus / gpus_per_worker + 1e-9)


def gpus_per_task(gpus_per_worker: float, workers: int, cluster_gpus: float) -> float:
    """The GPU share each task asks Ray for: ``gpus_per_worker``, raised as far as the workers
    still all fit. Ray fills one GPU with fractional tasks before the next, so two workers at
    0.5 on two GPUs would share GPU 0 while GPU 1 idles; asking 1 each puts one on each."""
    if not gpus_per_worker or gpus_per_worker >= 1 or cluster_gpus < 1:
        return gpus_per_worker
    per_gpu = math.ceil(workers / math.floor(cluster_gpus))  # workers each GPU must hold
    return max(gpus_per_worker, 1 / per_gpu)


class RayBackend:
    """One Ray task per evaluation on a local cluster (default) or an existing one (address).

    ``shared`` objects go into Ray's object store once and reach every task as keyword
    arguments (``fn(job, **shared)``): the tokenized corpus for nodes that lack its cache.

    GPU tasks: Ray ends a GPU task's worker process after each task unless told otherwise
    (``max_calls`` 1), so every candidate would pay the imports, CUDA's start-up and a cold
    compile; here a worker process serves task after task. At most as many tasks are in flight
    as the cluster's GPUs run at once, so that none waits in Ray's queue while its evaluation
    timeout runs."""

    def __init__(
        self,
        fn: JobFunction,
        workers: int,
        address: str | None = None,
        cpus_per_worker: float = 1,
        gpus_per_worker: float = 0,
        max_retries: int = 2,
        timeout_s: float | None = None,
        shared: dict[str, Any] | None = None,
    ):
        import ray

        self.ray = ray
        if not ray.is_initialized():
            if address:
                check_reachable(address)
                ray.init(address=address, runtime_env=project_code(), **QUIET)
            else:
                start_local_ray(max(workers * cpus_per_worker, os.cpu_count() or 1), local_gpus(gpus_per_worker))
        cluster_gpus = ray.cluster_resources().get("GPU", 0)
        if gpus_per_worker and cluster_gpus < gpus_per_worker:
            raise BackendError(f"gpus_per_worker = {gpus_per_worker:g}, but the Ray cluster has {cluster_gpus:g} GPUs")
        gpus_per_worker = gpus_per_task(gpus_per_worker, workers, cluster_gpus)
        self.capacity = min(workers, gpu_slots(cluster_gpus, gpus_per_worker)) if gpus_per_worker else workers
        self.timeout_s = timeout_s
        self.remote: Any = ray.remote(  # (ray's stubs type the decorated function without arguments)
            num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker,
            max_retries=max_retries,
            max_calls=0,  # no limit: the worker process (its CUDA context, its caches) is reused
            retry_exceptions=False,
            runtime_env=worker_env(),
        )(fn)
        self.shared = {name: ray.put(value) for name, value in (shared or {}).items()}
        self.pending: dict[Any, tuple[Hashable, float]] = {}

    def submit(self, key: Hashable, job: Job) -> None:
        deadline = time.monotonic() + self.timeout_s if self.timeout_s else float("inf")
        self.pending[self.remote.remote(job, **self.shared)] = (key, deadline)

    def wait(self, timeout: float) -> list[tuple[Hashable, Result]]:
        if not self.pending:
            return []
        ready, rest = self.ray.wait(list(self.pending), num_returns=1, timeout=timeout)
        if ready and rest:  # collect whatever else is finished, without waiting again
            ready += self.ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        done = [(self.pending.pop(ref)[0], self._get(ref)) for ref in ready]
        now = time.monotonic()
        for ref, (key, deadline) in list(self.pending.items()):
            if now > deadline:
                self.ray.cancel(ref, force=True)
                del self.pending[ref]
                done.append((key, failure("timeout", f"evaluation exceeded {self.timeout_s:g} s and was cancelled")))
        return done

    def _get(self, ref) -> Result:
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as error:  # the job raised: report its own exception
            cause = error.cause
            return failure("error", f"{type(cause).__name__}: {str(cause).splitlines()[0][:300] if str(cause) else ''}")
        except self.ray.exceptions.RayError as error:  # the worker died more often than max_retries
            return failure("error", f"worker failed: {type(error).__name__}: {str(error).splitlines()[0][:300]}")

    def in_flight(self) -> int:
        return len(self.pending)

    def shutdown(self) -> None:
        for ref in self.pending:
            self.ray.cancel(ref, force=True)
        self.pending.clear()
