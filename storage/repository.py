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
  of individuals. The ORM classes in ``schema`` define the tables; the statements here are
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
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    bindparam,
    case,
    create_engine,
    event,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from .schema import (
    CAMPAIGN_STATUSES,
    FINAL_STATUSES,
    INDIVIDUAL_STATUSES,
    OPEN_STATUSES,
    Base,
    Campaign,
    CampaignDriver,
    ConfirmationRun,
    HurdleEvaluation,
    Individual,
    ScreenScore,
    utcnow,
)

if TYPE_CHECKING:  # storage knows only primitives, and only to (de)serialise programs
    from primitives.program import Architecture

log = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///archevo.db"
ENV_URL = "ARCHEVO_DB"
BUSY_TIMEOUT_MS = 30_000


class NotFound(LookupError):
    """A campaign or individual that the call names does not exist."""


class CorruptRecord(ValueError):
    """A stored JSON field that does not decode: the database was damaged or edited by hand."""


def _decode(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError) as error:
        raise CorruptRecord(f"{what} in the database is not valid JSON ({type(error).__name__}): the database "
                            "was damaged or edited") from None


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    id: int
    name: str
    seed: int
    config_json: str
    status: str
    created_at: datetime
    updated_at: datetime

    @property
    def config(self) -> dict[str, Any]:
        return _decode(self.config_json, f"campaign {self.name}'s config")


@dataclass(frozen=True, slots=True)
class IndividualRecord:
    """One row of ``individuals``, without the (large) ``result_json``: see ``Repository.result``."""

    id: int
    campaign_id: int
    birth: int
    parent_id: int | None
    root_seed: str
    mutation: str | None
    architecture_json: str
    arch_hash: str
    fingerprint: str | None
    recipe: str
    status: str
    attempt: int
    finish_order: int | None
    fitness: float | None
    val_loss: float | None
    perplexity: float | None
    bits_per_byte: float | None
    parameters: int | None
    flops_per_token: float | None
    steps: int | None
    tokens: int | None
    seconds: float | None
    flops: float | None
    hurdles_passed: int | None
    duplicate_of: int | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES

    def architecture(self) -> Architecture:
        """The program, parsed (and validated by pydantic) from ``architecture_json``."""
        from primitives.program import Architecture

        try:
            return Architecture.model_validate_json(self.architecture_json)
        except ValueError as error:  # pydantic's ValidationError is one
            reason = error.errors()[0]["msg"] if hasattr(error, "errors") else str(error)
            raise CorruptRecord(f"individual {self.id}'s stored program does not parse ({reason}): the database "
                                "was damaged or edited") from None


@dataclass(frozen=True, slots=True)
class HurdleRecord:
    id: int
    individual_id: int
    campaign_id: int
    hurdle: int
    fraction: float
    loss: float | None
    threshold: float | None
    passed: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DriverRecord:
    campaign_id: int
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime


@dataclass(frozen=True, slots=True)
class ScreenRecord:
    individual_id: int
    task: str
    accuracy: float
    chance: float
    seconds: float
    flops: float


class CampaignBusy(RuntimeError):
    """Another driver holds the campaign; the message says which and what to do."""


@dataclass(frozen=True, slots=True)
class ConfirmationRecord:
    """One confirmation run; ``result`` is the full training record (its ``loss_curve`` too)."""

    id: int
    campaign_id: int
    individual_id: int
    training_seed: int
    budget: str
    status: str
    val_loss: float | None
    flops_per_token: float | None
    parameters: int | None
    tokens: int | None
    seconds: float | None
    error: str | None
    result_json: str
    created_at: datetime

    @property
    def result(self) -> dict[str, Any]:
        return _decode(self.result_json, f"confirmation run {self.id}'s result")


# --------------------------------------------------------------------------- statements
# Built once; every value is a bound parameter, so SQLAlchemy compiles each statement once.

_C = Campaign.__table__.c
_I = Individual.__table__.c
_H = HurdleEvaluation.__table__.c
_INDIVIDUAL_FIELDS = tuple(f.name for f in fields(IndividualRecord))
_CAMPAIGN_SELECT = select(*(_C[f.name] for f in fields(CampaignRecord)))
_INDIVIDUAL_SELECT = select(*(_I[name] for name in _INDIVIDUAL_FIELDS))
_HURDLE_SELECT = select(*(_H[f.name] for f in fields(HurdleRecord)))

