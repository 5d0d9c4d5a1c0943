"""GPU paths driven on the CPU: placement through Ray on a cluster that declares GPUs it does not
have (Ray schedules by the declared resources), and the config rules that keep workers apart."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from search.backends import RayBackend, gpu_slots, gpus_per_task, start_local_ray
from tests import fakes
from tests.configs import make_config
from tests.test_backends import drain


@pytest.fixture(scope="module")
def fake_gpu_cluster():
    """A private cluster of 2 CPUs and 2 declared GPUs (tasks never touch CUDA here)."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    start_local_ray(num_cpus=2, num_gpus=2)
    yield ray
    ray.shutdown()


def test_a_gpu_worker_process_serves_task_after_task(fake_gpu_cluster):
    """Ray's default for a GPU task is a fresh process per task (imports, CUDA start-up and a
    cold compile every candidate); the backend keeps its worker processes."""
    backend = RayBackend(fakes.echo_job, workers=1, gpus_per_worker=1)
    pids = set()
    for i in range(4):
        backend.submit(i, {"value": i})
        pids.add(drain(backend)[i]["pid"])
    assert len(pids) == 1
    backend.shutdown()


def test_no_more_gpu_tasks_in_flight_than_the_gpus_run(fake_gpu_cluster):
    """Six workers of one GPU on two GPUs: a task queued for a GPU would spend its evaluation
    timeout waiting (4 of 6 were cancelled); the backend runs two at a time, all in time."""
    warm = RayBackend(fakes.sleepy_job, workers=2, gpus_per_worker=1)  # two worker processes started
    for _ in range(5):  # until the two ran at once, each in a process of its own
        if len({result["pid"] for result in _run_two(warm).values()}) == 2:
            break
    backend = RayBackend(fakes.sleepy_job, workers=6, gpus_per_worker=1, timeout_s=6)
    assert backend.capacity == 2
    results, start = {}, time.monotonic()
    for i in range(6):  # as the driver does: never more in flight than the capacity
        while backend.in_flight() >= backend.capacity:
            results.update(backend.wait(1.0))
        backend.submit(i, {"sleep": 3})
    results.update(drain(backend, deadline_s=30))
    assert [results[i]["status"] for i in range(6)] == ["ok"] * 6
    assert time.monotonic() - start < 40
    assert RayBackend(fakes.echo_job, workers=8, gpus_per_worker=0.25).capacity == 8  # four packed per GPU


def test_packed_workers_spread_over_the_gpus_before_sharing_one(fake_gpu_cluster):
    """Ray fills one GPU with fractional tasks before the next: two workers at 0.5 on two GPUs
    shared GPU 0 while GPU 1 idled. Each now gets a GPU of its own (CUDA_VISIBLE_DEVICES)."""
    backend = RayBackend(fakes.gpu_job, workers=2, gpus_per_worker=0.5)
    for i in range(2):
        backend.submit(i, {"sleep": 2})
    results = drain(backend)
    assert sorted(r["visible"] for r in results.values()) == ["0", "1"]


def test_a_gpu_share_is_raised_only_as_far_as_every_worker_still_fits():
    assert gpus_per_task(0.5, 2, 2) == 1 and gpus_per_task(0.25, 4, 2) == 0.5 and gpus_per_task(0.25, 8, 2) == 0.25
    assert gpus_per_task(0.25, 3, 2) == 0.5 and gpus_per_task(1, 4, 2) == 1 and gpus_per_task(0, 4, 2) == 0
    assert gpus_per_task(0.5, 2, 1) == 0.5


def _run_two(backend: RayBackend) -> dict:
    for i in range(2):
        backend.submit(i, {"sleep": 2})
    return drain(backend)


def test_gpu_slots_count_packed_and_whole_gpus():
    assert gpu_slots(2, 1) == 2 and gpu_slots(2, 0.5) == 4 and gpu_slots(1, 0.3) == 3 and gpu_slots(1, 1 / 3) == 3


def test_a_worker_trains_on_one_gpu_at_most():
    with pytest.raises(ValidationError, match="gpus_per_worker"):
        make_config("two-gpus", gpus_per_worker=2)


def test_cuda_through_ray_without_gpus_per_worker_is_refused():
    """Every worker would land on GPU 0, outside Ray's accounting."""
    train = make_config("base").train.model_copy(update={"device": "cuda"})
    with pytest.raises(ValidationError, match="gpus_per_worker > 0"):
        make_config("cuda", backend="ray", train=train.model_dump())
    assert make_config("cuda", backend="ray", gpus_per_worker=0.5, train=train.model_dump()).gpus_per_worker == 0.5
    assert make_config("cuda", backend="inprocess", train=train.model_dump()).train.device == "cuda"


def test_tf32_is_a_switch_that_enters_the_recipe_only_when_turned_off():
    """On by default (as every campaign before the switch trained), so stored recipes keep their
    hashes; a campaign in full fp32 is a different recipe."""
    assert make_config("a").train.tf32 and make_config("a").recipe() == "61bd043605d8c82c"
    full = make_config("a", train={**make_config("a").train.model_dump(), "tf32": False})
    assert full.recipe() != make_config("a").recipe()


def test_gpus_per_worker_on_the_command_line(tmp_path):
    """`--gpus-per-worker` on search start: a value a worker cannot use names the field; on a
    machine without CUDA, a share of a GPU is refused at start with the machine's count."""
    import torch
    from typer.testing import CliRunner

    from cli.main import app

    db = f"sqlite:///{tmp_path / 'gpus.db'}"
    runner = CliRunner()
    two = runner.invoke(app, ["search", "start", "--gpus-per-worker", "2", "--max-evals", "2", "--db", db])
    assert two.exit_code == 2 and "gpus_per_worker" in two.output, two.output
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    import ray

    ray.shutdown()  # not the declared-GPU cluster of the tests above: the campaign's own, of this machine
    share = runner.invoke(
        app, ["search", "start", "--gpus-per-worker", "0.5", "--max-evals", "2", "--workers", "1", "--db", db]
    )
    assert share.exit_code == 2 and "0 CUDA GPU" in share.output, share.output


def test_the_memory_check_counts_the_workers_packed_on_one_gpu(tmp_path, monkeypatch):
    """GPU workers are checked against one GPU's memory, not the host's: four candidates packed
    on a GPU that holds three are refused before anything starts, naming gpus_per_worker."""
    import search.campaign as campaign_module
    from primitives.cost import training_memory_bytes
    from primitives.seeds import seed
    from search.campaign import build_campaign
    from storage import Repository

    base = make_config("packed", backend="ray", workers=4, gpus_per_worker=0.25)
    base = base.model_copy(update={"train": base.train.model_copy(update={"device": "cuda"})})
    one = training_memory_bytes(base.spec, seed("transformer", base.spec), base.train.batch_size)
    monkeypatch.setattr(campaign_module, "gpu_memory_bytes", lambda: int(3.5 * one))
    repo = Repository(f"sqlite:///{tmp_path / 'gpu.db'}")
    with pytest.raises(ValueError, match="4 workers training transformer.*one GPU holds.*gpus_per_worker"):
        build_campaign(base, repo)
    assert repo.get_campaign("packed") is None
    monkeypatch.setattr(campaign_module, "gpu_memory_bytes", lambda: None)  # a cluster's GPUs: not checked here
    campaign_module._check_memory(base, {"transformer": seed("transformer", base.spec)})
