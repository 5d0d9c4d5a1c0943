"""Execution backends: the in-process one and Ray (local cluster), including a worker that
dies mid-evaluation (its candidate finishes on a retry) and an evaluation past its timeout."""

from __future__ import annotations

import time

import pytest

from search.backends import BackendError, InProcessBackend, RayBackend, local_gpus, start_local_ray
from tests import fakes


def drain(backend, deadline_s: float = 60.0) -> dict:
    """Every result, by key, waiting at most ``deadline_s``."""
    results, stop = {}, time.monotonic() + deadline_s
    while backend.in_flight() and time.monotonic() < stop:
        for key, result in backend.wait(timeout=1.0):
            assert key not in results, f"{key} returned twice"
            results[key] = result
    assert backend.in_flight() == 0, "jobs still in flight after the deadline"
    return results


# --------------------------------------------------------------------------- in-process


def test_inprocess_runs_jobs_in_order():
    backend = InProcessBackend(fakes.echo_job)
    assert backend.capacity == 1 and backend.wait(timeout=0.1) == []
    for i in range(3):
        backend.submit(("job", i), {"value": i})
    assert backend.in_flight() == 3
    order = []
    while backend.in_flight():
        order += backend.wait(timeout=0.1)
    assert [key for key, _ in order] == [("job", 0), ("job", 1), ("job", 2)]
    assert [r["val_loss"] for _, r in order] == [0.0, 1.0, 2.0]


def test_inprocess_exception_becomes_an_error_result():
    backend = InProcessBackend(fakes.raising_job)
    backend.submit("k", {"value": 7})
    [(key, result)] = backend.wait(timeout=0.1)
    assert key == "k" and result["status"] == "error"
    assert "ValueError" in result["message"] and "bad candidate 7" in result["message"]
    assert backend.in_flight() == 0


def test_inprocess_shutdown_drops_the_queue():
    backend = InProcessBackend(fakes.echo_job)
    backend.submit(1, {"value": 1})
    backend.shutdown()
    assert backend.in_flight() == 0 and backend.wait(timeout=0.1) == []


# --------------------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray instance for the module (ray.init takes seconds), shut down at the end."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    start_local_ray(num_cpus=2)
    yield ray
    ray.shutdown()


def test_ray_runs_jobs(ray_cluster):
    backend = RayBackend(fakes.echo_job, workers=2)
    assert backend.capacity == 2
    for i in range(4):
        backend.submit(i, {"value": i})
    results = drain(backend)
    assert {k: r["val_loss"] for k, r in results.items()} == {0: 0.0, 1: 1.0, 2: 2.0, 3: 3.0}
    assert all(r["status"] == "ok" for r in results.values())
    backend.shutdown()


def test_ray_tasks_get_the_drivers_archevo_variables_and_the_shared_objects(ray_cluster, monkeypatch):
    """Set after the cluster started, so the workers did not inherit it: the runtime_env carries it."""
    monkeypatch.setenv("ARCHEVO_PROBE", "from the driver")
    backend = RayBackend(fakes.environment_job, workers=1, shared={"corpus": [1, 2, 3]})
    backend.submit("probe", {"variable": "ARCHEVO_PROBE"})
    result = drain(backend)["probe"]
    assert result["value"] == "from the driver" and result["shared"] == {"corpus": [1, 2, 3]}


def test_ray_exception_in_job_is_an_error_result(ray_cluster):
    backend = RayBackend(fakes.raising_job, workers=1, max_retries=2)
    backend.submit("bad", {"value": 3})
    results = drain(backend)
    assert results["bad"]["status"] == "error" and "ValueError" in results["bad"]["message"]


def test_ray_exception_message_names_the_cause(ray_cluster):
    backend = RayBackend(fakes.raising_job, workers=1)
    backend.submit("bad", {"value": 3})
    message = drain(backend)["bad"]["message"]
    assert "bad candidate 3" in message and "\x1b[" not in message


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_ray_worker_killed_mid_evaluation_finishes_on_retry(ray_cluster, tmp_path, how):
    marker = tmp_path / "attempted"
    backend = RayBackend(fakes.crash_once_job, workers=1, max_retries=1)
    backend.submit("c", {"marker": str(marker), "value": 4.5, "how": how})
    results = drain(backend)
    result = results["c"]
    assert marker.exists(), "the first attempt never ran"
    assert result["status"] == "ok" and result["val_loss"] == 4.5
    assert result["pid"] != result["crashed_pid"], "the retry ran in the dead worker's process?"


