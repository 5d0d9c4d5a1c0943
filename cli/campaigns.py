"""``archevo search start|resume``, ``status``, ``top``, ``show``, ``export``: campaigns and their results."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import typer
from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from .formatting import Column, fitted_table, log, number, printable, terminal_width, validation_message

if TYPE_CHECKING:  # at run time each command imports what it uses: `--help` loads none of them
    from search.config import CampaignConfig
    from storage import CampaignRecord, IndividualRecord, Repository

search = typer.Typer(help="Run evolution campaigns.", no_args_is_help=True, rich_markup_mode=None)
console = Console(stderr=True)

MAX_K = 1_000_000  # -k: more rows than any campaign has, still a 64-bit integer
DB_HELP = "SQLAlchemy URL of the results database (default: $ARCHEVO_DB or sqlite:///archevo.db)"


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def open_repository(db: str | None, readonly: bool = False) -> Repository:
    """The results database; inspection commands open it ``readonly``: they never create one,
    and a missing file is an error naming it. Use it in a ``with`` block: closing checkpoints
    SQLite's log into the file, so the file alone holds every row."""
    from sqlalchemy.engine import make_url

    from storage import Repository

    url = db or os.environ.get("ARCHEVO_DB") or "sqlite:///archevo.db"
    try:
        path = make_url(url).database if make_url(url).get_backend_name() == "sqlite" else None
    except Exception:  # noqa: BLE001 - Repository names a URL it cannot read
        path = None
    try:
        irregular = bool(path and not path.startswith("file:") and Path(path).exists() and not Path(path).is_file())
    except OSError as error:  # a name too long, say
        raise fail(f"cannot open database {url[:200]}: {error.strerror or error}")
    if irregular:
        raise fail(f"cannot open database {url}: {path} is not a regular file")  # a device, a folder, a pipe
    try:
        repo = Repository(db, readonly=readonly)
        problem = repo.quick_check()
    except Exception as error:  # noqa: BLE001 - a bad URL or unreadable file: one line, no traceback
        problem = " ".join(str(getattr(error, "orig", None) or error).split())
    if problem is not None:
        shown = make_url(url).render_as_string(hide_password=True) if "://" in url else url
        raise fail(f"cannot open database {shown}: {problem[:300]}")
    return repo


def persistent(db: str | None) -> str | None:
    """``db`` for a command that writes a campaign: refused where nothing would outlive the
    process (SQLite in memory)."""
    from sqlalchemy.engine import make_url

    url = db or os.environ.get("ARCHEVO_DB") or "sqlite:///archevo.db"
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - open_repository names a URL it cannot read
        return db
    memory = parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory"
    if parsed.get_backend_name() == "sqlite" and memory:
        raise fail(
            f"--db {url}: an in-memory database keeps nothing, the campaign would be lost when this process ends; "
            "give a file, e.g. sqlite:///archevo.db"
        )
    return db


def find_campaign(repo: Repository, name: str | None) -> CampaignRecord:
    """The named campaign, or the most recent one when no name is given."""
    campaigns = repo.list_campaigns()
    if not campaigns:
        raise fail("no campaigns in this database: start one with `archevo search start`")
    if name is None:
        return max(campaigns, key=lambda c: c.created_at)
    found = repo.get_campaign(name)
    if found is None:
        raise fail(f"no campaign {name!r}; known: {', '.join(c.name for c in campaigns)}")
    return found


def trusted_corpus(config: CampaignConfig, given: str | None) -> str:
    """The corpus a command may read for a stored campaign: the default, or the campaign's own
    path-based corpus only when the user names it (``--corpus``): a path read from a database is
    never opened on the database's word."""
    if config.corpus == "default" and given in (None, "default"):
        return "default"
    if given is None:
        raise fail(
            f"campaign {config.name} was trained on corpus {config.corpus!r}, a path read from the database; "
            f"pass --corpus {config.corpus!r} if you trust it"
        )
    if given != config.corpus:
        raise fail(
            f"--corpus {given!r}: campaign {config.name} was trained on {config.corpus!r}; "
            "another corpus would not give the model's tokenizer"
        )
    return given


def campaign_config(campaign: CampaignRecord) -> CampaignConfig:
    from pydantic import ValidationError

    from search.config import CampaignConfig

    try:
        return CampaignConfig.from_stored(campaign.config)
    except ValidationError as error:
        raise fail(f"campaign {campaign.name}'s stored config is invalid: {validation_message(error)}") from None


# --------------------------------------------------------------------------- running


