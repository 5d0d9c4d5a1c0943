"""The campaign driver end to end, with a fake evaluator (tests/fakes.py) instead of training.

Covered: a campaign records exactly max_evals individuals (seeds first, then mutated
children), the inspection CLI reads it, campaigns replay identically, functionally equal
candidates reuse fitness without an evaluation (FEC), hurdle thresholds follow the recorded
losses, failures are recorded and the campaign goes on, and a driver that dies at any point
(an injected crash after each kind of write, or a SIGKILL of a driver subprocess at a random
moment) resumes with no individual lost, duplicated or re-run more than once.
"""

from __future__ import annotations

import json
import re
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import sqlalchemy
from typer.testing import CliRunner

from evaluator.compiler import compile_model
from evaluator.gate import GateRejected, gate
from primitives.builder import Builder
from primitives.cost import parameter_count, training_flops
from primitives.graph import architecture_hash
from primitives.program import Architecture, Instruction, Program
from primitives.seeds import seed
from search.backends import InProcessBackend
from search.campaign import Campaign, CampaignFailing, build_campaign
from search.config import CampaignConfig, run_recipe
from cli.main import app
from search.hurdles import HurdlePolicy
from search.worker import run_job
from storage import FINAL_STATUSES, CampaignBusy, IndividualRecord, Repository
from tests import fakes
from tests.console import archevo
from tests.configs import CORPUS, SPEC, make_config
from tests.databases import sqlite_only, url_of

REPO_ROOT = Path(__file__).resolve().parents[1]
ARCHEVO = str(Path(sys.executable).parent / "archevo")  # the console script


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory) -> Path:
    """One tokenizer cache for the module (the corpus is tokenized once), in $ARCHEVO_CACHE_DIR."""
    path = tmp_path_factory.mktemp("archevo_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARCHEVO_CACHE_DIR", str(path))
        yield path


def run_campaign_on(repo: Repository, config: CampaignConfig, job=None, patch=None) -> int:
    """Run (or resume) ``config`` to the end with ``job`` (default: the instant fake);
    ``patch(campaign)`` may adjust the driver before it runs. Returns the campaign's id."""
    campaign = build_campaign(config, repo, job=job or fakes.fake_job)
    if patch is not None:
        patch(campaign)
    campaign.run()
    return campaign.campaign.id


def run_campaign(db: Path, config: CampaignConfig, job=None, patch=None) -> tuple[Repository, int]:
    repo = Repository(url_of(db))
    return repo, run_campaign_on(repo, config, job, patch)


def individuals(repo: Repository, campaign_id: int) -> list[IndividualRecord]:
    """Every individual of the campaign (finished or not), by birth."""
    rows = repo.population(campaign_id, 10**9) + repo.unfinished(campaign_id)
    return sorted(rows, key=lambda r: r.birth)


def check_complete(repo: Repository, campaign_id: int, max_evals: int) -> list[IndividualRecord]:
    """Exactly ``max_evals`` individuals, births 0..n-1 once each, all finished, finish
    orders 0..n-1 once each (no result lost or recorded twice)."""
    rows = individuals(repo, campaign_id)
    assert repo.count(campaign_id) == max_evals == len(rows)
    assert [r.birth for r in rows] == list(range(max_evals))
    assert len({r.id for r in rows}) == max_evals
    assert all(r.status in FINAL_STATUSES for r in rows), {r.birth: r.status for r in rows if not r.finished}
    assert sorted(r.finish_order for r in rows) == list(range(max_evals))
    return rows


def check_duplicates(repo: Repository, rows: list[IndividualRecord], evaluated: list[str] | None = None) -> None:
    """Every duplicate points at an earlier evaluated individual with the same hash or
    fingerprint, carries its fitness, and (if ``evaluated``, the programs sent to the
    evaluator, is given) was never evaluated: a program text is evaluated at most as often
    as non-duplicate individuals have it (a child may revert to an earlier program)."""
    by_id = {r.id: r for r in rows}
    for r in rows:
        if r.status != "duplicate":
            continue
        original = by_id[r.duplicate_of]
        assert original.status != "duplicate" and original.finish_order < r.finish_order
        assert original.arch_hash == r.arch_hash or original.fingerprint == r.fingerprint
        assert r.fitness == original.fitness and r.attempt == 0
        if evaluated is not None:
            owners = sum(o.architecture_json == r.architecture_json and o.status != "duplicate" for o in rows)
            assert evaluated.count(r.architecture_json) <= owners


# --------------------------------------------------------------------------- a whole campaign


@pytest.fixture(scope="module")
def small_campaign(tmp_path_factory, cache_dir):
    """A 12-individual campaign from two seeds, evaluated by a counting fake."""
    db = tmp_path_factory.mktemp("small") / "small.db"
    job = fakes.CountingJob()
    events: list[dict] = []
    repo = Repository(url_of(db))
    config = make_config("small", seed_programs=["transformer", "primer_ez"], max_evals=12)
    campaign = build_campaign(config, repo, job=job, on_event=events.append)
    campaign.run()
    return repo, campaign.campaign.id, job, events, db


def test_campaign_records_exactly_max_evals(small_campaign):
    repo, cid, job, events, _ = small_campaign
    rows = check_complete(repo, cid, 12)
    assert repo.get_campaign("small").status == "finished"
    # seeds first: birth i < #seeds is seed i itself, unmutated
    for birth, name in enumerate(["transformer", "primer_ez"]):
        assert rows[birth].parent_id is None and rows[birth].mutation is None and rows[birth].root_seed == name
        assert rows[birth].arch_hash == architecture_hash(seed(name, SPEC))
    ids = {r.id for r in rows}
    for child in rows[2:]:
        assert child.parent_id in ids and child.mutation and ":" in child.mutation
        parent = repo.get_individual(child.parent_id)
        assert parent.birth < child.birth and parent.finished and child.root_seed == parent.root_seed
        assert child.arch_hash != parent.arch_hash
    # every evaluated individual went to the evaluator exactly once; duplicates never
    evaluated = [r for r in rows if r.status != "duplicate"]
    assert sorted(job.calls) == sorted(r.architecture_json for r in evaluated)
    check_duplicates(repo, rows, job.calls)
    for r in evaluated:
        assert r.status == "ok" and r.attempt == 1 and r.fitness == pytest.approx(fakes.arch_loss(r.architecture_json))
        assert r.fingerprint is not None
    recorded = [e for e in events if e["kind"] == "recorded"]
    assert len(recorded) == 12 and events[-1] == {"kind": "finished"}


def test_population_and_lineage_queries(small_campaign):
    repo, cid, _, _, _ = small_campaign
    population = repo.population(cid, 4)
    assert [p.finish_order for p in population] == [8, 9, 10, 11]
    last = individuals(repo, cid)[-1]
    lineage = repo.lineage(last.id)
    assert lineage[0].id == last.id and lineage[-1].parent_id is None and lineage[-1].birth < 2


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_cli_top_show_status_export(small_campaign, tmp_path):
    repo, cid, _, _, db = small_campaign
    url = url_of(db)
    top = json.loads(invoke("top", "--json", "-k", "5", "--db", url).stdout)
    assert 1 <= len(top) <= 5 and all("id" in row for row in top)
    assert [row["rank"] for row in top] == list(range(1, len(top) + 1))
    losses = [row["loss"] for row in top]
    assert losses == sorted(losses) and losses[0] == min(r.fitness for r in individuals(repo, cid) if r.fitness)
    best = top[0]["id"]

    shown = invoke("show", str(best), "--db", url).stdout
    assert f"individual {best} " in shown and "lineage:" in shown and "diff against seed" in shown

    status = invoke("status", "--db", url).stdout
    assert "small" in status and "12/12" in status and "finished" in status

    out = tmp_path / "export"
    invoke("export", str(best), "-o", str(out), "--corpus", CORPUS, "--db", url)
    assert {"model.py", "config.json", "README.md"} <= {p.name for p in out.iterdir()}
    subprocess.run(
        [sys.executable, "-c", "import ast, sys; ast.parse(open(sys.argv[1]).read())", str(out / "model.py")],
        check=True,
    )


def test_cli_show_unknown_individual_fails_cleanly(small_campaign):
    _, _, _, _, db = small_campaign
    result = CliRunner().invoke(app, ["show", "999999", "--db", url_of(db)])
    assert result.exit_code == 2 and "no individual 999999" in result.output and "Traceback" not in result.output


@sqlite_only
def test_a_finished_campaign_lives_in_the_database_file_alone(small_campaign, tmp_path):
    """Copying or backing up just archevo.db (not its -wal) must give the whole campaign."""
    repo, cid, _, _, db = small_campaign
    copy = tmp_path / "copy.db"
    shutil.copyfile(db, copy)
    assert Repository(url_of(copy), readonly=True).count(cid) == 12


