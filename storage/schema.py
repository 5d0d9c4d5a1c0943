"""The tables: campaigns, individuals, hurdle evaluations, screen scores, confirmation runs
(SQLAlchemy 2 Core: the repository writes and reads rows through statements, never through ORM
objects, so the ORM is not even imported and a command that only reads starts fast).

Tables, not blobs: every field the search or the CLI filters, sorts or aggregates on is a
column. The program itself is JSON text (``architecture_json``, parsed by
``primitives.program.Architecture``); the full result record is JSON text too, kept for
inspection only — nothing queries inside it.

Only ``storage.repository.Repository`` writes these tables; everything else reads through it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

from primitives.measurement import TRAINING_STATUSES

#: A campaign is running until the driver marks it finished.
CAMPAIGN_STATUSES = ("running", "finished")

#: Not yet dispatched, or dispatched and not yet recorded: in flight if the driver died.
OPEN_STATUSES = ("pending", "running")

#: Statuses a recorded result may have: how training ended, and what the driver records without
#: training (the FEC/hash reuse, a child whose cost falls outside the campaign's bounds relative
#: to its seed, one that scored below its seed's bar on the task screen).
FINAL_STATUSES = (*TRAINING_STATUSES, "duplicate", "rejected", "screened_out")

INDIVIDUAL_STATUSES = OPEN_STATUSES + FINAL_STATUSES


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


METADATA = MetaData()


def _required(name: str, kind: Any, *args: Any, **kwargs: Any) -> Column:
    return Column(name, kind, *args, nullable=False, **kwargs)


def _optional(name: str, kind: Any, *args: Any) -> Column:
    return Column(name, kind, *args, nullable=True)


def _created(name: str = "created_at") -> Column:
    return _required(name, UTCDateTime(), default=utcnow)


#: A campaign as stored (``search.campaign.Campaign`` is the driver that runs one).
CAMPAIGNS = Table(
    "campaigns",
    METADATA,
    Column("id", Integer, primary_key=True),
    _required("name", String(200), unique=True),
    _required("seed", Integer),
    _required("config_json", Text),  # the campaign's full config, written once
    _required("status", String(16), default="running"),
    _created(),
    _created("updated_at"),
)

#: One candidate: its program, where it came from, and what its evaluation reached.
INDIVIDUALS = Table(
    "individuals",
    METADATA,
    Column("id", Integer, primary_key=True),
    _required("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE")),
    _required("birth", Integer),
    _optional("parent_id", Integer, ForeignKey("individuals.id")),
    _required("root_seed", String(200)),
    _optional("mutation", Text),
    _required("architecture_json", Text),
    _required("arch_hash", String(128)),
    _optional("fingerprint", String(128)),
    _required("recipe", String(128)),
    _required("status", String(32), default="pending"),
    _required("attempt", Integer, default=0),
    _optional("finish_order", Integer),
    _optional("fitness", Float),
    _optional("val_loss", Float),
    _optional("perplexity", Float),
    _optional("bits_per_byte", Float),
    _optional("parameters", Integer),
    _optional("flops_per_token", Float),
    _optional("steps", Integer),
    _optional("tokens", Integer),
    _optional("seconds", Float),
    _optional("flops", Float),
    _optional("hurdles_passed", Integer),
    _optional("duplicate_of", Integer, ForeignKey("individuals.id")),
    _optional("error", Text),
    _optional("result_json", Text),
    _created(),
    _optional("started_at", UTCDateTime()),
    _optional("finished_at", UTCDateTime()),
    # Idempotent proposals: the driver numbers births 0, 1, 2, ... in proposal order.
    # (Its index also serves every "WHERE campaign_id = ?" lookup.)
    UniqueConstraint("campaign_id", "birth", name="uq_individuals_campaign_birth"),
    # Aging: the population is the P rows with the highest finish_order.
    UniqueConstraint("campaign_id", "finish_order", name="uq_individuals_campaign_finish_order"),
    Index("ix_individuals_campaign_status", "campaign_id", "status"),
    # top-k: best fitness first, ties by birth, without a sort.
    Index("ix_individuals_campaign_fitness", "campaign_id", "fitness", "birth"),
    # Dedup lookups, also across campaigns (hash/fingerprint first); three equality terms
    # so SQLite prefers them to (campaign_id, status) even without ANALYZE statistics.
    # FEC lookups: the first finished individual with a key, found without a sort.
    Index("ix_individuals_arch_hash", "arch_hash", "recipe", "campaign_id", "finish_order"),
    Index("ix_individuals_fingerprint", "fingerprint", "recipe", "campaign_id", "finish_order"),
    Index("ix_individuals_parent_id", "parent_id"),
)

#: The validation loss an individual reached at hurdle ``hurdle`` and the verdict.
HURDLES = Table(
    "hurdle_evaluations",
    METADATA,
    Column("id", Integer, primary_key=True),
    _required("individual_id", Integer, ForeignKey("individuals.id", ondelete="CASCADE")),
    # Denormalised from the individual so hurdle queries are one index range scan.
    _required("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE")),
    _required("hurdle", Integer),
    _required("fraction", Float),
    _optional("loss", Float),
    _optional("threshold", Float),
    _required("passed", Boolean),
    _created(),
    UniqueConstraint("individual_id", "hurdle", name="uq_hurdle_evaluations_individual_hurdle"),
    # Thresholds are computed from the losses of the campaign at one hurdle, in record order.
    Index("ix_hurdle_evaluations_campaign_hurdle", "campaign_id", "hurdle", "id"),
)

#: An individual's accuracy on one task of the campaign's screen (evaluator.tasks), with the
#: compute the screen spent: one row per (individual, task).
SCREENS = Table(
    "screen_scores",
    METADATA,
    Column("id", Integer, primary_key=True),
    _required("individual_id", Integer, ForeignKey("individuals.id", ondelete="CASCADE")),
    _required("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE")),
    _required("task", String(64)),
    _required("accuracy", Float),
    _required("chance", Float),
    _required("seconds", Float),
    _required("flops", Float),  # training FLOPs of the task run (registry cost model)
    _created(),
    UniqueConstraint("individual_id", "task", name="uq_screen_scores_individual_task"),
    Index("ix_screen_scores_campaign", "campaign_id", "individual_id"),
)

#: One retraining of an individual at a fresh training seed (``archevo confirm``): what survives
#: these runs, not the search's own best loss, is a discovery.
CONFIRMATIONS = Table(
    "confirmation_runs",
    METADATA,
    Column("id", Integer, primary_key=True),
    _required("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE")),
    _required("individual_id", Integer, ForeignKey("individuals.id", ondelete="CASCADE")),
    _required("training_seed", Integer),
    _required("budget", String(64)),
    _required("status", String(32)),
    _optional("val_loss", Float),
    _optional("flops_per_token", Float),
    _optional("parameters", Integer),
    _optional("tokens", Integer),
    _optional("seconds", Float),
    _optional("error", Text),
    _required("result_json", Text),  # the full record, the loss curve included
    _created(),
    # Idempotent: one run per (individual, training seed, budget); a rerun skips it.
    UniqueConstraint("individual_id", "training_seed", "budget", name="uq_confirmation_runs_run"),
    Index("ix_confirmation_runs_campaign", "campaign_id", "individual_id"),
)

#: The process driving a campaign now (one row per campaign, kept current by heartbeats):
#: ``status`` tells a live campaign from a crashed one, and a second driver is refused.
DRIVERS = Table(
    "campaign_drivers",
    METADATA,
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    _required("host", String(255)),
    _required("pid", Integer),
    _created("started_at"),
    _created("heartbeat_at"),
)