class CampaignView:
    """What a running campaign shows, fed by its events: what each worker is training (by
    individual id, as every other command numbers them), the latest event, counts, the best
    loss, and an ETA from this run's measured pace since its first candidate was sent out (the
    corpus and the seeds' set-up before it are not a candidate's cost)."""

    def __init__(self, repo: Repository, campaign_name: str, max_evals: int):
        self.repo, self.name, self.max_evals = repo, campaign_name, max_evals
        self.start = time.monotonic()
        self.first_dispatch: float | None = None
        self.note = "starting"
        self.training: dict[int, float] = {}  # individual id → dispatched at
        self.done_at_first_dispatch: int | None = None
        self._refresh_counts()

    def __call__(self, event: dict[str, Any]) -> None:
        if event["kind"] == "preparing":
            self.note = event["message"]
        elif event["kind"] == "dispatched":
            self.training[event["id"]] = time.monotonic()
            if self.first_dispatch is None:
                self.first_dispatch, self.done_at_first_dispatch = time.monotonic(), self.done
            self.note = f"training individual {event['id']}"
        elif event["kind"] == "recorded":
            since = self.training.pop(event["id"], None)
            self.note = describe(event, None if since is None else time.monotonic() - since)
        self._refresh_counts()

    def _refresh_counts(self) -> None:
        campaign = self.repo.get_campaign(self.name)
        self.counts = self.repo.status_counts(campaign.id) if campaign else {}
        self.best = self.repo.top(campaign.id, 1) if campaign else []
        self.hurdles = self.repo.hurdle_pass_counts(campaign.id) if campaign else []
        self.done = sum(n for status, n in self.counts.items() if status not in ("pending", "running"))

    def eta(self) -> float | None:
        """Seconds left at this run's pace (None before a candidate of this run has finished)."""
        if self.first_dispatch is None or self.done >= self.max_evals:
            return None
        new = self.done - (self.done_at_first_dispatch or 0)
        return (time.monotonic() - self.first_dispatch) / new * (self.max_evals - self.done) if new else None

    def summary(self) -> str:
        eta = self.eta()
        best = f"best {self.best[0].fitness:.4f} (individual {self.best[0].id})" if self.best else "no loss yet"
        return (
            f"{self.done}/{self.max_evals} done, {len(self.training)} in flight, {best}, "
            f"{_duration(time.monotonic() - self.start)} elapsed" + (f", ETA {_duration(eta)}" if eta else "")
        )


def describe(event: dict[str, Any], seconds: float | None) -> str:
    """One finished individual, as one line: id, status, loss, seconds, mutation."""
    return (
        f"individual {event['id']} {event['status']}"
        + (f" loss {event['fitness']:.4f}" if event.get("fitness") is not None else "")
        + (f" in {seconds:.0f} s" if seconds is not None else "")
        + (f" ({event['mutation']})" if event.get("mutation") else "")
    )


class ProgressView(CampaignView):
    """The live view on a terminal, redrawn four times a second; the database is read on
    events only, the clock ticks between them."""

    def __init__(self, repo: Repository, campaign_name: str, max_evals: int):
        super().__init__(repo, campaign_name, max_evals)
        self.live: Any = Live(self, console=console, refresh_per_second=4, transient=False)

    def __rich__(self) -> Table:
        table = Table(title=f"campaign {self.name}", show_header=False, width=min(console.width, 80))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        table.add_row("progress", ProgressBar(total=self.max_evals, completed=self.done, width=40))
        eta = self.eta()
        table.add_row(
            "evaluations",
            f"{self.done}/{self.max_evals} done, {len(self.training)} in flight, "
            f"{_duration(time.monotonic() - self.start)}" + (f", ETA {_duration(eta)}" if eta else ""),
        )
        now = time.monotonic()
        table.add_row(
            "training",
            ", ".join(f"individual {i} {now - since:.0f} s" for i, since in sorted(self.training.items())) or "–",
        )
        table.add_row("best loss", f"{self.best[0].fitness:.4f} (individual {self.best[0].id})" if self.best else "–")
        table.add_row("hurdles passed", ", ".join(f"h{h}: {p}/{r}" for h, r, p in self.hurdles) or "–")
        table.add_row(
            "dup / rejected",
            f"{self.counts.get('duplicate', 0)} / {self.counts.get('rejected', 0)}"
            + (f", screened out {self.counts['screened_out']}" if self.counts.get("screened_out") else ""),
        )
        failures = {s: self.counts[s] for s in ("diverged", "error", "timeout") if self.counts.get(s)}
        table.add_row("failures", ", ".join(f"{s} {n}" for s, n in failures.items()) or "0")
        table.add_row("latest", self.note[:200])
        return table


class LogView(CampaignView):
    """Plain lines for a log file (nohup, CI, a cluster job): one per finished individual as it
    finishes, and a summary (done/total, best, ETA) at most every ``every`` seconds."""

    def __init__(self, repo: Repository, campaign_name: str, max_evals: int, every: float = 60.0):
        super().__init__(repo, campaign_name, max_evals)
        self.every, self.last_summary = every, time.monotonic()
        self.live: Any = contextlib.nullcontext()

    def __call__(self, event: dict[str, Any]) -> None:
        super().__call__(event)
        if event["kind"] in ("preparing", "recorded"):
            self._print(self.note)
        if event["kind"] == "finished" or time.monotonic() - self.last_summary >= self.every:
            self._print(self.summary())
            self.last_summary = time.monotonic()

    def _print(self, line: str) -> None:
        log(f"{self.name}: {line}", sys.stdout)