@sqlite_only
def test_cli_start_leaves_no_rows_in_the_log(tmp_path, cache_dir):
    db = tmp_path / "cli.db"
    toml = tmp_path / "campaign.toml"
    toml.write_text(f'''name = "cli"\nbackend = "inprocess"\ncorpus = "{CORPUS}"\nvocab_size = 300
budget = "640tokens"\nmax_evals = 3\npopulation = 2\nsample = 1\nmax_train_tokens = 20000
[spec]\nd_model = 32\nn_layers = 1\nn_heads = 2\nseq_len = 16\n''')
    invoke("search", "start", "--config", str(toml), "--db", url_of(db))
    wal = Path(f"{db}-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    copy = tmp_path / "copy.db"
    shutil.copyfile(db, copy)
    copied = Repository(url_of(copy), readonly=True)
    assert copied.count(copied.get_campaign("cli").id) == 3  # the TOML's name is the campaign's


def _damage(data: bytes, how: str) -> bytes:
    if how == "truncated":
        return data[: len(data) // 3]
    if how == "zeroed pages":
        return data[:4096] + bytes(len(data) - 4096)
    flipped = bytearray(data)
    for i in range(100, len(flipped), 61):
        flipped[i] ^= 0xFF
    return bytes(flipped)


@sqlite_only
@pytest.mark.parametrize("how", ["truncated", "flipped bytes", "zeroed pages"])
def test_a_damaged_database_is_one_line_on_every_command(small_campaign, tmp_path, how):
    _, _, _, _, db = small_campaign
    broken = tmp_path / "broken.db"
    broken.write_bytes(_damage(db.read_bytes(), how))
    for command in (["status"], ["top", "small"], ["show", "3"], ["confirm", "small"], ["search", "resume", "small"]):
        result = CliRunner().invoke(app, [*command, "--db", url_of(broken)])
        assert result.exit_code == 2, (command, result.output)
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, command


def test_the_console_script_turns_a_late_database_error_into_one_line(monkeypatch, capsys):
    from sqlalchemy.exc import DatabaseError

    from cli import main as cli

    def broken_app():
        raise DatabaseError("SELECT 1", {}, Exception("database disk image is malformed"))

    monkeypatch.setattr(cli, "app", broken_app)
    with pytest.raises(SystemExit) as exit_info:
        cli.run()
    assert exit_info.value.code == 2 and "malformed" in capsys.readouterr().err


@sqlite_only
def test_inspection_of_a_missing_database_is_one_line_and_creates_nothing(tmp_path):
    missing = tmp_path / "typo.db"
    for command in (["status"], ["top"], ["show", "1"], ["plot"]):
        result = CliRunner().invoke(app, [*command, "--db", url_of(missing)])
        assert result.exit_code == 2, command
        assert "typo.db" in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not missing.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--corpus", "lm1b:/no/such/folder"], "no LM1B found at /no/such/folder"),
        (
            ["--ray-address", "127.0.0.1:1", "--backend", "ray", "--corpus", CORPUS],
            "cannot reach the Ray cluster at 127.0.0.1:1",
        ),
    ],
)
def test_a_failed_start_leaves_no_campaign(tmp_path, cache_dir, args, message):
    url = url_of(tmp_path / "failed.db")
    result = CliRunner().invoke(app, ["search", "start", "--name", "broken", *args, "--db", url])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert Repository(url).get_campaign("broken") is None  # the name is free for a corrected start


@pytest.mark.parametrize(
    "args, message",
    [
        (["search", "start", "--name", "m", "--db", "sqlite://"], "an in-memory database keeps nothing"),
        (["search", "start", "--name", "m", "--db", "sqlite:///file:m?mode=memory&uri=true"], "in-memory"),
        (["search", "start", "--name", "m", "--budget", "1e99flops"], "more than one run may spend"),
        (["train", "transformer", "--budget", "1e99flops"], "more than one run may spend"),
        (["train", "transformer", "--layers", "100000000"], "n_layers: Input should be less than or equal to 1024"),
        (["status", "--db", "sqlite:////dev/null"], "/dev/null is not a regular file"),
        (["search", "start", "--name", "m", "--db", "sqlite:////dev/null"], "/dev/null is not a regular file"),
        (["show", "99999999999999999999999"], "no individual 99999999999999999999999"),
    ],
)
def test_audit_inputs_are_refused_in_one_line_and_change_nothing(tmp_path, args, message):
    """What the reliability audit found (issue #31): nothing runs for ever, nothing is written
    where it cannot be kept, no traceback."""
    before = set(Path("/dev").iterdir())
    Repository(url_of(tmp_path / "audit.db")).close()  # an empty archevo database
    db = ["--db", url_of(tmp_path / "audit.db")] if "--db" not in args and args[0] != "train" else []
    started = time.process_time()
    result = CliRunner().invoke(app, [*args, *db])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and time.process_time() - started < 5
    assert set(Path("/dev").iterdir()) == before  # no /dev/null-journal


def test_show_escapes_what_a_database_stores(tmp_path, cache_dir):
    """Terminal escape sequences in stored text are shown, never obeyed."""
    db = tmp_path / "escape.db"
    repo = Repository(url_of(db))
    run_campaign_on(repo, make_config("esc", max_evals=3))
    child = repo.finished_individuals(repo.get_campaign("esc").id)[-1]
    with repo.engine.begin() as connection:
        connection.execute(
            sqlalchemy.text("UPDATE individuals SET mutation = :mutation WHERE id = :id"),
            {"mutation": "insert: \x1b]0;owned\x07\x1b[31mred", "id": child.id},
        )
    shown = invoke("show", str(child.id), "--db", url_of(db)).stdout
    assert "\x1b" not in shown and "\x07" not in shown and "\\x1b[31mred" in shown


@pytest.mark.parametrize("name", ["a/b", "../up", "[bold]x[/bold]", "", "x" * 101])
def test_campaign_names_are_plain(name):
    with pytest.raises(ValueError, match="not a plain name"):
        make_config(name)


def test_resume_extends_a_finished_campaign(tmp_path, cache_dir):
    db = tmp_path / "extend.db"
    repo, cid = run_campaign(db, make_config("ext", max_evals=6))
    repo.close()
    toml_free = CliRunner().invoke(app, ["search", "resume", "ext", "--max-evals", "4", "--db", url_of(db)])
    assert toml_free.exit_code == 2 and "can only be extended" in toml_free.output
    stored = Repository(url_of(db)).get_campaign("ext").config
    assert stored["max_evals"] == 6
    config = CampaignConfig.model_validate({**stored, "max_evals": 9})
    repo = Repository(url_of(db))
    repo.set_campaign_config("ext", config.model_dump(mode="json"))
    run_campaign_on(repo, config)
    check_complete(repo, cid, 9)
    assert repo.get_campaign("ext").config["max_evals"] == 9


def test_a_second_driver_on_a_live_campaign_is_refused(tmp_path, cache_dir):
    db = tmp_path / "live.db"
    repo = Repository(url_of(db))
    config = make_config("live", max_evals=4)
    campaign = build_campaign(config, repo, job=fakes.fake_job)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a live process
    try:
        repo.claim_driver(campaign.campaign.id, socket.gethostname(), other.pid, lambda holder: None)
        with pytest.raises(CampaignBusy, match=f"being driven by pid {other.pid}"):
            campaign.run()
        assert repo.count(campaign.campaign.id) == 0  # it trained nothing
        status = json.loads(CliRunner().invoke(app, ["status", "--json", "--db", url_of(db)]).stdout)
        assert status[0]["state"] == f"running (pid {other.pid})"
        resumed = CliRunner().invoke(app, ["search", "resume", "live", "--db", url_of(db)])
        assert resumed.exit_code == 2 and "being driven by" in resumed.output
    finally:
        other.kill()
        other.wait()
    build_campaign(config, repo, job=fakes.fake_job).run()  # its driver is dead now: taken over
    check_complete(repo, campaign.campaign.id, 4)
    assert repo.driver(campaign.campaign.id) is None  # released at the end


@sqlite_only
def test_a_silent_remote_driver_is_taken_over_only_with_force(tmp_path, cache_dir):
    repo = Repository(url_of(tmp_path / "remote.db"))
    config = make_config("remote", max_evals=3)
    campaign = build_campaign(config, repo, job=fakes.fake_job)
    repo.claim_driver(campaign.campaign.id, "elsewhere.example", 4242, lambda holder: None)
    with repo.engine.begin() as c:  # its last heartbeat was ten minutes ago
        c.exec_driver_sql("UPDATE campaign_drivers SET heartbeat_at = datetime('now', '-600 seconds')")
    with pytest.raises(CampaignBusy, match="--force"):
        campaign.run()
    build_campaign(config, repo, job=fakes.fake_job, force=True).run()
    check_complete(repo, campaign.campaign.id, 3)


# --------------------------------------------------------------------------- determinism


def hashes_by_birth(repo: Repository, cid: int) -> list[str]:
    return [r.arch_hash for r in individuals(repo, cid)]


