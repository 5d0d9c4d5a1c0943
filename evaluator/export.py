"""Export an architecture as a standalone PyTorch model: the very source that was trained.

``model.py`` imports torch and nothing of archevo (the model has ``generate()``);
``config.json`` has the fields Hugging Face users expect and, under ``archevo``, the ModelSpec,
the architecture (re-importable with ``archevo programs validate``) and the search metadata;
weights, when kept, are safetensors (never pickle); ``tokenizer.json`` is the Hugging Face
tokenizer the model was trained with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from primitives.cost import parameter_count
from primitives.listing import list_architecture
from primitives.program import Architecture, ModelSpec

from .compiler import generate_source

WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"

LOADER = '''

def load_model(weights: str | None = None) -> LanguageModel:
    """The model, with trained weights from a safetensors file when given."""
    model = build_model()
    if weights is not None:
        from safetensors.torch import load_model as load_safetensors

        load_safetensors(model, weights)
    return model
'''

README = """# {title}

{summary}

Exported by archevo. `model.py` is standalone PyTorch (it imports nothing of archevo){files}.

```python
{example}
```

Model: vocabulary {vocab}, d_model {d_model}, {layers} layers, {heads} heads, a context of {seq_len} tokens,
{positions} positions, {tied} embeddings; {parameters:,} parameters. `generate()` keeps the last {seq_len}
tokens as context; a longer input to the model itself is an error.
{metrics}
## Program

```
{listing}
```
"""

EXAMPLE_WITH_TOKENIZER = """\
import torch
from tokenizers import Tokenizer
from model import load_model

tokenizer, model = Tokenizer.from_file("tokenizer.json"), load_model({weights}).eval()
ids = torch.tensor([tokenizer.encode("def main():\\n    return").ids[-{seq_len}:]])
logits, loss = model(ids[:, :-1], ids[:, 1:])           # next-token cross-entropy, nats/token
print(tokenizer.decode(model.generate(ids, 40, temperature=0.8, top_k=20)[0].tolist()))"""

EXAMPLE_WITHOUT_TOKENIZER = """\
import torch
from model import load_model

model = load_model({weights}).eval()
tokens = torch.randint({vocab}, (1, {seq_len}))
logits, loss = model(tokens[:, :-1], tokens[:, 1:])     # next-token cross-entropy, nats/token
continued = model.generate(tokens[:, :8], 20, temperature=0.8, top_k=20)   # [1, 28] token ids"""


def hf_config(spec: ModelSpec, architecture: Architecture, metadata: dict[str, Any]) -> dict[str, Any]:
    """config.json: the fields Hugging Face users look for, and the archevo program under its
    own key (``archevo programs validate config.json`` reads it back)."""
    return {
        "model_type": "archevo",
        "architectures": ["LanguageModel"],
        "vocab_size": spec.vocab_size,
        "hidden_size": spec.d_model,
        "num_hidden_layers": spec.n_layers,
        "num_attention_heads": spec.n_heads,
        "max_position_embeddings": spec.seq_len,
        "tie_word_embeddings": spec.tie_embeddings,
        "torch_dtype": "float32",
        "archevo": {
            "spec": spec.model_dump(mode="json"),
            "architecture": architecture.model_dump(mode="json"),
            "metadata": metadata,
        },
    }


def export_model(
    directory: str | Path,
    spec: ModelSpec,
    architecture: Architecture,
    weights: Path | None = None,
    metadata: dict[str, Any] | None = None,
    tokenizer: Path | None = None,
    title: str | None = None,
    summary: str | None = None,
) -> Path:
    """Write model.py, config.json, README.md (and the weights and the tokenizer.json the model
    was trained with, when given) into ``directory``. ``title`` and ``summary`` head the README
    (default: the architecture's name and description)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.py").write_text(generate_source(spec, architecture) + LOADER)
    metadata = metadata or {}
    (out / "config.json").write_text(json.dumps(hf_config(spec, architecture, metadata), indent=2) + "\n")
    if weights is not None:
        (out / WEIGHTS).write_bytes(Path(weights).read_bytes())
    if tokenizer is not None:
        (out / TOKENIZER).write_bytes(Path(tokenizer).read_bytes())
    files = [name for name, present in ((WEIGHTS, weights), (TOKENIZER, tokenizer)) if present]
    example = (EXAMPLE_WITH_TOKENIZER if tokenizer is not None else EXAMPLE_WITHOUT_TOKENIZER).format(
        weights=f'"{WEIGHTS}"' if weights else "", vocab=spec.vocab_size, seq_len=spec.seq_len
    )
    metrics = "".join(f"- {key}: {value}\n" for key, value in metadata.items() if not isinstance(value, (dict, list)))
    (out / "README.md").write_text(
        README.format(
            title=title or architecture.name,
            summary=summary or architecture.description,
            files=f"; beside it {' and '.join(f'`{f}`' for f in files)}"
            if files
            else "; no trained weights (random init)",
            example=example,
            vocab=spec.vocab_size,
            seq_len=spec.seq_len,
            d_model=spec.d_model,
            layers=spec.n_layers,
            heads=spec.n_heads,
            positions=spec.positions,
            tied="tied" if spec.tie_embeddings else "untied",
            parameters=parameter_count(spec, architecture),
            metrics=f"\n{metrics}" if metrics else "",
            listing=list_architecture(architecture),
        )
    )
    return out
