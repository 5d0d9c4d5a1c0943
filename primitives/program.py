"""The program model: pure data, validated by pydantic on the way in, JSON on the way out.

A ``Program`` is one Transformer layer: a list of subprograms (Primer's DNA), the first of
which (main) maps the residual stream ``x`` to the new residual stream. Each subprogram is
a list of SSA instructions ``out = op(inputs, attrs)``; a ``call`` instruction runs a later
subprogram, so the call graph is acyclic. An ``Architecture`` stacks programs over depth and
names the final program (the final norm); a ``ModelSpec`` is the fixed frame around them.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .types import MODEL_UNITS


#: Bounds that keep validation, codegen and the call depth (a call runs a later subprogram)
#: small and quick for any input; Primer's DNA used a handful of subprograms of ~10 lines.
MAX_SUBPROGRAMS = 64
MAX_INSTRUCTIONS = 1024


#: An architecture's name: it is shown in tables and written into exported files.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.+\-]{0,99}")


def plain_name(name: str, pattern: re.Pattern[str], what: str, allowed: str) -> str:
    """``name`` if ``pattern`` matches it whole, else a ValueError that says what a name may hold."""
    if not pattern.fullmatch(name):
        raise ValueError(
            f"{what} {name[:120]!r} is not a plain name: {allowed}, starting with a letter or digit, "
            "at most 100 characters"
        )
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Instruction(_Strict):
    out: str
    op: str
    inputs: list[str] = Field(default_factory=list)
    attrs: dict[str, Any] = Field(default_factory=dict)


class Subprogram(_Strict):
    name: str
    params: list[str] = Field(default_factory=lambda: ["x"])
    body: list[Instruction] = Field(default_factory=list, max_length=MAX_INSTRUCTIONS)
    output: str


class Program(_Strict):
    """One layer. ``subprograms[0]`` is main and takes exactly the residual stream."""

    subprograms: list[Subprogram] = Field(min_length=1, max_length=MAX_SUBPROGRAMS)

    @property
    def main(self) -> Subprogram:
        return self.subprograms[0]

    def subprogram(self, name: str) -> Subprogram:
        return next(s for s in self.subprograms if s.name == name)


class Architecture(_Strict):
    """What a campaign searches: layer programs and the final program.

    Layer i runs ``prefix[i]`` if there is one, else ``layers[(i - len(prefix)) % len(layers)]``,
    so a distinct first layer (SAS keeps W^V in layer 1) and alternating layers are expressible.
    """

    name: str = "unnamed"
    description: str = ""
    prefix: list[Program] = Field(default_factory=list)
    layers: list[Program] = Field(min_length=1)
    final: Program

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        return plain_name(name, NAME, "architecture name", "letters, digits, spaces and _ . + -")

    def programs(self) -> dict[str, Program]:
        """Every program by its place, e.g. ``layers[0]`` or ``final``."""
        named = {f"prefix[{i}]": p for i, p in enumerate(self.prefix)}
        named.update({f"layers[{i}]": p for i, p in enumerate(self.layers)})
        named["final"] = self.final
        return named

    def layer_place(self, index: int) -> str:
        """Which program runs layer ``index``, as a key of ``programs()``."""
        if index < len(self.prefix):
            return f"prefix[{index}]"
        return f"layers[{(index - len(self.prefix)) % len(self.layers)}]"

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)


class ModelSpec(_Strict):
    """The model around the layer programs, fixed during a campaign."""

    # The upper bounds are far past any model trained here; they make a typo (``--layers 1e8``)
    # an immediate error instead of minutes spent building the model.
    vocab_size: int = Field(4096, ge=2, le=2**21)
    d_model: int = Field(128, ge=MODEL_UNITS, le=2**16)
    n_layers: int = Field(2, ge=1, le=1024)
    n_heads: int = Field(4, ge=1, le=1024)
    seq_len: int = Field(64, ge=1, le=2**20)
    positions: Literal["learned", "sinusoidal", "none"] = "learned"
    tie_embeddings: bool = True

    @model_validator(mode="after")
    def _unit_splits_into_heads(self) -> "ModelSpec":
        if self.d_model % MODEL_UNITS:
            raise ValueError(f"d_model {self.d_model} is not a multiple of {MODEL_UNITS}")
        if self.unit % self.n_heads:
            raise ValueError(
                f"the width unit d_model/{MODEL_UNITS} = {self.unit} does not split into {self.n_heads} heads"
            )
        return self

    @property
    def unit(self) -> int:
        """Absolute size of one relative width unit."""
        return self.d_model // MODEL_UNITS
