"""What the repository returns: frozen records of rows (never live ORM objects), and its errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .schema import FINAL_STATUSES

if TYPE_CHECKING:  # storage knows only primitives, and only to (de)serialise programs
    from primitives.program import Architecture


class NotFound(LookupError):
    """A campaign or individual that the call names does not exist."""


class CorruptRecord(ValueError):
    """A stored JSON field that does not decode: the database was damaged or edited by hand."""


def decode(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError) as error:
        raise CorruptRecord(
            f"{what} in the database is not valid JSON ({type(error).__name__}): the database was damaged or edited"
        ) from None


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
        return decode(self.config_json, f"campaign {self.name}'s config")


_COUNT = frozenset({int, type(None)})
_REAL = _COUNT | {float}


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

    def __post_init__(self) -> None:
        # SQLite stores any value in any column: text where a number belongs (a crafted or
        # edited database) is named here, not met later as a TypeError in a format string.
        reals = {type(self.fitness), type(self.val_loss), type(self.perplexity), type(self.bits_per_byte)}
        reals |= {type(self.flops_per_token), type(self.seconds), type(self.flops)}
        counts = {type(self.parameters), type(self.steps), type(self.tokens), type(self.hurdles_passed)}
        if not (reals <= _REAL and counts <= _COUNT and type(self.finish_order) in _COUNT):
            raise CorruptRecord(
                f"individual {self.id} has text where a number belongs: the database was damaged or edited"
            )

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
            raise CorruptRecord(
                f"individual {self.id}'s stored program does not parse ({reason}): the database was damaged or edited"
            ) from None


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
        return decode(self.result_json, f"confirmation run {self.id}'s result")
