"""``archevo train``: train one architecture (a seed or a JSON file) under a fixed budget."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from .formatting import log, validation_message

if TYPE_CHECKING:  # each command imports what it uses when it runs: `--help` loads none of it
    import numpy as np

    from evaluator.train import TrainResult
    from primitives.program import Architecture, ModelSpec

err = Console(stderr=True)

_STAGES = {
    "bpe": "training the tokenizer (characters)",
    "train": "tokenizing train (tokens)",
    "validation": "tokenizing validation (tokens)",
}


def _fail(message: str) -> typer.Exit:
    """One line on stderr, exit status 2: bad input, never a traceback."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def unigram_entropy(tokens: np.ndarray, vocab_size: int) -> float:
    """Entropy (nats/token) of the tokens' own unigram distribution: the loss of the best
    context-free model, the bar any trained language model must clear."""
    import numpy as np

    counts = np.bincount(np.asarray(tokens, dtype=np.int64), minlength=vocab_size)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _summary(result: TrainResult, entropy: float | None) -> Table:
    def num(value: float | None, fmt: str) -> str:
        return "—" if value is None else format(value, fmt)

    table = Table(title="training result", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    style = "green" if result.status == "ok" else "red"
    table.add_row("status", f"[{style}]{result.status}[/{style}]")
    if result.message:
        table.add_row("message", result.message)
    table.add_row("validation loss (nats/token)", num(result.val_loss, ".4f"))
    if entropy is not None:
        table.add_row("validation unigram entropy", f"{entropy:.4f}")
    table.add_row("perplexity", num(result.perplexity, ".2f"))
    table.add_row("bits per byte", num(result.bits_per_byte, ".4f"))
    table.add_row("steps", f"{result.steps:,}")
    table.add_row("tokens", f"{result.tokens:,}")
    table.add_row("seconds (training)", f"{result.seconds:.1f}")
    table.add_row("seconds (wall)", f"{result.wall_seconds:.1f}")
    table.add_row(
        "tokens / second", f"{result.tokens / result.seconds:,.0f}" if result.tokens and result.seconds else "—"
    )
    table.add_row("FLOPs per token (training)", f"{result.flops_per_token:.4g}")
    table.add_row("FLOPs", f"{result.flops:.3e}")
    table.add_row("model FLOP/s", f"{result.flops / result.seconds:.3e}" if result.flops and result.seconds else "—")
    table.add_row("parameters", f"{result.parameters:,}")
    for hurdle in result.hurdle_losses:
        table.add_row(f"hurdle {hurdle.fraction:g} (step {hurdle.step})", num(hurdle.loss, ".4f"))
    return table


def train(
    reference: str = typer.Argument(..., metavar="NAME|FILE.json", help="a seed name or an architecture JSON file"),
    preset_name: str | None = typer.Option(
        None,
        "--preset",
        help="protocol: frame, recipe and budget (`archevo presets` lists them; default cpu); "
        "the options below override it",
    ),
    budget: str | None = typer.Option(None, "--budget", help="60s, 5m, 3e12flops or 2e6tokens (default: the preset's)"),
    corpus: str = typer.Option("default", "--corpus", help="default, lm1b:PATH or text:GLOB"),
    seed: int = typer.Option(0, "--seed", help="initialisation and data-order seed"),
    vocab_size: int | None = typer.Option(None, "--vocab-size", help="BPE vocabulary size"),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    lr: float | None = typer.Option(None, "--lr", help="peak learning rate"),
    d_model: int | None = typer.Option(None, "--d-model", help="override ModelSpec.d_model"),
    layers: int | None = typer.Option(None, "--layers", help="override ModelSpec.n_layers"),
    heads: int | None = typer.Option(None, "--heads", help="override ModelSpec.n_heads"),
    seq_len: int | None = typer.Option(None, "--seq-len", help="override ModelSpec.seq_len"),
    hurdles: str = typer.Option("", "--hurdles", help="comma-separated budget fractions to evaluate at, e.g. 0.25,0.5"),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads (default: torch's)"),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda"),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on cuda, fp32 on cpu), fp32 or bf16"),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the training step (inductor)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON object on stdout"),
    save: Path | None = typer.Option(
        None,
        "--save",
        metavar="DIR",
        help="write the trained model as an export (model.py, weights, tokenizer, HF files)",
    ),
    force: bool = typer.Option(False, "--force", help="with --save: replace a non-empty folder whole"),
) -> None:
    """Train one architecture under a fixed budget and report its validation loss (exit 0 if ok)."""
    import psutil
    from pydantic import ValidationError

    from evaluator.budget import parse_budget
    from evaluator.corpora import CorpusError
    from evaluator.presets import DEFAULT_PRESET, get_preset
    from evaluator.tokenization import load_tokenized
    from evaluator.train import train as train_architecture  # torch: only when training
    from evaluator.training_config import TrainConfig
    from primitives.cost import training_memory_bytes
    from primitives.program import ModelSpec
    from primitives.seeds import resolve
    from primitives.validate import ProgramError

    preset_name = preset_name or DEFAULT_PRESET

    if save is not None and save.is_dir() and any(save.iterdir()) and not force:
        raise _fail(f"--save {save}: the folder is not empty; pass --force to replace it whole")
    try:
        preset = get_preset(preset_name)
    except KeyError as error:
        raise _fail(f"--preset: {error.args[0]}") from None
    overrides = {"vocab_size": vocab_size, "d_model": d_model, "n_layers": layers, "n_heads": heads, "seq_len": seq_len}
    try:
        spec = ModelSpec(**{**preset.spec.model_dump(), **{k: v for k, v in overrides.items() if v is not None}})
    except ValidationError as error:
        raise _fail(f"model spec: {validation_message(error)}") from None
    try:
        architecture = resolve(reference, spec)
    except (ProgramError, KeyError) as error:
        raise _fail(str(error.args[0] if isinstance(error, KeyError) else error)) from None
    try:
        parsed_budget = parse_budget(budget or preset.budget)
    except ValueError as error:
        raise _fail(str(error)) from None
    need, free = (
        training_memory_bytes(spec, architecture, batch_size or preset.train.batch_size),
        psutil.virtual_memory().available,
    )
    if need > free:
        raise _fail(
            f"the model is too large for this machine: one training step needs about {need / 2**30:.1f} GiB, "
            f"{free / 2**30:.1f} GiB is free (check --layers, --seq-len, --d-model, --batch-size)"
        )
    recipe = {"batch_size": batch_size, "lr": lr}
    try:
        config = TrainConfig(
            **{
                **preset.train.model_dump(),
                **{k: v for k, v in recipe.items() if v is not None},
                "seed": seed,
                "threads": threads,
                "device": device,
                "precision": precision,
                "compile": compile_model,
                "hurdle_fractions": [float(h) for h in hurdles.split(",") if h.strip()],
            }
        )
    except ValidationError as error:
        raise _fail(f"training config: {validation_message(error)}") from None
    except ValueError:
        raise _fail(f"--hurdles {hurdles!r}: expected comma-separated fractions such as 0.25,0.5") from None

    columns = (
        TextColumn("{task.description}"),
        BarColumn(bar_width=16),
        TextColumn("{task.fields[info]}"),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(f"corpus {corpus}", total=None, info="")

        def tokenize_progress(stage: str, count: int) -> None:
            bar.update(task, description=_STAGES.get(stage, stage), info=f"{count:,}")

        try:
            data = load_tokenized(
                corpus, spec.vocab_size, max_train_tokens=preset.max_train_tokens, progress=tokenize_progress
            )
        except (CorpusError, ValueError, OSError) as error:
            raise _fail(f"corpus {corpus}: {' '.join(str(error).split())}") from None
        bar.update(
            task,
            description="corpus",
            total=1,
            completed=1,
            info=f"{len(data.train) / 1e6:.1f}M train / {len(data.validation) / 1e3:.0f}k val tokens",
        )
        spec = spec.model_copy(update={"vocab_size": data.vocab_size})
        training = bar.add_task(architecture.name, total=1000, info="compiling")

        logged = [0]  # tenths of the budget written as log lines (when the output is a file)

        def train_progress(step: int, fraction: float, loss: float, tokens_per_second: float) -> None:
            info = f"step {step:,} loss {loss:.3f} {tokens_per_second / 1e3:.1f}k tok/s"
            bar.update(training, completed=1000 * fraction, info=info)
            if not err.is_terminal and fraction * 10 >= logged[0] + 1:
                logged[0] = int(fraction * 10)
                log(f"train {architecture.name}: {fraction:.0%} of the budget, {info}")

        with tempfile.TemporaryDirectory() as scratch:
            weights = Path(scratch) / "weights.safetensors" if save is not None else None
            result = train_architecture(
                spec, architecture, data, parsed_budget, config, progress=train_progress, save_weights=weights
            )
            bar.update(training, completed=1000)
            if save is not None and weights is not None and result.weights:
                _save(save, spec, architecture, weights, data.cache_dir / "tokenizer.json", result, force)

    entropy = unigram_entropy(data.validation, data.vocab_size)
    if as_json:
        err.print(_summary(result, entropy))
        print(result.model_dump_json())
    else:
        Console().print(_summary(result, entropy))
    if result.status != "ok":
        raise typer.Exit(1)


def _save(
    out: Path,
    spec: ModelSpec,
    architecture: Architecture,
    weights: Path,
    tokenizer: Path,
    result: TrainResult,
    force: bool,
) -> None:
    """``train --save``: the trained model as ``archevo export`` writes one."""
    from evaluator.export import export_model

    metadata = {
        "status": result.status,
        "validation_loss": result.val_loss,
        "bits_per_byte": result.bits_per_byte,
        "tokens": result.tokens,
        "budget": result.budget,
    }
    try:
        export_model(out, spec, architecture, weights, metadata, tokenizer=tokenizer, force=force)
    except OSError as error:
        raise _fail(f"--save {out}: cannot write there: {error.strerror or error}") from None
    err.print(f"saved the trained model to {out}")


def presets(as_json: bool = typer.Option(False, "--json", help="the presets as one JSON object")) -> None:
    """The named protocols (`--preset NAME`, `preset = "NAME"` in a campaign TOML) and their fields."""
    from evaluator.presets import DEFAULT_PRESET, PRESETS

    if as_json:
        print(json.dumps({name: p.model_dump(mode="json") for name, p in PRESETS.items()}, indent=2))
        return
    console = Console()
    for name, preset in PRESETS.items():
        console.print(
            f"[bold]{name}[/bold]{' (default)' if name == DEFAULT_PRESET else ''}: {preset.description}",
            highlight=False,
        )
        table = Table(show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value")
        for field, value in preset.fields().items():
            table.add_row(field, str(value))
        console.print(table)
