"""A campaign on a Ray cluster of two nodes that the driver did not start.

The test starts a head (no CPUs, so no task can run there) and a second node with
``ray start`` as processes of its own, joins them from the driver, and stops both by their
process groups, never with ``ray stop`` (which would stop every Ray on the machine). Ray
on Linux refuses a multi-node cluster on loopback: the nodes take this machine's reachable
address for the few seconds the test runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from search.campaign import build_campaign  # noqa: E402
from storage import Repository  # noqa: E402
from tests.databases import url_of  # noqa: E402
from tests.configs import CORPUS, make_config  # noqa: E402


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ray_start(log: Path, *arguments: str) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).with_name("ray")),
        "start",
        "--block",
        "--disable-usage-stats",
        "--node-ip-address=127.0.0.1",
        *arguments,
    ]
    # a session of its own: the node's raylet, object store and workers share its process group
    return subprocess.Popen(
        command,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("ARCHEVO_")},
    )


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


@pytest.fixture
def two_nodes(tmp_path, monkeypatch):
    """The address of a head plus one worker node with 2 CPUs, both gone after the test."""
    if ray.is_initialized():
        ray.shutdown()
    # One authentication mode for head, node and driver: Ray 2.60's `ray start --head` turns
    # token authentication on where ~/.ray/auth_token exists, and a node or a driver that is not
    # told so cannot join; told, all three read the token from that file.
    if (Path.home() / ".ray" / "auth_token").exists():
        monkeypatch.setenv("RAY_AUTH_MODE", "token")
        from ray._private.authentication.authentication_token_setup import _enable_token_auth

        _enable_token_auth()  # this process read its mode when ray was imported: refresh it
    port = _free_port()
    # its own temp folder (short: Ray's socket paths must fit 107 characters), so that the
    # address file a later plain ray.init would read is not this cluster's
    sessions = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    head = _ray_start(
        tmp_path / "head.log",
        "--head",
        f"--port={port}",
        "--num-cpus=0",
        "--include-dashboard=false",
        f"--temp-dir={sessions}",
    )
    node = None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and head.poll() is None, (tmp_path / "head.log").read_text()
                time.sleep(0.3)
        node = _ray_start(tmp_path / "node.log", f"--address=127.0.0.1:{port}", "--num-cpus=2")
        ray.init(address=f"127.0.0.1:{port}", include_dashboard=False, log_to_driver=False, configure_logging=False)
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            assert time.monotonic() < deadline and node.poll() is None, (tmp_path / "node.log").read_text()
            time.sleep(0.3)
        ray.shutdown()  # the campaign joins the cluster itself, with its runtime_env
        yield f"127.0.0.1:{port}"
    finally:
        ray.shutdown()
        for process in (node, head):
            if process is not None:
                _stop(process)
        shutil.rmtree(sessions, ignore_errors=True)


def test_a_campaign_runs_on_a_second_node_with_the_corpus_shipped_and_weights_returned(
    two_nodes, tmp_path, monkeypatch
):
    cache = tmp_path / "driver-cache"
    monkeypatch.setenv("ARCHEVO_CACHE_DIR", str(cache))
    config = make_config(
        "cluster",
        backend="ray",
        ray_address=two_nodes,
        workers=2,
        max_evals=4,
        keep_weights=True,
        weights_dir=str(tmp_path / "weights"),
    )
    repo = Repository(f"sqlite:///{tmp_path / 'cluster.db'}")
    campaign = build_campaign(config, repo)
    # the driver tokenized the corpus and shipped it; with its cache gone, a worker that
    # loaded the corpus from disk would rebuild the cache, and the test would see it
    for folder in (cache / "tokenized").iterdir():
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
    campaign.run()
    rows = repo.population(campaign.campaign.id, 100)
    assert len(rows) == 4 and {row.status for row in rows} <= {"ok", "rejected", "duplicate"}, [r.error for r in rows]
    assert any(row.status == "ok" for row in rows), [repo.result(row.id) for row in rows]
    assert list((cache / "tokenized").iterdir()) == []
    from safetensors.torch import load_file

    for row in rows:
        if row.status == "ok":
            weights = tmp_path / "weights" / "cluster" / f"{row.id}.safetensors"
            assert load_file(weights), f"individual {row.id}: no weights at {weights}"
    # the tasks ran on the node that has CPUs: the head has none
    assert {n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]} == {0, 2}


def test_sigterm_on_a_ray_campaign_says_how_to_resume(tmp_path, monkeypatch):
    """Ray installs its own SIGTERM handler when it starts; the driver's comes back after it, so a
    terminated campaign (a cluster job's time limit) ends with the resume hint and status 130."""
    monkeypatch.setenv("ARCHEVO_CACHE_DIR", str(tmp_path / "cache"))
    toml = tmp_path / "campaign.toml"
    toml.write_text(
        f'name = "term"\nbackend = "ray"\nworkers = 1\ncorpus = "{CORPUS}"\nvocab_size = 300\n'
        'budget = "3e4tokens"\nmax_evals = 50\npopulation = 2\nsample = 1\nmax_train_tokens = 20000\n'
        'strategy = "aging"\n[spec]\nd_model = 32\nn_layers = 1\nn_heads = 2\nseq_len = 16\n'
    )
    log = tmp_path / "term.log"
    with open(log, "w") as out:
        driver = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "archevo"),
                "search",
                "start",
                "--config",
                str(toml),
                "--db",
                url_of(tmp_path / "t.db"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[1],
        )
        deadline = time.monotonic() + 120
        while "term: individual " not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)  # Ray is up and a candidate has finished
        driver.send_signal(signal.SIGTERM)
        driver.wait(timeout=120)
    assert driver.returncode == 130, log.read_text()[-2000:]
    assert "`archevo search resume term` continues the campaign" in log.read_text()