def test_same_seed_same_campaign(tmp_path):
    config = make_config("d", max_evals=14, search_seed=7)
    first = hashes_by_birth(*run_campaign(tmp_path / "a.db", config))
    second = hashes_by_birth(*run_campaign(tmp_path / "b.db", make_config("d", max_evals=14, search_seed=7)))
    assert first == second and len(set(first)) > 5
    other = hashes_by_birth(*run_campaign(tmp_path / "c.db", make_config("d", max_evals=14, search_seed=8)))
    assert other != first  # the seed matters (else the check above proves nothing)


# --------------------------------------------------------------------------- FEC


def with_final(architecture: Architecture, tail) -> Architecture:
    """``architecture`` whose final program is ``tail(builder, n)`` after its final norm ``n``."""
    [norm] = architecture.final.main.body
    b = Builder("main")
    n = b.emit(norm.op, "x", out="norm", **norm.attrs)
    return architecture.model_copy(update={"final": Program(subprograms=[b.build(tail(b, n))])})


def doubled_by_add(b, n):
    return b.add(n, n, out="twice")


def doubled_by_cmul(b, n):
    return b.cmul(n, value=2.0, out="twice")


def test_gate_fingerprint_is_functional_not_structural():
    base = seed("transformer", SPEC)
    added, doubled = with_final(base, doubled_by_add), with_final(base, doubled_by_cmul)
    shifted = with_final(base, lambda b, n: b.add(n, b.tanh(n), out="shifted"))
    assert len({architecture_hash(a) for a in (base, added, doubled, shifted)}) == 4
    assert gate(SPEC, added).fingerprint == gate(SPEC, doubled).fingerprint  # n + n == 2·n exactly
    assert gate(SPEC, shifted).fingerprint != gate(SPEC, added).fingerprint
    assert gate(SPEC, shifted).fingerprint != gate(SPEC, base).fingerprint


def _reassociated(architecture):
    """The layer's residual sum regrouped: y = (x + attn) + mlp becomes x + (attn + mlp), the
    same function with its float sums in another order (as another machine's kernels order them)."""
    from primitives.program import Instruction

    layer = architecture.layers[0]
    main, *rest = layer.subprograms
    assert main.body[-1].op == "add" and main.body[-1].inputs == ["h", "mlp"]
    body = [
        *main.body[:-1],
        Instruction(out="t", op="add", inputs=["attn", "mlp"], attrs={}),
        Instruction(out="y", op="add", inputs=["x", "t"], attrs={}),
    ]
    layer = layer.model_copy(update={"subprograms": [main.model_copy(update={"body": body}), *rest]})
    return architecture.model_copy(update={"layers": [layer] * len(architecture.layers)})


@pytest.mark.parametrize("name", ["transformer", "primer_ez", "mdha"])
def test_gate_fingerprint_is_stable_when_sums_are_reordered(name):
    """Floating-point sums in another order (another machine, a regrouped program) must not
    change the fingerprint: in float32 they moved outputs across a quantisation step (42 of 80
    children got other fingerprints on another VM); the probe runs in float64."""
    spec = SPEC.model_copy(update={"d_model": 128, "n_heads": 4, "seq_len": 128})
    base = seed(name, spec)
    assert architecture_hash(_reassociated(base)) != architecture_hash(base)
    assert gate(spec, _reassociated(base)).fingerprint == gate(spec, base).fingerprint


def test_gate_fingerprint_sees_the_scale_of_the_logits():
    plain = with_final(seed("transformer", SPEC), lambda b, n: n)
    assert gate(SPEC, plain).fingerprint == gate(SPEC, seed("transformer", SPEC)).fingerprint
    assert gate(SPEC, with_final(plain, doubled_by_add)).fingerprint != gate(SPEC, plain).fingerprint


