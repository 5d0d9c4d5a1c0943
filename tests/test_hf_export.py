"""A find where researchers work: an export that transformers loads (remote code), the campaign's
top-k weights kept without asking, and export folders that never mix two models."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cli.main import app
from evaluator.export import WEIGHTS
from primitives.program import ModelSpec
from search.campaign import build_campaign
from search.config import CampaignConfig
from storage import Repository

from tests.configs import CORPUS, make_config

SPEC = ModelSpec(vocab_size=300, d_model=32, n_layers=2, n_heads=2, seq_len=12)
KEEP = CampaignConfig.model_fields["keep_weights"].default  # what a user who passes nothing gets

# In a fresh interpreter outside the repository: transformers loads the folder by itself, the
# loss equals the plain-torch model's, the pipeline generates, save_pretrained round-trips.
HF_CHECK = """
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
folder, saved = sys.argv[1], sys.argv[2]
model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
sys.path.insert(0, folder)
import model as plain
archevo = [m for m in sys.modules if m.split('.')[0] in ('primitives', 'evaluator', 'search', 'storage', 'archevo')]
net = plain.load_model(folder + '/model.safetensors').eval()
ids = torch.tensor([tokenizer('import json; print(json.dumps({"a": 1}))')['input_ids'][:12]])
with torch.no_grad():
    hf_loss = model(ids, labels=ids).loss.item()
    plain_loss = net(ids[:, :-1], ids[:, 1:])[1].item()
generate = pipeline('text-generation', model=folder, trust_remote_code=True)
text = generate('import json', max_new_tokens=30, do_sample=True, top_k=5)[0]['generated_text']
model.save_pretrained(saved)
again = AutoModelForCausalLM.from_pretrained(saved, trust_remote_code=True).eval()
with torch.no_grad():
    saved_loss = again(ids, labels=ids).loss.item()
    stopped = net.generate(ids[:, :3], 40, temperature=1.0, eos_token_id=tokenizer.eos_token_id)
# the harness's log-likelihood path: a right-padded batch scores each row as it scores alone
batch = tokenizer(['import', 'import json; print(json.dumps(1))'], padding=True, truncation=True, return_tensors='pt')
n = int(batch['attention_mask'][0].sum())
assert n < batch['input_ids'].shape[1]
with torch.no_grad():
    padded = model(**batch).logits[0, :n]
    alone = model(batch['input_ids'][:1, :n]).logits[0]
left = {k: v.flip(1) for k, v in batch.items()}
try:
    model(**left)
    refused = ''
except ValueError as error:
    refused = str(error)
print(json.dumps({
    'padding_gap': (padded - alone).abs().max().item(), 'left_padding': refused,
    'hf_loss': hf_loss, 'plain_loss': plain_loss, 'saved_loss': saved_loss, 'text': text,
    'eos': tokenizer.eos_token, 'pad': tokenizer.pad_token, 'max_length': tokenizer.model_max_length,
    'archevo_modules': archevo, 'stopped': stopped.tolist(), 'eos_id': tokenizer.eos_token_id,
}))
"""


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """A real 30-individual campaign with the defaults for weights (no flag), recording how many
    weight files exist each time a candidate is sent out (after the last result was told)."""
    tmp = tmp_path_factory.mktemp("hf")
    os.environ["ARCHEVO_CACHE_DIR"] = str(tmp / "cache")
    db = f"sqlite:///{tmp / 'c.db'}"
    config = make_config(
        "real",
        max_evals=30,
        budget="3000tokens",
        max_train_tokens=20_000,
        weights_dir=str(tmp / "weights"),
        spec=SPEC,
    )
    config.train.batch_size = 4
    folder = tmp / "weights" / "real"
    counts: list[int] = []

    def on_event(event):
        if event["kind"] == "dispatched":
            counts.append(len(list(folder.glob("*.safetensors"))))

    build_campaign(config, Repository(db), on_event=on_event).run()
    counts.append(len(list(folder.glob("*.safetensors"))))
    yield tmp, db, folder, counts
    os.environ.pop("ARCHEVO_CACHE_DIR", None)


@pytest.mark.integration
def test_kept_weights_stay_within_the_top_k(campaign):
    tmp, db, folder, counts = campaign
    top = json.loads(CliRunner().invoke(app, ["top", "real", "-k", str(KEEP), "--json", "--db", db]).stdout)
    assert KEEP == 10 and len(top) == KEEP
    assert max(counts) <= KEEP and counts[-1] == KEEP
    assert {int(p.stem) for p in folder.glob("*.safetensors")} == {row["id"] for row in top}


@pytest.mark.integration
def test_an_export_loads_in_transformers_and_matches_plain_torch(campaign):
    pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[hf]')")
    tmp, db, _, _ = campaign
    best = json.loads(CliRunner().invoke(app, ["top", "real", "-k", "1", "--json", "--db", db]).stdout)[0]
    out = tmp / "exported"
    result = CliRunner().invoke(app, ["export", str(best["id"]), "-o", str(out), "--corpus", CORPUS, "--db", db])
    assert result.exit_code == 0, result.output
    assert {"configuration_archevo.py", "modeling_archevo.py", "tokenizer_config.json", WEIGHTS} <= {
        p.name for p in out.iterdir()
    }
    env = {**os.environ, "HF_HOME": str(tmp / "hf-home"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, "-c", HF_CHECK, str(out), str(tmp / "saved")],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    checked = json.loads(run.stdout.strip().splitlines()[-1])
    assert abs(checked["hf_loss"] - checked["plain_loss"]) <= 1e-5
    assert abs(checked["saved_loss"] - checked["hf_loss"]) <= 1e-5
    assert checked["text"].startswith("import json") and len(checked["text"]) > len("import json")
    assert (checked["eos"], checked["pad"], checked["max_length"]) == ("<|endoftext|>", "<|endoftext|>", SPEC.seq_len)
    assert checked["archevo_modules"] == []
    assert checked["padding_gap"] <= 1e-5 and "left padding" in checked["left_padding"]
    for row in checked["stopped"]:  # after its end-of-text token a row only repeats it
        generated = row[3:]
        if checked["eos_id"] in generated:
            assert set(generated[generated.index(checked["eos_id"]) :]) == {checked["eos_id"]}


@pytest.mark.integration
def test_export_refuses_a_non_empty_folder_and_force_replaces_it_whole(campaign):
    tmp, db, _, _ = campaign
    top = json.loads(CliRunner().invoke(app, ["top", "real", "-k", "2", "--json", "--db", db]).stdout)
    out = tmp / "twice"
    first = ["export", str(top[0]["id"]), "-o", str(out), "--corpus", CORPUS, "--db", db]
    assert CliRunner().invoke(app, first).exit_code == 0
    assert (out / WEIGHTS).exists()
    second = ["export", str(top[1]["id"]), "-o", str(out), "--no-weights", "--corpus", CORPUS, "--db", db]
    refused = CliRunner().invoke(app, second)
    assert refused.exit_code == 2 and "not empty" in refused.output and "--force" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    assert CliRunner().invoke(app, [*second, "--force"]).exit_code == 0
    assert not (out / WEIGHTS).exists()  # no stale file of the first model
    assert json.loads((out / "config.json").read_text())["archevo"]["metadata"]["individual"] == top[1]["id"]
    assert not [p for p in tmp.iterdir() if p.name.startswith(".twice.")]  # no staging folder left
