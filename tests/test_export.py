"""Export round trip: the standalone model.py, in a fresh interpreter, equals the engine's module."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_model

from evaluator.compiler import compile_model, generate_source
from evaluator.export import HF_FILES, TOKENIZER, WEIGHTS, export_model
from primitives.program import ModelSpec
from primitives.seeds import SEEDS, seed
from primitives.validate import parse_architecture

SPEC = ModelSpec(vocab_size=97, d_model=32, n_layers=2, n_heads=2, seq_len=12)

CHECK = """
import sys, torch
sys.path.insert(0, sys.argv[1])
import model
assert not [m for m in sys.modules if m.split('.')[0] in ('primitives', 'evaluator', 'search', 'storage')]
net = model.load_model(sys.argv[1] + '/model.safetensors').eval()
tokens = torch.load(sys.argv[2])
with torch.no_grad():
    torch.save(net(tokens)[0], sys.argv[3])
"""


def exported_outputs(directory, tokens, tmp_path):
    torch.save(tokens, tmp_path / "tokens.pt")
    subprocess.run(
        [sys.executable, "-c", CHECK, str(directory), str(tmp_path / "tokens.pt"), str(tmp_path / "out.pt")],
        check=True,
        capture_output=True,
        text=True,
    )
    return torch.load(tmp_path / "out.pt")


def export_seeds(names, tmp_path):
    tokens = torch.randint(SPEC.vocab_size, (2, SPEC.seq_len))
    engines = {}
    for name in names:
        torch.manual_seed(0)
        architecture = seed(name, SPEC)
        engine = compile_model(SPEC, architecture).eval()
        with torch.no_grad():  # move every weight off its initialiser so the comparison means something
            for p in engine.parameters():
                p.add_(0.05 * torch.randn_like(p))
        save_model(engine, str(tmp_path / f"{name}.safetensors"))
        export_model(tmp_path / name, SPEC, architecture, weights=tmp_path / f"{name}.safetensors")
        engines[name] = engine
    return tokens, engines


@pytest.mark.integration
def test_every_seed_exports_to_standalone_pytorch(tmp_path):
    tokens, engines = export_seeds(list(SEEDS), tmp_path)
    torch.save(tokens, tmp_path / "tokens.pt")
    script = (
        "\n".join(CHECK.splitlines()[:3])
        + """
import importlib.util
for name in sys.argv[3:]:
    spec = importlib.util.spec_from_file_location(name, f"{sys.argv[1]}/{name}/model.py")
    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
    net = module.load_model(f"{sys.argv[1]}/{name}/model.safetensors").eval()
    with torch.no_grad():
        torch.save(net(torch.load(sys.argv[2]))[0], f"{sys.argv[1]}/{name}/out.pt")