def _tensorboard(repo: Repository, name: str, folder: Path) -> Callable[[dict[str, Any]], None]:
    try:
        from .tensorboard import TensorBoardLog

        board = TensorBoardLog(repo, name, folder)
    except ImportError:
        raise fail("--tensorboard needs the tensorboard package: .venv/bin/pip install -e '.[tensorboard]'") from None
    except OSError as error:
        raise fail(f"--tensorboard {folder}: cannot write there: {error.strerror or error}") from None
    board.catch_up()
    return board


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{seconds:02d}s"


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_campaign(
    repo: Repository, config: CampaignConfig, force: bool = False, tensorboard: Path | None = None
) -> None:
    """Run with the live view; a bad corpus or cluster is one line and leaves no campaign, an
    interrupt (Ctrl-C, SIGTERM) says how to resume."""
    from search.backends import BackendError
    from search.campaign import CampaignFailing, build_campaign  # torch and Ray: only when a campaign runs
    from storage import CampaignBusy

    view = (ProgressView if console.is_terminal else LogView)(repo, config.name, config.max_evals)
    listeners: list[Callable[[dict[str, Any]], None]] = [view]
    if tensorboard is not None:
        listeners.append(_tensorboard(repo, config.name, tensorboard))

    def on_event(event: dict[str, Any]) -> None:
        for listener in listeners:
            listener(event)

    previous = signal.signal(signal.SIGTERM, _interrupted)
    try:
        with view.live:
            try:
                campaign = build_campaign(config, repo, on_event=on_event, force=force)
            except (ValueError, OSError, BackendError) as error:
                raise fail(f"campaign {config.name} not started: {' '.join(str(error).split())}") from None
            signal.signal(signal.SIGTERM, _interrupted)  # again: starting Ray installs its own handler
            try:
                campaign.run()
            except (CampaignBusy, CampaignFailing) as error:
                raise fail(str(error)) from None
    except KeyboardInterrupt:
        typer.echo(
            f"interrupted: nothing is lost; `archevo search resume {config.name}` continues the campaign", err=True
        )
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    print_top(repo, find_campaign(repo, config.name), 10, as_json=False)