def test_gate_fingerprint_does_not_depend_on_what_was_probed_before():
    """The probe caches compiled programs and lends building blocks between them: a resumed
    driver (a fresh process, probing in another order) must compute the same fingerprints."""
    names = ["primer", "sas", "parallel", "transformer"]
    here = [gate(SPEC, seed(name, SPEC)).fingerprint for name in names]
    script = (
        "import json, sys; from evaluator.gate import gate; from primitives.seeds import seed; "
        "from primitives.program import ModelSpec; spec = ModelSpec.model_validate_json(sys.argv[1]); "
        "names = json.loads(sys.argv[2]); print(json.dumps([gate(spec, seed(n, spec)).fingerprint for n in names]))"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", script, SPEC.model_dump_json(), json.dumps(names[::-1])],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    )
    assert json.loads(fresh.stdout)[::-1] == here
    assert len(set(here)) == len(here)


def residual_doubled(architecture: Architecture) -> Architecture:
    """Each layer returns 2·y instead of y (a one-instruction insertion a mutation can make)."""
    layer = architecture.layers[0]
    main = layer.main
    body = [*main.body, Instruction(out="doubled", op="cmul", inputs=[main.output], attrs={"value": 2.0})]
    program = Program(subprograms=[main.model_copy(update={"body": body, "output": "doubled"}), *layer.subprograms[1:]])
    return architecture.model_copy(update={"layers": [program]})


def test_gate_fingerprint_sees_what_only_a_deeper_stack_shows():
    spec = SPEC.model_copy(update={"n_layers": 2})
    base = seed("transformer", spec)
    doubled = residual_doubled(base)
    torch.manual_seed(0)
    outputs = compile_model(spec, base)(torch.arange(16)[None])[0]
    torch.manual_seed(0)
    assert not torch.allclose(outputs, compile_model(spec, doubled)(torch.arange(16)[None])[0], atol=1e-3)
    assert gate(spec, doubled).fingerprint != gate(spec, base).fingerprint


def replace_seeds(*architectures: Architecture):
    """A patch for ``run_campaign``: seed i (birth i) becomes ``architectures[i]``, keeping its name."""

    def patch(campaign: Campaign) -> None:
        for name, architecture in zip(list(campaign.seeds), architectures):
            campaign.seeds[name] = architecture  # the evolution shares this dict
        assert list(campaign.evolution.seeds.values())[: len(architectures)] == list(architectures)

    return patch


@pytest.mark.parametrize("kind", ["fingerprint", "hash"])
def test_functionally_equal_child_is_a_duplicate_and_not_evaluated(tmp_path, kind):
    base = with_final(seed("transformer", SPEC), doubled_by_add)
    twin = (
        with_final(seed("transformer", SPEC), doubled_by_cmul)
        if kind == "fingerprint"
        else base.model_copy(update={"name": "renamed twin"})
    )  # same hash, different JSON
    config = make_config("fec", seed_programs=["transformer", "gelu"], max_evals=6)
    job = fakes.CountingJob()
    repo, cid = run_campaign(tmp_path / "fec.db", config, job, replace_seeds(base, twin))
    rows = check_complete(repo, cid, 6)
    original, dup = rows[0], rows[1]
    assert dup.status == "duplicate" and dup.duplicate_of == original.id
    assert dup.fitness == original.fitness is not None and dup.val_loss == original.val_loss
    assert dup.fingerprint == original.fingerprint
    assert (dup.arch_hash == original.arch_hash) == (kind == "hash")
    assert dup.architecture_json != original.architecture_json
    assert dup.architecture_json not in job.calls and job.calls.count(original.architecture_json) == 1
    assert "functionally equal" in dup.error
    assert len(job.calls) == sum(r.status != "duplicate" for r in rows)
    check_duplicates(repo, rows, job.calls)
    # a duplicate never enters `top` (it would list one program twice)
    assert dup.id not in [r.id for r in repo.top(cid, 100)]


@pytest.mark.parametrize("failure", ["error", "timeout"])
def test_a_twin_of_a_failed_individual_is_evaluated_not_reused(tmp_path, failure):
    """A worker's fault (crash, timeout, out of memory) says nothing about the program: a
    functionally equal child must be trained, not banned as the failure's duplicate."""
    base = with_final(seed("transformer", SPEC), doubled_by_add)
    twin = with_final(seed("transformer", SPEC), doubled_by_cmul)
    calls: list[str] = []

    def first_fails(job):
        calls.append(job["architecture_json"])
        return {"status": failure, "message": "worker fault"} if len(calls) == 1 else fakes.fake_job(job)

    config = make_config("fault", seed_programs=["transformer", "gelu"], max_evals=3)
    repo, cid = run_campaign(tmp_path / "fault.db", config, first_fails, replace_seeds(base, twin))
    rows = check_complete(repo, cid, 3)
    assert rows[0].status == failure and rows[1].status == "ok" and rows[1].duplicate_of is None
    assert rows[0].fingerprint == rows[1].fingerprint


def test_show_json_and_version(small_campaign):
    repo, cid, _, _, db = small_campaign
    last = individuals(repo, cid)[-1]
    shown = json.loads(invoke("show", str(last.id), "--json", "--db", url_of(db)).stdout)
    assert shown["id"] == last.id and shown["lineage"][0]["id"] == last.id
    assert shown["architecture"]["layers"] and shown["diff_from_parent"] is not None
    assert invoke("--version").stdout.startswith("archevo ")


# --------------------------------------------------------------------------- hurdles


def test_hurdle_thresholds_follow_recorded_losses(tmp_path):
    config = make_config("h", hurdles=2, hurdle_min_samples=2, max_evals=16, search_seed=3)
    policy = config.hurdle_policy()
    job = fakes.CountingJob()
    repo, cid = run_campaign(tmp_path / "h.db", config, job)
    rows = check_complete(repo, cid, 16)
    thresholds_of = dict(zip(job.calls, job.thresholds))
    evaluated = [r for r in rows if r.status != "duplicate"]
    assert job.thresholds[0] == [None, None] and job.thresholds[1] == [None, None]
    assert any(t[0] is not None for t in job.thresholds) and any(t[1] is not None for t in job.thresholds)

    by_finish = sorted(evaluated, key=lambda r: r.finish_order)
    seen: dict[int, list[float]] = {0: [], 1: []}
    for r in by_finish:
        hurdles = repo.hurdles(r.id)
        sent = thresholds_of[r.architecture_json]
        # the bar in force at dispatch: the policy over every loss recorded before (capacity 1)
        assert sent == [policy.threshold(seen[0]), policy.threshold(seen[1])]
        assert [h.hurdle for h in hurdles] == list(range(len(hurdles))) and 1 <= len(hurdles) <= 2
        for h in hurdles:
            assert h.fraction == pytest.approx(policy.positions[h.hurdle])
            assert h.threshold == sent[h.hurdle]
            assert h.passed == HurdlePolicy.passes(h.loss, h.threshold)
            seen[h.hurdle].append(h.loss)
        if r.status == "stopped_at_hurdle":
            assert not hurdles[-1].passed and all(h.passed for h in hurdles[:-1])
            assert r.fitness == hurdles[-1].loss and r.val_loss is None
            assert r.hurdles_passed == len(hurdles) - 1
        else:
            assert r.status == "ok" and all(h.passed for h in hurdles) and len(hurdles) == 2
            assert r.fitness == r.val_loss and r.hurdles_passed == 2
    assert any(r.status == "stopped_at_hurdle" for r in rows), "no hurdle ever stopped a candidate"
    counts = {h: (reached, passed) for h, reached, passed in repo.hurdle_pass_counts(cid)}
    assert counts[0][0] == len(evaluated) and counts[1][0] == counts[0][1]


def test_a_run_leaves_the_callers_config_and_the_process_as_they_were(tmp_path):
    import gc

    import torch

    config = make_config("untouched", hurdles=2, max_evals=4)
    before, threads = config.model_dump(), torch.get_num_threads()
    campaign = build_campaign(config, Repository(url_of(tmp_path / "u.db")), job=fakes.fake_job)
    campaign.run()
    assert config.model_dump() == before and config.train.hurdle_fractions == []
    assert campaign.config.train.hurdle_fractions == list(config.hurdle_policy().positions)
    assert torch.get_num_threads() == threads and gc.get_freeze_count() == 0


@pytest.mark.parametrize("strategy", ["aging", "random", "ladder"])
def test_each_strategy_runs_and_status_top_show_name_it(tmp_path, strategy):
    """A campaign of each strategy completes; the ladder judges every child at each rung by its
    seed's loss there plus the rung's margin, and stops some."""
    margins = [1.0, 0.3]
    ladder = {"rungs": [0.25, 0.5], "rung_margins": margins} if strategy == "ladder" else {}
    repo, cid = run_campaign(tmp_path / "s.db", make_config("s", strategy=strategy, max_evals=14, **ladder))
    rows = check_complete(repo, cid, 14)
    url = url_of(tmp_path / "s.db")
    assert json.loads(invoke("status", "--json", "--db", url).stdout)[0]["strategy"].startswith(strategy)
    assert f"({strategy}" in invoke("top", "--db", url).stdout
    assert f"strategy {strategy}" in invoke("show", str(rows[-1].id), "--db", url).stdout
    assert json.loads(invoke("show", str(rows[-1].id), "--json", "--db", url).stdout)["strategy"].startswith(strategy)
    if strategy == "ladder":
        seed_losses = [h.loss for h in repo.hurdles(rows[0].id)]
        judged = [h for r in rows[1:] if r.parent_id is not None for h in repo.hurdles(r.id)]
        assert judged and all(h.threshold == pytest.approx(seed_losses[h.hurdle] + margins[h.hurdle]) for h in judged)
        assert any(r.status == "stopped_at_hurdle" for r in rows) and any(r.status == "ok" for r in rows[1:])


def test_under_the_seed_rule_children_wait_for_the_seed_and_are_all_judged(tmp_path):
    """With room for two jobs, the ladder sends no child beside its seed: every child faces the
    seed's losses at the rungs (a child sent beside it would train to the end unjudged)."""

    class TwoAtOnce(InProcessBackend):
        capacity = 2

    config = make_config("w", strategy="ladder", rungs=[0.25, 0.5], rung_margins=[1.0, 0.3], max_evals=10)
    repo = Repository(url_of(tmp_path / "w.db"))
    build_campaign(config, repo, backend=TwoAtOnce(fakes.fake_job)).run()
    rows = check_complete(repo, repo.get_campaign("w").id, 10)
    children = [r for r in rows if r.parent_id is not None and r.status in ("ok", "stopped_at_hurdle")]
    assert children and all(h.threshold is not None for r in children for h in repo.hurdles(r.id))


def test_hurdle_fractions_place_the_hurdles_and_enter_the_recipe(tmp_path):
    placed = make_config("p", hurdles=1, hurdle_fractions=[0.5], max_evals=6)
    assert placed.hurdle_policy().positions == (0.5,)
    assert CampaignConfig(name="q", strategy="aging", budget="1e5tokens", hurdle_fractions=[0.3, 0.6]).hurdles == 2
    assert make_config("p", hurdles=1).hurdle_policy().positions == pytest.approx((1 / 3,))
    assert placed.recipe() != make_config("p", hurdles=1).recipe()
    job = fakes.CountingJob()
    repo, cid = run_campaign(tmp_path / "p.db", placed, job)
    assert {h.fraction for r in check_complete(repo, cid, 6) for h in repo.hurdles(r.id)} == {0.5}
    for bad, message in (([0.5, 0.4], "increase strictly"), ([0.0, 0.5], "increase strictly"), ([1.0], "increase")):
        with pytest.raises(ValueError, match=message):
            make_config("p", hurdles=len(bad), hurdle_fractions=bad)
    with pytest.raises(ValueError, match="hurdles = 2 but hurdle_fractions has 1"):
        make_config("p", hurdles=2, hurdle_fractions=[0.5])


def test_renamed_fields_are_read_under_their_old_names_and_keep_the_recipe_hash(tmp_path):
    """`seed` became `search_seed` and TrainConfig's `hurdles` `hurdle_fractions`: TOML files and
    stored campaigns still load, and the recipes are the hashes the previous names gave (taken
    at the commit before the rename), so resumed campaigns still find their duplicates."""
    toml = tmp_path / "old.toml"
    toml.write_text('seed = 5\nbudget = "1e5tokens"\n[train]\nhurdles = [0.5]\n')
    old = CampaignConfig.from_toml(toml)
    assert old.search_seed == 5 and old.train.hurdle_fractions == [0.5]
    assert CampaignConfig.from_toml(toml, search_seed=6).search_seed == 6  # the new name overrides the old
    with pytest.raises(ValueError, match="'seed' is the old name of 'search_seed'"):
        make_config("r", search_seed=2, seed=3)
    assert make_config("a").recipe() == "61bd043605d8c82c"
    screened = make_config("b", screen=["selective_copying"], search_seed=7, hurdles=1, hurdle_fractions=[0.5])
    assert (screened.recipe(), run_recipe(screened).recipe()) == ("deb09deec35b913a", "c67e7b7ebe40cd31")


# --------------------------------------------------------------------------- failures


def test_failures_are_recorded_and_the_campaign_goes_on(tmp_path):
    job = fakes.CountingJob(fail_every=(4, 1))  # calls 1, 5, 9 raise; 2, 6, 10 diverge
    repo, cid = run_campaign(tmp_path / "f.db", make_config("f", max_evals=12), job)
    rows = check_complete(repo, cid, 12)
    statuses = [r.status for r in rows]
    assert statuses.count("error") >= 2 and statuses.count("diverged") >= 2
    for r in rows:
        if r.status in ("error", "diverged"):
            assert r.fitness is None and r.error
        if r.status == "error":
            assert "RuntimeError: fake failure" in r.error
    assert repo.get_campaign("f").status == "finished"
    assert repo.top(cid, 100) and all(r.status == "ok" for r in repo.top(cid, 100))


def test_children_outside_the_cost_bounds_are_recorded_rejected_untrained(tmp_path):
    job = fakes.CountingJob()
    repo, cid = run_campaign(
        tmp_path / "bounds.db",
        make_config("bounds", max_evals=12, min_flops_ratio=0.999, max_flops_ratio=1.001),
        job=job,
    )
    rows = check_complete(repo, cid, 12)
    rejected = [r for r in rows if r.status == "rejected"]
    assert rejected, "a mutation that changes no FLOPs at all twelve times running is implausible"
    for r in rejected:
        assert r.fitness is None and r.error.startswith("cost out of bounds: FLOPs per token")
        assert r.architecture_json not in job.calls
        ratio = training_flops(SPEC, r.architecture()) / training_flops(SPEC, seed(r.root_seed, SPEC))
        assert not 0.999 <= ratio <= 1.001
    for r in rows:
        if r.status == "ok" and r.parent_id is not None:
            ratio = training_flops(SPEC, r.architecture()) / training_flops(SPEC, seed(r.root_seed, SPEC))
            assert 0.999 <= ratio <= 1.001
    # never trained, they are no parents: they neither age members out nor breed
    status = {r.id: r.status for r in rows}
    assert all(status[r.parent_id] != "rejected" for r in rows if r.parent_id is not None)
    assert [p.id for p in repo.parents(cid, 100)] == [r.id for r in repo.population(cid, 100) if r.status != "rejected"]


def test_a_worker_claiming_ok_without_a_finite_loss_is_an_error(tmp_path):
    def nan_job(job):
        return fakes.fake_job(job).model_copy(update={"val_loss": float("nan")})

    repo, cid = run_campaign(tmp_path / "nan.db", make_config("nan", max_evals=3), job=nan_job)
    rows = individuals(repo, cid)
    assert rows[0].status == "error" and "validation loss of nan" in rows[0].error


def test_seed_rejected_by_the_gate_is_an_error_and_the_campaign_goes_on(tmp_path):
    small, large = seed("transformer", SPEC), seed("primer_ez", SPEC)
    limit = (parameter_count(SPEC, small) + parameter_count(SPEC, large)) // 2
    assert parameter_count(SPEC, large) > limit >= parameter_count(SPEC, small)
    with pytest.raises(GateRejected, match="parameters exceed the limit"):
        gate(SPEC, large, max_parameters=limit)
    job = fakes.CountingJob()
    config = make_config("g", seed_programs=["transformer", "primer_ez"], max_parameters=limit, max_evals=8)
    repo, cid = run_campaign(tmp_path / "g.db", config, job)
    rows = check_complete(repo, cid, 8)
    assert rows[1].status == "error" and "rejected by the gate" in rows[1].error and rows[1].attempt == 0
    assert rows[1].architecture_json not in job.calls
    assert all(r.status in ("ok", "duplicate") for r in rows if r.birth != 1)


# --------------------------------------------------------------------------- crash and resume


class Crash(BaseException):
    """A driver death (BaseException: nothing in the driver may catch it)."""


#: Every Repository method that writes (those the driver version at hand does not have are skipped).
WRITES = (
    "create_campaign",
    "set_campaign_status",
    "add_individual",
    "mark_running",
    "record_result",
    "set_fingerprint",
    "record_hurdle",
)


def CrashingRepository(url: str, at: int, method: str | None = None) -> Repository:
    """A Repository whose process "dies" (raises Crash) right after its ``at``-th write call
    (of ``method`` only, if given). Inside ``Repository.batch`` the crash rolls the batch
    back, as a real death before its commit would; elsewhere the write is committed."""

    def crashing(original, name):
        def write(self, *args, **kwargs):
            value = original(self, *args, **kwargs)
            if method is None or name == method:
                self.writes.append(name)
                if len(self.writes) == at:
                    raise Crash(f"after write #{at} ({name})")
            return value

        return write

    methods = {name: crashing(getattr(Repository, name), name) for name in WRITES if hasattr(Repository, name)}
    repo = type("CrashingRepository", (Repository,), methods)(url)
    repo.writes = []
    return repo


RESUME_CONFIG = {
    "hurdles": 1,
    "hurdle_min_samples": 2,
    "max_evals": 12,
    "search_seed": 5,
    "seed_programs": ["transformer", "gelu"],
}


def twin_seeds():
    """Birth 1 is functionally equal to birth 0: the crash tests pass through a duplicate."""
    return replace_seeds(
        with_final(seed("transformer", SPEC), doubled_by_add), with_final(seed("transformer", SPEC), doubled_by_cmul)
    )


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, cache_dir):
    """The uninterrupted campaign every crashed-and-resumed one must reproduce."""
    job = fakes.CountingJob()
    repo, cid = run_campaign(
        tmp_path_factory.mktemp("ref") / "ref.db", make_config("r", **RESUME_CONFIG), job, twin_seeds()
    )
    rows = individuals(repo, cid)
    assert rows[1].status == "duplicate"
    return rows, dict(zip(job.calls, job.thresholds))


