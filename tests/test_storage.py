"""Storage: idempotent writes, aging order, hurdles, dedup lookups, crash/resume, WAL with a
concurrent reader, bounded driver memory. Every test uses its own SQLite file under tmp_path."""

from __future__ import annotations

import gc
import json
import math
import multiprocessing
import sqlite3
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from storage import (
    FINAL_STATUSES,
    CampaignRecord,
    HurdleRecord,
    IndividualRecord,
    NotFound,
    Repository,
)
from tests.databases import sqlite_only, url_of

ROOT = Path(__file__).resolve().parents[1]
ARCH = json.dumps({"layers": [{"op": "matmul", "inputs": ["x", "w"], "attrs": {"width": 8}}] * 25})  # ~2 KB


@pytest.fixture
def url(tmp_path: Path) -> str:
    return url_of(tmp_path / "t.db")


@pytest.fixture
def repo(url: str):
    with Repository(url) as repository:
        yield repository


@pytest.fixture
def campaign(repo: Repository) -> CampaignRecord:
    return repo.create_campaign("c", seed=7, config={"population": 4, "budget": {"seconds": 10}})


def add(repo: Repository, campaign_id: int, birth: int, **kwargs) -> IndividualRecord:
    values = {"architecture_json": ARCH, "arch_hash": f"h{birth}", "root_seed": "transformer", "recipe": "r1"}
    values.update(kwargs)
    return repo.add_individual(campaign_id, birth, **values)


def finish(repo: Repository, individual_id: int, fitness: float | None, status: str = "ok", **extra) -> None:
    attempt = repo.mark_running(individual_id)
    result = {"status": status, "fitness": fitness, "val_loss": fitness, **extra}
    assert repo.record_result(individual_id, attempt, result)


# --------------------------------------------------------------------------- campaigns


def test_campaigns(repo: Repository) -> None:
    created = repo.create_campaign("first", seed=3, config={"population": 100, "hurdles": [0.25, 0.5]})
    assert created.status == "running" and created.seed == 3 and created.created_at.tzinfo is not None
    assert repo.get_campaign("first") == created == repo.get_campaign(created.id)
    assert repo.get_campaign("first").config == {"hurdles": [0.25, 0.5], "population": 100}
    assert repo.get_campaign("missing") is None

    with pytest.raises(ValueError, match="already exists"):
        repo.create_campaign("first", seed=4, config={})

    repo.create_campaign("second", seed=0, config={})
    assert [c.name for c in repo.list_campaigns()] == ["first", "second"]
    repo.set_campaign_status("first", "finished")
    assert repo.get_campaign("first").status == "finished"
    assert repo.get_campaign("first").updated_at >= created.updated_at
    with pytest.raises(ValueError):
        repo.set_campaign_status("first", "paused")
    with pytest.raises(NotFound):
        repo.set_campaign_status("missing", "finished")


# --------------------------------------------------------------------------- idempotent writes


def test_add_individual_is_idempotent_on_birth(repo: Repository, campaign: CampaignRecord) -> None:
    assert repo.next_birth(campaign.id) == 0
    first = add(repo, campaign.id, 0, mutation=None)
    assert first.status == "pending" and first.attempt == 0 and first.finish_order is None
    assert repo.get_individual(first.id) == first  # what add returns is what is stored

    again = add(repo, campaign.id, 0, arch_hash="something else", mutation="insert op")
    assert again == first  # the existing row, unchanged
    assert repo.count(campaign.id) == 1 and repo.next_birth(campaign.id) == 1

    with pytest.raises(NotFound):
        add(repo, campaign.id + 1, 0)
    with pytest.raises(NotFound):
        add(repo, campaign.id, 1, parent_id=12345)
    with pytest.raises(ValueError):
        add(repo, campaign.id, -1)


