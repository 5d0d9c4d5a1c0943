"""The training recipe (``TrainConfig``), apart from the training loop so that a config can be
read, validated and shown without loading torch."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from primitives.renames import current_names

if TYPE_CHECKING:
    import torch

DEVICE = re.compile(r"cpu|cuda(:\d+)?")

#: TrainConfig's renamed fields (old → new).
RENAMED = {"hurdles": "hurdle_fractions"}


class TrainConfig(BaseModel):
    """The training recipe, fixed during a campaign."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    min_lr_fraction: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = Field(1.0, gt=0)
    eval_batches: int = Field(8, ge=1)
    hurdle_fractions: list[float] = Field(default_factory=list)  # where a hurdle stops a run (was `hurdles`)
    eval_points: int = Field(0, ge=0, le=1000)  # also evaluate at 1/n, 2/n, ... of the budget (loss curves)
    seed: int = Field(0, ge=0, lt=2**63)
    threads: int | None = Field(None, ge=1, le=1024)
    max_memory_mb: float | None = Field(None, gt=0)
    max_seconds: float | None = Field(None, gt=0)
    device: str = "cpu"
    #: "auto": bf16 autocast on CUDA (fp32 master weights), fp32 on the CPU
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    compile: bool = False  # torch.compile the training step's model (inductor); evaluation runs eager
    tf32: bool = True  # on CUDA, fp32 matmuls in TF32 (tensor cores, ~10 mantissa bits); False: full fp32

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype of this recipe on its device (None: plain fp32)."""
        import torch

        wanted = self.precision if self.precision != "auto" else ("bf16" if self.device.startswith("cuda") else "fp32")
        return torch.bfloat16 if wanted == "bf16" else None

    @model_validator(mode="before")
    @classmethod
    def _current_names(cls, data: Any) -> Any:
        return current_names(data, RENAMED, "training config")

    @field_validator("hurdle_fractions")
    @classmethod
    def _hurdles_inside_budget(cls, hurdles: list[float]) -> list[float]:
        for h in hurdles:
            if not 0 < h <= 1:
                raise ValueError(f"a hurdle is a fraction of the budget in (0, 1], got {h}")
        if hurdles != sorted(hurdles):
            raise ValueError(f"hurdles must be in increasing order, got {hurdles}")
        return hurdles

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if not DEVICE.fullmatch(device):
            raise ValueError(f"device must be cpu or cuda (cuda:N), got {device!r}")
        return device
