"""What is remembered: the SQLAlchemy tables and the one repository class that writes them.

``storage`` knows only ``primitives`` (to parse programs), never torch, evaluator or search.
"""

from .repository import (
    DEFAULT_URL,
    ENV_URL,
    CampaignBusy,
    CampaignRecord,
    ConfirmationRecord,
    CorruptRecord,
    DriverRecord,
    HurdleRecord,
    IndividualRecord,
    NotFound,
    Repository,
    ScreenRecord,
)
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
    "HurdleRecord",
    "IndividualRecord",
    "NotFound",
    "Repository",
    "ScreenRecord",
]