_CAMPAIGN_BY_NAME = _CAMPAIGN_SELECT.where(_C.name == bindparam("name"))
_CAMPAIGN_BY_ID = _CAMPAIGN_SELECT.where(_C.id == bindparam("id"))
_CAMPAIGNS = _CAMPAIGN_SELECT.order_by(_C.id)
_CAMPAIGN_ID_BY_NAME = select(_C.id).where(_C.name == bindparam("name"))
_INSERT_CAMPAIGN = insert(Campaign.__table__)
_SET_CAMPAIGN_STATUS = (
    update(Campaign.__table__)
    .where(_C.name == bindparam("b_name"))
    .values(status=bindparam("b_status"), updated_at=bindparam("b_now"))
)

_SET_CAMPAIGN_CONFIG = (
    update(Campaign.__table__)
    .where(_C.name == bindparam("b_name"))
    .values(config_json=bindparam("b_config"), updated_at=bindparam("b_now"))
)

_INDIVIDUAL_BY_ID = _INDIVIDUAL_SELECT.where(_I.id == bindparam("id"))
_INDIVIDUAL_BY_BIRTH = _INDIVIDUAL_SELECT.where(_I.campaign_id == bindparam("cid"), _I.birth == bindparam("birth"))
_INSERT_INDIVIDUAL = insert(Individual.__table__)
_STATE = select(_I.status, _I.attempt).where(_I.id == bindparam("id"))
_MARK_RUNNING = (
    update(Individual.__table__)
    .where(_I.id == bindparam("b_id"))
    .values(status="running", attempt=bindparam("b_attempt"), started_at=bindparam("b_now"))
)
_LATEST = Individual.__table__.alias("latest")
_NEXT_FINISH = (
    select(func.coalesce(func.max(_LATEST.c.finish_order), -1) + 1)
    .where(_LATEST.c.campaign_id == _I.campaign_id)
    .scalar_subquery()
)
# The individual's state and the campaign's next finish_order, in one statement.
_STATE_AND_NEXT_FINISH = select(_I.status, _I.attempt, _NEXT_FINISH.label("next_finish")).where(
    _I.id == bindparam("id")
)
_FLOAT_KEYS = ("fitness", "val_loss", "perplexity", "bits_per_byte", "flops_per_token", "seconds", "flops")
_INT_KEYS = ("parameters", "steps", "tokens", "hurdles_passed")
_RECORD_RESULT = (
    update(Individual.__table__)
    .where(_I.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        error=bindparam("b_error"),
        result_json=bindparam("b_result_json"),
        finish_order=bindparam("b_finish_order"),
        finished_at=bindparam("b_now"),
        # set earlier by the driver (set_fingerprint); kept unless the result names them
        fingerprint=func.coalesce(bindparam("b_fingerprint", type_=_I.fingerprint.type), _I.fingerprint),
        duplicate_of=func.coalesce(bindparam("b_duplicate_of", type_=_I.duplicate_of.type), _I.duplicate_of),
        **{key: bindparam(f"b_{key}") for key in _FLOAT_KEYS + _INT_KEYS},
    )
)
_SET_FINGERPRINT = update(Individual.__table__).where(_I.id == bindparam("b_id")).values(fingerprint=bindparam("b_fp"))
_RESULT_JSON = select(_I.result_json).where(_I.id == bindparam("id"))

_CAMPAIGN_OF = select(_I.campaign_id).where(_I.id == bindparam("id"))
_HURDLE_ID = select(_H.id).where(_H.individual_id == bindparam("iid"), _H.hurdle == bindparam("hurdle"))
_INSERT_HURDLE = insert(HurdleEvaluation.__table__)
_UPDATE_HURDLE = (
    update(HurdleEvaluation.__table__)
    .where(_H.id == bindparam("b_id"))
    .values(
        fraction=bindparam("b_fraction"),
        loss=bindparam("b_loss"),
        threshold=bindparam("b_threshold"),
        passed=bindparam("b_passed"),
        created_at=bindparam("b_now"),
    )
)
_HURDLES = _HURDLE_SELECT.where(_H.individual_id == bindparam("iid")).order_by(_H.hurdle)
_HURDLE_LOSSES = (
    select(_H.loss).where(_H.campaign_id == bindparam("cid"), _H.hurdle == bindparam("hurdle")).order_by(_H.id)
)
_PASS_COUNTS = (
    select(_H.hurdle, func.count(), func.coalesce(func.sum(case((_H.passed, 1), else_=0)), 0))
    .where(_H.campaign_id == bindparam("cid"))
    .group_by(_H.hurdle)
    .order_by(_H.hurdle)
)