def test_record_result_is_idempotent_per_attempt(repo: Repository, campaign: CampaignRecord) -> None:
    a, b = add(repo, campaign.id, 0), add(repo, campaign.id, 1)
    repo.set_fingerprint(a.id, "fp-a")
    attempt = repo.mark_running(a.id)
    assert attempt == 1
    running = repo.get_individual(a.id)
    assert running.status == "running" and running.started_at is not None

    result = {
        "status": "ok",
        "message": "",
        "fitness": 3.5,
        "val_loss": 3.5,
        "perplexity": 33.1,
        "bits_per_byte": 1.1,
        "parameters": 1234,
        "flops_per_token": 5e6,
        "steps": 40,
        "tokens": 40960,
        "seconds": 9.9,
        "flops": 2e11,
        "hurdles_passed": 2,
        "loss_curve": [{"train_loss": float("nan")}],
    }
    assert repo.record_result(a.id, attempt, result) is True
    assert repo.record_result(a.id, attempt, {**result, "fitness": 1.0}) is False  # a repeat changes nothing
    done = repo.get_individual(a.id)
    assert (done.status, done.fitness, done.finish_order, done.attempt) == ("ok", 3.5, 0, 1)
    assert (done.parameters, done.steps, done.tokens, done.hurdles_passed) == (1234, 40, 40960, 2)
    assert done.fingerprint == "fp-a"  # not in the result: kept
    assert done.error is None and done.finished and done.finished_at >= done.started_at
    assert repo.result(a.id)["loss_curve"] == [{"train_loss": None}]  # standard JSON
    assert repo.result(b.id) is None

    # The repeat consumed no finish_order: the next result gets 1.
    attempt_b = repo.mark_running(b.id)
    assert repo.record_result(
        b.id, attempt_b, {"status": "diverged", "message": "loss became nan", "val_loss": float("inf"), "fitness": None}
    )
    diverged = repo.get_individual(b.id)
    assert (diverged.finish_order, diverged.status, diverged.error) == (1, "diverged", "loss became nan")
    assert diverged.val_loss is None and diverged.fitness is None

    with pytest.raises(ValueError):
        repo.mark_running(a.id)  # finished individuals are not dispatched again
    with pytest.raises(ValueError, match="status"):
        repo.record_result(add(repo, campaign.id, 2).id, 0, {"status": "oom"})
    with pytest.raises(NotFound):
        repo.record_result(9999, 1, {"status": "ok"})


def test_stale_attempt_is_ignored(repo: Repository, campaign: CampaignRecord) -> None:
    ind = add(repo, campaign.id, 0)
    first = repo.mark_running(ind.id)
    second = repo.mark_running(ind.id)  # re-dispatched (its first worker was presumed lost)
    assert (first, second) == (1, 2)
    assert repo.record_result(ind.id, first, {"status": "ok", "fitness": 1.0}) is False
    assert repo.get_individual(ind.id).status == "running"
    assert repo.record_result(ind.id, second, {"status": "ok", "fitness": 2.0}) is True
    assert repo.record_result(ind.id, first, {"status": "error", "message": "late"}) is False
    stored = repo.get_individual(ind.id)
    assert (stored.status, stored.fitness, stored.attempt, stored.finish_order) == ("ok", 2.0, 2, 0)
    with pytest.raises(ValueError, match="dispatched"):
        repo.record_result(add(repo, campaign.id, 1).id, 3, {"status": "ok"})


def test_duplicate_recorded_without_dispatch(repo: Repository, campaign: CampaignRecord) -> None:
    original = add(repo, campaign.id, 0)
    finish(repo, original.id, 2.0)
    dup = add(repo, campaign.id, 1)
    result = {"status": "duplicate", "fitness": 2.0, "duplicate_of": original.id, "fingerprint": "fp"}
    assert repo.record_result(dup.id, 0, result)
    stored = repo.get_individual(dup.id)
    assert (stored.status, stored.duplicate_of, stored.fingerprint) == ("duplicate", original.id, "fp")
    assert stored.attempt == 0 and stored.finish_order == 1


# --------------------------------------------------------------------------- the search's queries