def crash_and_resume(db: Path, at: int, method: str | None = None):
    url = url_of(db)
    config = make_config("r", **RESUME_CONFIG)
    first = fakes.CountingJob()
    crashing = CrashingRepository(url, at, method)
    with pytest.raises(Crash):
        run_campaign_on(crashing, config, first, twin_seeds())
    repo = Repository(url)
    cid = repo.get_campaign("r").id
    before = {r.birth: r for r in individuals(repo, cid)}
    resumed = fakes.CountingJob()
    run_campaign_on(repo, CampaignConfig.from_stored(repo.get_campaign("r").config), resumed, twin_seeds())
    return repo, cid, before, first, resumed


def check_resumed(repo, cid, before, resumed, reference_rows):
    """Complete, identical to the uninterrupted run, in-flight individuals re-run once and
    finished ones untouched."""
    rows = check_complete(repo, cid, len(reference_rows))
    assert [r.arch_hash for r in rows] == [r.arch_hash for r in reference_rows]
    assert [(r.status, r.fitness) for r in rows] == [(r.status, r.fitness) for r in reference_rows]
    for r in rows:
        old = before.get(r.birth)
        if old is None:
            continue
        if old.status == "running":  # in flight: re-run exactly once
            assert r.attempt == old.attempt + 1 == 2 and resumed.calls.count(r.architecture_json) == 1
        elif old.status == "pending":  # stored, never dispatched: dispatched once now
            assert r.attempt <= 1 and resumed.calls.count(r.architecture_json) == r.attempt
        elif old.finished:  # untouched
            assert (r.status, r.attempt, r.finish_order, r.fitness) == (
                old.status,
                old.attempt,
                old.finish_order,
                old.fitness,
            )
            assert resumed.calls.count(r.architecture_json) == 0 or r.status == "duplicate"
    check_duplicates(repo, rows, resumed.calls)
    return rows


#: Write numbers to crash after: 5 and 6 are birth 1's (a duplicate: stored and recorded in
#: one batch), then every second write reaches every kind (3 writes per evaluated individual:
#: stored and dispatched, result, hurdle), up to the campaign's 37th and last.
CRASH_POINTS = (2, 3, 4, 5, 6, 7, *range(9, 37, 2))


@pytest.mark.parametrize("at", CRASH_POINTS)
def test_resume_after_a_crash_reproduces_the_uninterrupted_campaign(tmp_path, reference_run, at):
    """The driver dies after its at-th database write (any kind: a stored proposal, a
    dispatch, a hurdle, a result), then a new driver resumes the campaign."""
    reference_rows, _ = reference_run
    repo, cid, before, first, resumed = crash_and_resume(tmp_path / "c.db", at)
    check_resumed(repo, cid, before, resumed, reference_rows)
    # at most one evaluation per dispatch, and every evaluated individual evaluated
    for r in individuals(repo, cid):
        if r.status != "duplicate":
            assert 1 <= first.calls.count(r.architecture_json) + resumed.calls.count(r.architecture_json) <= r.attempt


def test_crash_points_cover_every_kind_of_write(tmp_path):
    """The crash points above land after each kind of write the driver makes."""
    repo = CrashingRepository(url_of(tmp_path / "w.db"), at=10**9)
    run_campaign_on(repo, make_config("r", **RESUME_CONFIG), fakes.fake_job, twin_seeds())
    assert len(repo.writes) >= max(CRASH_POINTS)
    kinds = {repo.writes[at - 1] for at in CRASH_POINTS}
    assert {"add_individual", "record_result", "record_hurdle"} <= kinds, kinds


def test_rerun_after_a_crash_between_hurdle_and_result_faces_the_same_bar(tmp_path, reference_run):
    reference_rows, reference_thresholds = reference_run
    # dies after the second hurdle loss is recorded (birth 2's; birth 1 is a duplicate): its
    # bar was None (min_samples 2, one loss before it); on resume its own loss counts, and
    # the bar becomes min(loss 0, loss 2)
    repo, cid, before, _, resumed = crash_and_resume(tmp_path / "c.db", 2, method="record_hurdle")
    [rerun] = [r for r in before.values() if r.status == "running"]
    assert reference_thresholds[rerun.architecture_json] == [None]
    assert dict(zip(resumed.calls, resumed.thresholds))[rerun.architecture_json] == [None]
    check_resumed(repo, cid, before, resumed, reference_rows)


