"""The benchmarks' own measurement code, driven on the CPU so that the GPU paths cannot rot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def throughput():
    return _load("train_throughput")


@pytest.fixture
def tf32_off():
    """TF32 off for the test, the process's settings restored after (torch's flags are not
    plain attributes: monkeypatch cannot undo them)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_fp32_on_cuda_is_measured_as_training_runs_it_and_against_a_large_matmul(throughput, tf32_off):
    """fp32 rows on a GPU train with TF32 (as evaluator.train does), and the reference matmul is
    large enough to reach the tensor cores' rate (a 2048² one does not, inflating MFU)."""
    throughput.use_tf32(torch.device("cpu"))
    assert not torch.backends.cuda.matmul.allow_tf32
    throughput.use_tf32(torch.device("cuda"))
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert throughput.reference_size(torch.device("cuda")) >= 8192 > throughput.reference_size(torch.device("cpu"))


@pytest.mark.integration
def test_packed_copies_are_timed_over_one_common_window(throughput):
    """Copies start (imports, compile) at different times; timed from one signal, their windows
    overlap, so the summed rate is of candidates training together."""
    rate, windows = throughput.packed_rate("transformer", "cpu", 2, 2, 1.0, "fp32", device="cpu")
    assert rate > 0 and len(windows) == 2
    assert min(end for _, end in windows) - max(start for start, _ in windows) >= 0.5


@pytest.mark.integration
def test_the_gpu_check_runs_end_to_end_on_the_cpu(tmp_path):
    """`scripts/gpu_check.sh --dry-run`: every step of the device check at tiny sizes, so the
    script a session lent a GPU runs once cannot rot between loans."""
    import json
    import subprocess

    done = subprocess.run(
        [str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    statuses = {name: step["status"] for name, step in report["steps"].items()}
    assert statuses == dict.fromkeys(["correctness", "throughput", "packing", "search"], "ok"), statuses
    assert report["steps"]["correctness"]["fp32_within_tolerance"]
    assert "compiled" in (tmp_path / "throughput.txt").read_text()
    assert "× 2:" in (tmp_path / "packing.txt").read_text()
    assert "2/3 done" in (tmp_path / "search.txt").read_text() or "3/3 done" in (tmp_path / "search.txt").read_text()


def test_the_search_loop_benchmark_runs(tmp_path):
    """`benchmarks/search_loop.py` at 60 individuals (seconds): it had stopped running once
    unnoticed (it read mutation stats where they no longer lived); its figures must still come."""
    import json
    import subprocess
    import sys

    out = tmp_path / "loop.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "search_loop.py"), "--individuals", "60", "--trace-window", "0"]
        + ["--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "individuals per CPU second" in done.stdout and json.loads(out.read_text())
