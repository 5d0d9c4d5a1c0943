"""``archevo dashboard``: a read-only web view of the results database (Flask, no build step).

Pages: the campaigns with their live progress (``/``, refreshing itself), a campaign's top-k
with each program's diff from its seed and its plots (``/campaign/NAME``), an individual's
listing, lineage and hurdle curve (``/individual/ID``), and the plots as PNG. The database is
opened read-only: the dashboard never writes, and a campaign may run beside it. A read that
meets a writer's lock answers 503 with a retry hint instead of failing the server.
"""

from __future__ import annotations

import io
from typing import Callable

from flask import Flask, Response, abort, render_template_string
from sqlalchemy.exc import OperationalError

from primitives.listing import diff_architectures, list_architecture
from storage import FINAL_STATUSES, Repository

from search.confirm import summarize

from .formatting import number

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} · archevo</title>
{% if refresh %}<meta http-equiv="refresh" content="{{ refresh }}">{% endif %}
<style>
 body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em 2em; color: #222; }
 table { border-collapse: collapse; margin: .5em 0 1.5em; } td, th { padding: .25em .7em; border-bottom: 1px solid #ddd; }
 th { text-align: left; background: #f4f4f4; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
 pre { background: #f7f7f7; padding: .8em; overflow-x: auto; } img { max-width: 48%; margin: .3em; border: 1px solid #eee; }
 .bar { background: #e8e8e8; width: 10em; height: .8em; display: inline-block; } .bar > span { background: #4a7; height: 100%; display: block; }
 nav a { margin-right: 1em; }
</style></head>
<body><nav><a href="/">campaigns</a></nav><h1>{{ title }}</h1>
{{ body | safe }}
</body></html>"""

CAMPAIGNS = """<p>Read-only view of <code>{{ url }}</code>; this page refreshes every {{ refresh }} s.</p>
<table><tr><th>campaign</th><th>status</th><th>progress</th><th>finished</th><th>best loss</th><th>budget</th></tr>
{% for c in campaigns %}<tr><td><a href="/campaign/{{ c.name }}">{{ c.name }}</a></td><td>{{ c.status }}</td>
<td><span class="bar"><span style="width: {{ c.percent }}%"></span></span> {{ c.percent }} %</td>
<td class="n">{{ c.finished }} / {{ c.max_evals }}</td><td class="n">{{ c.best }}</td><td>{{ c.budget }}</td></tr>
{% else %}<tr><td colspan="6">no campaigns yet: start one with <code>archevo search start</code></td></tr>{% endfor %}
</table>"""

CAMPAIGN = """<p>{{ status }}: {{ finished }} of {{ max_evals }} individuals finished; budget {{ budget }};
seeds {{ seeds }}. Refreshes every {{ refresh }} s.</p>
<h2>Top {{ rows | length }}</h2>
<table><tr><th>#</th><th>id</th><th>loss</th><th>status</th><th>parameters</th><th>FLOPs/token</th>
<th>confirmed speedup</th><th>changes from the seed</th></tr>
{% for r in rows %}<tr><td class="n">{{ loop.index }}</td><td><a href="/individual/{{ r.id }}">{{ r.id }}</a></td>
<td class="n">{{ r.loss }}</td><td>{{ r.status }}</td><td class="n">{{ r.parameters }}</td><td class="n">{{ r.flops }}</td>
<td class="n">{{ r.confirmed }}</td><td>{{ r.diff }}</td></tr>{% endfor %}
</table>
<h2>Plots</h2>
{% for figure in figures %}<img src="/campaign/{{ name }}/{{ figure }}.png" alt="{{ figure }}">{% endfor %}"""

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
<h2>Program</h2><pre>{{ listing }}</pre>"""

FIGURES = ("progress", "pareto", "hurdles", "lineage")
REFRESH_SECONDS = 5


def create_app(repo: Repository, url: str, top_k: int = 10) -> Flask:
    """The dashboard over ``repo`` (opened read-only by the caller)."""
    app = Flask("archevo.dashboard")

    def page(title: str, template: str, refresh: int | None = None, **values) -> str:
        body = render_template_string(template, refresh=refresh, **values)
        return render_template_string(PAGE, title=title, body=body, refresh=refresh)

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
        out = io.BytesIO()
        draw[figure](out)
        return Response(out.getvalue(), mimetype="image/png")

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
        out = io.BytesIO()
        plots.plot_curve(
            repo.result(individual_id) or {}, hurdles, record.tokens / reached if record.tokens else None, out
        )
        return Response(out.getvalue(), mimetype="image/png")

    return app


def serve(repo: Repository, url: str, port: int, on_ready: Callable[[str], None] = print) -> None:
    """Serve on 127.0.0.1 only (the dashboard shows research in progress, not a public site)."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, create_app(repo, url), threaded=True)
    on_ready(f"archevo dashboard on http://127.0.0.1:{server.server_port}/ (read-only; Ctrl-C stops it)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