def test_resume_of_an_individual_stored_before_its_duplicate_check(tmp_path):
    """A crash right after a proposal is stored, before its FEC lookup: the resumed campaign
    must still record it as a duplicate, not train it (the driver stores, looks up and
    records a duplicate in one batch, so the crash rolls the whole proposal back)."""
    base = with_final(seed("transformer", SPEC), doubled_by_add)
    twin = with_final(seed("transformer", SPEC), doubled_by_cmul)
    url = url_of(tmp_path / "p.db")
    config = make_config("p", seed_programs=["transformer", "gelu"], max_evals=4)

    def patched(repo, job):
        campaign = build_campaign(config, repo, job=job)
        campaign.seeds["transformer"], campaign.seeds["gelu"] = base, twin
        return campaign

    with pytest.raises(Crash):  # dies right after storing birth 1 (the twin), before its FEC lookup
        patched(CrashingRepository(url, 2, method="add_individual"), fakes.CountingJob()).run()
    repo, resumed = Repository(url), fakes.CountingJob()
    patched(repo, resumed).run()
    rows = check_complete(repo, repo.get_campaign("p").id, 4)
    assert rows[1].status == "duplicate" and rows[1].architecture_json not in resumed.calls


# --------------------------------------------------------------------------- SIGKILL of a real driver process

DRIVER = """
import sys
sys.path.insert(0, {root!r})
from search.campaign import build_campaign
from search.config import CampaignConfig
from storage import Repository
from tests import fakes

repo = Repository(sys.argv[1])
config = CampaignConfig.model_validate_json(sys.argv[2])
build_campaign(config, repo, job=getattr(fakes, sys.argv[3])).run()
"""

KILL_CONFIG = {
    "hurdles": 1,
    "hurdle_min_samples": 2,
    "max_evals": 40,
    "search_seed": 11,
    "seed_programs": ["transformer", "gelu"],
}


#: Each strategy's own config for the kill test (the ladder's rungs replace the hurdle).
KILL_STRATEGIES = {
    "aging": KILL_CONFIG,
    "random": {**KILL_CONFIG, "strategy": "random"},
    "ladder": {
        **{k: v for k, v in KILL_CONFIG.items() if k != "hurdles"},
        "strategy": "ladder",
        "rungs": [0.25, 0.5],
        "rung_margins": [1.0, 0.3],
    },
}


@pytest.fixture(scope="module")
def kill_references(tmp_path_factory, cache_dir):
    """Each strategy's uninterrupted campaign, run once when a test first asks for it."""
    cache: dict[str, list] = {}

    def reference(strategy: str) -> list:
        if strategy not in cache:
            path = tmp_path_factory.mktemp(f"kref-{strategy}") / "ref.db"
            repo, cid = run_campaign(path, make_config("k", **KILL_STRATEGIES[strategy]))
            cache[strategy] = individuals(repo, cid)
        return cache[strategy]

    return reference


def start_driver(tmp_path: Path, url: str, config: CampaignConfig, job: str, cache_dir: Path) -> subprocess.Popen:
    """A campaign driver in a subprocess (in-process backend, the fake ``job`` of tests/fakes.py)."""
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(root=str(REPO_ROOT)))
    env = {**os.environ, "ARCHEVO_CACHE_DIR": str(cache_dir), "ARCHEVO_FAKE_SLEEP": "0.2"}
    return subprocess.Popen(
        [sys.executable, str(script), url, config.model_dump_json(), job],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill(process: subprocess.Popen) -> None:
    try:
        assert process.poll() is None, "the driver finished before the kill: the test proves nothing"
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL


def wait_for_results(url: str, process: subprocess.Popen, count: int = 1, limit_s: float = 60) -> None:
    stop = time.monotonic() + limit_s
    while time.monotonic() < stop:
        assert process.poll() is None, process.stderr.read()
        try:
            repo = Repository(url, readonly=True)
            campaign = repo.get_campaign("k")
            done = campaign is not None and repo.count(campaign.id, FINAL_STATUSES) >= count
            repo.close()
            if done:
                return
        except Exception:  # noqa: BLE001, S110 - the file or its tables may not exist yet
            pass
        time.sleep(0.05)
    raise AssertionError("the driver recorded nothing in time")


@pytest.mark.integration
@pytest.mark.parametrize(
    "strategy, kill_seed", [("aging", 0), ("aging", 1), ("aging", 2), ("random", 3), ("ladder", 4), ("ladder", 5)]
)
def test_resume_after_sigkill_at_a_random_point(tmp_path, cache_dir, kill_references, strategy, kill_seed):
    """Every strategy resumes a killed campaign with the same births as the uninterrupted one."""
    kill_reference = kill_references(strategy)
    url = url_of(tmp_path / "k.db")
    process = start_driver(tmp_path, url, make_config("k", **KILL_STRATEGIES[strategy]), "slow_job", cache_dir)
    wait_for_results(url, process)
    time.sleep(random.Random(kill_seed).uniform(0.2, 3.0))
    kill(process)

    repo = Repository(url)
    cid = repo.get_campaign("k").id
    before = {r.birth: r for r in individuals(repo, cid)}
    assert 0 < len(before) < KILL_CONFIG["max_evals"]
    assert len([r for r in before.values() if not r.finished]) <= 1  # in-process: one in flight at most
    resumed = fakes.CountingJob()
    build_campaign(CampaignConfig.from_stored(repo.get_campaign("k").config), repo, job=resumed).run()
    rows = check_resumed(repo, cid, before, resumed, kill_reference)
    assert repo.get_campaign("k").status == "finished"
    for r in rows:
        was_running = r.birth in before and before[r.birth].status == "running"
        assert r.attempt == (0 if r.status == "duplicate" else 2 if was_running else 1)


# --------------------------------------------------------------------------- the task screen

#: A screen cheap enough for tests: 10 steps of pair recall (scores near chance, so with no
#: margin about half the children fall below their seed and are screened out).
SCREEN = {"screen": ["pair_recall"], "screen_steps": 10, "screen_margin": 0.0}


def check_screen(repo: Repository, cid: int, rows: list[IndividualRecord], trained: list[str]) -> None:
    """Screened-out children are recorded, untrained, with the task and score; everything
    screened or reused has its scores stored; children that trained reached their seed's bar."""
    screens = repo.screens(cid)
    roots = {r.root_seed: screens[r.id][0].accuracy for r in rows if r.parent_id is None}
    for r in rows:
        if r.status == "screened_out":
            assert r.fitness is None and r.error.startswith("screened out: pair_recall accuracy")
            assert r.architecture_json not in trained
        if r.status in ("ok", "stopped_at_hurdle", "screened_out") or (
            r.status == "duplicate" and r.duplicate_of in screens
        ):
            assert [s.task for s in screens[r.id]] == ["pair_recall"], r
        if r.status in ("ok", "stopped_at_hurdle") and r.parent_id is not None:
            assert screens[r.id][0].accuracy >= roots[r.root_seed]
        if r.status == "duplicate" and r.duplicate_of in screens:
            assert [s.accuracy for s in screens[r.id]] == [s.accuracy for s in screens[r.duplicate_of]]
    lm, screen = repo.compute(cid)
    assert screen == pytest.approx(sum(s.flops for scores in screens.values() for s in scores)) and screen > 0


def test_screened_out_children_are_recorded_and_never_trained(tmp_path):
    job = fakes.ScreenedJob()
    events: list[dict] = []
    repo = Repository(url_of(tmp_path / "screen.db"))
    config = make_config("screen", max_evals=12, **SCREEN)
    build_campaign(config, repo, job=job, on_event=events.append).run()
    cid = repo.get_campaign("screen").id
    rows = check_complete(repo, cid, 12)
    assert any(r.status == "screened_out" for r in rows) and any(r.status == "ok" and r.parent_id for r in rows)
    check_screen(repo, cid, rows, job.trained)
    assert rows[0].architecture_json not in job.screened  # the driver scored the seed itself
    assert any("scoring seed transformer on the screen" in e.get("message", "") for e in events)
    out = CliRunner().invoke(app, ["status", "screen", "--json", "--db", url_of(tmp_path / "screen.db")])
    state = json.loads(out.stdout)[0]
    assert state["screened_out"] == sum(r.status == "screened_out" for r in rows)
    assert state["compute_flops"]["screen"] == repo.compute(cid)[1] > 0
    assert state["screen"]["seeds"]["transformer"] == {"pair_recall": repo.screen_of(rows[0].id)[0].accuracy}
    best = repo.top(cid, 1)[0]
    for command in (["top", "screen"], ["show", str(best.id)]):
        out = CliRunner().invoke(app, [*command, "--db", url_of(tmp_path / "screen.db")])
        assert out.exit_code == 0 and "pair_recall" in out.output, out.output
    out = CliRunner().invoke(
        app, ["plot", "screen", "-o", str(tmp_path / "plots"), "--db", url_of(tmp_path / "screen.db")]
    )
    assert out.exit_code == 0 and (tmp_path / "plots" / "screen.png").stat().st_size > 10_000, out.output


def test_every_training_metric_has_its_place_in_the_result():
    """The trainer's record and the stored result share one declaration of the metrics."""
    from evaluator.train import TrainResult
    from primitives.measurement import Metrics
    from storage import EvalResult

    assert issubclass(TrainResult, Metrics) and issubclass(EvalResult, Metrics)
    assert set(TrainResult.model_fields) - {"hurdle_losses"} <= set(EvalResult.model_fields)


def test_the_real_worker_screens_before_it_trains():
    """run_job itself: below a bar it returns screened_out without training; above, it trains
    and reports the scores with the result."""
    frame = build_campaign(make_config("w", **SCREEN), Repository("sqlite://"), job=fakes.fake_job)._job_frame
    job = {**frame, "architecture_json": seed("transformer", SPEC).to_json(indent=None)}
    out = run_job({**job, "screen_bars": {"pair_recall": 1.5}})
    assert out.status == "screened_out" and out.tokens is None and out.screen[0]["task"] == "pair_recall"
    trained = run_job({**job, "screen_bars": {"pair_recall": 0.0}})
    assert trained.status == "ok" and trained.tokens > 0
    assert [s["accuracy"] for s in trained.screen] == [s["accuracy"] for s in out.screen]  # deterministic


@pytest.mark.integration
def test_resume_after_sigkill_keeps_the_screen(tmp_path, cache_dir):
    """No screen is re-run for a recorded individual (the seed's included) after a SIGKILL."""
    url = url_of(tmp_path / "k.db")
    config = make_config("k", max_evals=16, search_seed=4, **SCREEN)
    process = start_driver(tmp_path, url, config, "screened_slow_job", cache_dir)
    wait_for_results(url, process, count=4)
    kill(process)
    repo = Repository(url)
    cid = repo.get_campaign("k").id
    before = {r.id: r for r in individuals(repo, cid) if r.finished}
    scores_before = repo.screens(cid)
    resumed = fakes.ScreenedJob()
    build_campaign(CampaignConfig.from_stored(repo.get_campaign("k").config), repo, job=resumed).run()
    rows = check_complete(repo, cid, 16)
    check_screen(repo, cid, rows, resumed.trained)
    after = repo.screens(cid)
    for individual_id in before:
        assert after.get(individual_id) == scores_before.get(individual_id)
        program = before[individual_id].architecture_json
        assert program not in resumed.screened or any(
            r.architecture_json == program and r.id not in before for r in rows
        )  # only a later twin
    assert len(after[rows[0].id]) == 1  # the seed was scored once, before the kill


def test_config_show_prints_every_field_as_toml_that_round_trips(tmp_path):
    result = invoke("config", "show")
    path = tmp_path / "defaults.toml"
    path.write_text(result.stdout)
    assert CampaignConfig.from_toml(path) == CampaignConfig()
    assert set(CampaignConfig.model_fields) <= {
        line.lstrip("# ").split(" ")[0] for line in result.stdout.splitlines() if " = " in line
    } | {"spec", "train"}


def test_a_toml_false_turns_a_cost_bound_off(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("max_flops_ratio = false\nmin_flops_ratio = 0.5\n")
    config = CampaignConfig.from_toml(path)
    assert config.max_flops_ratio is None and config.min_flops_ratio == 0.5


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "transformer", "--layers", "1000", "--d-model", "65536"], "too large for this machine"),
        (["train", "transformer", "--device", "tpu"], "device must be cpu or cuda"),
        (["top", "-k", "0"], "-k 0"),
        (["top", "-k", str(10**30)], "between 1 and"),
        (["search", "start", "--seed", str(10**30)], "seed"),
        (["train", "transformer", "--seed", str(10**30)], "seed"),
        (["search", "start", "--workers", "100000"], "workers"),
        (["search", "start", "--population", "4", "--sample", "9"], "larger than the population"),
        (["programs", "validate", "{binary}"], "not UTF-8"),
        (["programs", "validate", "{deep}"], "nested too deeply"),
        (["programs", "validate", "{huge}"], "not an architecture: Exceeds the limit (4300 digits)"),
        (["status", "--db", "sqlite:///{long}.db"], "File name too long"),
        (["search", "start", "--strategy", "annealing"], "strategy: Input should be 'aging', 'random' or 'ladder'"),
        (["search", "start", "--config", "{rungs_down}"], "rungs: rungs must increase strictly"),
        (["search", "start", "--config", "{rung_out}"], "rung 1.5 is not inside the budget"),
        (["search", "start", "--strategy", "aging", "--config", "{rungs_ok}"], "rungs: only the ladder strategy"),
    ],
)
def test_bad_cli_input_is_one_line(tmp_path, args, message):
    binary, deep, huge = tmp_path / "binary.json", tmp_path / "deep.json", tmp_path / "huge.json"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    deep.write_text("[" * 100_000)
    huge.write_text('{"name": "x", "layers": [' + "9" * 5000 + "]}")
    tomls = {"rungs_down": "rungs = [0.5, 0.25]", "rung_out": "rungs = [0.5, 1.5]", "rungs_ok": "rungs = [0.25]"}
    for key, text in tomls.items():
        (tmp_path / f"{key}.toml").write_text(text + "\n")
    paths = {"binary": binary, "deep": deep, "huge": huge, "long": tmp_path / ("a" * 5000)}
    args = [a.format(**paths, **{k: tmp_path / f"{k}.toml" for k in tomls}) for a in args]
    result = CliRunner().invoke(
        app, [*args, "--db", url_of(tmp_path / "x.db")] if args[0] in ("top", "search") else args
    )
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


