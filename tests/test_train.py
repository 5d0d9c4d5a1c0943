"""Fixed-budget training: budgets, the loop, hurdles, failures as results, and `archevo train`."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import evaluator.train as train_module
from evaluator.budget import Budget, parse_budget
from evaluator.train import TrainConfig, TrainResult, lr_at, parameter_groups, train
from primitives.builder import Builder
from primitives.program import ModelSpec, Program
from primitives.seeds import seed

VOCAB = 256  # byte-level ids of real text
SPEC = ModelSpec(vocab_size=VOCAB, d_model=32, n_layers=1, n_heads=2, seq_len=16)
CONFIG = TrainConfig(batch_size=8, lr=3e-3, eval_batches=2, threads=1)
STEP_TOKENS = CONFIG.batch_size * SPEC.seq_len


def _text() -> str:
    from pydoc_data.topics import topics

    return "".join(topics[key] for key in sorted(topics))


@dataclass
class FakeData:
    """What ``train`` reads from a TokenizedCorpus, over the bytes of a real English text."""

    train: np.ndarray
    validation: np.ndarray
    bytes_per_token: float = 1.0
    vocab_size: int = VOCAB


@pytest.fixture(scope="module")
def data() -> FakeData:
    ids = np.frombuffer(_text().encode("utf-8"), dtype=np.uint8).astype(np.uint16)
    cut = len(ids) * 9 // 10
    return FakeData(train=ids[:cut], validation=ids[cut:])


def tokens(steps: int) -> Budget:
    return Budget("tokens", steps * STEP_TOKENS)


def nan_architecture():
    """The transformer seed whose final program is log|x − x| = log 0 = −inf."""
    b = Builder("main")
    bad = b.log_abs(b.sub("x", "x", out="zero"), out="bad")
    return seed("transformer", SPEC).model_copy(update={"final": Program(subprograms=[b.build(bad)])})


# --------------------------------------------------------------------------- budgets


@pytest.mark.parametrize(
    "text, kind, amount",
    [
        ("60s", "seconds", 60),
        ("5m", "seconds", 300),
        ("1.5h", "seconds", 5400),
        (" 10 s ", "seconds", 10),
        ("3e12flops", "flops", 3e12),
        ("2e6tokens", "tokens", 2e6),
        ("2E6Tokens", "tokens", 2e6),
        ("1000tok", "tokens", 1000),
    ],
)
def test_parse_budget_reads_amounts_and_units(text, kind, amount):
    budget = parse_budget(text)
    assert (budget.kind, budget.amount) == (kind, pytest.approx(amount))


@pytest.mark.parametrize("text", ["", "60", "abc", "5x", "5M", "0s", "-1s", "1e400s", "nan tokens", "s", "1e6 flop s"])
def test_parse_budget_rejects_bad_text_naming_it(text):
    with pytest.raises(ValueError, match="budget") as error:
        parse_budget(text)
    assert repr(text) in str(error.value)


def test_budget_fraction_follows_its_kind():
    assert Budget("seconds", 60).fraction(seconds=30, flops=1e20, tokens=1e20) == 0.5
    assert Budget("flops", 1e12).fraction(seconds=1e9, flops=2.5e11, tokens=0) == 0.25
    assert Budget("tokens", 1000).fraction(seconds=0, flops=0, tokens=1500) == 1.5
    with pytest.raises(ValueError):
        Budget("tokens", 0)
    with pytest.raises(ValueError):
        Budget("joules", 1)  # type: ignore[arg-type]


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    config = TrainConfig(lr=1.0, warmup_fraction=0.1, min_lr_fraction=0.1)
    assert lr_at(0.0, config) == 0.0
    assert lr_at(0.05, config) == pytest.approx(0.5)
    assert lr_at(0.1, config) == pytest.approx(1.0)
    assert lr_at(1.0, config) == pytest.approx(0.1)
    values = [lr_at(f / 100, config) for f in range(10, 101)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_no_weight_decay_on_gains_biases_and_per_head_scalars():
    torch.manual_seed(0)
    from evaluator.compiler import compile_model

    model = compile_model(SPEC, seed("sas", SPEC))
    decay, no_decay = parameter_groups(model, 0.1)
    assert all(sum(s > 1 for s in p.shape) >= 2 for p in decay["params"])
    assert any(p.shape == (SPEC.n_heads, 1, 1) for p in no_decay["params"])  # SAS's per-head gains
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.1


def test_config_rejects_unknown_fields_and_bad_hurdles():
    with pytest.raises(ValueError):
        TrainConfig(learning_rate=1e-3)
    with pytest.raises(ValueError):
        TrainConfig(hurdle_fractions=[0.5, 0.25])
    with pytest.raises(ValueError):
        TrainConfig(hurdle_fractions=[1.5])
    assert TrainConfig(hurdles=[0.5]).hurdle_fractions == [0.5]  # the old name is still read
    with pytest.raises(ValueError, match="'hurdles' is the old name of 'hurdle_fractions'"):
        TrainConfig(hurdles=[0.5], hurdle_fractions=[0.5])


# --------------------------------------------------------------------------- training


def test_tokens_budget_trains_below_the_initial_loss(data):
    result = train(SPEC, seed("transformer", SPEC), data, tokens(120), CONFIG)
    assert result.status == "ok", result.message
    assert result.steps == 120 and result.tokens == 120 * STEP_TOKENS
    assert result.val_loss < math.log(VOCAB) - 1.5  # ln 256 ≈ 5.55 at init
    assert result.perplexity == pytest.approx(math.exp(result.val_loss))
    assert result.bits_per_byte == pytest.approx(result.val_loss / math.log(2) / data.bytes_per_token)
    assert result.flops == pytest.approx(result.tokens * result.flops_per_token) and result.flops > 0
    assert result.parameters > 0 and result.seconds > 0
    curve = result.loss_curve
    assert 40 <= len(curve) <= 52 and curve[-1].val_loss == result.val_loss
    assert [p.tokens for p in curve] == sorted(p.tokens for p in curve)
    assert curve[-2].train_loss < curve[0].train_loss
    assert TrainResult.model_validate_json(result.model_dump_json()) == result


def test_same_seed_same_loss_other_seed_other_loss(data):
    arch = seed("primer_ez", SPEC)
    first = train(SPEC, arch, data, tokens(20), CONFIG)
    again = train(SPEC, arch, data, tokens(20), CONFIG)
    other = train(SPEC, arch, data, tokens(20), CONFIG.model_copy(update={"seed": 1}))
    assert first.status == again.status == other.status == "ok"
    assert first.val_loss == again.val_loss
    assert [p.train_loss for p in first.loss_curve] == [p.train_loss for p in again.loss_curve]
    assert other.val_loss != first.val_loss


def test_flops_and_seconds_budgets_stop_once_spent(data):
    arch = seed("transformer", SPEC)
    probe = train(SPEC, arch, data, tokens(1), CONFIG)
    per_step = probe.flops
    result = train(SPEC, arch, data, Budget("flops", 7.5 * per_step), CONFIG)
    assert result.status == "ok" and result.steps == 8
    timed = train(SPEC, arch, data, Budget("seconds", 0.5), CONFIG)
    assert timed.status == "ok" and timed.steps > 1
    assert 0.5 <= timed.seconds < 1.5


def test_hurdles_are_evaluated_at_their_fractions(data):
    calls = []

    def on_hurdle(index, fraction, loss):
        calls.append((index, fraction, loss))
        return True

    config = CONFIG.model_copy(update={"hurdle_fractions": [0.25, 0.5, 1.0]})
    result = train(SPEC, seed("transformer", SPEC), data, tokens(40), config, on_hurdle=on_hurdle)
    assert result.status == "ok", result.message
    assert [(h.fraction, h.step) for h in result.hurdle_losses] == [(0.25, 10), (0.5, 20), (1.0, 40)]
    assert [(i, f) for i, f, _ in calls] == [(0, 0.25), (1, 0.5), (2, 1.0)]
    assert [loss for *_, loss in calls] == [h.loss for h in result.hurdle_losses]
    assert result.val_loss == result.hurdle_losses[-1].loss  # the hurdle at 1.0 is the final evaluation
    assert [p.val_loss for p in result.loss_curve if p.val_loss is not None] == [h.loss for h in result.hurdle_losses]


def test_on_hurdle_false_stops_training(data):
    config = CONFIG.model_copy(update={"hurdle_fractions": [0.25, 0.5]})
    result = train(
        SPEC, seed("transformer", SPEC), data, tokens(40), config, on_hurdle=lambda index, fraction, loss: index == 0
    )
    assert result.status == "stopped_at_hurdle"
    assert result.steps == 20 and len(result.hurdle_losses) == 2
    assert result.val_loss == result.hurdle_losses[1].loss
    assert "hurdle 1" in result.message


def test_a_model_that_sees_the_future_is_not_trained(data):
    """The worker checks causality again before training (the gate's one tiny draw can miss)."""
    b = Builder("main")
    q = b.dense("x", width=8, out="q")
    weights = b.emit("exp", b.attn_logits(q, q, out="scores"), out="weights")
    y = b.add("x", b.attend(weights, q, out="heads"), out="y")
    leaky = seed("transformer", SPEC).model_copy(update={"layers": [Program(subprograms=[b.build(y)])]})
    result = train(SPEC, leaky, data, tokens(5), CONFIG)
    assert result.status == "error" and "not causal" in result.message, result.message
    assert result.steps == 0


def test_nan_program_diverges(data):
    result = train(SPEC, nan_architecture(), data, tokens(10), CONFIG)
    assert result.status == "diverged"
    assert result.diverged_step == 1 and result.steps == 1
    assert result.val_loss is None
    json.loads(result.model_dump_json())  # no NaN leaks into the JSON


def test_runtime_exception_becomes_an_error_result(data, monkeypatch):
    compile_model = train_module.compile_model

    def broken(spec, architecture):
        model = compile_model(spec, architecture)

        def forward(*args, **kwargs):
            raise RuntimeError("kernel exploded\nsecond line")

        model.forward = forward
        return model

    monkeypatch.setattr(train_module, "compile_model", broken)
    result = train(SPEC, seed("transformer", SPEC), data, tokens(5), CONFIG)
    assert result.status == "error"
    assert result.message == "RuntimeError: kernel exploded second line"


def test_compile_error_becomes_an_error_result(data):
    arch = seed("sas", SPEC)
    too_many = arch.model_copy(update={"prefix": arch.prefix * 3})  # 3 prefix layers in a 1-layer model
    result = train(SPEC, too_many, data, tokens(5), CONFIG)
    assert result.status == "error" and "prefix" in result.message and "\n" not in result.message


def test_memory_limit_below_one_step_is_an_error(data):
    result = train(SPEC, seed("transformer", SPEC), data, tokens(5), CONFIG.model_copy(update={"max_memory_mb": 0.01}))
    assert result.status == "error"
    assert result.message.startswith("out of memory: one step needs ") and "the limit is 0.01 MB" in result.message
    assert result.steps == 0
    roomy = train(SPEC, seed("transformer", SPEC), data, tokens(2), CONFIG.model_copy(update={"max_memory_mb": 1e4}))
    assert roomy.status == "ok"


def test_wall_clock_cap_times_out(data):
    config = CONFIG.model_copy(update={"max_seconds": 0.3})
    result = train(SPEC, seed("transformer", SPEC), data, Budget("tokens", 1e12), config)
    assert result.status == "timeout" and 0 < result.steps and result.val_loss is not None


def test_too_large_data_vocabulary_is_an_error(data):
    small = ModelSpec(vocab_size=128, d_model=32, n_layers=1, n_heads=2, seq_len=16)
    result = train(small, seed("transformer", small), data, tokens(2), CONFIG)
    assert result.status == "error" and "vocabulary" in result.message


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def corpus_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHEVO_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "topics.txt"
    path.write_text(_text()[:150_000])
    return path


TINY = [
    "--vocab-size",
    "300",
    "--d-model",
    "32",
    "--layers",
    "1",
    "--heads",
    "2",
    "--seq-len",
    "16",
    "--batch-size",
    "4",
    "--threads",
    "1",
]


def test_cli_train_json(corpus_file):
    from cli.main import app

    result = CliRunner().invoke(
        app, ["train", "transformer", "--budget", "1280tokens", "--corpus", f"text:{corpus_file}", "--json", *TINY]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["status"] == "ok" and payload["tokens"] == 1280 and payload["steps"] == 20
    assert math.isfinite(payload["val_loss"])


def test_cli_train_bad_file_is_one_line(tmp_path):
    from cli.main import app

    bad = tmp_path / "bad.json"
    bad.write_text('{"layers": [')
    result = CliRunner().invoke(app, ["train", str(bad), "--budget", "10tokens"])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "bad.json" in lines[0]
    assert "Traceback" not in result.output


def test_cli_train_bad_budget_is_one_line():
    from cli.main import app

    result = CliRunner().invoke(app, ["train", "transformer", "--budget", "lots"])
    assert result.exit_code == 2 and "'lots'" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_budget_may_be_given_as_text(data):
    assert train(SPEC, seed("transformer", SPEC), data, f"{3 * STEP_TOKENS}tokens", CONFIG).steps == 3
    bad = train(SPEC, seed("transformer", SPEC), data, "lots", CONFIG)
    assert bad.status == "error" and "'lots'" in bad.message


@pytest.mark.filterwarnings("ignore:LM1B at")  # the fixture has 2 of the 99 shards, on purpose
@pytest.mark.parametrize("form", ["folder", "tar.gz"])
def test_cli_trains_on_an_lm1b_copy(tmp_path, monkeypatch, form):
    """`--corpus lm1b:PATH` trains from the extracted folder and from the original tarball."""
    from cli.main import app
    from tests.test_corpora import make_lm1b, make_tar

    monkeypatch.setenv("ARCHEVO_CACHE_DIR", str(tmp_path / "cache"))
    top = make_lm1b(tmp_path / "data")
    path = top if form == "folder" else make_tar(top, tmp_path / "lm1b.tar.gz")
    result = CliRunner().invoke(
        app, ["train", "transformer", "--budget", "320tokens", "--corpus", f"lm1b:{path}", "--json", *TINY]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["status"] == "ok" and math.isfinite(payload["val_loss"]) and payload["bits_per_byte"] > 0


def test_bf16_autocast_trains_close_to_fp32(data):
    """precision="bf16" (autocast, fp32 master weights) learns as fp32 does, within bf16's noise;
    "auto" is fp32 on the CPU."""
    assert (
        CONFIG.autocast_dtype is None and CONFIG.model_copy(update={"device": "cuda"}).autocast_dtype == torch.bfloat16
    )
    runs = {
        p: train(SPEC, seed("transformer", SPEC), data, tokens(60), CONFIG.model_copy(update={"precision": p}))
        for p in ("fp32", "bf16", "auto")
    }
    assert all(r.status == "ok" for r in runs.values())
    start = math.log(VOCAB)
    assert runs["bf16"].val_loss < start - 1.0  # it learned
    assert abs(runs["bf16"].val_loss - runs["fp32"].val_loss) < 0.05
    assert runs["auto"].val_loss == runs["fp32"].val_loss


def test_bf16_attention_on_the_cpu_skips_the_fused_kernel_and_agrees_with_it(monkeypatch):
    """Under bf16 autocast on a CPU the fused attention's backward is the slow path, so the
    runtime spells it out; the function is the same (within bf16's rounding)."""
    import torch.nn.functional as F

    from evaluator import runtime

    q, k, v = (torch.randn(2, 16, 32, generator=torch.Generator().manual_seed(i)) for i in range(3))
    fused = runtime._causal_attention(q, k, v, 4)

    def refuse(*args, **kwargs):
        raise AssertionError("the fused kernel ran under bf16 autocast on the CPU")

    monkeypatch.setattr(F, "scaled_dot_product_attention", refuse)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spelled = runtime._causal_attention(q, k, v, 4)
    assert spelled.shape == fused.shape and torch.allclose(spelled.float(), fused, atol=0.05)


@pytest.mark.integration
def test_compiled_training_step_trains_like_eager(data):
    """compile=True runs the training forward through torch.compile (inductor): the same
    parameters, so the losses agree up to kernel reassociation."""
    eager = train(SPEC, seed("primer_ez", SPEC), data, tokens(20), CONFIG)
    compiled = train(SPEC, seed("primer_ez", SPEC), data, tokens(20), CONFIG.model_copy(update={"compile": True}))
    assert compiled.status == "ok", compiled.message
    assert abs(compiled.val_loss - eager.val_loss) < 1e-3


def test_training_curve_has_every_point_when_losses_are_read_in_batches(data, monkeypatch):
    """On CUDA the loss is read every 16 steps (a read syncs the device); driven here on the CPU:
    every curve point still has its mean training loss, and no point is written twice."""
    monkeypatch.setattr(train_module, "loss_read_interval", lambda device: 16)
    result = train(SPEC, seed("transformer", SPEC), data, tokens(100), CONFIG)
    assert result.status == "ok", result.message
    assert len(result.loss_curve) >= 40
    assert all(point.train_loss is not None for point in result.loss_curve)
    assert [p.tokens for p in result.loss_curve] == sorted({p.tokens for p in result.loss_curve})
    assert result.loss_curve[-1].val_loss == result.val_loss


class _ColdCompile(torch.nn.Module):
    """What torch.compile returns, made slow on its first call as a cold compile is."""

    def __init__(self, model: torch.nn.Module, seconds: float):
        super().__init__()
        self.model, self.seconds, self.calls = model, seconds, 0

    def forward(self, *args):
        self.calls += 1
        if self.calls == 1:
            import time

            time.sleep(self.seconds)
        return self.model(*args)


def test_compile_time_is_timed_apart_and_never_charged_to_the_budget(data, monkeypatch):
    """The first compiled step (a cold compile: minutes) falls before the clock: the curve's
    first point, the schedule and a seconds budget see only training."""
    monkeypatch.setattr(torch, "compile", lambda model, **options: _ColdCompile(model, 1.5))
    config = CONFIG.model_copy(update={"compile": True})
    result = train(SPEC, seed("transformer", SPEC), data, tokens(20), config)
    assert result.status == "ok", result.message
    assert result.compile_seconds >= 1.5
    assert result.loss_curve[0].seconds < 1.0 and result.seconds < 1.5
    timed = train(SPEC, seed("transformer", SPEC), data, Budget("seconds", 1.0), config)
    assert timed.status == "ok" and timed.steps > 1  # the compile did not eat the second


def test_every_compiled_candidate_in_one_process_is_compiled(data, monkeypatch):
    """Dynamo caches per code object and gives up after 8 recompiles of LanguageModel.forward,
    silently running eager: a campaign's ninth compiled candidate must still be compiled."""
    compiled = torch.compile
    graphs: list[int] = []

    def counting_backend(graph_module, example_inputs):
        graphs.append(run)
        return graph_module.forward

    monkeypatch.setattr(torch, "compile", lambda model, **options: compiled(model, backend=counting_backend))
    config = CONFIG.model_copy(update={"compile": True})
    for run in range(10):
        result = train(SPEC, seed("transformer", SPEC), data, tokens(2), config)
        assert result.status == "ok", result.message
    assert set(graphs) == set(range(10))


@pytest.mark.parametrize("batch, time, width, kernel", [(2, 8, 32, 3), (4, 16, 8, 31), (3, 5, 4, 7), (1, 1, 3, 4)])
def test_depthwise_causal_conv_and_its_own_backward_match_a_grouped_conv1d(batch, time, width, kernel):
    """The runtime's dconv (shifted multiply-adds, with a hand-written backward) against
    torch's grouped conv1d: values and both gradients, kernels longer than the sequence too."""
    from evaluator.runtime import DepthwiseCausalConv

    torch.manual_seed(0)
    conv = DepthwiseCausalConv(width, kernel, {"kind": "normal", "std": 0.5}).double()
    x = torch.randn(batch, time, width, dtype=torch.double, requires_grad=True)
    padded = torch.nn.functional.conv1d(x.transpose(1, 2), conv.weight, padding=kernel - 1, groups=width)
    expected = padded[..., :time].transpose(1, 2)
    got = conv(x)
    torch.testing.assert_close(got, expected)
    grad = torch.randn_like(got)
    for mine, theirs in zip(
        torch.autograd.grad(got, (x, conv.weight), grad), torch.autograd.grad(expected, (x, conv.weight), grad)
    ):
        torch.testing.assert_close(mine, theirs)
