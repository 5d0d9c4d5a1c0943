"""``archevo dashboard``: every page over a real campaign database, read-only, beside a campaign
that is writing, and (where Chromium is installed) rendered by a real headless browser."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import threading
import time

import matplotlib.image
import pytest

from cli.dashboard import create_app, pooled_server
from storage import Repository
from tests import fakes
from tests.databases import url_of
from tests.configs import make_config
from tests.test_campaign import cache_dir, run_campaign_on  # noqa: F401  (cache_dir: the module's fixture)


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    db = tmp_path_factory.mktemp("dashboard") / "d.db"
    run_campaign_on(Repository(url_of(db)), make_config("shown", max_evals=8, hurdles=1, budget="2560tokens"))
    return db


def pages(repo: Repository) -> dict[str, str]:
    """Each page's path and a text it must show."""
    campaign = repo.get_campaign("shown")
    best = repo.top(campaign.id, 1)[0]
    return {"/": "shown", "/campaign/shown": "changes from the seed", f"/individual/{best.id}": "main(x):"}


def test_every_page_and_plot_renders(database):
    repo = Repository(url_of(database), readonly=True)
    client = create_app(repo, "test").test_client()
    for path, text in pages(repo).items():
        response = client.get(path)
        assert response.status_code == 200 and text in response.get_data(as_text=True), path
    campaign = client.get("/campaign/shown").get_data(as_text=True)
    ranked = repo.top(repo.get_campaign("shown").id, 10)
    assert len(ranked) >= 5 and campaign.count('href="/individual/') == len(ranked) and "the seed itself" in campaign
    for figure in ("progress", "pareto", "hurdles", "lineage"):
        response = client.get(f"/campaign/shown/{figure}.png")
        assert response.status_code == 200 and response.data[:8] == b"\x89PNG\r\n\x1a\n", figure
    best = repo.top(repo.get_campaign("shown").id, 1)[0]
    response = client.get(f"/individual/{best.id}/curve.png")
    assert response.status_code == 200 and response.data[:8] == b"\x89PNG\r\n\x1a\n"
    for missing in ("/campaign/nope", "/individual/99999", "/campaign/shown/nope.png", "/individual/99999/curve.png"):
        assert client.get(missing).status_code == 404, missing


def test_the_dashboard_never_writes(database):
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    repo = Repository(url_of(database), readonly=True)
    client = create_app(repo, "test").test_client()
    for path in pages(repo):
        client.get(path)
    client.get("/campaign/shown/progress.png")
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before


def test_it_survives_a_campaign_writing_at_the_same_time(tmp_path):
    """A campaign runs in a thread while the pages are read again and again: every answer is a
    page or a 503 asking to retry, never a server error."""
    db = tmp_path / "live.db"
    writer = Repository(url_of(db))
    run_campaign_on(writer, make_config("live", max_evals=2))  # the campaign exists before the reader opens
    grown = make_config("live", max_evals=30)
    writer.set_campaign_config("live", grown.model_dump(mode="json"))  # as `search resume --max-evals 30` does
    thread = threading.Thread(target=run_campaign_on, args=(writer, grown, fakes.slow_job))
    thread.start()
    client = create_app(Repository(url_of(db), readonly=True), "test").test_client()
    codes = []
    while thread.is_alive():
        for path in ("/", "/campaign/live", "/campaign/live/progress.png"):
            codes.append(client.get(path).status_code)
    thread.join()
    assert set(codes) <= {200, 503} and codes.count(200) >= len(codes) // 2
    assert "30 / 30" in client.get("/").get_data(as_text=True)


