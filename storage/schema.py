"""The tables: campaigns, individuals, hurdle evaluations, screen scores, confirmation runs
(SQLAlchemy 2).

Tables, not blobs: every field the search or the CLI filters, sorts or aggregates on is a
column. The program itself is JSON text (``architecture_json``, parsed by
``primitives.program.Architecture``); the full result record is JSON text too, kept for
inspection only — nothing queries inside it.

Only ``storage.repository.Repository`` writes these tables; everything else reads through it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
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


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime}


class CampaignRow(Base):
    """A campaign as stored (``search.campaign.Campaign`` is the driver that runs one)."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    seed: Mapped[int] = mapped_column(Integer)
    config_json: Mapped[str] = mapped_column(Text)  # the campaign's full config, written once
    status: Mapped[str] = mapped_column(String(16), default="running")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Individual(Base):
    """One candidate: its program, where it came from, and what its evaluation reached."""

    __tablename__ = "individuals"
    __table_args__ = (
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
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    birth: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("individuals.id"), index=True)
    root_seed: Mapped[str] = mapped_column(String(200))
    mutation: Mapped[str | None] = mapped_column(Text)
    architecture_json: Mapped[str] = mapped_column(Text)
    arch_hash: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[str | None] = mapped_column(String(128))
    recipe: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32), default="pending")
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    finish_order: Mapped[int | None] = mapped_column(Integer)

    fitness: Mapped[float | None] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)
    perplexity: Mapped[float | None] = mapped_column(Float)
    bits_per_byte: Mapped[float | None] = mapped_column(Float)
    parameters: Mapped[int | None] = mapped_column(Integer)
    flops_per_token: Mapped[float | None] = mapped_column(Float)
    steps: Mapped[int | None] = mapped_column(Integer)
    tokens: Mapped[int | None] = mapped_column(Integer)
    seconds: Mapped[float | None] = mapped_column(Float)
    flops: Mapped[float | None] = mapped_column(Float)
    hurdles_passed: Mapped[int | None] = mapped_column(Integer)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("individuals.id"))
    error: Mapped[str | None] = mapped_column(Text)
    result_json: Mapped[str | None] = mapped_column(Text)

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


class HurdleEvaluation(Base):
    """The validation loss an individual reached at hurdle ``hurdle`` and the verdict."""

    __tablename__ = "hurdle_evaluations"
    __table_args__ = (
        UniqueConstraint("individual_id", "hurdle", name="uq_hurdle_evaluations_individual_hurdle"),
        # Thresholds are computed from the losses of the campaign at one hurdle, in record order.
        Index("ix_hurdle_evaluations_campaign_hurdle", "campaign_id", "hurdle", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    individual_id: Mapped[int] = mapped_column(ForeignKey("individuals.id", ondelete="CASCADE"))
    # Denormalised from the individual so hurdle queries are one index range scan.
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    hurdle: Mapped[int] = mapped_column(Integer)
    fraction: Mapped[float] = mapped_column(Float)
    loss: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ScreenScore(Base):
    """An individual's accuracy on one task of the campaign's screen (evaluator.tasks), with
    the compute the screen spent: one row per (individual, task)."""

    __tablename__ = "screen_scores"
    __table_args__ = (
        UniqueConstraint("individual_id", "task", name="uq_screen_scores_individual_task"),
        Index("ix_screen_scores_campaign", "campaign_id", "individual_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    individual_id: Mapped[int] = mapped_column(ForeignKey("individuals.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    task: Mapped[str] = mapped_column(String(64))
    accuracy: Mapped[float] = mapped_column(Float)
    chance: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)
    flops: Mapped[float] = mapped_column(Float)  # training FLOPs of the task run (registry cost model)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConfirmationRun(Base):
    """One retraining of an individual at a fresh training seed (``archevo confirm``): what
    survives these runs, not the search's own best loss, is a discovery."""

    __tablename__ = "confirmation_runs"
    __table_args__ = (
        # Idempotent: one run per (individual, training seed, budget); a rerun skips it.
        UniqueConstraint("individual_id", "training_seed", "budget", name="uq_confirmation_runs_run"),
        Index("ix_confirmation_runs_campaign", "campaign_id", "individual_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    individual_id: Mapped[int] = mapped_column(ForeignKey("individuals.id", ondelete="CASCADE"))
    training_seed: Mapped[int] = mapped_column(Integer)
    budget: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    val_loss: Mapped[float | None] = mapped_column(Float)
    flops_per_token: Mapped[float | None] = mapped_column(Float)
    parameters: Mapped[int | None] = mapped_column(Integer)
    tokens: Mapped[int | None] = mapped_column(Integer)
    seconds: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    result_json: Mapped[str] = mapped_column(Text)  # the full record, the loss curve included
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CampaignDriver(Base):
    """The process driving a campaign now (one row per campaign, kept current by heartbeats):
    ``status`` tells a live campaign from a crashed one, and a second driver is refused."""

    __tablename__ = "campaign_drivers"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
