"""Export an architecture as a standalone PyTorch model: the very source that was trained.

``model.py`` imports torch and nothing of archevo; ``config.json`` holds the ModelSpec, the
architecture (re-importable with ``archevo programs validate``) and the search metadata;
weights, when kept, are safetensors (never pickle).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from primitives.cost import parameter_count
from primitives.listing import list_architecture
from primitives.program import Architecture, ModelSpec

from .compile import generate_source

WEIGHTS = "model.safetensors"

LOADER = '''

def load_model(weights: str | None = None) -> LanguageModel:
    """The model, with trained weights from a safetensors file when given."""
    model = build_model()
    if weights is not None:
        from safetensors.torch import load_model as load_safetensors

        load_safetensors(model, weights)
    return model
'''

README = """# {name}

{description}

Exported by archevo. `model.py` is standalone PyTorch (it imports nothing of archevo).

```python
import torch
from model import load_model

model = load_model({weights})
logits = model(torch.randint({vocab}, (1, {seq_len})))          # [batch, time, vocab]
logits, loss = model(tokens, targets)                   # next-token cross-entropy
```

Model: vocabulary {vocab}, d_model {d_model}, {layers} layers, {heads} heads, sequence length {seq_len},
{positions} positions, {tied} embeddings; {parameters:,} parameters.
{metrics}
## Program

```
{listing}
```
"""


def export_model(directory: str | Path, spec: ModelSpec, architecture: Architecture,
                 weights: Path | None = None, metadata: dict[str, Any] | None = None) -> Path:
    """Write model.py, config.json, README.md (and the weights) into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.py").write_text(generate_source(spec, architecture) + LOADER)
    metadata = metadata or {}
    config = {"spec": spec.model_dump(mode="json"), "architecture": architecture.model_dump(mode="json"),
              "metadata": metadata}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if weights is not None:
        (out / WEIGHTS).write_bytes(Path(weights).read_bytes())
    metrics = "".join(f"- {key}: {value}\n" for key, value in metadata.items() if not isinstance(value, (dict, list)))
    (out / "README.md").write_text(README.format(
        name=architecture.name, description=architecture.description, weights=f'"{WEIGHTS}"' if weights else "",
        vocab=spec.vocab_size, seq_len=spec.seq_len, d_model=spec.d_model, layers=spec.n_layers, heads=spec.n_heads,
        positions=spec.positions, tied="tied" if spec.tie_embeddings else "untied",
        parameters=parameter_count(spec, architecture), metrics=f"\n{metrics}" if metrics else "",
        listing=list_architecture(architecture)))
    return out