_POPULATION = (
    _INDIVIDUAL_SELECT.where(_I.campaign_id == bindparam("cid"), _I.finish_order.is_not(None))
    .order_by(_I.finish_order.desc())
    .limit(bindparam("size", type_=Integer))
)


#: Results that say nothing about the program's function: a reused fitness, a cost rejection,
#: a worker's fault (crash, timeout, out of memory). An equal program is evaluated again.
#: (A ``screened_out`` result is evidence: the screen is deterministic, so a twin reuses it.)
NOT_EVIDENCE = ("duplicate", "rejected", "error", "timeout")


def _evaluated_by(column: Any, *, any_campaign: bool) -> Any:
    # Finished (it has a finish_order) with a result that is evidence about its function.
    where = [
        column == bindparam("key"),
        _I.recipe == bindparam("recipe"),
        _I.finish_order.is_not(None),
        _I.status.not_in(NOT_EVIDENCE),
    ]
    if not any_campaign:
        where.append(_I.campaign_id == bindparam("cid"))
    # The (key, recipe, campaign_id, finish_order) index serves both the filter and the order.
    return _INDIVIDUAL_SELECT.where(*where).order_by(_I.finish_order, _I.id).limit(1)


_BY_HASH = {flag: _evaluated_by(_I.arch_hash, any_campaign=flag) for flag in (False, True)}
_BY_FINGERPRINT = {flag: _evaluated_by(_I.fingerprint, any_campaign=flag) for flag in (False, True)}
# No ORDER BY (sorted in Python) so SQLite searches the (campaign_id, status) index.
_UNFINISHED = _INDIVIDUAL_SELECT.where(_I.campaign_id == bindparam("cid"), _I.status.in_(OPEN_STATUSES))
_COUNT = select(func.count()).select_from(Individual.__table__).where(_I.campaign_id == bindparam("cid"))
_COUNT_STATUSES = _COUNT.where(_I.status.in_(bindparam("statuses", expanding=True)))
_NEXT_BIRTH = select(func.coalesce(func.max(_I.birth), -1) + 1).where(_I.campaign_id == bindparam("cid"))
_TOP = (
    _INDIVIDUAL_SELECT.where(_I.campaign_id == bindparam("cid"), _I.fitness.is_not(None), _I.status != "duplicate")
    .order_by(_I.fitness, _I.birth)
    .limit(bindparam("k", type_=Integer))
)
_STATUS_COUNTS = select(_I.status, func.count()).where(_I.campaign_id == bindparam("cid")).group_by(_I.status)


def _lineage_statement() -> Any:
    chain = select(_I.id, _I.parent_id, literal(0).label("depth")).where(_I.id == bindparam("id"))
    chain = chain.cte("chain", recursive=True)
    chain = chain.union_all(
        select(_I.id, _I.parent_id, chain.c.depth + 1)
        .join(chain, _I.id == chain.c.parent_id)
        .where(chain.c.depth < 10_000_000)  # a guard: parents are added before their children
    )
    return _INDIVIDUAL_SELECT.join(chain, _I.id == chain.c.id).order_by(chain.c.depth)


_LINEAGE = _lineage_statement()

_D = CampaignDriver.__table__.c
_DRIVER = select(*(_D[f.name] for f in fields(DriverRecord))).where(_D.campaign_id == bindparam("cid"))
_DELETE_DRIVER = CampaignDriver.__table__.delete().where(_D.campaign_id == bindparam("cid"),
                                                         _D.pid == bindparam("pid"), _D.host == bindparam("host"))
_INSERT_DRIVER = insert(CampaignDriver.__table__)
_HEARTBEAT = (
    update(CampaignDriver.__table__)
    .where(_D.campaign_id == bindparam("b_cid"), _D.pid == bindparam("b_pid"), _D.host == bindparam("b_host"))
    .values(heartbeat_at=bindparam("b_now"))
)

_R = ConfirmationRun.__table__.c
_CONFIRMATIONS = (
    select(*(_R[f.name] for f in fields(ConfirmationRecord)))
    .where(_R.campaign_id == bindparam("cid"))
    .order_by(_R.individual_id, _R.budget, _R.training_seed)
)
_INSERT_CONFIRMATION = insert(ConfirmationRun.__table__)
_CONFIRMATION_EXISTS = select(_R.id).where(_R.individual_id == bindparam("iid"),
                                           _R.training_seed == bindparam("seed"), _R.budget == bindparam("budget"))