@sqlite_only
def test_a_hand_edited_record_is_one_line_not_a_traceback(small_campaign, tmp_path):
    _, cid, _, _, db = small_campaign
    edited = tmp_path / "edited.db"
    shutil.copyfile(db, edited)
    with Repository(url_of(edited)).engine.begin() as connection:
        connection.exec_driver_sql("UPDATE individuals SET architecture_json = '{bad' WHERE birth = 3")
    last = max(r.id for r in individuals(Repository(url_of(edited), readonly=True), cid) if r.birth == 3)
    for command in (["show", str(last)], ["top", "small", "-k", "100"]):
        result = archevo(*command, "--db", url_of(edited))
        assert result.returncode == 2, result.stderr
        assert "stored program does not parse" in result.stderr and "Traceback" not in result.stderr
        assert result.stdout == ""  # nothing half-printed


@sqlite_only
def test_text_where_a_number_belongs_and_a_plot_folder_under_a_file_are_one_line(small_campaign, tmp_path):
    """SQLite keeps any value in any column: a crafted fitness or parameter count is named,
    not a TypeError in a format string; `plot -o` under a file says it cannot write there."""
    _, cid, _, _, db = small_campaign
    edited = tmp_path / "crafted.db"
    shutil.copyfile(db, edited)
    with Repository(url_of(edited)).engine.begin() as connection:
        connection.exec_driver_sql("UPDATE individuals SET fitness = 'abc', parameters = 'lots' WHERE birth = 0")
    (tmp_path / "a-file").write_text("")
    for command, message in [
        (["top", "small"], "text where a number belongs"),
        (["show", "1"], "text where a number belongs"),
        (["plot", "small", "-o", str(tmp_path / "a-file" / "plots")], "cannot write there"),
    ]:
        target = url_of(db) if command[0] == "plot" else url_of(edited)
        result = archevo(*command, "--db", target)
        assert result.returncode == 2 and message in result.stderr + result.stdout, result.stderr
        assert "Traceback" not in result.stderr


def test_a_database_password_is_never_printed():
    result = CliRunner().invoke(app, ["status", "--db", "postgresql+psycopg://archevo:s3cr3t@127.0.0.1:1/x"])
    assert result.exit_code == 2 and "s3cr3t" not in result.output and "***" in result.output


def test_the_live_view_and_top_fit_80_columns(small_campaign):
    from rich.console import Console

    from cli.campaigns import ProgressView

    repo, _, _, _, db = small_campaign
    view = ProgressView(repo, "small", 12)
    view({"kind": "dispatched", "id": 99, "birth": 11})
    screen = Console(width=80, record=True, file=open(os.devnull, "w"))
    screen.print(view)
    text = screen.export_text()
    assert "ETA" not in text or "done" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "12/12 done" in text and "individual 99" in text  # what each worker trains, numbered as elsewhere
    assert "training individual 99" in text  # the latest row says what is happening now
    top = CliRunner().invoke(app, ["top", "small", "--db", url_of(db)], env={"COLUMNS": "80"})
    assert top.exit_code == 0 and all(len(line) <= 80 for line in top.stdout.splitlines())