@search.command("start")
def start(
    config_file: Optional[Path] = typer.Option(None, "--config", help="TOML file of CampaignConfig fields"),
    name: Optional[str] = typer.Option(None, help="campaign name (default: a timestamp)"),
    preset: Optional[str] = typer.Option(None, "--preset", help="protocol (`archevo presets`; default cpu)"),
    seed_program: Optional[list[str]] = typer.Option(None, "--seed-program", help="seed(s) of the population"),
    population: Optional[int] = typer.Option(
        None, help="P: the population is the P most recently finished (cost rejections excepted)"
    ),
    sample: Optional[int] = typer.Option(None, help="S: tournament size"),
    strategy: Optional[str] = typer.Option(
        None, "--strategy", help="ladder (default: aging parents, runs stopped at rungs), aging or random"
    ),
    budget: Optional[str] = typer.Option(None, help="per-candidate budget: 12s, 3e12flops or 2e6tokens"),
    hurdles: Optional[int] = typer.Option(None, help="number of halving hurdles"),
    max_evals: Optional[int] = typer.Option(None, "--max-evals", help="individuals in the campaign"),
    workers: Optional[int] = typer.Option(None, help="parallel evaluations"),
    gpus_per_worker: Optional[float] = typer.Option(
        None, "--gpus-per-worker", help="GPUs per evaluation (Ray): 1, or a share such as 0.25 to pack 4 per GPU"
    ),
    corpus: Optional[str] = typer.Option(None, help="default | lm1b:PATH | text:GLOB"),
    search_seed: Optional[int] = typer.Option(
        None, "--search-seed", "--seed", help="the search's random seed (mutations, tournaments, screen tasks)"
    ),
    backend: Optional[str] = typer.Option(None, help="ray (default) or inprocess"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="join an existing Ray cluster"),
    keep_weights: Optional[str] = typer.Option(
        None,
        "--keep-weights",
        metavar="K",
        help="keep the weights of the top K individuals for export (default 10; 0 none, 'all' every one)",
    ),
    screen: Optional[str] = typer.Option(
        None,
        "--screen",
        help="comma-separated tasks a child must pass before training (`archevo tasks`), e.g. pair_recall",
    ),
    screen_margin: Optional[float] = typer.Option(
        None, "--screen-margin", help="how far below its seed's accuracy a child may score (default 0.1)"
    ),
    tensorboard: Optional[Path] = typer.Option(
        None, "--tensorboard", metavar="DIR", help="write training curves and best-so-far for TensorBoard"
    ),
) -> None:
    """Start a campaign and show its progress; prints the top 10 at the end."""
    from pydantic import ValidationError

    from search.config import CampaignConfig

    overrides = {
        "name": name,
        "preset": preset,
        "seed_programs": seed_program,
        "population": population,
        "sample": sample,
        "strategy": strategy,
        "budget": budget,
        "hurdles": hurdles,
        "max_evals": max_evals,
        "workers": workers,
        "gpus_per_worker": gpus_per_worker,
        "corpus": corpus,
        "search_seed": search_seed,
        "backend": backend,
        "ray_address": ray_address,
        "keep_weights": int(keep_weights) if keep_weights is not None and keep_weights.isdigit() else keep_weights,
        "screen": None if screen is None else [t.strip() for t in screen.split(",") if t.strip()],
        "screen_margin": screen_margin,
    }
    try:
        if config_file is not None:
            config = CampaignConfig.from_toml(config_file, **overrides)
        else:
            config = CampaignConfig.model_validate({k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        raise fail(validation_message(error))
    except (OSError, ValueError) as error:
        raise fail(f"{config_file}: {error}")
    if name is None and "name" not in config.model_fields_set:  # neither --name nor the TOML's name
        config.name = time.strftime("campaign-%Y%m%d-%H%M%S")
    with open_repository(persistent(db)) as repo:
        if repo.get_campaign(config.name) is not None:
            raise fail(f"campaign {config.name!r} exists: `archevo search resume {config.name}` continues it")
        run_campaign(repo, config, tensorboard=tensorboard)


@search.command("resume")
def resume(
    name: str,
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="join an existing Ray cluster"),
    workers: Optional[int] = typer.Option(None, help="parallel evaluations"),
    gpus_per_worker: Optional[float] = typer.Option(
        None, "--gpus-per-worker", help="GPUs per evaluation (Ray): 1, or a share such as 0.25 to pack 4 per GPU"
    ),
    max_evals: Optional[int] = typer.Option(None, "--max-evals", help="extend the campaign to this many"),
    eval_timeout: Optional[float] = typer.Option(None, "--eval-timeout", help="seconds per evaluation"),
    force: bool = typer.Option(False, "--force", help="take over from a driver that stopped answering"),
    tensorboard: Optional[Path] = typer.Option(
        None, "--tensorboard", metavar="DIR", help="write training curves and best-so-far for TensorBoard"
    ),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Continue a campaign after a crash: in-flight individuals are re-run, nothing is lost.
    The overrides change where and how long it runs, never its recipe."""
    from pydantic import ValidationError

    from search.config import CampaignConfig

    with open_repository(db) as repo:
        campaign = find_campaign(repo, name)
        stored = campaign_config(campaign)
        overrides = {
            "ray_address": ray_address,
            "workers": workers,
            "gpus_per_worker": gpus_per_worker,
            "max_evals": max_evals,
            "eval_timeout_s": eval_timeout,
        }
        try:
            config = CampaignConfig.model_validate(
                {**stored.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
            )
        except ValidationError as error:
            raise fail(validation_message(error))
        if config.max_evals < stored.max_evals:
            raise fail(
                f"--max-evals {config.max_evals}: the campaign already has {stored.max_evals}; it can only be extended"
            )
        if config != stored:
            repo.set_campaign_config(name, config.model_dump(mode="json"))
            if config.max_evals > stored.max_evals:
                repo.set_campaign_status(name, "running")
        run_campaign(repo, config, force, tensorboard)


# --------------------------------------------------------------------------- inspecting


def strategy_of(campaign: CampaignRecord) -> str:
    """The campaign's strategy in a word or two: ``ladder (aging)``, ``aging``, ``random``."""
    from search.config import LEGACY

    config = {**LEGACY, **campaign.config}
    strategy = str(config["strategy"])
    return f"ladder ({config.get('ladder_parents', 'aging')})" if strategy == "ladder" else strategy


def campaign_state(repo: Repository, campaign: CampaignRecord) -> str:
    """finished, running (a live driver), or stopped (its driver is gone: resume it)."""
    from search.liveness import alive

    if campaign.status == "finished":
        return "finished"
    holder = repo.driver(campaign.id)
    if holder is not None and alive(holder):
        return f"running (pid {holder.pid})"
    return "stopped: resume"


def status(
    name: Optional[str] = typer.Argument(None),
    as_json: bool = typer.Option(False, "--json", help="a JSON list, one object per campaign"),
    wide: bool = typer.Option(False, "--wide", help="every column, however wide the terminal"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Every campaign with its progress: running (a live driver), stopped (resume it) or finished."""
    repo = open_repository(db, readonly=True)
    rows: list[dict[str, Any]] = []
    for campaign in [find_campaign(repo, name)] if name else repo.list_campaigns():
        counts = repo.status_counts(campaign.id)
        best = repo.top(campaign.id, 1)
        rows.append(
            {
                "name": campaign.name,
                "strategy": strategy_of(campaign),
                "state": campaign_state(repo, campaign),
                "done": sum(n for s, n in counts.items() if s not in ("pending", "running")),
                "max_evals": campaign.config.get("max_evals"),
                "best_loss": best[0].fitness if best else None,
                "duplicates": counts.get("duplicate", 0),
                "rejected": counts.get("rejected", 0),
                "screened_out": counts.get("screened_out", 0),
                "failures": sum(counts.get(s, 0) for s in ("diverged", "error", "timeout")),
                "compute_flops": dict(zip(("training", "screen"), repo.compute(campaign.id))),
                "screen": _seed_screens(repo, campaign),
                "hurdles": [
                    {"hurdle": h, "reached": r, "passed": p} for h, r, p in repo.hurdle_pass_counts(campaign.id)
                ],
                "created": campaign.created_at.isoformat(timespec="seconds"),
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("no campaigns in this database: start one with `archevo search start`")
        return
    columns = [
        Column("name"),
        Column("state", text=True),
        Column("done", justify="right"),
        Column("best", justify="right"),
        Column("dup/rej/scr/fail", drop=3),
        Column("hurdles", drop=2, text=True),
        Column("FLOPs (screen)", drop=1, text=True),
        Column("created (UTC)", drop=4, text=True),
    ]
    cells = []
    for r in rows:
        spent = r["compute_flops"]
        total = spent["training"] + spent["screen"]
        cells.append(
            [
                f"{r['name']}\n{r['strategy'].split()[0]}",  # the strategy's word under the name
                r["state"],
                f"{r['done']}/{r['max_evals']}",
                number(r["best_loss"]),
                f"{r['duplicates']}/{r['rejected']}/{r['screened_out']}/{r['failures']}",
                " ".join(f"{h['passed']}/{h['reached']}" for h in r["hurdles"]) or "–",
                f"{total:.2g}" + (f" ({spent['screen'] / total:.0%})" if spent["screen"] else ""),
                r["created"].replace("T", " ")[:16],
            ]
        )
    table = fitted_table("campaigns", columns, cells, terminal_width(), wide)
    out = Console()
    out.print(table)
    for r in rows:
        if r["screen"]:
            out.print(
                f"screen of {r['name']} (margin {r['screen']['margin']:g}): "
                + "; ".join(
                    f"seed {name} " + ", ".join(f"{task} {accuracy:.3f}" for task, accuracy in scores.items())
                    for name, scores in r["screen"]["seeds"].items()
                ),
                highlight=False,
                markup=False,
            )


def _seed_screens(repo: Repository, campaign: CampaignRecord) -> dict[str, Any] | None:
    """The campaign's screen: its margin and each seed's scores (the bars its children face)."""
    tasks = campaign.config.get("screen") or []
    if not tasks:
        return None
    seeds = {root.root_seed: {s.task: s.accuracy for s in repo.screen_of(root.id)} for root in repo.roots(campaign.id)}
    return {"tasks": tasks, "margin": campaign.config.get("screen_margin"), "seeds": seeds}


def seed_diff(repo: Repository, individual: IndividualRecord) -> str:
    root = repo.lineage(individual.id)[-1]
    from primitives.listing import diff_architectures  # networkx: only where programs are compared

    return "; ".join(diff_architectures(root.architecture(), individual.architecture())) or "(the seed itself)"


def print_top(repo: Repository, campaign: CampaignRecord, k: int, as_json: bool, wide: bool = False) -> None:
    """The k best by search loss, with cost next to every loss, and the confirmed columns
    (``archevo confirm``) when the campaign has confirmation runs."""
    from search.confirm import summarize

    rows = repo.top(campaign.id, k)
    confirmed = summarize(repo, campaign.id)
    screens = repo.screens(campaign.id)
    diffs = [seed_diff(repo, r) for r in rows]  # before printing anything: a bad row fails it all
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "rank": rank,
                        "id": r.id,
                        "birth": r.birth,
                        "loss": r.fitness,
                        "status": r.status,
                        "perplexity": r.perplexity,
                        "bits_per_byte": r.bits_per_byte,
                        "parameters": r.parameters,
                        "flops_per_token": r.flops_per_token,
                        "hurdles_passed": r.hurdles_passed,
                        "root_seed": r.root_seed,
                        "diff_from_seed": diff,
                        "screen": {s.task: s.accuracy for s in screens.get(r.id, [])} or None,
                        "confirmed": confirmed[r.id].as_dict() if r.id in confirmed else None,
                    }
                    for rank, (r, diff) in enumerate(zip(rows, diffs), 1)
                ],
                indent=2,
            )
        )
        return
    columns = [
        Column("rank", justify="right"),
        Column("id", justify="right"),
        Column("loss", justify="right"),
        Column("bits/byte", drop=2, justify="right"),
        Column("params", drop=4, justify="right"),
        Column("FLOPs/tok", drop=5, justify="right"),
        Column("hurdles", drop=1, justify="right"),
    ]
    if screens:
        columns.append(Column("screen", drop=3, text=True))
    if confirmed:
        columns += [Column("confirmed loss", justify="right"), Column("speedup", justify="right")]
    cells = []
    for rank, r in enumerate(rows, 1):
        row = [
            str(rank),
            str(r.id),
            number(r.fitness),
            number(r.bits_per_byte, 3),
            f"{r.parameters:,}" if r.parameters else "–",
            f"{r.flops_per_token:.3g}" if r.flops_per_token else "–",
            str(r.hurdles_passed or 0),
        ]
        if screens:
            row.append(" ".join(f"{s.accuracy:.2f}" for s in screens.get(r.id, [])) or "–")
        if confirmed:
            c = confirmed.get(r.id)
            row += (
                ["–", "–"]
                if c is None or c.loss_mean is None
                else [
                    f"{c.loss_mean:.4f} ± {c.loss_std:.4f}",
                    "–" if c.speedup_mean is None else f"{c.speedup_mean:.2f} ± {c.speedup_std:.2f}",
                ]
            )
        cells.append(row)
    budget = f", confirmed at {next(iter(confirmed.values())).budget}" if confirmed else ""
    title = f"top {k} of campaign {campaign.name} ({strategy_of(campaign)}{budget})"
    table = fitted_table(title, columns, cells, terminal_width(), wide)
    out = Console()
    out.print(table)
    if screens:
        tasks = next(iter(screens.values()))
        out.print(f"screen: accuracy on {', '.join(s.task for s in tasks)} (archevo tasks)", highlight=False)
    out.print("diff from the seed, by rank:", style="bold")
    for rank, (r, diff) in enumerate(zip(rows, diffs), 1):  # own lines: a diff is too long for a cell
        out.print(f"{rank:>3}. id {r.id} ({r.root_seed}): {diff}", highlight=False, markup=False)


def top(
    name: Optional[str] = typer.Argument(None, help="campaign (default: the latest)"),
    k: int = typer.Option(10, "-k", help="how many"),
    as_json: bool = typer.Option(False, "--json", help="a JSON list of objects, each with an id"),
    wide: bool = typer.Option(False, "--wide", help="every column, however wide the terminal"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """The k best individuals of a campaign."""
    if not 1 <= k <= MAX_K:
        raise fail(f"-k {k}: show between 1 and {MAX_K:,} individuals")
    repo = open_repository(db, readonly=True)
    print_top(repo, find_campaign(repo, name), k, as_json, wide)


def get_individual(repo: Repository, individual_id: int) -> IndividualRecord:
    if not 0 <= individual_id < 2**63:  # SQLite's integers are 64-bit
        raise fail(f"no individual {individual_id} in this database")
    individual = repo.get_individual(individual_id)
    if individual is None:
        raise fail(f"no individual {individual_id} in this database")
    return individual


def show(
    individual_id: int = typer.Argument(..., metavar="ID"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """An individual: its program, its diff against its seed and its parent, lineage, hurdle
    curve, task-screen scores and confirmation runs."""
    shown = io.StringIO()  # stored text reaches the terminal only with its control characters escaped
    with contextlib.redirect_stdout(shown):
        _show(individual_id, as_json, db)
    sys.stdout.write(printable(shown.getvalue()))


def _show(individual_id: int, as_json: bool, db: str | None) -> None:
    from primitives.listing import diff_architectures, list_architecture

    repo = open_repository(db, readonly=True)
    individual = get_individual(repo, individual_id)
    lineage = repo.lineage(individual_id)
    runs = [r for r in repo.confirmations(individual.campaign_id) if r.individual_id == individual_id]
    screen = repo.screen_of(individual_id)
    # everything that parses stored programs comes first: a damaged row fails before any output
    architecture, from_seed = individual.architecture(), seed_diff(repo, individual)
    parent = lineage[1] if len(lineage) > 1 else None
    from_parent = diff_architectures(parent.architecture(), architecture) if parent else None
    campaign = repo.get_campaign(individual.campaign_id)
    strategy = strategy_of(campaign) if campaign is not None else None
    if as_json:
        print(
            json.dumps(
                {
                    **{k: v for k, v in dataclasses.asdict(individual).items() if k != "architecture_json"},
                    "strategy": strategy,
                    "architecture": architecture.model_dump(mode="json"),
                    "diff_from_seed": from_seed,
                    "diff_from_parent": from_parent,
                    "lineage": [{"id": m.id, "fitness": m.fitness, "mutation": m.mutation} for m in lineage],
                    "hurdles": [
                        {
                            "hurdle": h.hurdle,
                            "fraction": h.fraction,
                            "loss": h.loss,
                            "threshold": h.threshold,
                            "passed": h.passed,
                        }
                        for h in repo.hurdles(individual_id)
                    ],
                    "screen": [
                        {
                            "task": s.task,
                            "accuracy": s.accuracy,
                            "chance": s.chance,
                            "seconds": s.seconds,
                            "flops": s.flops,
                        }
                        for s in screen
                    ],
                    "confirmation_runs": [
                        {
                            "budget": r.budget,
                            "training_seed": r.training_seed,
                            "status": r.status,
                            "val_loss": r.val_loss,
                            "error": r.error,
                        }
                        for r in runs
                    ],
                },
                indent=2,
                default=str,
            )
        )
        return
    cost = (f", {individual.parameters:,} parameters" if individual.parameters else "") + (
        f", {individual.flops_per_token:.3g} training FLOPs/token" if individual.flops_per_token else ""
    )
    print(
        f"individual {individual.id} (birth {individual.birth}), status {individual.status}, "
        f"loss {number(individual.fitness)}{cost}, seed {individual.root_seed}"
    )
    if campaign is not None:
        print(f"campaign {campaign.name}, strategy {strategy}")
    if individual.error:
        print(f"message: {individual.error}")
    print("\n" + list_architecture(architecture))
    print(f"\ndiff against seed {individual.root_seed}: {from_seed}")
    if parent is not None:
        print(f"diff against parent {parent.id}: " + ("; ".join(from_parent or []) or "none"))
    print("\nlineage:")
    for member in lineage:
        print(f"  {member.id:>5}  loss {number(member.fitness)}  {member.mutation or '(seed)'}")
    print("\nhurdle curve:")
    for hurdle in repo.hurdles(individual_id):
        print(
            f"  hurdle {hurdle.hurdle} at {hurdle.fraction:.3f} of the budget: loss {number(hurdle.loss)}, "
            f"threshold {number(hurdle.threshold)}, {'passed' if hurdle.passed else 'stopped'}"
        )
    if individual.val_loss is not None:
        print(f"  end of budget: loss {number(individual.val_loss)}")
    if screen:
        print("\ntask screen:")
        for score in screen:
            print(
                f"  {score.task}: accuracy {score.accuracy:.3f} (chance {score.chance:.3f}), {score.seconds:.1f} s, "
                f"{score.flops:.3g} training FLOPs"
            )
    if runs:
        print("\nconfirmation runs:")
        for run in runs:
            print(
                f"  budget {run.budget}, training seed {run.training_seed}: {run.status}, "
                f"loss {number(run.val_loss)}" + (f" ({run.error})" if run.error else "")
            )


def export(
    individual_id: int = typer.Argument(..., metavar="ID"),
    out: Path = typer.Option(..., "-o", "--out", help="output directory"),
    weights: Optional[bool] = typer.Option(
        None, "--weights/--no-weights", help="include the trained weights (default: when kept; --weights requires them)"
    ),
    force: bool = typer.Option(False, "--force", help="replace a non-empty output folder whole"),
    corpus: Optional[str] = typer.Option(
        None, "--corpus", help="the campaign's corpus, when it is a path (never read from the database unasked)"
    ),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Write a standalone model.py, config.json, README.md, tokenizer and transformers files for an individual."""
    from search.confirm import summarize

    repo = open_repository(db, readonly=True)
    individual = get_individual(repo, individual_id)
    campaign = repo.get_campaign(individual.campaign_id)
    if campaign is None:
        raise fail(f"individual {individual_id}'s campaign {individual.campaign_id} is not in the database")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise fail(f"-o {out}: the folder is not empty; pass --force to replace it whole")
    config = campaign_config(campaign)
    weights_file = (repo.result(individual_id) or {}).get("weights") if weights is not False else None
    if weights_file is not None and not Path(weights_file).exists():
        weights_file = None
    if weights and weights_file is None:
        raise fail(f"individual {individual_id} has no kept weights: {_why_no_weights(config)}")
    if weights_file is not None:
        stored = Path(weights_file).resolve()  # never copy an arbitrary path the database names
        expected = Path(Path(config.weights_dir).name) / config.name / f"{individual.id}.safetensors"
        if stored.parts[-3:] != expected.parts or not stored.is_file() or not _safetensors(stored):
            raise fail(
                f"individual {individual_id}'s weights {weights_file} are not the campaign's own "
                f"(a safetensors file at …/{expected}); not copied"
            )
    confirmed = summarize(repo, individual.campaign_id).get(individual.id)
    metadata = {
        "campaign": config.name,
        "individual": individual.id,
        "status": individual.status,
        "root_seed": individual.root_seed,
        "validation_loss": individual.val_loss,
        "perplexity": individual.perplexity,
        "bits_per_byte": individual.bits_per_byte,
        "budget": config.budget,
        "corpus": config.corpus,
        "changes_from_seed": seed_diff(repo, individual),
    }
    if confirmed is not None and confirmed.speedup_mean is not None:
        metadata["confirmed_speedup"] = (
            f"{confirmed.speedup_mean:.2f} ± {confirmed.speedup_std:.2f} over "
            f"{confirmed.paired} training seeds at {confirmed.budget}"
        )
    chosen = trusted_corpus(config, corpus)  # before the try: a refusal is not a load error
    try:
        from evaluator.tokenization import load_tokenized

        data = load_tokenized(chosen, config.spec.vocab_size, max_train_tokens=config.max_train_tokens)
    except (OSError, RuntimeError, ValueError) as error:
        raise fail(f"cannot load the tokenizer of corpus {config.corpus!r}: {error}")
    try:
        from evaluator.export import export_model  # torch: only when exporting

        directory = export_model(
            out,
            config.spec,
            individual.architecture(),
            Path(weights_file) if weights_file else None,
            metadata,
            tokenizer=data.cache_dir / "tokenizer.json",
            title=f"{config.name} · individual {individual.id}",
            summary=_export_summary(individual, config.budget, metadata),
            force=force,
        )
    except OSError as error:
        raise fail(f"-o {out}: cannot write there: {error.strerror or error}")
    print(f"wrote {', '.join(sorted(p.name for p in directory.iterdir()))} to {directory}")
    if weights_file is None:
        print(f"no trained weights ({_why_no_weights(config)}): the model initialises at random")


def _safetensors(path: Path) -> bool:
    """Whether ``path`` is a safetensors file (what a campaign keeps), not any file so named."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as weights:
            return bool(list(weights.keys()))
    except Exception:  # noqa: BLE001 - any file safetensors cannot read is not one
        return False


def _why_no_weights(config: CampaignConfig) -> str:
    if config.kept_weights() == 0:
        return "the campaign kept none (keep_weights = 0)"
    return (
        f"the campaign keeps the weights of its top {config.keep_weights} only; "
        "retrain it with `archevo train --program FILE --save DIR`"
    )


def _export_summary(individual: IndividualRecord, budget: str, metadata: dict) -> str:
    """The exported README's first paragraph: what the individual is and how far to trust it."""
    trained = {
        "ok": "trained to the end of its budget",
        "stopped_at_hurdle": f"stopped at hurdle {(individual.hurdles_passed or 0) + 1}, before the end of its budget",
    }.get(individual.status, individual.status)
    loss = f"validation loss {individual.val_loss:.4f}" if individual.val_loss is not None else "no validation loss"
    confirmed = (
        f"Confirmed speedup against its seed: {metadata['confirmed_speedup']}."
        if "confirmed_speedup" in metadata
        else "Not confirmed: `archevo confirm` retrains it at fresh training seeds."
    )
    return (
        f"Individual {individual.id} of campaign {metadata['campaign']}, from seed `{individual.root_seed}`: "
        f"{trained}, {loss} at budget {budget}. Changes from the seed: {metadata['changes_from_seed']}. "
        f"{confirmed}"
    )


def compare(
    names: list[str] = typer.Argument(..., metavar="CAMPAIGN...", help="two or more campaigns"),
    out: Path = typer.Option(Path("compare.png"), "-o", "--out", help="the plot (PNG)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    wide: bool = typer.Option(False, "--wide", help="every column, however wide the terminal"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Campaigns side by side: best-so-far against compute in one plot, and one table (best,
    median, the best confirmed individual's speedup, compute spent)."""
    from .compare import plot_comparison, summarize_campaign

    if len(set(names)) < 2:
        raise fail("compare needs two or more different campaigns")
    repo = open_repository(db, readonly=True)
    summaries = [summarize_campaign(repo, find_campaign(repo, name)) for name in names]
    if as_json:
        print(
            json.dumps(
                [
                    {**dataclasses.asdict(s), "confirmed": s.confirmed.as_dict() if s.confirmed else None}
                    for s in summaries
                ],
                indent=2,
            )
        )
    else:
        columns = [
            Column("campaign"),
            Column("individuals", drop=2, justify="right"),
            Column("trained", drop=3, justify="right"),
            Column("best loss", justify="right"),
            Column("median loss", drop=1, justify="right"),
            Column("confirmed speedup", text=True),
            Column("FLOPs", justify="right"),
        ]
        cells = []
        for s in summaries:
            c = s.confirmed
            speedup = (
                f"{c.speedup_mean:.2f} ± {c.speedup_std:.2f} (#{c.individual_id}, {c.paired} seeds)"
                if c is not None and c.speedup_mean is not None
                else "–"
            )
            cells.append(
                [
                    s.name,
                    str(s.individuals),
                    str(s.trained),
                    number(s.best),
                    number(s.median),
                    speedup,
                    f"{s.compute:.3g}",
                ]
            )
        table = fitted_table("campaigns compared", columns, cells, terminal_width(), wide)
        Console().print(table)
    try:
        plot_comparison(summaries, out)
    except OSError as error:
        raise fail(f"-o {out}: cannot write there: {error.strerror or error}")
    if not as_json:
        print(f"wrote {out}")


def dashboard(
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="port on 127.0.0.1 (0: any free one)"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """A read-only web dashboard on 127.0.0.1: campaigns with live progress, top-k with diffs,
    individuals' listings, lineage and hurdles, the campaign plots."""
    from sqlalchemy.engine import make_url

    from .dashboard import serve  # flask only when serving

    repo = open_repository(db, readonly=True)
    url = db or os.environ.get("ARCHEVO_DB") or "sqlite:///archevo.db"
    try:
        serve(repo, make_url(url).render_as_string(hide_password=True) if "://" in url else url, port)
    except OSError as error:
        raise fail(f"--port {port}: cannot listen on 127.0.0.1:{port}: {error.strerror or error}")


def plot(
    name: Optional[str] = typer.Argument(None, help="campaign (default: the latest)"),
    out: Path = typer.Option(Path("plots"), "-o", "--out", help="output directory"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """PNG plots of a campaign: progress, hurdle survival, parameters vs loss, best lineage."""
    from .plots import plot_campaign  # matplotlib only when plotting

    repo = open_repository(db, readonly=True)
    campaign = find_campaign(repo, name)
    try:
        paths = plot_campaign(repo, campaign.id, out, window=campaign_config(campaign).population)
    except OSError as error:
        raise fail(f"-o {out}: cannot write there: {error.strerror or error}")
    print("wrote " + ", ".join(str(p) for p in paths))