def test_ray_worker_killed_without_retries_is_an_error_result(ray_cluster, tmp_path):
    marker = tmp_path / "attempted"
    backend = RayBackend(fakes.crash_once_job, workers=1, max_retries=0)
    backend.submit("c", {"marker": str(marker), "value": 1.0})
    results = drain(backend)  # an error result, not an exception
    assert marker.exists()
    assert results["c"]["status"] == "error" and "worker failed" in results["c"]["message"]


def test_ray_job_past_its_timeout_comes_back_as_timeout(ray_cluster):
    # warm two workers first: the deadline runs from submit, so a worker's start-up counts
    warm = RayBackend(fakes.sleepy_job, workers=2)
    for i in range(2):
        warm.submit(i, {"sleep": 0.5})
    drain(warm)
    backend = RayBackend(fakes.sleepy_job, workers=2, timeout_s=1.5)
    start = time.monotonic()
    backend.submit("slow", {"sleep": 30})
    backend.submit("quick", {"sleep": 0})
    results = drain(backend, deadline_s=20)
    assert results["quick"]["status"] == "ok"
    assert results["slow"]["status"] == "timeout" and "1.5 s" in results["slow"]["message"]
    assert time.monotonic() - start < 15, "the timeout did not cut the job short"
    # the cluster still runs jobs after the forced cancel killed a worker
    backend.submit("after", {"sleep": 0})
    assert drain(backend)["after"]["status"] == "ok"


def test_campaign_on_ray_records_exactly_max_evals(ray_cluster, tmp_path, monkeypatch):
    """Two evaluations in flight at once: the seed is a parent while it is still running,
    results come back out of order, and the campaign stores exactly max_evals individuals."""
    from search.campaign import build_campaign
    from storage import FINAL_STATUSES, Repository
    from tests.configs import make_config

    monkeypatch.setenv("ARCHEVO_CACHE_DIR", str(tmp_path / "cache"))
    config = make_config("ray", backend="ray", workers=2, hurdles=1, hurdle_min_samples=2)
    repo = Repository(f"sqlite:///{tmp_path / 'ray.db'}")
    events = []
    campaign = build_campaign(config, repo, job=fakes.slow_job, on_event=events.append)
    assert isinstance(campaign.backend, RayBackend) and campaign.backend.capacity == 2
    campaign.run()
    cid = campaign.campaign.id
    rows = sorted(repo.population(cid, 100), key=lambda r: r.birth)
    assert repo.count(cid) == 10 and [r.birth for r in rows] == list(range(10)) and not repo.unfinished(cid)
    assert all(r.status in FINAL_STATUSES and r.status != "error" for r in rows)
    assert sorted(r.finish_order for r in rows) == list(range(10))
    assert rows[1].parent_id == rows[0].id and rows[1].created_at < rows[0].finished_at
    in_flight, most = set(), 0
    for event in events:
        if event["kind"] == "dispatched":
            in_flight.add(event["id"])
        elif event["kind"] == "recorded":
            in_flight.discard(event["id"])
        most = max(most, len(in_flight))
    assert most == 2


def test_the_private_cluster_listens_on_loopback_only(ray_cluster):
    """Ray binds to 127.0.0.1 unless the user joins a cluster: nothing is reachable from outside."""
    assert {node["NodeManagerAddress"] for node in ray_cluster.nodes()} == {"127.0.0.1"}


def test_asking_for_gpus_this_machine_lacks_fails_at_start(ray_cluster):
    """The README's `gpus_per_worker = 1` on a CPU machine: a clear error, not CPU training."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(BackendError, match="gpus_per_worker = 1.*0"):
        RayBackend(fakes.echo_job, 1, gpus_per_worker=1)
    with pytest.raises(BackendError, match="this machine has 0 CUDA GPU"):
        local_gpus(0.25)
    assert local_gpus(0) is None


def test_a_task_that_ray_gave_a_gpu_trains_on_cuda(monkeypatch):
    import ray

    from search.worker import assigned_device

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [0])
    assert assigned_device("cpu") == "cuda"
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [])
    assert assigned_device("cpu") == "cpu"
