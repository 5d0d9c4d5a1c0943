"""What is remembered: the SQLAlchemy tables (``schema``), the statements over them
(``statements``), the engine set-up (``engine_setup``), the records that reads return
(``records``) and the one repository class that writes them (``repository``).

``storage`` knows only ``primitives`` (to parse programs), never torch, evaluator or search.
"""

from .records import (
    CampaignBusy,
    CampaignRecord,
    ConfirmationRecord,
    CorruptRecord,
    DriverRecord,
    HurdleRecord,
    IndividualRecord,
    NotFound,
    ScreenRecord,
)
from .repository import DEFAULT_URL, ENV_URL, Repository
from .results import EvalResult, HurdleOutcome
from .schema import (
    CAMPAIGN_STATUSES,
    FINAL_STATUSES,
    INDIVIDUAL_STATUSES,
    OPEN_STATUSES,
)

__all__ = [
    "CAMPAIGN_STATUSES",
    "DEFAULT_URL",
    "ENV_URL",
    "FINAL_STATUSES",
    "INDIVIDUAL_STATUSES",
    "OPEN_STATUSES",
    "CampaignBusy",
    "CampaignRecord",
    "ConfirmationRecord",
    "CorruptRecord",
    "DriverRecord",
    "EvalResult",
    "HurdleOutcome",
    "HurdleRecord",
    "IndividualRecord",
    "NotFound",
    "Repository",
    "ScreenRecord",
]
