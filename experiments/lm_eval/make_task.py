"""Write an lm-evaluation-harness task over a corpus's held-out text, so that the harness's
``hf`` backend can evaluate an archevo export offline (no data set is downloaded).

The task is a rolling log-likelihood over documents (as the harness's wikitext task), with its
word/byte perplexity and bits per byte; the documents are the first ``--docs`` of the corpus's
validation split, the text archevo's own validation loss is measured on.

    .venv/bin/python experiments/lm_eval/make_task.py --corpus default --out /tmp/archevo_task
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from evaluator.corpora import open_corpus

TASK = """task: archevo_heldout
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
should_decontaminate: false
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
metadata:
  corpus: {corpus}
  documents: {documents}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="default", help="default | lm1b:PATH | text:GLOB")
    parser.add_argument("--out", type=Path, required=True, help="the task folder (lm_eval --include_path)")
    parser.add_argument("--docs", type=int, default=500, help="held-out documents in the task")
    args = parser.parse_args()
    corpus = open_corpus(args.corpus)
    documents = [text for text in itertools.islice(corpus.iter_texts("validation"), args.docs) if text.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    data = (args.out / "heldout.jsonl").resolve()
    data.write_text("".join(json.dumps({"text": text}) + "\n" for text in documents))
    (args.out / "archevo_heldout.yaml").write_text(
        TASK.format(data=data, corpus=json.dumps(args.corpus), documents=len(documents))
    )
    print(f"wrote task archevo_heldout ({len(documents)} documents of {corpus.name}) to {args.out}")


if __name__ == "__main__":
    main()
