"""``archevo dashboard``: a read-only web view of the results database (Flask, no build step).

Pages: the campaigns with their live progress (``/``), a campaign's top-k with each program's
diff from its seed and its plots (``/campaign/NAME``), every individual of a campaign in one
table with sort and filter, what is training now, and interactive plots
(``/campaign/NAME/individuals``, from ``/api/campaign/NAME/individuals``), an individual's
listing, lineage, hurdles and confirmation runs (``/individual/ID``), and the plots as PNG.
Pages update in place (a script fetches them again; nothing reloads); the interactive plots are
Plotly's, served from the Python package, never fetched from the internet. The database is
opened read-only: the dashboard never writes, and a campaign may run beside it. A read that
meets a writer's lock answers 503 with a retry hint instead of failing the server. A fixed pool
of threads answers, and figures are drawn once per state of the data, so a burst of requests
queues instead of growing the server's memory.
"""

from __future__ import annotations

import io
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from typing import Any, Callable

from flask import Flask, Response, abort, jsonify, render_template_string
from sqlalchemy.exc import OperationalError

from primitives.listing import diff_architectures, list_architecture
from storage import FINAL_STATUSES, Repository

from search.confirm import summarize

from .formatting import number

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} · archevo</title>
<style>
 body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em 2em; color: #222; }
 table { border-collapse: collapse; margin: .5em 0 1.5em; } td, th { padding: .25em .7em; border-bottom: 1px solid #ddd; }
 th { text-align: left; background: #f4f4f4; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
 pre { background: #f7f7f7; padding: .8em; overflow-x: auto; } img { max-width: 48%; margin: .3em; border: 1px solid #eee; }
 .bar { background: #e8e8e8; width: 10em; height: .8em; display: inline-block; } .bar > span { background: #4a7; height: 100%; display: block; }
 nav a { margin-right: 1em; } th.sort { cursor: pointer; } th.sort:hover { background: #e6e6e6; }
 .filters label { margin-right: 1em; } .plot { display: inline-block; width: 48%; height: 340px; }
</style></head>
<body><nav><a href="/">campaigns</a></nav><h1>{{ title }}</h1>
<main>{{ body | safe }}</main>
{% if swap and refresh %}<script>
// update in place: fetch the page again and swap its content (no reload, no flicker)
setInterval(async () => {
  const answer = await fetch(location.href, {cache: "no-store"});
  if (!answer.ok) return;  // 503 while a campaign writes: try again next time
  const fresh = new DOMParser().parseFromString(await answer.text(), "text/html").querySelector("main");
  if (fresh) document.querySelector("main").innerHTML = fresh.innerHTML;
}, {{ refresh * 1000 }});
</script>{% endif %}
</body></html>"""

CAMPAIGNS = """<p>Read-only view of <code>{{ url }}</code>; this page updates every {{ refresh }} s.</p>
<table><tr><th>campaign</th><th>status</th><th>progress</th><th>finished</th><th>best loss</th><th>budget</th></tr>
{% for c in campaigns %}<tr><td><a href="/campaign/{{ c.name }}">{{ c.name }}</a></td><td>{{ c.status }}</td>
<td><span class="bar"><span style="width: {{ c.percent }}%"></span></span> {{ c.percent }} %</td>
<td class="n">{{ c.finished }} / {{ c.max_evals }}</td><td class="n">{{ c.best }}</td><td>{{ c.budget }}</td></tr>
{% else %}<tr><td colspan="6">no campaigns yet: start one with <code>archevo search start</code></td></tr>{% endfor %}
</table>"""

CAMPAIGN = """<p>{{ status }}: {{ finished }} of {{ max_evals }} individuals finished; budget {{ budget }};
seeds {{ seeds }}. Updates every {{ refresh }} s.
<a href="/campaign/{{ name }}/individuals">All individuals, what is training now, interactive plots</a>.</p>
{% if rows %}<h2>Top {{ rows | length }}</h2>
<table><tr><th>#</th><th>id</th><th>loss</th><th>status</th><th>parameters</th><th>FLOPs/token</th>
<th>confirmed speedup</th><th>changes from the seed</th></tr>
{% for r in rows %}<tr><td class="n">{{ loop.index }}</td><td><a href="/individual/{{ r.id }}">{{ r.id }}</a></td>
<td class="n">{{ r.loss }}</td><td>{{ r.status }}</td><td class="n">{{ r.parameters }}</td><td class="n">{{ r.flops }}</td>
<td class="n">{{ r.confirmed }}</td><td>{{ r.diff }}</td></tr>{% endfor %}
</table>
<h2>Plots</h2>
{% for figure in figures %}<img src="/campaign/{{ name }}/{{ figure }}.png" alt="{{ figure }}">{% endfor %}
{% else %}<p>No individual has finished yet: the first results and plots appear here as they arrive.</p>{% endif %}"""

INDIVIDUAL = """<p>Campaign <a href="/campaign/{{ campaign }}">{{ campaign }}</a>; {{ status }}; loss {{ loss }};
{{ parameters }} parameters; {{ flops }} training FLOPs/token.{% if error %} {{ error }}{% endif %}</p>
<h2>Lineage</h2>
<table><tr><th>generation</th><th>id</th><th>loss</th><th>mutation</th></tr>
{% for m in lineage %}<tr><td class="n">{{ loop.index0 }}</td><td><a href="/individual/{{ m.id }}">{{ m.id }}</a></td>
<td class="n">{{ m.loss }}</td><td>{{ m.mutation }}</td></tr>{% endfor %}</table>
<h2>Hurdles</h2>
{% if hurdles %}<table><tr><th>hurdle</th><th>at budget fraction</th><th>loss</th><th>threshold</th><th>passed</th></tr>
{% for h in hurdles %}<tr><td class="n">{{ h.hurdle }}</td><td class="n">{{ h.fraction }}</td><td class="n">{{ h.loss }}</td>
<td class="n">{{ h.threshold }}</td><td>{{ h.passed }}</td></tr>{% endfor %}</table>
{% else %}<p>no hurdles recorded</p>{% endif %}
<p>End of budget: loss {{ final }}.</p>
<img src="/individual/{{ id }}/curve.png" alt="training curve">
<h2>Confirmation runs</h2>
{% if runs %}<table><tr><th>budget</th><th>training seed</th><th>status</th><th>loss</th></tr>
{% for r in runs %}<tr><td>{{ r.budget }}</td><td class="n">{{ r.seed }}</td><td>{{ r.status }}</td>
<td class="n">{{ r.loss }}</td></tr>{% endfor %}</table>
{% else %}<p>not confirmed (<code>archevo confirm {{ campaign }}</code> retrains the best at fresh seeds)</p>{% endif %}
<h2>Program</h2><pre>{{ listing }}</pre>"""

INDIVIDUALS = """<p>Every individual of <a href="/campaign/{{ name }}">{{ name }}</a>, updated every
{{ refresh }} s. Click a column to sort; the filters and the order are in the address, so a view
can be shared.</p>
<h2>Training now</h2><ul id="inflight"><li>…</li></ul>
<div class="plot" id="progress"></div><div class="plot" id="pareto"></div>
<h2>All individuals (<span id="shown">0</span> of <span id="total">0</span>)</h2>
<p class="filters">
<label>status <select id="status"><option value="">any</option></select></label>
<label>seed <select id="seed"><option value="">any</option></select></label>
<label>mutation <select id="kind"><option value="">any</option></select></label>
<label>loss ≤ <input id="loss" type="number" step="0.01" size="6"></label>
<label>screen ≥ <input id="screen" type="number" step="0.01" size="5"></label>
<label>FLOPs/token ≤ <input id="cost" type="number" size="9"></label>
</p>
<table id="individuals"><thead><tr>
{% for key, label in columns %}<th class="sort" data-key="{{ key }}">{{ label }}</th>{% endfor %}
</tr></thead><tbody></tbody></table>
<script src="/static/plotly.min.js"></script>
<script>
const API = "/api/campaign/{{ name | urlencode }}/individuals";
const COLUMNS = {{ column_keys | tojson }};
const FILTERS = ["status", "seed", "kind", "loss", "screen", "cost", "sort", "desc"];
const state = Object.fromEntries(FILTERS.map(k => [k, new URLSearchParams(location.search).get(k) || ""]));
let rows = [];

const text = v => v === null || v === undefined ? "–" : (typeof v === "number" && !Number.isInteger(v) ? v.toFixed(4) : String(v));
function cell(row, key) {
  const td = document.createElement("td");
  if (key === "id") { const a = document.createElement("a"); a.href = "/individual/" + row.id; a.textContent = row.id; td.append(a); }
  else td.textContent = key === "flops_per_token" && row[key] ? row[key].toExponential(2) : text(row[key]);
  if (typeof row[key] === "number") td.className = "n";
  return td;
}
function keep(row) {
  return (!state.status || row.status === state.status) && (!state.seed || row.seed === state.seed)
    && (!state.kind || row.kind === state.kind)
    && (!state.loss || (row.loss !== null && row.loss <= +state.loss))
    && (!state.screen || (row.screen !== null && row.screen >= +state.screen))
    && (!state.cost || (row.flops_per_token !== null && row.flops_per_token <= +state.cost));
}
function order(a, b) {
  const x = a[state.sort], y = b[state.sort], missing = (x === null) - (y === null);
  if (missing) return missing;  // missing values last, whichever the direction
  const c = x < y ? -1 : x > y ? 1 : 0;
  return state.desc ? -c : c;
}
function options(id, values) {
  const select = document.getElementById(id), chosen = state[id];
  select.replaceChildren(new Option("any", ""), ...[...new Set(values)].filter(v => v).sort().map(v => new Option(v, v)));
  select.value = chosen;
}
function render() {
  history.replaceState(null, "", "?" + new URLSearchParams(Object.entries(state).filter(([, v]) => v)));
  const shown = rows.filter(keep);
  if (state.sort) shown.sort(order);
  const body = document.querySelector("#individuals tbody");
  body.replaceChildren(...shown.map(row => { const tr = document.createElement("tr"); tr.dataset.id = row.id;
    tr.append(...COLUMNS.map(k => cell(row, k))); return tr; }));
  if (!rows.length) body.innerHTML = '<tr><td colspan="' + COLUMNS.length + '">no individuals yet: the campaign is preparing</td></tr>';
  document.getElementById("shown").textContent = shown.length;
  document.getElementById("total").textContent = rows.length;
  const running = rows.filter(r => r.status === "running");
  document.getElementById("inflight").replaceChildren(...(running.length ? running.map(r => {
    const li = document.createElement("li");
    li.innerHTML = '<a href="/individual/' + r.id + '">individual ' + r.id + "</a> (" + (r.mutation || "seed " + r.seed) + ")";
    li.append(" training for " + Math.round(r.running_seconds) + " s");
    return li; }) : [Object.assign(document.createElement("li"), {textContent: "nothing: no candidate is training"})]));
  plots(rows.filter(r => r.loss !== null));
}
function plots(done) {
  if (!window.Plotly || !done.length) return;
  const hover = done.map(r => "individual " + r.id + (r.mutation ? "<br>" + r.mutation : " (seed " + r.seed + ")"));
  const layout = (title, x, y) => ({title: {text: title}, margin: {t: 40, r: 10}, xaxis: {title: {text: x}},
                                    yaxis: {title: {text: y}}, showlegend: false});
  const by = [...done].sort((a, b) => a.finish_order - b.finish_order);
  let best = Infinity; const frontier = by.map(r => (best = Math.min(best, r.loss)));
  Plotly.react("progress", [
    {x: by.map(r => r.finish_order), y: by.map(r => r.loss), mode: "markers", type: "scatter",
     text: by.map(r => hover[done.indexOf(r)]), hovertemplate: "%{text}<br>loss %{y:.4f}<extra></extra>"},
    {x: by.map(r => r.finish_order), y: frontier, mode: "lines", hoverinfo: "skip"}],
    layout("loss by finishing order", "finished", "search loss"), {displaylogo: false});
  Plotly.react("pareto", [{x: done.map(r => r.parameters), y: done.map(r => r.loss), mode: "markers", type: "scatter",
    text: hover, hovertemplate: "%{text}<br>%{x:,} parameters, loss %{y:.4f}<extra></extra>"}],
    layout("parameters against loss", "parameters", "search loss"), {displaylogo: false});
}
async function refresh() {
  const answer = await fetch(API, {cache: "no-store"});
  if (!answer.ok) return;  // 503 while a campaign writes: next time
  rows = await answer.json();
  options("status", rows.map(r => r.status)); options("seed", rows.map(r => r.seed)); options("kind", rows.map(r => r.kind));
  render();
}
for (const id of ["status", "seed", "kind", "loss", "screen", "cost"]) {
  const input = document.getElementById(id); input.value = state[id];
  input.addEventListener("input", () => { state[id] = input.value; render(); });
}
document.querySelectorAll("th.sort").forEach(th => th.addEventListener("click", () => {
  state.desc = state.sort === th.dataset.key && !state.desc ? "1" : ""; state.sort = th.dataset.key; render();
}));
refresh(); setInterval(refresh, {{ refresh * 1000 }});
</script>"""

#: The all-individuals table's columns: (field of the API's rows, header).
TABLE_COLUMNS = (
    ("id", "id"),
    ("birth", "birth"),
    ("status", "status"),
    ("seed", "seed"),
    ("kind", "mutation"),
    ("loss", "loss"),
    ("parameters", "parameters"),
    ("flops_per_token", "FLOPs/token"),
    ("screen", "screen"),
    ("hurdles_passed", "hurdles"),
    ("seconds", "seconds"),
)

FIGURES = ("progress", "pareto", "hurdles", "lineage")
REFRESH_SECONDS = 5


#: Requests answered at once; a burst beyond waits in the queue (each figure costs memory).
SERVER_THREADS = 8


class FigureCache:
    """PNG figures by what they show (route and the data's state), drawn one at a time: a burst
    of requests for one figure draws it once, and memory stays that of a few figures, not one
    per request (matplotlib's pyplot is not thread-safe either)."""

    def __init__(self, size: int = 32):
        self.size, self._figures = size, OrderedDict[tuple, bytes]()
        self._drawing = threading.Lock()

    def get(self, key: tuple, draw: Callable[[io.BytesIO], None]) -> bytes:
        with self._drawing:
            if key not in self._figures:
                out = io.BytesIO()
                draw(out)
                self._figures[key] = out.getvalue()
                if len(self._figures) > self.size:
                    self._figures.popitem(last=False)
            self._figures.move_to_end(key)
            return self._figures[key]


def create_app(repo: Repository, url: str, top_k: int = 10) -> Flask:
    """The dashboard over ``repo`` (opened read-only by the caller)."""
    app = Flask("archevo.dashboard")
    figures = FigureCache()

    def page(title: str, template: str, refresh: int | None = None, swap: bool = True, **values) -> str:
        """``template`` inside the common page; with ``refresh`` (seconds) the page updates
        itself in place (``swap``), or its own script does (``swap=False``)."""
        body = render_template_string(template, refresh=refresh, **values)
        return render_template_string(PAGE, title=title, body=body, refresh=refresh, swap=swap)

    def campaign_or_404(name: str):
        campaign = repo.get_campaign(name)
        if campaign is None:
            abort(404, f"no campaign {name!r}")
        return campaign

    @app.errorhandler(OperationalError)
    def busy(error: OperationalError) -> tuple[str, int, dict]:  # a writer holds a lock: retry, do not crash
        return "the database is busy (a campaign is writing); retrying", 503, {"Retry-After": "1"}

    @app.route("/")
    def campaigns() -> str:
        rows = []
        for c in repo.list_campaigns():
            config = c.config
            finished = repo.count(c.id, FINAL_STATUSES)  # a count, not the rows: this page refreshes itself
            max_evals = config.get("max_evals") or 0
            best = repo.top(c.id, 1)
            rows.append(
                {
                    "name": c.name,
                    "status": c.status,
                    "finished": finished,
                    "max_evals": max_evals,
                    "percent": round(100 * finished / max_evals) if max_evals else 0,
                    "best": number(best[0].fitness) if best else "–",
                    "budget": config.get("budget", ""),
                }
            )
        return page("campaigns", CAMPAIGNS, refresh=REFRESH_SECONDS, campaigns=rows, url=url)

    @app.route("/campaign/<name>")
    def campaign(name: str) -> str:
        c = campaign_or_404(name)
        confirmed = summarize(repo, c.id)
        rows = []
        for individual in repo.top(c.id, top_k):
            root = repo.lineage(individual.id)[-1]
            k = confirmed.get(individual.id)
            rows.append(
                {
                    "id": individual.id,
                    "loss": number(individual.fitness),
                    "status": individual.status,
                    "parameters": f"{individual.parameters:,}" if individual.parameters else "–",
                    "flops": f"{individual.flops_per_token:.3g}" if individual.flops_per_token else "–",
                    "confirmed": f"{k.speedup_mean:.2f} ± {k.speedup_std:.2f}" if k and k.speedup_mean else "–",
                    "diff": "; ".join(diff_architectures(root.architecture(), individual.architecture()))
                    or "(the seed itself)",
                }
            )
        return page(
            f"campaign {name}",
            CAMPAIGN,
            refresh=REFRESH_SECONDS,
            name=name,
            rows=rows,
            figures=FIGURES,
            status=c.status,
            finished=repo.count(c.id, FINAL_STATUSES),
            max_evals=c.config.get("max_evals"),
            budget=c.config.get("budget"),
            seeds=", ".join(c.config.get("seed_programs", [])),
        )

    @app.route("/campaign/<name>/individuals")
    def individuals(name: str) -> str:
        campaign_or_404(name)
        return page(
            f"campaign {name}: every individual",
            INDIVIDUALS,
            refresh=REFRESH_SECONDS,
            swap=False,
            name=name,
            columns=TABLE_COLUMNS,
            column_keys=[key for key, _ in TABLE_COLUMNS],
        )

    @app.route("/api/campaign/<name>/individuals")
    def individuals_json(name: str) -> Response:
        c = campaign_or_404(name)
        screens = repo.screens(c.id)
        now = time.time()
        rows = [
            table_row(i, screens.get(i.id, []), now) for i in [*repo.finished_individuals(c.id), *repo.unfinished(c.id)]
        ]
        return jsonify(rows)

    @app.route("/static/plotly.min.js")
    def plotly_js() -> Response:
        script = files("plotly") / "package_data" / "plotly.min.js"  # shipped with the Python package
        response = Response(script.read_bytes(), mimetype="text/javascript")
        response.cache_control.max_age = 86400
        return response

    @app.route("/campaign/<name>/<figure>.png")
    def plot(name: str, figure: str) -> Response:
        from . import plots  # matplotlib only when a plot is asked for

        c = campaign_or_404(name)
        individuals = repo.finished_individuals(c.id)
        best = repo.top(c.id, 1)
        draw: dict[str, Callable[[io.BytesIO], None]] = {
            "progress": lambda out: plots.plot_progress(individuals, out, c.config.get("population", 16)),
            "pareto": lambda out: plots.plot_pareto(individuals, out),
            "hurdles": lambda out: plots.plot_hurdles(repo.hurdle_pass_counts(c.id), len(individuals), out),
            "lineage": lambda out: plots.plot_lineage(repo.lineage(best[0].id), out),
        }
        if figure not in draw or (figure == "lineage" and not best):
            abort(404, f"no figure {figure!r}")
        state = (len(individuals), max((i.finish_order or 0 for i in individuals), default=-1), repo.count(c.id))
        return Response(figures.get((name, figure, state), draw[figure]), mimetype="image/png")

    @app.route("/individual/<int:individual_id>")
    def individual(individual_id: int) -> str:
        record = repo.get_individual(individual_id)
        if record is None:
            abort(404, f"no individual {individual_id}")
        campaign = next(c for c in repo.list_campaigns() if c.id == record.campaign_id)
        lineage = [
            {"id": m.id, "loss": number(m.fitness), "mutation": m.mutation or f"seed {m.root_seed}"}
            for m in repo.lineage(individual_id)[::-1]
        ]
        hurdles = [
            {
                "hurdle": h.hurdle,
                "fraction": f"{h.fraction:.3f}",
                "loss": number(h.loss),
                "threshold": number(h.threshold),
                "passed": "yes" if h.passed else "no",
            }
            for h in repo.hurdles(individual_id)
        ]
        return page(
            f"individual {individual_id}",
            INDIVIDUAL,
            campaign=campaign.name,
            status=record.status,
            loss=number(record.fitness),
            parameters=f"{record.parameters:,}" if record.parameters else "–",
            flops=f"{record.flops_per_token:.3g}" if record.flops_per_token else "–",
            error=record.error,
            lineage=lineage,
            hurdles=hurdles,
            listing=list_architecture(record.architecture()),
            final=number(record.val_loss),
            id=individual_id,
            runs=[
                {"budget": r.budget, "seed": r.training_seed, "status": r.status, "loss": number(r.val_loss)}
                for r in repo.confirmations(record.campaign_id)
                if r.individual_id == individual_id
            ],
        )

    @app.route("/individual/<int:individual_id>/curve.png")
    def curve(individual_id: int) -> Response:
        from . import plots

        record = repo.get_individual(individual_id)
        if record is None:
            abort(404, f"no individual {individual_id}")
        hurdles = repo.hurdles(individual_id)
        # the tokens the whole budget takes: what it trained over the fraction it reached
        reached = hurdles[-1].fraction if record.status == "stopped_at_hurdle" and hurdles else 1.0
        png = figures.get(
            ("curve", individual_id, record.status, len(hurdles)),
            lambda out: plots.plot_curve(
                repo.result(individual_id) or {}, hurdles, record.tokens / reached if record.tokens else None, out
            ),
        )
        return Response(png, mimetype="image/png")

    return app


def table_row(individual: Any, screen: list, now: float) -> dict[str, Any]:
    """One row of the all-individuals table (``/api/campaign/NAME/individuals``)."""
    started = individual.started_at.timestamp() if individual.started_at else None
    return {
        "id": individual.id,
        "birth": individual.birth,
        "finish_order": individual.finish_order,
        "status": individual.status,
        "seed": individual.root_seed,
        "kind": (individual.mutation or "seed").split(":")[0],
        "mutation": individual.mutation,
        "loss": individual.fitness,
        "parameters": individual.parameters,
        "flops_per_token": individual.flops_per_token,
        "screen": min((s.accuracy for s in screen), default=None),
        "hurdles_passed": individual.hurdles_passed,
        "seconds": individual.seconds,
        "running_seconds": now - started if individual.status == "running" and started else None,
    }


def pooled_server(host: str, port: int, app: Flask, threads: int = SERVER_THREADS):
    """Werkzeug's server answering on a fixed pool of threads (its threaded server starts one per
    request, without limit: 200 concurrent plot requests were 200 threads and a gigabyte)."""
    from werkzeug.serving import BaseWSGIServer

    class PooledServer(BaseWSGIServer):
        def __init__(self) -> None:
            super().__init__(host, port, app)
            self.pool = ThreadPoolExecutor(threads, thread_name_prefix="dashboard")

        def process_request(self, request, client_address) -> None:
            self.pool.submit(self._answer, request, client_address)

        def _answer(self, request, client_address) -> None:
            try:
                self.finish_request(request, client_address)
            except Exception:  # noqa: BLE001 - socketserver's own contract: report, go on
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)

        def server_close(self) -> None:
            super().server_close()
            self.pool.shutdown(wait=False, cancel_futures=True)

    return PooledServer()


def serve(repo: Repository, url: str, port: int, on_ready: Callable[[str], None] = print) -> None:
    """Serve on 127.0.0.1 only (the dashboard shows research in progress, not a public site)."""
    server = pooled_server("127.0.0.1", port, create_app(repo, url))
    on_ready(f"archevo dashboard on http://127.0.0.1:{server.server_port}/ (read-only; Ctrl-C stops it)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
