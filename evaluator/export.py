"""Export an architecture as a standalone PyTorch model: the very source that was trained.

``model.py`` imports torch and nothing of archevo (the model has ``generate()``);
``config.json`` has the fields Hugging Face users expect and, under ``archevo``, the ModelSpec,
the architecture (re-importable with ``archevo programs validate``) and the search metadata;
weights, when kept, are safetensors (never pickle); ``tokenizer.json`` is the Hugging Face
tokenizer the model was trained with. ``configuration_archevo.py`` and ``modeling_archevo.py``
(copied from ``hf_remote/``) let transformers load the folder with ``trust_remote_code=True``;
transformers is needed only by them. The folder is written beside its target and moved into
place, so an interrupted export leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from primitives.cost import parameter_count
from primitives.listing import list_architecture
from primitives.program import Architecture, ModelSpec

from .compiler import generate_source
from .tokenization import EOT

WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"
HF_FILES = ("configuration_archevo.py", "modeling_archevo.py")
HF_REMOTE = Path(__file__).parent / "hf_remote"

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
{transformers}{metrics}
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

WITH_TRANSFORMERS = """
## With transformers

`configuration_archevo.py` and `modeling_archevo.py` wrap `model.py` for transformers (remote code:
read them first); `tokenizer_config.json` makes `{eot}` the end and padding token.

```python
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

model = AutoModelForCausalLM.from_pretrained("DIR", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("DIR")
generate = pipeline("text-generation", model=model, tokenizer=tokenizer)
print(generate("def main():", max_new_tokens=40, do_sample=True, top_k=20)[0]["generated_text"])
```

lm-evaluation-harness: `lm_eval --model hf --model_args pretrained=DIR,trust_remote_code=True --tasks ...`.
The model has no key/value cache and no attention mask: pad on the right (the harness does).
"""

EXAMPLE_WITHOUT_TOKENIZER = """\
import torch
from model import load_model

model = load_model({weights}).eval()
tokens = torch.randint({vocab}, (1, {seq_len}))
logits, loss = model(tokens[:, :-1], tokens[:, 1:])     # next-token cross-entropy, nats/token
continued = model.generate(tokens[:, :8], 20, temperature=0.8, top_k=20)   # [1, 28] token ids"""


def hf_config(
    spec: ModelSpec, architecture: Architecture, metadata: dict[str, Any], eot_id: int | None = None
) -> dict[str, Any]:
    """config.json: the fields Hugging Face users look for (``auto_map`` names the remote-code
    classes; ``eot_id``: the tokenizer's end-of-text id, also the pad id), and the archevo
    program under its own key (``archevo programs validate config.json`` reads it back)."""
    return {
        "model_type": "archevo",
        "architectures": ["ArchevoForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration_archevo.ArchevoConfig",
            "AutoModelForCausalLM": "modeling_archevo.ArchevoForCausalLM",
        },
        "vocab_size": spec.vocab_size,
        "hidden_size": spec.d_model,
        "num_hidden_layers": spec.n_layers,
        "num_attention_heads": spec.n_heads,
        "max_position_embeddings": spec.seq_len,
        "tie_word_embeddings": spec.tie_embeddings,
        "dtype": "float32",
        **({"eos_token_id": eot_id, "pad_token_id": eot_id} if eot_id is not None else {}),
        "archevo": {
            "spec": spec.model_dump(mode="json"),
            "architecture": architecture.model_dump(mode="json"),
            "metadata": metadata,
        },
    }


def tokenizer_config(spec: ModelSpec) -> dict[str, Any]:
    """tokenizer_config.json: transformers' fast tokenizer over tokenizer.json, the corpus's
    end-of-text token as end and padding, and the model's context as the maximum length."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": EOT,
        "pad_token": EOT,
        "model_max_length": spec.seq_len,
        "padding_side": "right",
        "clean_up_tokenization_spaces": False,
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
    force: bool = False,
) -> Path:
    """Write model.py, config.json, README.md and transformers' files (and the weights and the
    tokenizer the model was trained with, when given) as the folder ``directory``. A non-empty
    ``directory`` is refused (FileExistsError) unless ``force``, which replaces it whole.
    ``title`` and ``summary`` head the README (default: the architecture's name and description)."""
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out} is not empty (pass force to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _write_export(staging, spec, architecture, weights, metadata or {}, tokenizer, title, summary)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _write_export(
    out: Path,
    spec: ModelSpec,
    architecture: Architecture,
    weights: Path | None,
    metadata: dict[str, Any],
    tokenizer: Path | None,
    title: str | None,
    summary: str | None,
) -> None:
    (out / "model.py").write_text(generate_source(spec, architecture) + LOADER)
    for name in HF_FILES:
        shutil.copyfile(HF_REMOTE / name, out / name)
    eot_id = None
    if tokenizer is not None:
        shutil.copyfile(tokenizer, out / TOKENIZER)
        eot_id = Tokenizer.from_file(str(out / TOKENIZER)).token_to_id(EOT)
        special = {"eos_token": EOT, "pad_token": EOT}
        (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(spec), indent=2) + "\n")
        (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    config = hf_config(spec, architecture, metadata, eot_id)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if weights is not None:
        shutil.copyfile(weights, out / WEIGHTS)
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
            transformers=WITH_TRANSFORMERS.format(eot=EOT) if tokenizer is not None else "",
            metrics=f"\n{metrics}" if metrics else "",
            listing=list_architecture(architecture),
        )
    )
