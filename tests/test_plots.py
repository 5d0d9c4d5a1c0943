"""`archevo plot`: readable PNGs from a campaign's tables (never a stale one); the Pareto front."""

from __future__ import annotations

import sysconfig

from PIL import Image
from typer.testing import CliRunner

from primitives.program import ModelSpec
from search.campaign import build_campaign
from search.config import CampaignConfig
from cli.main import app
from cli.plots import pareto_front
from storage import Repository
from tests.fakes import fake_job


def test_pareto_front_keeps_only_undominated_points():
    points = [(10, 5.0), (20, 4.0), (15, 6.0), (30, 4.5), (40, 3.0)]
    assert pareto_front(points) == [(10, 5.0), (20, 4.0), (40, 3.0)]


def test_plot_writes_every_figure(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHEVO_CACHE_DIR", str(tmp_path / "cache"))
    db = f"sqlite:///{tmp_path / 'p.db'}"
    config = CampaignConfig(
        name="p",
        backend="inprocess",
        max_evals=24,
        strategy="aging",
        hurdles=2,
        hurdle_min_samples=2,
        corpus=f"text:{sysconfig.get_paths()['stdlib']}/json/*.py",
        vocab_size=300,
        max_train_tokens=5_000,
        spec=ModelSpec(vocab_size=300, d_model=32, n_layers=1, n_heads=2, seq_len=16),
    )
    build_campaign(config, Repository(db), job=fake_job).run()
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "screen.png").write_bytes(b"another campaign's figure")
    result = CliRunner().invoke(app, ["plot", "p", "-o", str(tmp_path / "plots"), "--db", db])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "plots" / "screen.png").exists()  # this campaign has no screen: no stale figure
    for name in ("progress", "hurdles", "pareto", "lineage"):
        with Image.open(tmp_path / "plots" / f"{name}.png") as image:
            assert image.width >= 600 and image.height >= 400
            assert len(image.convert("L").getcolors(maxcolors=4096)) > 20  # something was drawn


def test_progress_marks_hurdle_stopped_losses_apart(tmp_path, monkeypatch):
    from cli.plots import progress_figure

    monkeypatch.setenv("ARCHEVO_CACHE_DIR", str(tmp_path / "cache"))
    repo = Repository(f"sqlite:///{tmp_path / 's.db'}")
    config = CampaignConfig(
        name="s",
        backend="inprocess",
        max_evals=24,
        strategy="aging",
        hurdles=2,
        hurdle_min_samples=2,
        corpus=f"text:{sysconfig.get_paths()['stdlib']}/json/*.py",
        vocab_size=300,
        max_train_tokens=5_000,
        spec=ModelSpec(vocab_size=300, d_model=32, n_layers=1, n_heads=2, seq_len=16),
    )
    build_campaign(config, repo, job=fake_job).run()
    individuals = repo.finished_individuals(repo.get_campaign("s").id)
    stopped = sum(i.status == "stopped_at_hurdle" for i in individuals)
    assert stopped, "the fake's hurdles stop some individuals"
    figure = progress_figure(individuals, window=8)
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert "full budget" in labels and "stopped at a hurdle (loss at that hurdle)" in labels
    marked = [c for c in figure.axes[0].collections if c.get_label().startswith("stopped")][0]
    assert len(marked.get_offsets()) == stopped