def test_population_is_the_most_recently_finished(repo: Repository, campaign: CampaignRecord) -> None:
    inds = [add(repo, campaign.id, birth) for birth in range(6)]
    fitness = {0: 1.0, 1: 5.0, 2: 4.0, 3: 0.5, 4: 6.0, 5: 3.0}  # birth 3 is the best, birth 0 second
    order = [3, 0, 5, 1, 4, 2]  # finished out of birth order
    for birth in order:
        finish(repo, inds[birth].id, fitness[birth])

    population = repo.population(campaign.id, 3)
    assert [p.birth for p in population] == [1, 4, 2]  # the last three to finish, oldest first
    assert [p.finish_order for p in population] == [3, 4, 5]
    # Not the best (births 3, 0, 5), not the youngest (births 3, 4, 5).
    assert [p.birth for p in repo.population(campaign.id, 6)] == order
    assert repo.population(campaign.id, 0) == []

    # Failures are members too (with no fitness: the worst), pending ones are not.
    failed = add(repo, campaign.id, 6)
    finish(repo, failed.id, None, status="error", message="boom")
    add(repo, campaign.id, 7)
    assert [p.birth for p in repo.population(campaign.id, 2)] == [2, 6]


def test_hurdle_losses_and_counts(repo: Repository, campaign: CampaignRecord) -> None:
    inds = [add(repo, campaign.id, birth) for birth in range(4)]
    other = repo.create_campaign("other", seed=1, config={})
    stranger = add(repo, other.id, 0)
    repo.record_hurdle(stranger.id, 0, 0.25, 0.1, None, True)

    record = repo.record_hurdle(inds[2].id, 0, 0.25, 5.0, None, True)
    assert isinstance(record, HurdleRecord) and record.threshold is None and record.campaign_id == campaign.id
    repo.record_hurdle(inds[0].id, 0, 0.25, 4.0, None, True)
    repo.record_hurdle(inds[1].id, 0, 0.25, 6.0, 4.5, False)
    repo.record_hurdle(inds[3].id, 0, 0.25, float("nan"), 5.0, False)
    repo.record_hurdle(inds[2].id, 1, 0.5, 3.0, None, True)
    assert repo.hurdle_losses(campaign.id, 0) == [5.0, 4.0, 6.0, math.inf]  # record order; NaN reads as worst
    assert repo.hurdle_losses(campaign.id, 1) == [3.0]
    assert repo.hurdle_losses(campaign.id, 2) == []

    # A re-dispatched attempt overwrites its hurdle and keeps its place.
    repo.record_hurdle(inds[2].id, 0, 0.25, 4.5, 4.0, False)
    assert repo.hurdle_losses(campaign.id, 0) == [4.5, 4.0, 6.0, math.inf]
    hurdles = repo.hurdles(inds[2].id)
    assert [(h.hurdle, h.loss, h.threshold, h.passed) for h in hurdles] == [
        (0, 4.5, 4.0, False),
        (1, 3.0, None, True),
    ]
    assert repo.hurdle_pass_counts(campaign.id) == [(0, 4, 1), (1, 1, 1)]
    with pytest.raises(NotFound):
        repo.record_hurdle(9999, 0, 0.25, 1.0, None, True)


def test_fingerprint_and_hash_lookup_respect_the_recipe(repo: Repository, campaign: CampaignRecord) -> None:
    evaluated = add(repo, campaign.id, 0, recipe="r1", arch_hash="H")
    repo.set_fingerprint(evaluated.id, "F")
    assert repo.find_by_fingerprint(campaign.id, "F", "r1") is None  # not evaluated yet
    assert repo.find_by_hash(campaign.id, "H", "r1") is None
    finish(repo, evaluated.id, 2.5)

    assert repo.find_by_fingerprint(campaign.id, "F", "r1").id == evaluated.id
    assert repo.find_by_fingerprint(campaign.id, "F", "r2") is None  # another budget/corpus/spec
    assert repo.find_by_fingerprint(campaign.id, "G", "r1") is None
    assert repo.find_by_hash(campaign.id, "H", "r1").id == evaluated.id
    assert repo.find_by_hash(campaign.id, "H", "r2") is None

    # A duplicate never lends its (borrowed) fitness; the first evaluated one does.
    dup = add(repo, campaign.id, 1, recipe="r1", arch_hash="H", fingerprint="F")
    repo.record_result(dup.id, 0, {"status": "duplicate", "fitness": 2.5, "duplicate_of": evaluated.id})
    later = add(repo, campaign.id, 2, recipe="r1", arch_hash="H", fingerprint="F")
    finish(repo, later.id, 2.4)
    assert repo.find_by_fingerprint(campaign.id, "F", "r1").id == evaluated.id

    # Across campaigns with campaign_id=None (a cross-campaign cache), not otherwise.
    other = repo.create_campaign("other", seed=1, config={})
    assert repo.find_by_fingerprint(other.id, "F", "r1") is None
    assert repo.find_by_fingerprint(None, "F", "r1").id == evaluated.id