def test_a_real_browser_renders_each_page(database, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("skipped: no Chromium (Debian: apt-get install chromium)")
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    repo = Repository(url_of(database), readonly=True)
    server = pooled_server("127.0.0.1", 0, create_app(repo, "test"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900", "--virtual-time-budget=3000"]
    try:
        for i, (path, text) in enumerate(pages(repo).items()):
            shot = tmp_path / f"page{i}.png"
            subprocess.run([browser, *flags, f"--screenshot={shot}", base + path], capture_output=True, timeout=120)
            pixels = matplotlib.image.imread(shot)
            assert pixels.shape[:2] == (900, 1280) and pixels.std() > 0.02, f"{path}: a blank screenshot"
            dom = subprocess.run(
                [browser, *flags, "--dump-dom", base + path], capture_output=True, text=True, timeout=120
            ).stdout
            assert text in dom, f"{path}: {text!r} not in the rendered page"
            if path.startswith("/campaign/"):  # the plots loaded in the browser, not only the HTML
                assert dom.count("<img") == 4
    finally:
        server.shutdown()
        time.sleep(0.1)


def test_the_all_individuals_api_lists_every_individual(database):
    repo = Repository(url_of(database), readonly=True)
    client = create_app(repo, "test").test_client()
    cid = repo.get_campaign("shown").id
    rows = client.get("/api/campaign/shown/individuals").get_json()
    assert [r["id"] for r in rows] == [i.id for i in repo.finished_individuals(cid)] and len(rows) == 8
    assert {"rejected", "ok"} & {r["status"] for r in rows} and all(r["seed"] == "transformer" for r in rows)
    assert {r["kind"] for r in rows if r["birth"] > 0} <= {
        "delete",
        "insert",
        "delete_insert",
        "change_field",
        "swap",
        "change_value",
        "seed",
    }
    page = client.get("/campaign/shown/individuals").get_data(as_text=True)
    assert "All individuals" in page and 'data-key="loss"' in page and "/static/plotly.min.js" in page
    script = client.get("/static/plotly.min.js")
    assert script.status_code == 200 and len(script.data) > 1_000_000 and script.mimetype == "text/javascript"
    assert client.get("/api/campaign/nope/individuals").status_code == 404


def _browser():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("skipped: no Chromium (Debian: apt-get install chromium)")
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    return browser


def _dom(browser: str, url: str) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900", "--virtual-time-budget=4000"]
    return subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout


def _serve(repo: Repository):
    server = pooled_server("127.0.0.1", 0, create_app(repo, "test"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def test_a_real_browser_sorts_and_filters_the_individuals_table(database):
    browser = _browser()
    repo = Repository(url_of(database), readonly=True)
    rows = {i.id: i for i in repo.finished_individuals(repo.get_campaign("shown").id)}
    server, base = _serve(repo)
    try:
        dom = _dom(browser, f"{base}/campaign/shown/individuals?sort=loss")
        shown = [int(i) for i in re.findall(r'<tr data-id="(\d+)"', dom)]
        losses = [rows[i].fitness for i in shown]
        known = [loss for loss in losses if loss is not None]
        assert sorted(shown) == sorted(rows) and known == sorted(known) and losses[: len(known)] == known
        assert "plot-container" in dom  # Plotly drew the interactive plots
        dom = _dom(browser, f"{base}/campaign/shown/individuals?status=ok&sort=loss&desc=1")
        shown = [int(i) for i in re.findall(r'<tr data-id="(\d+)"', dom)]
        assert shown and all(rows[i].status == "ok" for i in shown)
        assert len(shown) == sum(r.status == "ok" for r in rows.values())
        assert [rows[i].fitness for i in shown] == sorted((rows[i].fitness for i in shown), reverse=True)
    finally:
        server.shutdown()


def _slow(job):
    time.sleep(3)
    return fakes.fake_job(job)


def test_a_real_browser_sees_what_is_training_during_a_live_campaign(tmp_path):
    browser = _browser()
    db = tmp_path / "live.db"
    writer = Repository(url_of(db))
    config = make_config("busy", max_evals=6)
    thread = threading.Thread(target=run_campaign_on, args=(writer, config, _slow))
    thread.start()
    try:
        while writer.get_campaign("busy") is None or not writer.unfinished(writer.get_campaign("busy").id):
            time.sleep(0.1)
        server, base = _serve(Repository(url_of(db), readonly=True))
        try:
            dom = _dom(browser, f"{base}/campaign/busy/individuals")
        finally:
            server.shutdown()
        running = re.search(r'<a href="/individual/(\d+)">individual \1</a> \([^)]*\) training for \d+ s', dom)
        assert running, dom[-3000:]
    finally:
        thread.join()


def test_a_burst_of_200_concurrent_requests_is_answered_by_a_fixed_pool(database):
    """benchmarks/dashboard_load.py against `archevo dashboard` in a process of its own: every
    request answered, the server's threads bounded (a thread per request held 160+ of them and
    grew to ~900 MB), and a second burst of the same figures costs no memory to speak of."""
    import importlib.util

    from cli.dashboard import SERVER_THREADS
    from tests.test_benchmarks import ROOT

    spec = importlib.util.spec_from_file_location("dashboard_load", ROOT / "benchmarks" / "dashboard_load.py")
    load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load)
    first, second = load.main(["--db", url_of(database), "--campaign", "shown", "--requests", "200", "--bursts", "2"])
    assert first["statuses"] == [200] * 200 and second["statuses"] == [200] * 200
    assert max(first["peak_threads"], second["peak_threads"]) <= SERVER_THREADS + 4
    assert second["rss_mb"] - first["rss_mb"] < 50
