"""`archevo plot`: four readable PNGs from a campaign's tables; the Pareto front."""

from __future__ import annotations

import sysconfig

from PIL import Image
from typer.testing import CliRunner

from primitives.program import ModelSpec
from search.campaign import Campaign, CampaignConfig
from search.cli import app
from search.plots import pareto_front
from storage import Repository
from tests.fakes import fake_job


def test_pareto_front_keeps_only_undominated_points():
    points = [(10, 5.0), (20, 4.0), (15, 6.0), (30, 4.5), (40, 3.0)]
    assert pareto_front(points) == [(10, 5.0), (20, 4.0), (40, 3.0)]


def test_plot_writes_every_figure(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHEVO_CACHE_DIR", str(tmp_path / "cache"))
    db = f"sqlite:///{tmp_path / 'p.db'}"
    config = CampaignConfig(name="p", backend="inprocess", max_evals=24, hurdles=2, hurdle_min_samples=2,
                            corpus=f"text:{sysconfig.get_paths()['stdlib']}/json/*.py", vocab_size=300,
                            max_train_tokens=5_000, spec=ModelSpec(vocab_size=300, d_model=32, n_layers=1, n_heads=2,
                                                                    seq_len=16))
    Campaign(Repository(db), config, job=fake_job).run()
    result = CliRunner().invoke(app, ["plot", "p", "-o", str(tmp_path / "plots"), "--db", db])
    assert result.exit_code == 0, result.output
    for name in ("progress", "hurdles", "pareto", "lineage"):
        with Image.open(tmp_path / "plots" / f"{name}.png") as image:
            assert image.width >= 600 and image.height >= 400
            assert len(image.convert("L").getcolors(maxcolors=4096)) > 20  # something was drawn