def test_top_k_order_excludes_duplicates(repo: Repository, campaign: CampaignRecord) -> None:
    inds = [add(repo, campaign.id, birth) for birth in range(6)]
    finish(repo, inds[4].id, 2.0)
    finish(repo, inds[1].id, 2.0)  # a tie: birth 1 comes first
    finish(repo, inds[0].id, 3.0)
    finish(repo, inds[2].id, None, status="diverged")  # no fitness: not ranked
    repo.record_result(inds[3].id, 0, {"status": "duplicate", "fitness": 1.0, "duplicate_of": inds[0].id})
    assert [t.birth for t in repo.top(campaign.id, 10)] == [1, 4, 0]
    assert [t.birth for t in repo.top(campaign.id, 2)] == [1, 4]
    assert repo.top(campaign.id, 0) == []
    assert repo.status_counts(campaign.id) == {"pending": 1, "ok": 3, "diverged": 1, "duplicate": 1}
    assert repo.count(campaign.id) == 6
    assert repo.count(campaign.id, "ok") == 3
    assert repo.count(campaign.id, ["ok", "diverged"]) == 4


def test_lineage(repo: Repository, campaign: CampaignRecord) -> None:
    root = add(repo, campaign.id, 0, mutation=None, root_seed="primer")
    child = add(repo, campaign.id, 1, parent_id=root.id, mutation="swap ops", root_seed="primer")
    grandchild = add(repo, campaign.id, 2, parent_id=child.id, mutation="insert op", root_seed="primer")
    other = add(repo, campaign.id, 3, parent_id=root.id, mutation="delete op", root_seed="primer")
    assert [i.id for i in repo.lineage(grandchild.id)] == [grandchild.id, child.id, root.id]
    assert [i.mutation for i in repo.lineage(other.id)] == ["delete op", None]
    assert repo.lineage(root.id) == [root]
    assert repo.lineage(9999) == []


def test_records_are_plain_frozen_values(repo: Repository, campaign: CampaignRecord) -> None:
    from primitives.program import Architecture
    from primitives.seeds import seed

    arch = seed("transformer")
    ind = repo.add_individual(campaign.id, 0, arch, "hash", "transformer", "r1")
    stored = repo.get_individual(ind.id)
    assert type(stored) is IndividualRecord
    assert isinstance(stored.architecture(), Architecture) and stored.architecture() == arch
    with pytest.raises(AttributeError):
        stored.fitness = 1.0  # type: ignore[misc]
    assert set(FINAL_STATUSES) >= {"ok", "stopped_at_hurdle", "diverged", "error", "timeout", "duplicate"}


# --------------------------------------------------------------------------- crash and resume

_CRASHING_DRIVER = """
import os, sys
from storage import Repository
repo = Repository(sys.argv[1])
c = repo.create_campaign("crashy", seed=1, config={{}})
for birth in range(4):
    repo.add_individual(c.id, birth, "{{}}", f"h{{birth}}", "transformer", "r1")
a = repo.mark_running(1)
repo.record_result(1, a, {{"status": "ok", "fitness": 1.0}})
repo.mark_running(2)
repo.mark_running(3)
os._exit(1)  # the driver dies: no close, no cleanup
"""


