"""archevo from Python: train two seeds, run a small campaign, confirm its best, export it.

    .venv/bin/python examples/quickstart.py [--db sqlite:///quickstart.db] [--out quickstart_export]

Small on purpose, so that it runs in about a minute on a laptop (and in CI): a 300-token BPE
over the source of Python's json package, a 2-layer model of width 32, budgets of 4,000
tokens. It shows the API, not a result: for numbers that mean something use the calibrated
``cpu`` preset (``archevo.get_preset("cpu")``) and ``experiments/calibration``. Rerunning it
resumes the campaign and skips recorded confirmation runs.
"""

from __future__ import annotations

import argparse
import sysconfig

import torch

import archevo

CORPUS = f"text:{sysconfig.get_paths()['stdlib']}/json/*.py"
SPEC = archevo.ModelSpec(vocab_size=300, d_model=32, n_layers=2, n_heads=2, seq_len=32)
BUDGET = "4000tokens"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite:///quickstart.db", help="SQLAlchemy URL of the results database")
    parser.add_argument("--out", default="quickstart_export", help="folder for the exported model")
    args = parser.parse_args()

    # 1. one program, trained under a budget
    data = archevo.load_tokenized(CORPUS, SPEC.vocab_size, max_train_tokens=20_000)
    recipe = archevo.TrainConfig(batch_size=4, threads=1)
    for name in ("transformer", "primer_ez"):
        result = archevo.train(SPEC, archevo.seed(name, SPEC), data, BUDGET, recipe)
        print(
            f"{name}: validation loss {result.val_loss:.3f}, {result.tokens:,} tokens, "
            f"{result.flops_per_token / 1e3:.0f}k training FLOPs/token, {result.parameters:,} parameters"
        )

    # 2. a campaign: aging evolution (Primer's strategy) from the Transformer, every result in the database
    repo = archevo.Repository(args.db)
    config = archevo.CampaignConfig(
        name="quickstart",
        backend="inprocess",
        max_evals=6,
        population=4,
        sample=2,
        budget=BUDGET,
        strategy="aging",
        hurdles=0,
        corpus=CORPUS,
        vocab_size=SPEC.vocab_size,
        max_train_tokens=20_000,
        spec=SPEC,
        train=recipe,
    )
    archevo.build_campaign(config, repo).run()
    campaign = repo.get_campaign("quickstart")
    top = repo.top(campaign.id, 3)
    for individual in top:
        print(f"individual {individual.id} ({individual.mutation or 'seed'}): loss {individual.val_loss:.3f}")

    # 3. retrain the best and its seed at two fresh training seeds: Primer's speedup, paired
    archevo.confirm(repo, config, k=1, seeds=2, budget=BUDGET)
    for individual_id, confirmed in archevo.summarize(repo, campaign.id).items():
        print(
            f"confirmed {individual_id}: loss {confirmed.loss_mean:.3f} ± {confirmed.loss_std:.3f}, "
            f"wins {confirmed.wins}/{confirmed.paired}"
        )

    # 4. export the best as standalone PyTorch and run it
    directory = archevo.export(args.out, SPEC, top[0].architecture())
    model = archevo.compile_model(SPEC, top[0].architecture()).eval()
    prompt = torch.tensor([data.tokenizer.encode("def loads(s):").ids])
    print(
        f"exported to {directory}; a random-weight sample: {data.tokenizer.decode(model.generate(prompt, 8)[0].tolist())!r}"
    )


if __name__ == "__main__":
    main()