assert not [m for m in sys.modules if m.split('.')[0] in ('primitives', 'evaluator', 'search', 'storage')]
"""
    )
    script = script.replace("import model\n", "")
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(tmp_path / "tokens.pt"), *engines],
        check=True,
        capture_output=True,
        text=True,
    )
    for name, engine in engines.items():
        with torch.no_grad():
            torch.testing.assert_close(torch.load(tmp_path / name / "out.pt"), engine(tokens)[0], rtol=0, atol=0)


def test_export_writes_config_readme_and_reimportable_architecture(tmp_path):
    tokens, engines = export_seeds(["primer_ez"], tmp_path)
    directory = tmp_path / "primer_ez"
    assert {p.name for p in directory.iterdir()} == {"model.py", "config.json", "README.md", WEIGHTS, *HF_FILES}
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == "archevo" and config["hidden_size"] == SPEC.d_model
    assert (
        config["vocab_size"],
        config["num_hidden_layers"],
        config["num_attention_heads"],
        config["max_position_embeddings"],
        config["tie_word_embeddings"],
    ) == (97, 2, 2, 12, True)
    assert ModelSpec.model_validate(config["archevo"]["spec"]) == SPEC
    assert parse_architecture((directory / "config.json").read_text()) == seed("primer_ez", SPEC)
    assert "q_conv = dconv3(q)" in (directory / "README.md").read_text()
    with torch.no_grad():
        torch.testing.assert_close(exported_outputs(directory, tokens, tmp_path), engines["primer_ez"](tokens)[0])


@pytest.mark.integration
def test_best_individual_of_a_real_campaign_exports_with_its_trained_weights(tmp_path, monkeypatch):
    """A tiny campaign that really trains and keeps weights; `archevo export ID --weights` gives a
    standalone model whose outputs equal the engine's module loaded with the same weights."""
    import sysconfig

    from safetensors.torch import load_model
    from typer.testing import CliRunner

    from search.campaign import build_campaign
    from search.config import CampaignConfig
    from cli.main import app
    from storage import Repository

    monkeypatch.setenv("ARCHEVO_CACHE_DIR", str(tmp_path / "cache"))
    db = f"sqlite:///{tmp_path / 'c.db'}"
    config = CampaignConfig(
        name="real",
        backend="inprocess",
        max_evals=4,
        budget="4000tokens",
        strategy="aging",
        hurdles=0,
        corpus=f"text:{sysconfig.get_paths()['stdlib']}/json/*.py",
        vocab_size=300,
        max_train_tokens=20_000,
        keep_weights=True,
        weights_dir=str(tmp_path / "weights"),
        spec=SPEC.model_copy(update={"vocab_size": 300}),
    )
    config.train.batch_size = 4
    build_campaign(config, Repository(db)).run()
    best = json.loads(CliRunner().invoke(app, ["top", "real", "-k", "1", "--json", "--db", db]).stdout)[0]
    out = tmp_path / "exported"
    corpus = ["--corpus", config.corpus]
    result = CliRunner().invoke(app, ["export", str(best["id"]), "-o", str(out), "--weights", *corpus, "--db", db])
    assert result.exit_code == 0, result.output
    individual = Repository(db).get_individual(best["id"])
    engine = compile_model(config.spec, individual.architecture()).eval()
    load_model(engine, str(out / WEIGHTS))
    tokens = torch.randint(300, (2, SPEC.seq_len))
    with torch.no_grad():
        torch.testing.assert_close(exported_outputs(out, tokens, tmp_path), engine(tokens)[0], rtol=0, atol=0)
    # a weights path the database names outside the campaign's own folder is never copied
    secret = tmp_path / "secret.safetensors"
    secret.write_bytes((out / WEIGHTS).read_bytes())
    with Repository(db).engine.begin() as connection:
        stored = json.loads(
            connection.exec_driver_sql("SELECT result_json FROM individuals WHERE id = ?", (best["id"],)).scalar()
        )
        connection.exec_driver_sql(
            "UPDATE individuals SET result_json = ? WHERE id = ?",
            (json.dumps({**stored, "weights": str(secret)}), best["id"]),
        )
    refused = CliRunner().invoke(
        app, ["export", str(best["id"]), "-o", str(tmp_path / "x"), "--weights", *corpus, "--db", db]
    )
    assert refused.exit_code == 2 and "not the campaign's own" in refused.output
    # nor a file that only has the campaign's path: it must be safetensors weights
    lookalike = tmp_path / "crafted" / Path(config.weights_dir).name / "real" / f"{best['id']}.safetensors"
    lookalike.parent.mkdir(parents=True)
    lookalike.write_text("not weights: any file a crafted database points at")
    with Repository(db).engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE individuals SET result_json = ? WHERE id = ?",
            (json.dumps({**stored, "weights": str(lookalike)}), best["id"]),
        )
    refused = CliRunner().invoke(
        app, ["export", str(best["id"]), "-o", str(tmp_path / "y"), "--weights", *corpus, "--db", db]
    )
    assert refused.exit_code == 2 and "not the campaign's own" in refused.output

    # what a user gets: the tokenizer, HF-style config that `programs validate` reads, a README
    # that says what the individual is, weights tagged for PyTorch, and text in, text out
    from safetensors import safe_open

    assert {p.name for p in out.iterdir()} == {
        "model.py",
        "config.json",
        "README.md",
        WEIGHTS,
        TOKENIZER,
        "tokenizer_config.json",
        "special_tokens_map.json",
        *HF_FILES,
    }
    with safe_open(str(out / WEIGHTS), "pt") as weights:
        assert weights.metadata()["format"] == "pt"
    validated = CliRunner().invoke(app, ["programs", "validate", str(out / "config.json")])
    assert validated.exit_code == 0 and validated.stdout.startswith("ok: "), validated.output
    readme = (out / "README.md").read_text()
    assert (
        readme.startswith(f"# real · individual {best['id']}\n") and "campaign real, from seed `transformer`" in readme
    )
    assert "Not confirmed" in readme and ("trained to the end of its budget" in readme or "stopped at hurdle" in readme)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    script = (
        "\n".join(line for line in readme.split("```python\n", 1)[1].split("```", 1)[0].splitlines())
        + """
assert loss.item() > 0 and len(tokenizer.decode(ids[0].tolist())) > 0
try:
    model(torch.zeros(1, model.seq_len + 1, dtype=torch.long))
except ValueError as error:
    assert "context" in str(error)
else:
    raise AssertionError("no error past the context")
import sys
assert not [m for m in sys.modules if m.split('.')[0] in ('primitives', 'evaluator', 'search', 'storage')]
"""
    )
    for name in ("model.py", "tokenizer.json", WEIGHTS):
        (outside / name).write_bytes((out / name).read_bytes())
    ran = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, '.')\n{script}"],
        cwd=outside,
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr
    prompt, generated = ran.stdout.split("    return", 1)  # the prompt (its last seq_len tokens), then new text
    assert prompt.endswith("():\n") and generated.strip()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(max_size=40), description=st.text(max_size=80), value=st.text(min_size=1, max_size=12))
def test_no_stored_string_can_leave_a_literal_of_the_generated_source(name, description, value):
    """Whatever a crafted database or file puts in the name, the description or a value's name,
    the generated model.py is the same statements with the text inside its docstring (or the
    program is refused before any source is written)."""
    import ast

    from primitives.validate import ProgramError

    base = seed("transformer", SPEC)
    expected = len(ast.parse(generate_source(SPEC, base)).body)
    layer = base.layers[0].model_copy(deep=True)
    layer.subprograms[0].body[0].out = value  # a value's name reaches the source as an identifier
    crafted = base.model_copy(update={"name": name, "description": description, "layers": [layer]})
    try:
        source = generate_source(SPEC, crafted)
    except ProgramError:
        return  # refused: nothing written
    tree = ast.parse(source)
    assert len(tree.body) == expected
    assert ast.get_docstring(tree, clean=False) == f"Generated by archevo from architecture {name!r}: {description}"


def test_a_name_that_is_not_plain_is_refused_where_programs_come_in():
    program = json.loads(seed("transformer", SPEC).to_json())
    for name in ('x"""\nimport os', "a\x1b[31mred", "", "x" * 101):
        with pytest.raises(ValueError, match="not a plain name"):
            parse_architecture(json.dumps({**program, "name": name}))
    assert parse_architecture(json.dumps({**program, "name": "my model 2.1"})).name == "my model 2.1"