def test_unfinished_after_a_crash(url: str) -> None:
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASHING_DRIVER.format(), url], cwd=ROOT, capture_output=True, check=False
    )
    assert crashed.returncode == 1, crashed.stderr.decode()

    repo = Repository(url)  # the driver restarts: resuming is reading
    campaign = repo.get_campaign("crashy")
    unfinished = repo.unfinished(campaign.id)
    assert [(i.birth, i.status, i.attempt) for i in unfinished] == [
        (1, "running", 1),
        (2, "running", 1),
        (3, "pending", 0),
    ]
    assert repo.next_birth(campaign.id) == 4
    assert [p.birth for p in repo.population(campaign.id, 10)] == [0]

    # Re-queue each exactly once; a late result of the lost attempt is ignored.
    lost = unfinished[0]
    attempt = repo.mark_running(lost.id)
    assert attempt == 2
    assert repo.record_result(lost.id, 1, {"status": "ok", "fitness": 9.0}) is False
    assert repo.record_result(lost.id, attempt, {"status": "ok", "fitness": 2.0}) is True
    assert [i.birth for i in repo.unfinished(campaign.id)] == [2, 3]
    repo.close()


# --------------------------------------------------------------------------- SQLite settings and concurrency


@sqlite_only
def test_wal_mode_and_pragmas(url: str, repo: Repository, tmp_path: Path) -> None:
    assert repo.journal_mode() == "wal"
    raw = sqlite3.connect(tmp_path / "t.db")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file
    raw.close()
    with repo.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


@sqlite_only
def test_default_url_and_readonly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ARCHEVO_DB", raising=False)
    with pytest.raises(FileNotFoundError):
        Repository(readonly=True)
    Repository().close()
    assert (tmp_path / "archevo.db").exists()

    monkeypatch.setenv("ARCHEVO_DB", f"sqlite:///{tmp_path}/env.db")
    writer = Repository()
    writer.create_campaign("c", seed=1, config={})
    assert (tmp_path / "env.db").exists()

    reader = Repository(readonly=True)
    assert reader.get_campaign("c") is not None
    with pytest.raises(PermissionError):
        reader.create_campaign("d", seed=1, config={})
    reader.close()
    writer.close()

    memory = Repository("sqlite://")
    assert memory.create_campaign("m", seed=1, config={}).id == 1
    memory.close()


def test_batch_is_one_transaction(repo: Repository, campaign: CampaignRecord) -> None:
    with repo.batch():
        ind = add(repo, campaign.id, 0)
        attempt = repo.mark_running(ind.id)
        assert repo.get_individual(ind.id).status == "running"  # reads see the batch's writes
        repo.record_result(ind.id, attempt, {"status": "ok", "fitness": 1.0})
        assert add(repo, campaign.id, 0) == repo.get_individual(ind.id)  # idempotent inside a batch too
    assert repo.get_individual(ind.id).finish_order == 0

    with pytest.raises(RuntimeError), repo.batch():
        add(repo, campaign.id, 1)
        with repo.batch():  # nested: joins the outer one
            add(repo, campaign.id, 2)
        raise RuntimeError("the driver failed mid-step")
    assert repo.count(campaign.id) == 1  # all or nothing


def _reader(url: str, campaign_id: int, ready, done, out) -> None:
    """Another process (``archevo top``) reading while the driver writes."""
    repo = Repository(url, readonly=True)
    reads_while_writing, errors, seen = 0, [], 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        finished = done.is_set()
        try:
            repo.top(campaign_id, 5)
            repo.status_counts(campaign_id)
            repo.population(campaign_id, 20)
            repo.hurdle_pass_counts(campaign_id)
            seen = repo.count(campaign_id)
            reads_while_writing += not finished
        except Exception as error:  # noqa: BLE001 - report, do not crash the test's child
            errors.append(repr(error))
        ready.set()
        if finished:
            break
    out.put((reads_while_writing, errors, seen))
    repo.close()


