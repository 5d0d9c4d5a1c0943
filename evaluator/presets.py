"""Named training protocols: the model frame, the recipe and the budget a measurement uses.

A number means something only on a protocol where the papers' known effects reproduce.
``cpu`` is the cheapest such protocol the calibration study found on a 2-core machine
(experiments/calibration/README.md says how it was chosen and what does not reproduce on
it); ``primer`` is Primer's LM1B search configuration, for GPU users. ``archevo train``,
``archevo search start`` and the experiments take ``--preset NAME`` (``preset = "..."`` in
a campaign TOML); fields given explicitly still override the preset's.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from primitives.program import ModelSpec

from .budget import parse_budget
from .training_config import TrainConfig

DEFAULT_PRESET = "cpu"


class Preset(BaseModel):
    """A protocol: ``spec`` (vocabulary included), the training recipe and the budget."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    spec: ModelSpec
    train: TrainConfig
    budget: str
    max_train_tokens: int | None = Field(None, ge=1)

    def model_post_init(self, _context: Any) -> None:
        parse_budget(self.budget)

    def fields(self) -> dict[str, Any]:
        """The preset as flat ``name: value`` rows for ``archevo presets``."""
        rows = {f"spec.{k}": v for k, v in self.spec.model_dump().items()}
        rows.update({f"train.{k}": v for k, v in self.train.model_dump(exclude_defaults=True).items()})
        rows.update(budget=self.budget, max_train_tokens=self.max_train_tokens)
        return rows


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="cpu",
            description="calibrated on a 2-core CPU: 4 layers of width 128 over a 1,024-token BPE, sequences of "
            "128; Primer-EZ beats the Transformer here (experiments/calibration)",
            spec=ModelSpec(vocab_size=1024, d_model=128, n_layers=4, n_heads=4, seq_len=128),
            train=TrainConfig(batch_size=8, eval_points=10),
            budget="1e6tokens",
        ),
        Preset(
            name="primer",
            description="Primer's LM1B search configuration (d 512, 6 layers, d_ff 2048, 8 heads, sequences of "
            "64, 4,096-token batches); for a GPU",
            spec=ModelSpec(vocab_size=32768, d_model=512, n_layers=6, n_heads=8, seq_len=64),
            train=TrainConfig(batch_size=64, eval_points=10),
            budget="300s",
        ),
    )
}


def get_preset(name: str) -> Preset:
    """The named preset; a KeyError naming the known ones otherwise."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]
