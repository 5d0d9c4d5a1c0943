"""A small builder for writing programs in Python, as the seed library does.

    b = Builder("ffn")
    h = b.dense("x", width=32, bias=True, out="up")
    ffn = b.build(b.dense(b.relu(h), width=8, bias=True, out="down"))

Every op of the registry is a method; ``out=`` names the value (else h1, h2, ...).
"""

from __future__ import annotations

from typing import Any, Callable

from .program import Instruction, Subprogram
from .registry import CALL, REGISTRY


class Builder:
    def __init__(self, name: str, params: tuple[str, ...] = ("x",)):
        self.name, self.params = name, list(params)
        self.body: list[Instruction] = []

    def emit(self, op: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        out = out or f"h{len(self.body) + 1}"
        self.body.append(Instruction(out=out, op=op, inputs=list(inputs), attrs=attrs))
        return out

    def call(self, target: str, *inputs: str, out: str | None = None) -> str:
        return self.emit(CALL, *inputs, out=out, target=target)

    def __getattr__(self, op: str) -> Callable[..., str]:
        if op not in REGISTRY:
            raise AttributeError(f"no op {op!r} in the registry")
        return lambda *inputs, **kwargs: self.emit(op, *inputs, **kwargs)

    def build(self, output: str) -> Subprogram:
        return Subprogram(name=self.name, params=self.params, body=self.body, output=output)