def test_reader_process_never_sees_database_is_locked(url: str, repo: Repository, campaign: CampaignRecord) -> None:
    context = multiprocessing.get_context("spawn")
    ready, done, out = context.Event(), context.Event(), context.Queue()
    reader = context.Process(target=_reader, args=(url, campaign.id, ready, done, out))
    reader.start()
    try:
        assert ready.wait(timeout=60), "the reader process did not start"
        n = 300
        for birth in range(n):
            ind = add(repo, campaign.id, birth)
            finish(repo, ind.id, float(birth % 17))
            repo.record_hurdle(ind.id, 0, 0.5, float(birth % 17), None, True)
        done.set()
        reads_while_writing, errors, seen = out.get(timeout=90)
    finally:
        done.set()
        reader.join(timeout=30)
        if reader.is_alive():
            reader.kill()
    assert errors == []
    assert reads_while_writing > 0 and seen == n


def test_a_second_writer_waits_instead_of_failing(url: str, repo: Repository) -> None:
    """BEGIN IMMEDIATE + busy_timeout: e.g. a CLI command writing while the driver writes."""
    other = Repository(url)
    campaigns = [repo.create_campaign(f"w{i}", seed=i, config={}) for i in range(2)]
    errors: list[str] = []

    def write(repository: Repository, campaign_id: int) -> None:
        try:
            for birth in range(150):
                ind = add(repository, campaign_id, birth)
                finish(repository, ind.id, 1.0)
        except Exception as error:  # noqa: BLE001
            errors.append(repr(error))

    threads = [threading.Thread(target=write, args=(r, c.id)) for r, c in zip((repo, other), campaigns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert [repo.count(c.id, "ok") for c in campaigns] == [150, 150]
    for c in campaigns:  # each campaign's finish_order stays its own 0..n-1
        assert [p.finish_order for p in repo.population(c.id, 1000)] == list(range(150))
    other.close()


# --------------------------------------------------------------------------- memory and throughput


def _cycles(repo: Repository, campaign_id: int, births: range) -> None:
    result = {
        "status": "ok",
        "fitness": 3.0,
        "val_loss": 3.0,
        "steps": 10,
        "loss_curve": [{"tokens": i, "train_loss": 3.0} for i in range(50)],
    }
    for birth in births:
        ind = add(repo, campaign_id, birth)
        repo.record_result(ind.id, repo.mark_running(ind.id), result)


def test_driver_memory_does_not_grow_per_individual(repo: Repository, campaign: CampaignRecord) -> None:
    _cycles(repo, campaign.id, range(200))  # warm caches (compiled statements, pool)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        _cycles(repo, campaign.id, range(200, 2200))
        gc.collect()
        growth = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename"))
    finally:
        tracemalloc.stop()
    # Holding each individual would cost > 2 KB apiece (its program alone), i.e. > 4 MB here.
    print(f"[storage] traced memory growth over 2,000 individuals: {growth} bytes")
    assert growth < 256 * 1024, f"driver memory grew by {growth} bytes over 2,000 individuals"
    assert repo.count(campaign.id, "ok") == 2200


def test_throughput_sanity(repo: Repository, campaign: CampaignRecord, capsys: pytest.CaptureFixture) -> None:
    """Not a timed test: it reports the rate and checks the bookkeeping after many cycles."""
    n = 300
    start = time.perf_counter()
    for birth in range(n):
        ind = add(repo, campaign.id, birth)
        repo.record_result(ind.id, repo.mark_running(ind.id), {"status": "ok", "fitness": float(birth)})
    rate = n / (time.perf_counter() - start)
    with capsys.disabled():
        print(
            f"\n[storage] {rate:.0f} add_individual+mark_running+record_result cycles/s on {repo.engine.dialect.name}"
        )
    assert [p.finish_order for p in repo.population(campaign.id, n)] == list(range(n))
    assert repo.unfinished(campaign.id) == [] and repo.next_birth(campaign.id) == n


def test_storage_imports_no_torch_evaluator_or_search() -> None:
    code = (
        "import sys, storage\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'evaluator', 'search', 'ray'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
