"""The one class that writes the database, and every query the search and the CLI read.

Design rules (see DESIGN.md, "Storage", and reference/peers.md for why):

* The campaign driver is the only writer process. Each call is one short transaction, so a
  reader in another process (``archevo top`` while a campaign runs) never waits long, and a
  crash loses at most the call in progress.
* SQLite runs in WAL mode (readers never block the writer and vice versa) with a 30 s busy
  timeout. Write transactions start with ``BEGIN IMMEDIATE``: a second writer (a CLI command
  that changes a campaign's status, say) waits for the lock instead of failing with
  "database is locked" when its read snapshot turns out to be stale. Commits do not fsync
  (``synchronous=NORMAL``): a crash of the process loses nothing committed; a power cut
  may lose the last few transactions, never corrupt the file.
* Writes are idempotent: ``add_individual`` on (campaign, birth), ``record_result`` on
  (individual, attempt), ``record_hurdle`` on (individual, hurdle). Replaying the calls of a
  crashed driver is safe, and a late result for a superseded attempt is ignored.
* Every method returns plain frozen records (or numbers), never live ORM objects, and no
  connection or session outlives a call: the driver's memory does not grow with the number
  of individuals. The ORM classes in ``schema`` define the tables; those in ``statements`` are
  Core statements over them, built once at import (compiled once, cached by SQLAlchemy), so
  a call costs little more than SQLite's own work.
* Resuming is reading: the population (aging), hurdle thresholds, dedup lookups and the
  in-flight set are all queries.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, CursorResult, Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from . import engine_setup
from . import statements as sql
from .migrations import check_readable, migrate
from .records import (
    CampaignBusy,
    CampaignRecord,
    ConfirmationRecord,
    DriverRecord,
    HurdleRecord,
    IndividualRecord,
    NotFound,
    ScreenRecord,
    decode,
)
from .results import EvalResult
from .schema import CAMPAIGN_STATUSES, FINAL_STATUSES, INDIVIDUAL_STATUSES, utcnow

if TYPE_CHECKING:
    from primitives.program import Architecture

log = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///archevo.db"
ENV_URL = "ARCHEVO_DB"


def _new_id(inserted: CursorResult[Any]) -> int:
    """The primary key an INSERT of one row gave it."""
    key = inserted.inserted_primary_key
    if key is None:
        raise RuntimeError("the database returned no primary key for an inserted row")
    return int(key[0])


class Repository:
    """All reads and writes of the archevo database.

    ``url`` is any SQLAlchemy URL (a bare path means a SQLite file); by default the
    ``ARCHEVO_DB`` environment variable, else ``sqlite:///archevo.db`` in the working
    directory. An empty database gets the tables, an older one is migrated first
    (``storage.migrations``), a newer one is refused. ``readonly=True`` (for inspection commands)
    refuses every write, creates nothing and fails if a SQLite file does not exist.
    """

    def __init__(self, url: str | None = None, *, readonly: bool = False) -> None:
        url = url or os.environ.get(ENV_URL) or DEFAULT_URL
        if "://" not in url:
            url = f"sqlite:///{url}"
        self.url = url
        self.readonly = readonly
        self._engine = engine_setup.make_engine(url, readonly)
        self._memory = isinstance(self._engine.pool, StaticPool)
        self._local = threading.local()  # the connection of this thread's open batch()
        self._write_engine = self._engine.execution_options(archevo_write=True)
        self._files = [] if readonly else engine_setup.sqlite_files(url)  # checked before each write
        if hasattr(os, "register_at_fork"):
            engine_ref = weakref.ref(self._engine)
            os.register_at_fork(after_in_child=lambda: engine_setup.dispose_after_fork(engine_ref))
        if readonly:
            check_readable(self._engine)
        else:
            migrate(self._write_engine)  # an empty database gets the tables, an older one its migrations

    def __repr__(self) -> str:
        return f"Repository({make_url(self.url).render_as_string(hide_password=True)!r})"

    # ------------------------------------------------------------------ plumbing

    @property
    def engine(self) -> Engine:
        return self._engine

    def quick_check(self) -> str | None:
        """SQLite's ``PRAGMA quick_check`` (linear in the file's size; a second for a few
        hundred MB): None if the file is sound, else its first complaint. Elsewhere one round
        trip, so an unreachable server fails here (raising) rather than in the first query."""
        if self._engine.dialect.name != "sqlite":
            with self._engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            return None
        if self._memory:
            return None
        with self._engine.connect() as connection:
            verdict = connection.exec_driver_sql("PRAGMA quick_check(1)").scalar()
        return None if verdict == "ok" else str(verdict)

    def checkpoint(self) -> None:
        """Fold SQLite's write-ahead log into the database file and empty it, so that
        ``archevo.db`` alone holds every committed row (a copy or backup of just that file is
        complete). A no-op elsewhere and for read-only repositories."""
        if self.readonly or self._engine.dialect.name != "sqlite" or self._memory:
            return
        engine_setup.check_writable(self._files)
        with self._engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Checkpoint the log (see ``checkpoint``), then close the pooled connections (the
        Repository reconnects if used again)."""
        self.checkpoint()
        self._engine.dispose()

    def __enter__(self) -> Repository:  # noqa: PYI034 - Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run several calls of this thread as one transaction: one commit instead of one per
        call, all or nothing (an exception rolls every call back). Keep a batch short (no
        training inside it): it holds the write lock until it ends. Nested batches join the
        outer one."""
        if self._batch_connection() is not None:
            yield
            return
        with self._write() as connection:
            self._local.connection = connection
            try:
                yield
            finally:
                self._local.connection = None

    def _batch_connection(self) -> Connection | None:
        return getattr(self._local, "connection", None)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One short write transaction (BEGIN IMMEDIATE on SQLite), committed on exit; inside
        a batch(), the batch's transaction."""
        if self.readonly:
            raise PermissionError("this Repository was opened read-only")
        shared = self._batch_connection()
        if shared is not None:
            yield shared
            return
        engine_setup.check_writable(self._files)
        with self._write_engine.begin() as connection:
            yield connection

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection for one read statement (a consistent snapshot that never blocks the
        writer); inside a batch(), the batch's, so reads see its uncommitted writes."""
        shared = self._batch_connection()
        if shared is not None:
            yield shared
            return
        with self._engine.begin() as connection:
            yield connection

    def journal_mode(self) -> str | None:
        """SQLite's journal mode ("wal" once a writer opened the file); None elsewhere."""
        if self._engine.dialect.name != "sqlite":
            return None
        with self._engine.connect() as connection:
            return connection.exec_driver_sql("PRAGMA journal_mode").scalar()

    # ------------------------------------------------------------------ campaigns

    def create_campaign(self, name: str, seed: int, config: Mapping[str, Any] | Any) -> CampaignRecord:
        """A new running campaign; ``config`` (a dict or a pydantic model) is stored once, as JSON."""
        now = utcnow()
        values: dict[str, Any] = {
            "name": name,
            "seed": int(seed),
            "config_json": json.dumps(sql.as_dict(config), sort_keys=True, default=str),
            "status": "running",
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self._write() as c:
                if c.execute(sql.CAMPAIGN_ID_BY_NAME, {"name": name}).first() is not None:
                    raise ValueError(f"a campaign named {name!r} already exists (resume it, or choose another name)")
                new_id = _new_id(c.execute(sql.INSERT_CAMPAIGN, values))
        except IntegrityError as error:  # lost a race with another writer (PostgreSQL)
            raise ValueError(f"a campaign named {name!r} already exists") from error
        return CampaignRecord(id=new_id, **values)

    def get_campaign(self, name: str | int) -> CampaignRecord | None:
        """By name, or by id when given an int."""
        params: dict[str, Any]
        if isinstance(name, int):
            statement, params = sql.CAMPAIGN_BY_ID, {"id": name}
        else:
            statement, params = sql.CAMPAIGN_BY_NAME, {"name": name}
        with self._read() as c:
            row = c.execute(statement, params).first()
        return CampaignRecord(*row) if row else None

    def list_campaigns(self) -> list[CampaignRecord]:
        with self._read() as c:
            return [CampaignRecord(*row) for row in c.execute(sql.CAMPAIGNS)]

    # ------------------------------------------------------------------ drivers

    def driver(self, campaign_id: int) -> DriverRecord | None:
        """The process that holds the campaign, if any (it may have died: see its heartbeat)."""
        with self._read() as c:
            row = c.execute(sql.DRIVER, {"cid": campaign_id}).first()
        return DriverRecord(*row) if row else None

    def claim_driver(
        self, campaign_id: int, host: str, pid: int, refusal: Callable[[DriverRecord], str | None]
    ) -> DriverRecord:
        """Make (host, pid) the campaign's driver, in one transaction: if another holds it,
        ``refusal(holder)`` decides (the search's liveness policy): a message raises
        CampaignBusy, None takes the campaign over."""
        now = utcnow()
        with self._write() as c:
            row = c.execute(sql.DRIVER, {"cid": campaign_id}).first()
            if row is not None:
                holder = DriverRecord(*row)
                if (holder.host, holder.pid) != (host, pid) and (reason := refusal(holder)):
                    raise CampaignBusy(reason)
                c.execute(sql.DELETE_DRIVERS_OF, {"cid": campaign_id})
            record = DriverRecord(campaign_id, host, pid, now, now)
            c.execute(sql.INSERT_DRIVER, {f.name: getattr(record, f.name) for f in fields(DriverRecord)})
        return record

    def heartbeat(self, campaign_id: int, host: str, pid: int) -> bool:
        """Refresh the driver's heartbeat; False if (host, pid) no longer holds the campaign."""
        with self._write() as c:
            done = c.execute(sql.HEARTBEAT, {"b_cid": campaign_id, "b_pid": pid, "b_host": host, "b_now": utcnow()})
        return done.rowcount == 1

    def release_driver(self, campaign_id: int, host: str, pid: int) -> None:
        with self._write() as c:
            c.execute(sql.DELETE_DRIVER, {"cid": campaign_id, "pid": pid, "host": host})

    def set_campaign_config(self, name: str, config: Mapping[str, Any] | Any) -> None:
        """Replace a campaign's stored config (``search resume`` overrides: workers, cluster,
        a longer campaign; never the recipe)."""
        with self._write() as c:
            done = c.execute(
                sql.SET_CAMPAIGN_CONFIG,
                {
                    "b_name": name,
                    "b_config": json.dumps(sql.as_dict(config), sort_keys=True, default=str),
                    "b_now": utcnow(),
                },
            )
            if done.rowcount == 0:
                raise NotFound(f"no campaign named {name!r}")

    def set_campaign_status(self, name: str, status: str) -> None:
        if status not in CAMPAIGN_STATUSES:
            raise ValueError(f"a campaign's status is one of {CAMPAIGN_STATUSES}, got {status!r}")
        with self._write() as c:
            done = c.execute(sql.SET_CAMPAIGN_STATUS, {"b_name": name, "b_status": status, "b_now": utcnow()})
            if done.rowcount == 0:
                raise NotFound(f"no campaign named {name!r}")

    # ------------------------------------------------------------------ individuals: writes

    def add_individual(
        self,
        campaign_id: int,
        birth: int,
        architecture_json: str | Architecture,
        arch_hash: str,
        root_seed: str,
        recipe: str,
        parent_id: int | None = None,
        mutation: str | None = None,
        fingerprint: str | None = None,
        dispatched: bool = False,
    ) -> IndividualRecord:
        """A pending individual (``fingerprint`` if the gate computed it already; else see
        ``set_fingerprint``), or with ``dispatched`` one already running its first attempt (as
        ``mark_running`` would leave it, in one statement). Idempotent on (campaign, birth):
        adding a birth that exists returns the stored row unchanged (compare its ``arch_hash``
        to detect a replay that diverged)."""
        if birth < 0:
            raise ValueError(f"births are numbered from 0, got {birth}")
        if not isinstance(architecture_json, str):
            architecture_json = architecture_json.to_json(indent=None)
        values: dict[str, Any] = {name: None for name in sql.INDIVIDUAL_FIELDS if name != "id"}
        values.update(
            campaign_id=campaign_id,
            birth=birth,
            parent_id=parent_id,
            root_seed=root_seed,
            mutation=mutation,
            architecture_json=architecture_json,
            arch_hash=arch_hash,
            fingerprint=fingerprint,
            recipe=recipe,
            status="running" if dispatched else "pending",
            attempt=1 if dispatched else 0,
            created_at=utcnow(),
        )
        if dispatched:
            values["started_at"] = values["created_at"]
        key = {"cid": campaign_id, "birth": birth}
        if self._batch_connection() is not None and self._engine.dialect.name != "sqlite":
            # Inside a batch a failed INSERT would abort the whole transaction on PostgreSQL
            # (SQLite rolls back just the statement): look first (the batch holds the write
            # lock, so nothing changes in between).
            with self._write() as c:
                row = c.execute(sql.INDIVIDUAL_BY_BIRTH, key).first()
                if row is not None:
                    return IndividualRecord(*row)
                new_id = _new_id(c.execute(sql.INSERT_INDIVIDUAL, values))
            return IndividualRecord(id=new_id, **values)
        try:  # the unique (campaign_id, birth) constraint makes a repeat fail, atomically
            with self._write() as c:
                new_id = _new_id(c.execute(sql.INSERT_INDIVIDUAL, values))
        except IntegrityError as error:
            with self._read() as c:
                row = c.execute(sql.INDIVIDUAL_BY_BIRTH, key).first()
            if row is not None:  # this birth was added before: a replay after a crash
                existing = IndividualRecord(*row)
                if existing.arch_hash != arch_hash:
                    log.warning(
                        "birth %d of campaign %d was stored with another program (%s, not %s): keeping it",
                        birth,
                        campaign_id,
                        existing.arch_hash,
                        arch_hash,
                    )
                return existing
            if self.get_campaign(campaign_id) is None:
                raise NotFound(f"no campaign with id {campaign_id}") from error
            if parent_id is not None and self.get_individual(parent_id) is None:
                raise NotFound(f"no parent individual with id {parent_id}") from error
            raise
        return IndividualRecord(id=new_id, **values)

    def mark_running(self, individual_id: int) -> int:
        """Dispatch (or re-dispatch) an individual: status running, attempt + 1. Returns the
        new attempt number, which its result must quote."""
        with self._write() as c:
            row = c.execute(sql.STATE, {"id": individual_id}).first()
            if row is None:
                raise NotFound(f"no individual with id {individual_id}")
            if row.status in FINAL_STATUSES:
                raise ValueError(f"individual {individual_id} already finished ({row.status})")
            attempt = row.attempt + 1
            c.execute(sql.MARK_RUNNING, {"b_id": individual_id, "b_attempt": attempt, "b_now": utcnow()})
        return attempt

    def record_result(self, individual_id: int, attempt: int, result: EvalResult | Mapping[str, Any]) -> bool:
        """Record the result of ``attempt`` (an EvalResult, or a mapping of its fields).

        Writes the status, ``message`` as ``error``, every field the table has a column of the
        same name for (``statements.RESULT_COLUMNS``: the metrics, fitness, hurdles_passed,
        fingerprint, duplicate_of), the whole result as ``result_json``, ``finished_at`` and the
        campaign's next ``finish_order``. A missing or non-finite ``fitness`` is NULL, which
        selection reads as the worst.

        Idempotent on (individual, attempt): returns False and changes nothing if the
        individual already finished or ``attempt`` is stale (an earlier dispatch superseded
        by a re-dispatch). ``attempt`` 0 records an individual that was never dispatched (a
        duplicate, or one rejected by the gate). Returns True when it recorded.
        """
        params = sql.result_parameters(sql.as_result(result))
        with self._write() as c:
            row = c.execute(sql.STATE_AND_NEXT_FINISH, {"id": individual_id}).first()
            if row is None:
                raise NotFound(f"no individual with id {individual_id}")
            if attempt > row.attempt:
                raise ValueError(f"individual {individual_id} was dispatched {row.attempt} times, not {attempt}")
            if attempt < row.attempt:
                log.info("ignoring the result of stale attempt %d of individual %d", attempt, individual_id)
                return False
            if row.status in FINAL_STATUSES:
                return False
            # Atomic: a SQLite write transaction holds the write lock from BEGIN IMMEDIATE;
            # the unique (campaign_id, finish_order) constraint guards other databases.
            c.execute(
                sql.RECORD_RESULT,
                {**params, "b_id": individual_id, "b_finish_order": row.next_finish, "b_now": utcnow()},
            )
        return True

    def set_fingerprint(self, individual_id: int, fingerprint: str | None) -> None:
        with self._write() as c:
            if c.execute(sql.SET_FINGERPRINT, {"b_id": individual_id, "b_fp": fingerprint}).rowcount == 0:
                raise NotFound(f"no individual with id {individual_id}")

    def record_hurdle(
        self,
        individual_id: int,
        hurdle: int,
        fraction: float,
        loss: float | None,
        threshold: float | None,
        passed: bool,
    ) -> HurdleRecord:
        """The loss reached at hurdle ``hurdle`` (a non-finite loss is stored as NULL) and the
        verdict. Idempotent on (individual, hurdle): a second record (a re-dispatched
        attempt) overwrites the first and keeps its place in record order."""
        values: dict[str, Any] = {
            "fraction": float(fraction),
            "loss": sql.finite(loss),
            "threshold": sql.finite(threshold),
            "passed": bool(passed),
        }
        now = utcnow()
        with self._write() as c:
            campaign_id = c.execute(sql.CAMPAIGN_OF, {"id": individual_id}).scalar()
            if campaign_id is None:
                raise NotFound(f"no individual with id {individual_id}")
            row_id = c.execute(sql.HURDLE_ID, {"iid": individual_id, "hurdle": hurdle}).scalar()
            if row_id is None:
                row_id = _new_id(
                    c.execute(
                        sql.INSERT_HURDLE,
                        dict(
                            individual_id=individual_id,
                            campaign_id=campaign_id,
                            hurdle=hurdle,
                            created_at=now,
                            **values,
                        ),
                    )
                )
            else:
                c.execute(sql.UPDATE_HURDLE, {"b_id": row_id, "b_now": now, **{f"b_{k}": v for k, v in values.items()}})
        return HurdleRecord(
            id=row_id, individual_id=individual_id, campaign_id=campaign_id, hurdle=hurdle, created_at=now, **values
        )

    # ------------------------------------------------------------------ individuals: queries

    def _individuals(self, statement: Any, params: dict[str, Any]) -> list[IndividualRecord]:
        with self._read() as c:
            return [IndividualRecord(*row) for row in c.execute(statement, params)]

    def _individual(self, statement: Any, params: dict[str, Any]) -> IndividualRecord | None:
        with self._read() as c:
            row = c.execute(statement, params).first()
        return IndividualRecord(*row) if row else None

    def get_individual(self, individual_id: int) -> IndividualRecord | None:
        return self._individual(sql.INDIVIDUAL_BY_ID, {"id": individual_id})

    def result(self, individual_id: int) -> dict[str, Any] | None:
        """The full result record as recorded (None before it finished)."""
        with self._read() as c:
            text = c.execute(sql.RESULT_JSON, {"id": individual_id}).scalar()
        return decode(text, f"individual {individual_id}'s result") if text else None

    def population(self, campaign_id: int, size: int) -> list[IndividualRecord]:
        """Aging evolution's population: the ``size`` most recently *finished* individuals
        (highest finish_order, whatever their fitness or status), oldest first."""
        return self._window(sql.POPULATION, campaign_id, size)

    def parents(self, campaign_id: int, size: int) -> list[IndividualRecord]:
        """The window parents are drawn from: as ``population``, without the children rejected
        for their cost (recorded, never trained), oldest first."""
        return self._window(sql.PARENTS, campaign_id, size)

    def _window(self, statement: Any, campaign_id: int, size: int) -> list[IndividualRecord]:
        """The ``size`` most recently finished rows ``statement`` selects, oldest first."""
        return self._individuals(statement, {"cid": campaign_id, "size": size})[::-1] if size > 0 else []

    def finished_individuals(self, campaign_id: int) -> list[IndividualRecord]:
        """Every finished individual of the campaign, in the order they finished (reports, plots)."""
        return self.population(campaign_id, self.count(campaign_id))

    def hurdle_losses(self, campaign_id: int, hurdle: int) -> list[float]:
        """Losses recorded at hurdle ``hurdle`` in the campaign, in record order; a missing
        (non-finite) loss reads as +inf. The driver reads them once, on start or resume."""
        with self._read() as c:
            rows = c.execute(sql.HURDLE_LOSSES, {"cid": campaign_id, "hurdle": hurdle}).scalars()
            return [math.inf if v is None else v for v in rows]

    def find_by_fingerprint(self, campaign_id: int | None, fingerprint: str, recipe: str) -> IndividualRecord | None:
        """The first-finished individual with this functional fingerprint under this
        evaluation recipe whose fitness may be reused: finished, and not itself a duplicate.
        ``campaign_id`` None searches every campaign."""
        statement = sql.BY_FINGERPRINT[campaign_id is None]
        return self._individual(statement, {"key": fingerprint, "recipe": recipe, "cid": campaign_id})

    def find_by_hash(self, campaign_id: int | None, arch_hash: str, recipe: str) -> IndividualRecord | None:
        """As ``find_by_fingerprint``, by canonical program hash."""
        return self._individual(
            sql.BY_HASH[campaign_id is None], {"key": arch_hash, "recipe": recipe, "cid": campaign_id}
        )

    def unfinished(self, campaign_id: int) -> list[IndividualRecord]:
        """Pending or running individuals (in flight when the driver stopped), by birth."""
        return sorted(self._individuals(sql.UNFINISHED, {"cid": campaign_id}), key=lambda r: r.birth)

    def count(self, campaign_id: int, statuses: str | Iterable[str] | None = None) -> int:
        params: dict[str, Any]
        if statuses is None:
            statement, params = sql.COUNT, {"cid": campaign_id}
        else:
            wanted = [statuses] if isinstance(statuses, str) else list(statuses)
            statement, params = sql.COUNT_STATUSES, {"cid": campaign_id, "statuses": wanted}
        with self._read() as c:
            return c.execute(statement, params).scalar_one()

    def next_birth(self, campaign_id: int) -> int:
        with self._read() as c:
            return c.execute(sql.NEXT_BIRTH, {"cid": campaign_id}).scalar_one()

    def top(self, campaign_id: int, k: int) -> list[IndividualRecord]:
        """The k best (lowest fitness) individuals with a fitness, ties by birth; duplicates
        (which reuse another individual's fitness) are left out."""
        if k <= 0:
            return []
        return self._individuals(sql.TOP, {"cid": campaign_id, "k": k})

    def lineage(self, individual_id: int) -> list[IndividualRecord]:
        """The individual, its parent, ... back to its root seed (one recursive query)."""
        return self._individuals(sql.LINEAGE, {"id": individual_id})

    def hurdles(self, individual_id: int) -> list[HurdleRecord]:
        with self._read() as c:
            return [HurdleRecord(*row) for row in c.execute(sql.HURDLES, {"iid": individual_id})]

    def roots(self, campaign_id: int) -> list[IndividualRecord]:
        """The individuals without a parent: the seed programs as the campaign recorded them."""
        return self._individuals(sql.ROOTS, {"cid": campaign_id})

    # ------------------------------------------------------------------ screen scores

    def record_screen(self, individual_id: int, scores: Iterable[Mapping[str, Any]]) -> None:
        """Store an individual's screen scores (dicts with task, accuracy, chance, seconds,
        flops). Idempotent: a task already recorded for the individual is kept as it is."""
        scores = list(scores)
        if not scores:
            return
        with self._write() as c:
            campaign_id = c.execute(sql.CAMPAIGN_OF, {"id": individual_id}).scalar()
            if campaign_id is None:
                raise NotFound(f"no individual with id {individual_id}")
            known = set(c.execute(sql.SCREEN_TASKS, {"iid": individual_id}).scalars())  # the write lock is held
            rows = [
                dict(
                    individual_id=individual_id,
                    campaign_id=campaign_id,
                    task=str(score["task"]),
                    accuracy=float(score["accuracy"]),
                    chance=float(score["chance"]),
                    seconds=float(score["seconds"]),
                    flops=float(score["flops"]),
                    created_at=utcnow(),
                )
                for score in scores
                if score["task"] not in known
            ]
            if rows:
                c.execute(sql.INSERT_SCREEN, rows)

    def screen_of(self, individual_id: int) -> list[ScreenRecord]:
        """The individual's screen scores, in the screen's order."""
        with self._read() as c:
            return [ScreenRecord(*row) for row in c.execute(sql.SCREEN_OF, {"iid": individual_id})]

    def screens(self, campaign_id: int) -> dict[int, list[ScreenRecord]]:
        """Every screened individual's scores, by individual id."""
        out: dict[int, list[ScreenRecord]] = {}
        with self._read() as c:
            for row in c.execute(sql.SCREENS, {"cid": campaign_id}):
                out.setdefault(row.individual_id, []).append(ScreenRecord(*row))
        return out

    def compute(self, campaign_id: int) -> tuple[float, float]:
        """(language-model training FLOPs, screen training FLOPs) the campaign has spent."""
        with self._read() as c:
            return (
                float(c.execute(sql.TRAINING_FLOPS, {"cid": campaign_id}).scalar_one()),
                float(c.execute(sql.SCREEN_FLOPS, {"cid": campaign_id}).scalar_one()),
            )

    # ------------------------------------------------------------------ confirmation runs

    def record_confirmation(
        self, individual_id: int, training_seed: int, budget: str, result: EvalResult | Mapping[str, Any]
    ) -> ConfirmationRecord | None:
        """Store one confirmation run and return it; None (nothing written) if it is recorded."""
        result = sql.as_result(result)
        with self._write() as c:
            campaign_id = c.execute(sql.CAMPAIGN_OF, {"id": individual_id}).scalar()
            if campaign_id is None:
                raise NotFound(f"no individual with id {individual_id}")
            values: dict[str, Any] = dict(
                campaign_id=campaign_id,
                individual_id=individual_id,
                training_seed=training_seed,
                budget=budget,
                status=result.status,
                **sql.column_values(result, sql.CONFIRMATION_COLUMNS),
                error=result.message or None,
                result_json=result.model_dump_json(),
                created_at=utcnow(),
            )
            key = {"iid": individual_id, "seed": training_seed, "budget": budget}
            if c.execute(sql.CONFIRMATION_EXISTS, key).first() is not None:  # the write lock is held
                return None
            new_id = _new_id(c.execute(sql.INSERT_CONFIRMATION, values))
        return ConfirmationRecord(id=new_id, **values)

    def confirmations(self, campaign_id: int) -> list[ConfirmationRecord]:
        """Every confirmation run of the campaign, by individual, budget and training seed."""
        with self._read() as c:
            return [ConfirmationRecord(*row) for row in c.execute(sql.CONFIRMATIONS, {"cid": campaign_id})]

    def status_counts(self, campaign_id: int) -> dict[str, int]:
        """How many individuals have each status, in lifecycle order (absent statuses left out)."""
        with self._read() as c:
            counts = {status: n for status, n in c.execute(sql.STATUS_COUNTS, {"cid": campaign_id})}
        order = {status: i for i, status in enumerate(INDIVIDUAL_STATUSES)}
        return dict(sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))

    def hurdle_pass_counts(self, campaign_id: int) -> list[tuple[int, int, int]]:
        """(hurdle, reached, passed) for each hurdle index recorded in the campaign."""
        with self._read() as c:
            return [(int(h), int(n), int(p)) for h, n, p in c.execute(sql.PASS_COUNTS, {"cid": campaign_id})]
