"""``archevo confirm``: retraining at fresh seeds, recorded, resumable, failures recorded."""

from __future__ import annotations

import json
import sysconfig

import pytest
from typer.testing import CliRunner

from primitives.program import ModelSpec
from search.campaign import build_campaign
from search.config import CampaignConfig
from cli.main import app
from search.confirm import SEED_OFFSET, candidates, confirm, summarize
from storage import NotFound, Repository
from tests import fakes
from tests.databases import url_of

SPEC = ModelSpec(vocab_size=300, d_model=32, n_layers=1, n_heads=2, seq_len=16)
CORPUS = f"text:{sysconfig.get_paths()['stdlib']}/json/*.py"


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """A finished 8-individual campaign (fake evaluations), confirmed by real tiny trainings."""
    root = tmp_path_factory.mktemp("confirm")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARCHEVO_CACHE_DIR", str(root / "cache"))
        url = url_of(root / "c.db")
        config = CampaignConfig(
            name="c",
            search_seed=3,
            backend="inprocess",
            corpus=CORPUS,
            vocab_size=300,
            spec=SPEC,
            budget="640tokens",
            strategy="aging",
            hurdles=0,
            population=4,
            sample=2,
            max_evals=8,
            max_train_tokens=20_000,
            max_flops_ratio=None,
            min_flops_ratio=None,
            max_parameters_ratio=None,
        )
        repo = Repository(url)
        build_campaign(config, repo, job=fakes.fake_job).run()
        result = CliRunner().invoke(app, ["confirm", "c", "-k", "2", "--seeds", "2", "--corpus", CORPUS, "--db", url])
        yield repo, config, url, result


def test_confirm_retrains_the_top_and_the_seed_at_fresh_seeds(campaign):
    repo, config, _, result = campaign
    assert result.exit_code == 0, result.output
    cid = repo.get_campaign("c").id
    runs = repo.confirmations(cid)
    chosen = candidates(repo, cid, 2)
    assert len(chosen) == 3  # the top 2 and the transformer seed
    assert {(r.individual_id, r.training_seed) for r in runs} == {
        (c.id, config.train.seed + SEED_OFFSET + i) for c in chosen for i in range(2)
    }
    assert all(r.status == "ok" and r.val_loss is not None and r.budget == "640tokens" for r in runs)
    assert all(r.training_seed != config.train.seed for r in runs)
    curves = [p for p in runs[0].result["loss_curve"] if p["val_loss"] is not None]
    assert len(curves) >= 5  # the validation curve the speedup is read from
    summary = summarize(repo, cid)
    root = repo.roots(cid)[0].id
    assert summary[root].speedup_mean == pytest.approx(1.0) and summary[root].wins == 0
    assert all(s.paired == 2 and s.runs == 2 for s in summary.values())


def test_confirm_resumes_skipping_recorded_runs(campaign):
    repo, config, _, _ = campaign
    job = fakes.CountingJob()
    confirm(repo, config, 2, 2, "640tokens", job=job)
    assert job.calls == []
    confirm(repo, config, 2, 3, "640tokens", job=fakes.fake_job)  # one more seed: only the new runs
    runs = repo.confirmations(repo.get_campaign("c").id)
    assert len(runs) == 9


def test_a_failed_retraining_is_recorded_not_raised(campaign):
    repo, config, _, _ = campaign
    confirm(repo, config, 1, 1, "1280tokens", job=fakes.raising_job)
    failed = [r for r in repo.confirmations(repo.get_campaign("c").id) if r.budget == "1280tokens"]
    assert failed and all(r.status == "error" and r.error for r in failed)
    assert all(
        s.failures == s.runs and s.loss_mean is None
        for s in summarize(repo, failed[0].campaign_id, "1280tokens").values()
    )


