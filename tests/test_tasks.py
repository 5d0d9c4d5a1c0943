"""The synthetic task suite: instances mean what they say, data is reproducible and held out,
and the scores separate programs that recall from programs that cannot."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from evaluator.tasks import TASKS, TaskError, TaskRecipe, get_task, score_task
from evaluator.tasks import instances
from evaluator.tasks.instances import IGNORE
from evaluator.tasks.registry import task_data
from primitives.builder import Builder
from primitives.program import Program
from primitives.seeds import ablated, seed
from cli.main import app

RUNNER = CliRunner()


@pytest.mark.parametrize("name", list(TASKS))
def test_same_seed_same_data_and_test_held_out(name):
    task = get_task(name)
    recipe = TaskRecipe(train_examples=512, test_examples=64)
    (x, y), (tx, ty) = task_data(task, task.settings, recipe, seed=3)
    (x2, y2), (tx2, ty2) = task_data(task, task.settings, recipe, seed=3)
    assert np.array_equal(x, x2) and np.array_equal(y, y2) and np.array_equal(tx, tx2) and np.array_equal(ty, ty2)
    assert not np.array_equal(x, task_data(task, task.settings, recipe, seed=4)[0][0])
    assert x.shape[1] == task.settings.seq_len and x.min() >= 0 and x.max() < task.settings.vocab_size
    assert ((y == IGNORE) | ((y >= 0) & (y < task.settings.vocab_size))).all() and (y != IGNORE).any()
    assert not {row.tobytes() for row in x} & {row.tobytes() for row in tx}


def test_in_context_recall_asks_the_value_bound_to_a_repeated_key():
    s = instances.RecallSettings()
    x, y = instances.in_context_recall(np.random.default_rng(0), 64, s)
    half = s.vocab_size // 2
    for row, target in zip(x, y):
        bound: dict[int, int] = {}
        for t in range(0, len(row) - 1, 2):
            key, value = row[t], row[t + 1]
            assert key < half <= value
            assert bound.setdefault(key, value) == value  # a key keeps its value
            assert target[t] == (value if t and key in {row[u] for u in range(0, t, 2)} else IGNORE)
        assert (target[1::2] == IGNORE).all()


def test_noise_is_never_asked():
    s = instances.RecallSettings(vocab_size=32, noise_vocab=16, frac_noise=0.3)
    x, y = instances.in_context_recall(np.random.default_rng(1), 64, s)
    noise = x >= 16
    assert noise.any() and (y[noise] == IGNORE).all() and (y[y != IGNORE] < 16).all()


def test_pair_recall_queries_keys_shown_before():
    s = instances.PairRecallSettings(n_keys=4, n_values=5)
    x, y = instances.pair_recall(np.random.default_rng(2), 32, s)
    pairs, answers = s.n_keys * s.n_values, s.n_keys * s.n_values + s.n_keys
    for row, target in zip(x, y):
        shown = {}
        for t, token in enumerate(row):
            if token < pairs:
                shown[token // s.n_values] = token % s.n_values
                assert target[t] == IGNORE
            else:
                assert target[t] == answers + shown[token - pairs]  # its key was shown, with this value


def test_selective_copying_asks_the_content_in_order():
    s = instances.CopySettings(seq_len=20, to_copy=3)
    x, y = instances.selective_copying(np.random.default_rng(3), 16, s)
    blank, copy = s.vocab_size - 2, s.vocab_size - 1
    for row, target in zip(x, y):
        span = s.seq_len - s.to_copy - 1
        assert row[span] == copy and (row[span + 1 :] == blank).all()
        assert list(target[span + 1 :]) == [t for t in row[:span] if t != blank]


def test_memorization_map_is_shared_by_every_seed():
    s = instances.MemorizationSettings()
    seen: dict[int, int] = {}
    for generator_seed in range(3):
        x, y = instances.memorization(np.random.default_rng(generator_seed), 16, s)
        for key, value in zip(x[:, 0::2].ravel(), y[:, 1::2].ravel()):
            assert seen.setdefault(int(key), int(value)) == value


def test_fuzzy_keys_are_longest_at_test_time():
    s = instances.FuzzyRecallSettings()
    x, _ = instances.fuzzy_in_context_recall(np.random.default_rng(4), 8, s, test=True)
    half, pad = (s.vocab_size - 1) // 2, s.vocab_size - 1
    for row in x:
        runs = np.diff(np.flatnonzero(np.diff(np.r_[-1, (row[row != pad] < half).astype(int), -1]) != 0))
        assert (runs[0::2] == s.key_motif).all()  # key runs (keys start every pair)


def test_transformer_recalls_and_a_program_without_attention_guesses():
    """The acceptance of the screen: retrieval from the context needs sequence mixing."""
    recall = score_task(seed("transformer", _spec()), "pair_recall", seed=0)
    blind = score_task(ablated("attention", _spec()), "pair_recall", seed=0)
    assert recall.accuracy > 0.9 and blind.accuracy < blind.chance + 0.05, (recall, blind)


def test_in_context_recall_separates_a_convolution_from_chance():
    """MAD's format (adjacent key and value tokens) at CPU budgets: Primer-EZ's depthwise
    convolutions bind a value to its key at once; the Transformer is far above chance but at
    the level that remembering which values occurred gives (no induction circuit forms in a
    few hundred steps); a program without attention guesses."""
    short = TaskRecipe(steps=250)
    primer = score_task(seed("primer_ez", _spec()), "in_context_recall", seed=0, recipe=short)
    vanilla = score_task(seed("transformer", _spec()), "in_context_recall", seed=0, recipe=short)
    blind = score_task(ablated("attention", _spec()), "in_context_recall", seed=0, recipe=short)
    assert primer.accuracy > 0.9, primer
    assert vanilla.accuracy > 2 * vanilla.chance and vanilla.accuracy < primer.accuracy, vanilla
    assert blind.accuracy < blind.chance + 0.05, blind


def _leaky():
    """Attention on exp(scores), which no mask touches: it sees the future."""
    b = Builder("main")
    q = b.dense("x", width=8, out="q")
    weights = b.emit("exp", b.attn_logits(q, q, out="scores"), out="weights")
    return seed("transformer").model_copy(
        update={
            "name": "leaky",
            "layers": [Program(subprograms=[b.build(b.add("x", b.attend(weights, q, out="heads"), out="y"))])],
        }
    )


def test_a_program_that_looks_ahead_is_refused(tmp_path):
    with pytest.raises(TaskError, match="not causal"):
        score_task(_leaky(), "pair_recall", recipe=TaskRecipe(steps=1))
    path = tmp_path / "leaky.json"
    path.write_text(_leaky().to_json())
    out = RUNNER.invoke(app, ["tasks", str(path), "--tasks", "pair_recall", "--steps", "1"])
    assert out.exit_code == 2 and "not causal" in out.output and "Traceback" not in out.output, out.output


def test_bad_settings_name_the_task_and_the_field():
    with pytest.raises(TaskError, match="task selective_copying: seq_len"):
        score_task(seed("transformer"), "selective_copying", overrides={"seq_len": 5})
    with pytest.raises(TaskError, match="unknown task 'recall'"):
        score_task(seed("transformer"), "recall")
    with pytest.raises(TaskError, match="vocab_size follows from n_keys"):
        get_task("pair_recall").configure({"vocab_size": 10})


def test_cli_scores_as_json_and_rejects_bad_input():
    out = RUNNER.invoke(
        app,
        [
            "tasks",
            "transformer",
            "--tasks",
            "pair_recall,compression",
            "--steps",
            "20",
            "--set",
            "seq_len=16",
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert [s["task"] for s in record["scores"]] == ["pair_recall", "compression"]
    assert all(s["steps"] == 20 and s["settings"]["seq_len"] == 16 for s in record["scores"])
    for args, message in (
        (["nope"], "neither a seed"),
        (["transformer", "--tasks", "bogus"], "unknown task"),
        (["transformer", "--set", "seq_len"], "expected [TASK.]KEY=VALUE"),
        (["transformer", "--set", "memorization.seq_len=7", "--tasks", "memorization"], "even"),
    ):
        result = RUNNER.invoke(app, ["tasks", *args])
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output


def _spec():
    from primitives.program import ModelSpec

    recipe = TaskRecipe()
    return ModelSpec(d_model=recipe.d_model, n_layers=recipe.n_layers, n_heads=recipe.n_heads)