def test_a_campaign_writing_to_a_file_logs_each_individual_as_it_finishes(tmp_path, cache_dir):
    """With stdout a file (nohup, CI), `search start` writes one line per finished individual
    while it runs, not only the final table."""
    toml = tmp_path / "campaign.toml"
    toml.write_text(f'''name = "logged"\nbackend = "inprocess"\ncorpus = "{CORPUS}"\nvocab_size = 300
budget = "1280tokens"\nmax_evals = 8\npopulation = 2\nsample = 1\nmax_train_tokens = 20000\nstrategy = "aging"
[spec]\nd_model = 32\nn_layers = 1\nn_heads = 2\nseq_len = 16\n''')
    log = tmp_path / "campaign.log"
    with open(log, "w") as out:
        driver = subprocess.Popen(
            [ARCHEVO, "search", "start", "--config", str(toml), "--db", url_of(tmp_path / "l.db")],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
        seen_while_running = 0
        while driver.poll() is None:
            seen_while_running = max(seen_while_running, log.read_text().count("logged: individual "))
            time.sleep(0.05)
    assert driver.returncode == 0, log.read_text()[-2000:]
    lines = [line for line in log.read_text().splitlines() if "logged: individual " in line]
    assert len(lines) == 8 and seen_while_running > 0
    assert all(line.startswith("[") and re.search(r"individual \d+ \w+", line) for line in lines)
    assert "8/8 done" in log.read_text()  # the summary at the end


def test_tensorboard_gets_each_trained_individual_and_the_best_so_far(tmp_path, cache_dir):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install -e '.[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    toml = tmp_path / "campaign.toml"
    toml.write_text(f'''name = "tb"\nbackend = "inprocess"\ncorpus = "{CORPUS}"\nvocab_size = 300
budget = "1280tokens"\nmax_evals = 5\npopulation = 2\nsample = 1\nmax_train_tokens = 20000\nstrategy = "aging"
[spec]\nd_model = 32\nn_layers = 1\nn_heads = 2\nseq_len = 16\n''')
    db, board = url_of(tmp_path / "tb.db"), tmp_path / "board"
    invoke("search", "start", "--config", str(toml), "--db", db, "--tensorboard", str(board))
    invoke("search", "resume", "tb", "--max-evals", "7", "--db", db, "--tensorboard", str(board))

    def scalars(run: Path, tag: str) -> list:
        events = EventAccumulator(str(run))
        events.Reload()
        return events.Scalars(tag) if tag in events.Tags()["scalars"] else []

    repo = Repository(db)
    trained = [i for i in repo.finished_individuals(repo.get_campaign("tb").id) if i.tokens]
    runs = sorted(p.name for p in (board / "tb").iterdir() if p.name != "best")
    assert runs == [f"individual-{i.id:05d}" for i in sorted(trained, key=lambda i: i.id)]
    for individual in trained:
        curve = scalars(board / "tb" / f"individual-{individual.id:05d}", "loss/train")
        steps = [point.step for point in curve]
        assert curve and steps == sorted(set(steps))  # written once, not again on resume
    best = scalars(board / "tb" / "best", "best search loss")
    assert [point.step for point in best] == list(range(1, 8))  # every individual of both runs, once
    assert [p.value for p in best] == sorted((p.value for p in best), reverse=True)
    assert best[-1].value == pytest.approx(repo.top(repo.get_campaign("tb").id, 1)[0].fitness)


def test_cli_compare_puts_campaigns_side_by_side_at_equal_compute(tmp_path, cache_dir):
    """`archevo compare A B`: one table (best, median, compute) and one best-so-far plot; the
    compute axis is every trained individual's FLOPs summed in finishing order."""
    db = tmp_path / "compare.db"
    repo = Repository(url_of(db))
    for name, evals in (("small_a", 6), ("small_b", 9)):
        run_campaign_on(repo, make_config(name, max_evals=evals, search_seed=evals))
    url = url_of(db)
    result = invoke("compare", "small_a", "small_b", "-o", str(tmp_path / "cmp.png"), "--db", url)
    assert "small_a" in result.stdout and "small_b" in result.stdout and (tmp_path / "cmp.png").stat().st_size > 0
    for columns in (80, 120):  # fits the terminal, every number whole
        args = ["compare", "small_a", "small_b", "-o", str(tmp_path / "cmp.png"), "--db", url]
        table = CliRunner().invoke(app, args, env={"COLUMNS": str(columns)}).stdout
        assert all(len(line) <= columns for line in table.splitlines())
        assert all(f"{repo.top(repo.get_campaign(n).id, 1)[0].fitness:.4f}" in table for n in ("small_a", "small_b"))
    rows = json.loads(
        invoke("compare", "small_a", "small_b", "--json", "-o", str(tmp_path / "c.png"), "--db", url).stdout
    )
    for row, evals in zip(rows, (6, 9)):
        individuals = repo.finished_individuals(repo.get_campaign(row["name"]).id)
        losses = [i.fitness for i in individuals if i.fitness is not None]
        assert row["individuals"] == evals and row["best"] == min(losses)
        assert row["compute"] == pytest.approx(sum(i.flops or 0 for i in individuals))
        assert [p[1] for p in row["curve"]] == sorted((p[1] for p in row["curve"]), reverse=True)
        assert row["curve"][-1] == [row["compute"], row["best"]]
    for args, message in ((["small_a"], "two or more"), (["small_a", "nope"], "no campaign 'nope'")):
        refused = CliRunner().invoke(app, ["compare", *args, "-o", str(tmp_path / "x.png"), "--db", url])
        assert refused.exit_code == 2 and message in refused.output


def test_the_readme_demo_is_the_rediscovery_protocol_with_the_default_search():
    """`examples/demo.toml` (the README's first command) loads, and it is the rediscovery study's
    protocol (frame, budget, corpus, screen) searched with the engine's defaults (the ladder and
    the family proposal) at 16 individuals."""
    root = Path(__file__).resolve().parents[1]
    demo = CampaignConfig.from_toml(root / "examples" / "demo.toml")
    study = CampaignConfig.from_toml(root / "experiments" / "rediscovery" / "config.toml", name="demo")
    assert demo.screen == ["selective_copying"] and demo.max_evals == 16
    protocol = {"spec", "budget", "train", "corpus", "vocab_size", "max_train_tokens", "screen", "screen_margin"}
    assert demo.model_dump(include=protocol) == study.model_dump(include=protocol)
    default = CampaignConfig(name="demo")
    assert (demo.strategy, demo.proposal, demo.hurdle_policy()) == (
        default.strategy,
        default.proposal,
        default.hurdle_policy(),
    )


def _full_disk(job):
    raise OSError(28, "No space left on device", f"/weights/{random.random()}.safetensors")


def test_a_campaign_whose_candidates_fail_alike_stops_with_the_cause(tmp_path, cache_dir):
    """Every candidate failing the same way (a full disk, a damaged cache) stops the campaign with
    that cause after max_failures_in_a_row, resumable, instead of finishing on failures."""
    repo = Repository(url_of(tmp_path / "failing.db"))
    config = make_config("failing", max_evals=12, max_failures_in_a_row=4)
    with pytest.raises(CampaignFailing, match="4 candidates in a row failed with the same cause: OSError"):
        run_campaign_on(repo, config, _full_disk)
    campaign = repo.get_campaign("failing")
    assert campaign.status != "finished" and repo.count(campaign.id, "error") == 4
    # a failure that is not a streak (other causes between) does not stop it
    mixed = make_config("mixed", max_evals=8, max_failures_in_a_row=2)
    run_campaign_on(repo, mixed, fakes.CountingJob(fail_every=(2, 0)))
    assert repo.get_campaign("mixed").status == "finished"


def test_a_resume_under_an_edited_recipe_is_refused_and_changes_nothing(tmp_path, cache_dir):
    """A stored budget (or training field) edited by hand would rank two recipes together."""
    repo = Repository(url_of(tmp_path / "edited.db"))
    run_campaign_on(repo, make_config("edited", max_evals=3))
    stored = repo.get_campaign("edited")
    edited = CampaignConfig.from_stored(stored.config).model_copy(update={"budget": "2560tokens", "max_evals": 5})
    repo.set_campaign_config("edited", edited.model_dump(mode="json"))
    before = (repo.get_campaign("edited").config, repo.count(stored.id))
    with pytest.raises(ValueError, match="the config was edited since"):
        build_campaign(edited, repo, job=fakes.fake_job)
    assert (repo.get_campaign("edited").config, repo.count(stored.id)) == before


@pytest.mark.parametrize(
    "cause, said",
    [
        ("database or disk is full", "the disk holding the database is full"),
        ('could not extend file "base/1/2": No space left on device', "the disk holding the database is full"),
        ("database disk image is malformed", "the database failed: database disk image is malformed"),
    ],
)
def test_a_database_error_says_what_failed(monkeypatch, capsys, cause, said):
    """A full disk while a campaign writes is not "cannot be read": it says the disk is full
    and how to continue; any other database error is one line with its cause."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    import cli.main as main

    def failing() -> None:
        raise OperationalError("INSERT INTO individuals ...", {}, sqlite3.OperationalError(cause))

    monkeypatch.setattr(main, "app", failing)
    with pytest.raises(SystemExit) as stop:
        main.run()
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert said in err and "cannot be read" not in err and len(err.strip().splitlines()) == 1