def test_top_and_show_report_the_confirmation(campaign):
    repo, _, url, _ = campaign
    cid = repo.get_campaign("c").id
    rows = json.loads(CliRunner().invoke(app, ["top", "c", "--json", "--db", url]).stdout)
    confirmed = [r for r in rows if r["confirmed"]]
    assert confirmed and all(r["flops_per_token"] for r in rows)
    run = repo.confirmations(cid)[0]
    shown = CliRunner().invoke(app, ["show", str(run.individual_id), "--db", url]).stdout
    assert "confirmation runs:" in shown and f"training seed {run.training_seed}" in shown


@pytest.mark.parametrize("columns", [80, 120])
def test_tables_fit_the_terminal_and_keep_every_number_whole(campaign, columns):
    """`top` after a confirm (the widest table), `status` and `confirm`'s own table at
    80 and 120 columns: no line is wider, and every number appears whole on one line."""
    _, _, url, _ = campaign
    env = {"COLUMNS": str(columns)}

    def run(*args: str) -> str:
        result = CliRunner().invoke(app, [*args, "--db", url], env=env)
        assert result.exit_code == 0, result.output
        assert all(len(line) <= columns for line in result.stdout.splitlines()), result.stdout
        return result.stdout

    rows = json.loads(CliRunner().invoke(app, ["top", "c", "--json", "--db", url]).stdout)
    text = run("top", "c")
    for row in rows:
        assert f"{row['loss']:.4f}" in text
        c = row["confirmed"]
        if c and c["loss_mean"] is not None:
            assert f"{c['loss_mean']:.4f} ± {c['loss_std']:.4f}" in text
            assert f"{c['speedup_mean']:.2f} ± {c['speedup_std']:.2f}" in text
    wide = CliRunner().invoke(app, ["top", "c", "--wide", "--db", url], env=env).stdout
    assert "FLOPs/tok" in wide and f"{rows[0]['parameters']:,}" in wide  # --wide drops nothing
    status = run("status")
    assert "finished" in status and "8/8" in status
    assert f"{min(r['loss'] for r in rows):.4f}" in status
    confirmed = run(
        "confirm", "c", "-k", "2", "--seeds", "2", "--corpus", CORPUS
    )  # resumes: everything recorded, prints the table
    assert "speedup vs seed" in confirmed


@pytest.mark.parametrize(
    "args, message",
    [
        (["confirm", "nope"], "no campaign 'nope'"),
        (["confirm", "c", "-k", "0"], "-k 0"),
        (["confirm", "c", "--seeds", "0"], "--seeds 0"),
        (["confirm", "c", "--budget", "ten minutes"], "--budget"),
        (["confirm", "c"], "a path read from the database; pass --corpus"),  # never opened unasked
        (["confirm", "c", "--corpus", "text:/etc/*"], "another corpus would not give the model's tokenizer"),
        (["export", "1", "-o", "/tmp/archevo-never-written"], "a path read from the database; pass --corpus"),
    ],
)
def test_confirm_bad_input_is_one_line(campaign, args, message):
    _, _, url, _ = campaign
    result = CliRunner().invoke(app, [*args, "--db", url])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_python_api_returns_the_summary_and_a_campaign_as_records(campaign):
    import archevo

    repo, config, _, _ = campaign
    summary = archevo.confirm(repo, config, 2, 2, config.budget)  # every run recorded: nothing retrained
    assert summary and summary == archevo.summarize(repo, repo.get_campaign("c").id, config.budget)
    cid = repo.get_campaign("c").id
    rows = archevo.records(repo, "c")
    assert len(rows) == 8 and [r["id"] for r in rows] == [i.id for i in repo.finished_individuals(cid)]
    assert min(r["loss"] for r in rows if r["loss"] is not None) == repo.top(cid, 1)[0].fitness
    with pytest.raises(NotFound, match="no campaign named 'nope'"):
        archevo.records(repo, "nope")
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="needs pandas"):
            archevo.frame(repo, "c")
    else:
        table = archevo.frame(repo, "c")
        assert list(table.index) == [r["id"] for r in rows] and "loss" in table.columns