_S = ScreenScore.__table__.c
_SCREEN_SELECT = select(*(_S[f.name] for f in fields(ScreenRecord)))
_SCREEN_OF = _SCREEN_SELECT.where(_S.individual_id == bindparam("iid")).order_by(_S.id)
_SCREENS = _SCREEN_SELECT.where(_S.campaign_id == bindparam("cid")).order_by(_S.individual_id, _S.id)
_SCREEN_TASKS = select(_S.task).where(_S.individual_id == bindparam("iid"))
_SCREEN_FLOPS = select(func.coalesce(func.sum(_S.flops), 0.0)).where(_S.campaign_id == bindparam("cid"))
_TRAINING_FLOPS = select(func.coalesce(func.sum(_I.flops), 0.0)).where(_I.campaign_id == bindparam("cid"))
_INSERT_SCREEN = insert(ScreenScore.__table__)
_ROOTS = _INDIVIDUAL_SELECT.where(_I.campaign_id == bindparam("cid"), _I.parent_id.is_(None)).order_by(_I.birth)


# --------------------------------------------------------------------------- result parsing


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _json_safe(value: Any) -> Any:
    """Non-finite floats become null so the stored JSON is standard JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False, default=str)
    except ValueError:  # NaN or infinity somewhere (a diverged run's loss curve)
        return json.dumps(_json_safe(value), allow_nan=False, default=str)


def _as_dict(value: Any) -> dict[str, Any]:
    if hasattr(value, "model_dump"):  # a pydantic model, e.g. evaluator.train.TrainResult
        return value.model_dump(mode="json")
    return dict(value)


def _result_parameters(result: Mapping[str, Any]) -> dict[str, Any]:
    """Bound parameters of ``_RECORD_RESULT``: absent metrics stay NULL, non-finite ones become NULL."""
    status = result.get("status")
    if status not in FINAL_STATUSES:
        raise ValueError(f"a result's status must be one of {FINAL_STATUSES}, got {status!r}")
    params: dict[str, Any] = {
        "b_status": status,
        "b_error": result.get("message") or result.get("error") or None,
        "b_result_json": _dumps(result),
        "b_fingerprint": result.get("fingerprint"),
        "b_duplicate_of": result.get("duplicate_of"),
    }
    for key in _FLOAT_KEYS:
        params[f"b_{key}"] = _finite(result.get(key))
    for key in _INT_KEYS:
        value = result.get(key)
        params[f"b_{key}"] = None if value is None else int(value)
    return params


# --------------------------------------------------------------------------- engine


def _sqlite_listeners(engine: Engine, *, memory: bool, readonly: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # We emit BEGIN ourselves (below): pysqlite's implicit transactions would start
        # writes lazily as DEFERRED transactions and skip the busy handler on upgrade.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if not memory and not readonly:
            cursor.execute("PRAGMA journal_mode=WAL")  # persistent in the file
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        if readonly:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        # Writes take the write lock up front (waiting up to busy_timeout for it). Reads are
        # single statements, each its own consistent snapshot in autocommit mode: no BEGIN.
        # (The DBAPI connection directly: a BEGIN through SQLAlchemy costs a whole execute.)
        if connection.get_execution_options().get("archevo_write"):
            connection.connection.driver_connection.execute("BEGIN IMMEDIATE")


def _make_engine(url: str, readonly: bool) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    database = parsed.database or ""
    memory = database in ("", ":memory:") or parsed.query.get("mode") == "memory"
    if memory:
        engine = create_engine(parsed, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        if not parsed.query.get("uri"):
            path = Path(database)
            if readonly and not path.exists():
                raise FileNotFoundError(f"no archevo database at {path.resolve()}")
            if not readonly:
                path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    _sqlite_listeners(engine, memory=memory, readonly=readonly)
    return engine


def _dispose_after_fork(engine_ref: weakref.ref) -> None:
    engine = engine_ref()
    if engine is not None:  # a forked child must not reuse the parent's connections
        engine.dispose(close=False)


# --------------------------------------------------------------------------- repository


class Repository:
    """All reads and writes of the archevo database.

    ``url`` is any SQLAlchemy URL (a bare path means a SQLite file); by default the
    ``ARCHEVO_DB`` environment variable, else ``sqlite:///archevo.db`` in the working
    directory. Tables are created if missing. ``readonly=True`` (for inspection commands)
    refuses every write, creates nothing and fails if a SQLite file does not exist.
    """

    def __init__(self, url: str | None = None, *, readonly: bool = False) -> None:
        url = url or os.environ.get(ENV_URL) or DEFAULT_URL
        if "://" not in url:
            url = f"sqlite:///{url}"
        self.url = url
        self.readonly = readonly
        self._engine = _make_engine(url, readonly)
        self._memory = isinstance(self._engine.pool, StaticPool)
        self._local = threading.local()  # the connection of this thread's open batch()
        self._write_engine = self._engine.execution_options(archevo_write=True)
        if hasattr(os, "register_at_fork"):
            engine_ref = weakref.ref(self._engine)
            os.register_at_fork(after_in_child=lambda: _dispose_after_fork(engine_ref))
        if not readonly:
            Base.metadata.create_all(self._write_engine)

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
        values = {
            "name": name,
            "seed": int(seed),
            "config_json": json.dumps(_as_dict(config), sort_keys=True, default=str),
            "status": "running",
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self._write() as c:
                if c.execute(_CAMPAIGN_ID_BY_NAME, {"name": name}).first() is not None:
                    raise ValueError(f"a campaign named {name!r} already exists (resume it, or choose another name)")
                new_id = c.execute(_INSERT_CAMPAIGN, values).inserted_primary_key[0]
        except IntegrityError as error:  # lost a race with another writer (PostgreSQL)
            raise ValueError(f"a campaign named {name!r} already exists") from error
        return CampaignRecord(id=new_id, **values)

    def get_campaign(self, name: str | int) -> CampaignRecord | None:
        """By name, or by id when given an int."""
        if isinstance(name, int):
            statement, params = _CAMPAIGN_BY_ID, {"id": name}
        else:
            statement, params = _CAMPAIGN_BY_NAME, {"name": name}
        with self._read() as c:
            row = c.execute(statement, params).first()
        return CampaignRecord(*row) if row else None

    def list_campaigns(self) -> list[CampaignRecord]:
        with self._read() as c:
            return [CampaignRecord(*row) for row in c.execute(_CAMPAIGNS)]

    # ------------------------------------------------------------------ drivers

    def driver(self, campaign_id: int) -> DriverRecord | None:
        """The process that holds the campaign, if any (it may have died: see its heartbeat)."""
        with self._read() as c:
            row = c.execute(_DRIVER, {"cid": campaign_id}).first()
        return DriverRecord(*row) if row else None

    def claim_driver(self, campaign_id: int, host: str, pid: int,
                     refusal: Callable[[DriverRecord], str | None]) -> DriverRecord:
        """Make (host, pid) the campaign's driver, in one transaction: if another holds it,
        ``refusal(holder)`` decides (the search's liveness policy): a message raises
        CampaignBusy, None takes the campaign over."""
        now = utcnow()
        with self._write() as c:
            row = c.execute(_DRIVER, {"cid": campaign_id}).first()
            if row is not None:
                holder = DriverRecord(*row)
                if (holder.host, holder.pid) != (host, pid) and (reason := refusal(holder)):
                    raise CampaignBusy(reason)
                c.execute(CampaignDriver.__table__.delete().where(_D.campaign_id == campaign_id))
            record = DriverRecord(campaign_id, host, pid, now, now)
            c.execute(_INSERT_DRIVER, {f.name: getattr(record, f.name) for f in fields(DriverRecord)})
        return record

    def heartbeat(self, campaign_id: int, host: str, pid: int) -> bool:
        """Refresh the driver's heartbeat; False if (host, pid) no longer holds the campaign."""
        with self._write() as c:
            done = c.execute(_HEARTBEAT, {"b_cid": campaign_id, "b_pid": pid, "b_host": host, "b_now": utcnow()})
        return done.rowcount == 1

    def release_driver(self, campaign_id: int, host: str, pid: int) -> None:
        with self._write() as c:
            c.execute(_DELETE_DRIVER, {"cid": campaign_id, "pid": pid, "host": host})

    def set_campaign_config(self, name: str, config: Mapping[str, Any] | Any) -> None:
        """Replace a campaign's stored config (``search resume`` overrides: workers, cluster,
        a longer campaign; never the recipe)."""
        with self._write() as c:
            done = c.execute(_SET_CAMPAIGN_CONFIG, {"b_name": name, "b_config": json.dumps(_as_dict(config), sort_keys=True, default=str),
                                                    "b_now": utcnow()})
            if done.rowcount == 0:
                raise NotFound(f"no campaign named {name!r}")

    def set_campaign_status(self, name: str, status: str) -> None:
        if status not in CAMPAIGN_STATUSES:
            raise ValueError(f"a campaign's status is one of {CAMPAIGN_STATUSES}, got {status!r}")
        with self._write() as c:
            done = c.execute(_SET_CAMPAIGN_STATUS, {"b_name": name, "b_status": status, "b_now": utcnow()})
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
        values = {name: None for name in _INDIVIDUAL_FIELDS if name != "id"}
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
                row = c.execute(_INDIVIDUAL_BY_BIRTH, key).first()
                if row is not None:
                    return IndividualRecord(*row)
                new_id = c.execute(_INSERT_INDIVIDUAL, values).inserted_primary_key[0]
            return IndividualRecord(id=new_id, **values)
        try:  # the unique (campaign_id, birth) constraint makes a repeat fail, atomically
            with self._write() as c:
                new_id = c.execute(_INSERT_INDIVIDUAL, values).inserted_primary_key[0]
        except IntegrityError as error:
            with self._read() as c:
                row = c.execute(_INDIVIDUAL_BY_BIRTH, key).first()
            if row is not None:  # this birth was added before: a replay after a crash
                existing = IndividualRecord(*row)
                if existing.arch_hash != arch_hash:
                    log.warning("birth %d of campaign %d was stored with another program (%s, not %s): keeping it",
                                birth, campaign_id, existing.arch_hash, arch_hash)
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
            row = c.execute(_STATE, {"id": individual_id}).first()
            if row is None:
                raise NotFound(f"no individual with id {individual_id}")
            if row.status in FINAL_STATUSES:
                raise ValueError(f"individual {individual_id} already finished ({row.status})")
            attempt = row.attempt + 1
            c.execute(_MARK_RUNNING, {"b_id": individual_id, "b_attempt": attempt, "b_now": utcnow()})
        return attempt

    def record_result(self, individual_id: int, attempt: int, result: Mapping[str, Any] | Any) -> bool:
        """Record the result of ``attempt`` (a dict, or a pydantic model such as TrainResult).

        Writes the status, ``message`` as ``error``, the metrics among its keys (status,
        message, val_loss, perplexity, bits_per_byte, parameters, flops_per_token, steps,
        tokens, seconds, flops, fitness, hurdles_passed, fingerprint, duplicate_of), the whole
        record as ``result_json``, ``finished_at`` and the campaign's next ``finish_order``.
        A missing or non-finite ``fitness`` is NULL, which selection reads as the worst.

        Idempotent on (individual, attempt): returns False and changes nothing if the
        individual already finished or ``attempt`` is stale (an earlier dispatch superseded
        by a re-dispatch). ``attempt`` 0 records an individual that was never dispatched (a
        duplicate, or one rejected by the gate). Returns True when it recorded.
        """
        params = _result_parameters(_as_dict(result))
        with self._write() as c:
            row = c.execute(_STATE_AND_NEXT_FINISH, {"id": individual_id}).first()
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
                _RECORD_RESULT, {**params, "b_id": individual_id, "b_finish_order": row.next_finish, "b_now": utcnow()}
            )
        return True

    def set_fingerprint(self, individual_id: int, fingerprint: str | None) -> None:
        with self._write() as c:
            if c.execute(_SET_FINGERPRINT, {"b_id": individual_id, "b_fp": fingerprint}).rowcount == 0:
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
        values = {
            "fraction": float(fraction),
            "loss": _finite(loss),
            "threshold": _finite(threshold),
            "passed": bool(passed),
        }
        now = utcnow()
        with self._write() as c:
            campaign_id = c.execute(_CAMPAIGN_OF, {"id": individual_id}).scalar()
            if campaign_id is None:
                raise NotFound(f"no individual with id {individual_id}")
            row_id = c.execute(_HURDLE_ID, {"iid": individual_id, "hurdle": hurdle}).scalar()
            if row_id is None:
                row_id = c.execute(
                    _INSERT_HURDLE,
                    dict(individual_id=individual_id, campaign_id=campaign_id, hurdle=hurdle, created_at=now, **values),
                ).inserted_primary_key[0]
            else:
                c.execute(_UPDATE_HURDLE, {"b_id": row_id, "b_now": now, **{f"b_{k}": v for k, v in values.items()}})
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
        return self._individual(_INDIVIDUAL_BY_ID, {"id": individual_id})

    def result(self, individual_id: int) -> dict[str, Any] | None:
        """The full result record as recorded (None before it finished)."""
        with self._read() as c:
            text = c.execute(_RESULT_JSON, {"id": individual_id}).scalar()
        return _decode(text, f"individual {individual_id}'s result") if text else None

    def population(self, campaign_id: int, size: int) -> list[IndividualRecord]:
        """Aging evolution's population: the ``size`` most recently *finished* individuals
        (highest finish_order, whatever their fitness or status), oldest first."""
        if size <= 0:
            return []
        return self._individuals(_POPULATION, {"cid": campaign_id, "size": size})[::-1]

    def finished_individuals(self, campaign_id: int) -> list[IndividualRecord]:
        """Every finished individual of the campaign, in the order they finished (reports, plots)."""
        return self.population(campaign_id, self.count(campaign_id))

    def hurdle_losses(self, campaign_id: int, hurdle: int) -> list[float]:
        """Losses recorded at hurdle ``hurdle`` in the campaign, in record order; a missing
        (non-finite) loss reads as +inf. The driver reads them once, on start or resume."""
        with self._read() as c:
            rows = c.execute(_HURDLE_LOSSES, {"cid": campaign_id, "hurdle": hurdle}).scalars()
            return [math.inf if v is None else v for v in rows]

    def find_by_fingerprint(self, campaign_id: int | None, fingerprint: str, recipe: str) -> IndividualRecord | None:
        """The first-finished individual with this functional fingerprint under this
        evaluation recipe whose fitness may be reused: finished, and not itself a duplicate.
        ``campaign_id`` None searches every campaign."""
        statement = _BY_FINGERPRINT[campaign_id is None]
        return self._individual(statement, {"key": fingerprint, "recipe": recipe, "cid": campaign_id})

    def find_by_hash(self, campaign_id: int | None, arch_hash: str, recipe: str) -> IndividualRecord | None:
        """As ``find_by_fingerprint``, by canonical program hash."""
        return self._individual(_BY_HASH[campaign_id is None], {"key": arch_hash, "recipe": recipe, "cid": campaign_id})

    def unfinished(self, campaign_id: int) -> list[IndividualRecord]:
        """Pending or running individuals (in flight when the driver stopped), by birth."""
        return sorted(self._individuals(_UNFINISHED, {"cid": campaign_id}), key=lambda r: r.birth)

    def count(self, campaign_id: int, statuses: str | Iterable[str] | None = None) -> int:
        if statuses is None:
            statement, params = _COUNT, {"cid": campaign_id}
        else:
            wanted = [statuses] if isinstance(statuses, str) else list(statuses)
            statement, params = _COUNT_STATUSES, {"cid": campaign_id, "statuses": wanted}
        with self._read() as c:
            return c.execute(statement, params).scalar_one()

    def next_birth(self, campaign_id: int) -> int:
        with self._read() as c:
            return c.execute(_NEXT_BIRTH, {"cid": campaign_id}).scalar_one()

    def top(self, campaign_id: int, k: int) -> list[IndividualRecord]:
        """The k best (lowest fitness) individuals with a fitness, ties by birth; duplicates
        (which reuse another individual's fitness) are left out."""
        if k <= 0:
            return []
        return self._individuals(_TOP, {"cid": campaign_id, "k": k})

    def lineage(self, individual_id: int) -> list[IndividualRecord]:
        """The individual, its parent, ... back to its root seed (one recursive query)."""
        return self._individuals(_LINEAGE, {"id": individual_id})

    def hurdles(self, individual_id: int) -> list[HurdleRecord]:
        with self._read() as c:
            return [HurdleRecord(*row) for row in c.execute(_HURDLES, {"iid": individual_id})]

    def roots(self, campaign_id: int) -> list[IndividualRecord]:
        """The individuals without a parent: the seed programs as the campaign recorded them."""
        return self._individuals(_ROOTS, {"cid": campaign_id})

    # ------------------------------------------------------------------ screen scores

    def record_screen(self, individual_id: int, scores: Iterable[Mapping[str, Any]]) -> None:
        """Store an individual's screen scores (dicts with task, accuracy, chance, seconds,
        flops). Idempotent: a task already recorded for the individual is kept as it is."""
        scores = list(scores)
        if not scores:
            return
        with self._write() as c:
            campaign_id = c.execute(_CAMPAIGN_OF, {"id": individual_id}).scalar()
            if campaign_id is None:
                raise NotFound(f"no individual with id {individual_id}")
            known = set(c.execute(_SCREEN_TASKS, {"iid": individual_id}).scalars())  # the write lock is held
            rows = [dict(individual_id=individual_id, campaign_id=campaign_id, task=str(score["task"]),
                         accuracy=float(score["accuracy"]), chance=float(score["chance"]),
                         seconds=float(score["seconds"]), flops=float(score["flops"]), created_at=utcnow())
                    for score in scores if score["task"] not in known]
            if rows:
                c.execute(_INSERT_SCREEN, rows)

    def screen_of(self, individual_id: int) -> list[ScreenRecord]:
        """The individual's screen scores, in the screen's order."""
        with self._read() as c:
            return [ScreenRecord(*row) for row in c.execute(_SCREEN_OF, {"iid": individual_id})]

    def screens(self, campaign_id: int) -> dict[int, list[ScreenRecord]]:
        """Every screened individual's scores, by individual id."""
        out: dict[int, list[ScreenRecord]] = {}
        with self._read() as c:
            for row in c.execute(_SCREENS, {"cid": campaign_id}):
                out.setdefault(row.individual_id, []).append(ScreenRecord(*row))
        return out

    def compute(self, campaign_id: int) -> tuple[float, float]:
        """(language-model training FLOPs, screen training FLOPs) the campaign has spent."""
        with self._read() as c:
            return (float(c.execute(_TRAINING_FLOPS, {"cid": campaign_id}).scalar()),
                    float(c.execute(_SCREEN_FLOPS, {"cid": campaign_id}).scalar()))

    # ------------------------------------------------------------------ confirmation runs

    def record_confirmation(self, individual_id: int, training_seed: int, budget: str,
                            result: Mapping[str, Any] | Any) -> ConfirmationRecord | None:
        """Store one confirmation run and return it; None (nothing written) if it is recorded."""
        result = _as_dict(result)
        if result.get("status") not in FINAL_STATUSES:
            raise ValueError(f"a result's status must be one of {FINAL_STATUSES}, got {result.get('status')!r}")
        with self._write() as c:
            campaign_id = c.execute(_CAMPAIGN_OF, {"id": individual_id}).scalar()
            if campaign_id is None:
                raise NotFound(f"no individual with id {individual_id}")
            values = dict(campaign_id=campaign_id, individual_id=individual_id, training_seed=training_seed,
                          budget=budget, status=result["status"], val_loss=_finite(result.get("val_loss")),
                          flops_per_token=_finite(result.get("flops_per_token")), parameters=result.get("parameters"),
                          tokens=result.get("tokens"), seconds=_finite(result.get("seconds")),
                          error=result.get("message") or None, result_json=_dumps(result), created_at=utcnow())
            key = {"iid": individual_id, "seed": training_seed, "budget": budget}
            if c.execute(_CONFIRMATION_EXISTS, key).first() is not None:  # the write lock is held
                return None
            new_id = c.execute(_INSERT_CONFIRMATION, values).inserted_primary_key[0]
        return ConfirmationRecord(id=new_id, **values)

    def confirmations(self, campaign_id: int) -> list[ConfirmationRecord]:
        """Every confirmation run of the campaign, by individual, budget and training seed."""
        with self._read() as c:
            return [ConfirmationRecord(*row) for row in c.execute(_CONFIRMATIONS, {"cid": campaign_id})]

    def status_counts(self, campaign_id: int) -> dict[str, int]:
        """How many individuals have each status, in lifecycle order (absent statuses left out)."""
        with self._read() as c:
            counts = {status: n for status, n in c.execute(_STATUS_COUNTS, {"cid": campaign_id})}
        order = {status: i for i, status in enumerate(INDIVIDUAL_STATUSES)}
        return dict(sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))

    def hurdle_pass_counts(self, campaign_id: int) -> list[tuple[int, int, int]]:
        """(hurdle, reached, passed) for each hurdle index recorded in the campaign."""
        with self._read() as c:
            return [(int(h), int(n), int(p)) for h, n, p in c.execute(_PASS_COUNTS, {"cid": campaign_id})]
