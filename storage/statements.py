"""Every SQL statement the repository runs: Core statements over the ``schema`` tables, built once
at import. Every value is a bound parameter, so SQLAlchemy compiles each statement once."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from sqlalchemy import Integer, bindparam, case, func, insert, literal, select, update

from .records import CampaignRecord, ConfirmationRecord, DriverRecord, HurdleRecord, IndividualRecord, ScreenRecord
from .results import EvalResult
from .schema import CAMPAIGNS as CAMPAIGNS_TABLE
from .schema import CONFIRMATIONS as CONFIRMATIONS_TABLE
from .schema import DRIVERS as DRIVERS_TABLE
from .schema import HURDLES as HURDLES_TABLE
from .schema import INDIVIDUALS as INDIVIDUALS_TABLE
from .schema import OPEN_STATUSES
from .schema import SCREENS as SCREENS_TABLE

_C = CAMPAIGNS_TABLE.c
_I = INDIVIDUALS_TABLE.c
_H = HURDLES_TABLE.c
INDIVIDUAL_FIELDS = tuple(f.name for f in fields(IndividualRecord))
_CAMPAIGN_SELECT = select(*(_C[f.name] for f in fields(CampaignRecord)))
_INDIVIDUAL_SELECT = select(*(_I[name] for name in INDIVIDUAL_FIELDS))
_HURDLE_SELECT = select(*(_H[f.name] for f in fields(HurdleRecord)))

CAMPAIGN_BY_NAME = _CAMPAIGN_SELECT.where(_C.name == bindparam("name"))
CAMPAIGN_BY_ID = _CAMPAIGN_SELECT.where(_C.id == bindparam("id"))
CAMPAIGNS = _CAMPAIGN_SELECT.order_by(_C.id)
CAMPAIGN_ID_BY_NAME = select(_C.id).where(_C.name == bindparam("name"))
INSERT_CAMPAIGN = insert(CAMPAIGNS_TABLE)
SET_CAMPAIGN_STATUS = (
    update(CAMPAIGNS_TABLE)
    .where(_C.name == bindparam("b_name"))
    .values(status=bindparam("b_status"), updated_at=bindparam("b_now"))
)

SET_CAMPAIGN_CONFIG = (
    update(CAMPAIGNS_TABLE)
    .where(_C.name == bindparam("b_name"))
    .values(config_json=bindparam("b_config"), updated_at=bindparam("b_now"))
)

INDIVIDUAL_BY_ID = _INDIVIDUAL_SELECT.where(_I.id == bindparam("id"))
INDIVIDUAL_BY_BIRTH = _INDIVIDUAL_SELECT.where(_I.campaign_id == bindparam("cid"), _I.birth == bindparam("birth"))
INSERT_INDIVIDUAL = insert(INDIVIDUALS_TABLE)
STATE = select(_I.status, _I.attempt).where(_I.id == bindparam("id"))
MARK_RUNNING = (
    update(INDIVIDUALS_TABLE)
    .where(_I.id == bindparam("b_id"))
    .values(status="running", attempt=bindparam("b_attempt"), started_at=bindparam("b_now"))
)
_LATEST = INDIVIDUALS_TABLE.alias("latest")
_NEXT_FINISH = (
    select(func.coalesce(func.max(_LATEST.c.finish_order), -1) + 1)
    .where(_LATEST.c.campaign_id == _I.campaign_id)
    .scalar_subquery()
)
# The individual's state and the campaign's next finish_order, in one statement.
STATE_AND_NEXT_FINISH = select(_I.status, _I.attempt, _NEXT_FINISH.label("next_finish")).where(_I.id == bindparam("id"))
#: The result's fields that the individuals table keeps in a column of the same name (status,
#: fingerprint and duplicate_of are bound on their own; ``message`` goes to ``error``).
RESULT_COLUMNS = tuple(
    name for name in EvalResult.model_fields if name in _I and name not in ("status", "fingerprint", "duplicate_of")
)
RECORD_RESULT = (
    update(INDIVIDUALS_TABLE)
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
        **{key: bindparam(f"b_{key}") for key in RESULT_COLUMNS},
    )
)
SET_FINGERPRINT = update(INDIVIDUALS_TABLE).where(_I.id == bindparam("b_id")).values(fingerprint=bindparam("b_fp"))
RESULT_JSON = select(_I.result_json).where(_I.id == bindparam("id"))

CAMPAIGN_OF = select(_I.campaign_id).where(_I.id == bindparam("id"))
HURDLE_ID = select(_H.id).where(_H.individual_id == bindparam("iid"), _H.hurdle == bindparam("hurdle"))
INSERT_HURDLE = insert(HURDLES_TABLE)
UPDATE_HURDLE = (
    update(HURDLES_TABLE)
    .where(_H.id == bindparam("b_id"))
    .values(
        fraction=bindparam("b_fraction"),
        loss=bindparam("b_loss"),
        threshold=bindparam("b_threshold"),
        passed=bindparam("b_passed"),
        created_at=bindparam("b_now"),
    )
)
HURDLES = _HURDLE_SELECT.where(_H.individual_id == bindparam("iid")).order_by(_H.hurdle)
HURDLE_LOSSES = (
    select(_H.loss).where(_H.campaign_id == bindparam("cid"), _H.hurdle == bindparam("hurdle")).order_by(_H.id)
)
PASS_COUNTS = (
    select(_H.hurdle, func.count(), func.coalesce(func.sum(case((_H.passed, 1), else_=0)), 0))
    .where(_H.campaign_id == bindparam("cid"))
    .group_by(_H.hurdle)
    .order_by(_H.hurdle)
)

POPULATION = (
    _INDIVIDUAL_SELECT.where(_I.campaign_id == bindparam("cid"), _I.finish_order.is_not(None))
    .order_by(_I.finish_order.desc())
    .limit(bindparam("size", type_=Integer))
)
#: Aging evolution's window: the same, without the children rejected for their cost (recorded,
#: never trained: they would age evaluated members out and, drawn as parents, breed more of themselves).
PARENTS = POPULATION.where(_I.status != "rejected")


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


BY_HASH = {flag: _evaluated_by(_I.arch_hash, any_campaign=flag) for flag in (False, True)}
BY_FINGERPRINT = {flag: _evaluated_by(_I.fingerprint, any_campaign=flag) for flag in (False, True)}
# No ORDER BY (sorted in Python) so SQLite searches the (campaign_id, status) index.
UNFINISHED = _INDIVIDUAL_SELECT.where(_I.campaign_id == bindparam("cid"), _I.status.in_(OPEN_STATUSES))
COUNT = select(func.count()).select_from(INDIVIDUALS_TABLE).where(_I.campaign_id == bindparam("cid"))
COUNT_STATUSES = COUNT.where(_I.status.in_(bindparam("statuses", expanding=True)))
NEXT_BIRTH = select(func.coalesce(func.max(_I.birth), -1) + 1).where(_I.campaign_id == bindparam("cid"))
TOP = (
    _INDIVIDUAL_SELECT.where(_I.campaign_id == bindparam("cid"), _I.fitness.is_not(None), _I.status != "duplicate")
    .order_by(_I.fitness, _I.birth)
    .limit(bindparam("k", type_=Integer))
)
STATUS_COUNTS = select(_I.status, func.count()).where(_I.campaign_id == bindparam("cid")).group_by(_I.status)


def _lineage_statement() -> Any:
    start = select(_I.id, _I.parent_id, literal(0).label("depth")).where(_I.id == bindparam("id"))
    chain = start.cte("chain", recursive=True)
    chain = chain.union_all(
        select(_I.id, _I.parent_id, chain.c.depth + 1)
        .join(chain, _I.id == chain.c.parent_id)
        .where(chain.c.depth < 10_000_000)  # a guard: parents are added before their children
    )
    return _INDIVIDUAL_SELECT.join(chain, _I.id == chain.c.id).order_by(chain.c.depth)


LINEAGE = _lineage_statement()

_D = DRIVERS_TABLE.c
DRIVER = select(*(_D[f.name] for f in fields(DriverRecord))).where(_D.campaign_id == bindparam("cid"))
DELETE_DRIVER = DRIVERS_TABLE.delete().where(
    _D.campaign_id == bindparam("cid"), _D.pid == bindparam("pid"), _D.host == bindparam("host")
)
DELETE_DRIVERS_OF = DRIVERS_TABLE.delete().where(_D.campaign_id == bindparam("cid"))
INSERT_DRIVER = insert(DRIVERS_TABLE)
HEARTBEAT = (
    update(DRIVERS_TABLE)
    .where(_D.campaign_id == bindparam("b_cid"), _D.pid == bindparam("b_pid"), _D.host == bindparam("b_host"))
    .values(heartbeat_at=bindparam("b_now"))
)

_R = CONFIRMATIONS_TABLE.c
#: Likewise for a confirmation run (its budget is the one the run was asked for, a column of its key).
CONFIRMATION_COLUMNS = tuple(
    name for name in EvalResult.model_fields if name in _R and name not in ("status", "budget")
)
CONFIRMATIONS = (
    select(*(_R[f.name] for f in fields(ConfirmationRecord)))
    .where(_R.campaign_id == bindparam("cid"))
    .order_by(_R.individual_id, _R.budget, _R.training_seed)
)
INSERT_CONFIRMATION = insert(CONFIRMATIONS_TABLE)
CONFIRMATION_EXISTS = select(_R.id).where(
    _R.individual_id == bindparam("iid"), _R.training_seed == bindparam("seed"), _R.budget == bindparam("budget")
)
_S = SCREENS_TABLE.c
_SCREEN_SELECT = select(*(_S[f.name] for f in fields(ScreenRecord)))
SCREEN_OF = _SCREEN_SELECT.where(_S.individual_id == bindparam("iid")).order_by(_S.id)
SCREENS = _SCREEN_SELECT.where(_S.campaign_id == bindparam("cid")).order_by(_S.individual_id, _S.id)
SCREEN_TASKS = select(_S.task).where(_S.individual_id == bindparam("iid"))
SCREEN_FLOPS = select(func.coalesce(func.sum(_S.flops), 0.0)).where(_S.campaign_id == bindparam("cid"))
TRAINING_FLOPS = select(func.coalesce(func.sum(_I.flops), 0.0)).where(_I.campaign_id == bindparam("cid"))
INSERT_SCREEN = insert(SCREENS_TABLE)
ROOTS = _INDIVIDUAL_SELECT.where(_I.campaign_id == bindparam("cid"), _I.parent_id.is_(None)).order_by(_I.birth)


# --------------------------------------------------------------------------- result → bound parameters


def finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def as_dict(value: Any) -> dict[str, Any]:
    if hasattr(value, "model_dump"):  # a pydantic model, e.g. a CampaignConfig
        return value.model_dump(mode="json")
    return dict(value)


def as_result(value: EvalResult | Mapping[str, Any]) -> EvalResult:
    """An EvalResult from one or from its fields (a ValueError naming the bad field otherwise)."""
    return value if isinstance(value, EvalResult) else EvalResult.model_validate(value)


def column_values(result: EvalResult, names: tuple[str, ...]) -> dict[str, Any]:
    """The result's values for columns ``names``: non-finite floats become NULL."""
    values = {}
    for name in names:
        value = getattr(result, name)
        values[name] = finite(value) if isinstance(value, float) else value
    return values


def result_parameters(result: EvalResult) -> dict[str, Any]:
    """Bound parameters of ``RECORD_RESULT``: absent metrics stay NULL, non-finite ones become NULL."""
    params: dict[str, Any] = {
        "b_status": result.status,
        "b_error": result.message or None,
        "b_result_json": result.model_dump_json(),
        "b_fingerprint": result.fingerprint,
        "b_duplicate_of": result.duplicate_of,
    }
    params.update({f"b_{name}": value for name, value in column_values(result, RESULT_COLUMNS).items()})
    return params
