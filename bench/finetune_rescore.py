"""Score a fine-tuned classifier again on its own held-out test documents, with the passages cut
another way: `--cap N` evenly spaced passages per document (the fine-tune's
finetune.max_passages_per_doc), or `--cap none` for every passage. The split is the fine-tune's
own (same records, seed and config), so only the sample of test passages changes: this shows how
much a figure depends on how many passages each held-out document contributes.

Usage: python bench/finetune_rescore.py RUN --cap 60|300|none
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from lmforge.evaluate.classification import classification_report
from lmforge.finetune.base import base_tokenizer
from lmforge.finetune.classify import predict
from lmforge.finetune.passages import build_task
from lmforge.finetune.pseudo import finetuned, load_classifier
from lmforge.rundir import read_jsonl_gz


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--cap", default="none")
    a = ap.parse_args()
    torch.set_num_threads(1)
    base, run, cfg, labels = finetuned(a.run)
    model = load_classifier(base, run, cfg, len(labels))
    records = list(read_jsonl_gz(run.split_file("train")))
    ft = cfg.finetune.model_copy(update={"max_passages_per_doc": None if a.cap == "none" else int(a.cap)})
    task = build_task(records, ft, base_tokenizer(base), ft.max_tokens)
    test = task.splits["test"]
    proba = predict(model, test, dtype=cfg.train.dtype)
    report = classification_report([labels[i] for i in test.y], [labels[i] for i in proba.argmax(1)], proba,
                                   labels=labels, rounds=cfg.eval.bootstrap_rounds, seed=cfg.eval.seed)
    wrong: dict[str, int] = {}
    for doc, y, p in zip(test.docs, test.y, proba.argmax(1)):
        if y != p:
            wrong[doc] = wrong.get(doc, 0) + 1
    print(json.dumps({"run": str(a.run), "cap": a.cap, "test_passages": len(test.y),
                      "f1_macro": report["f1_macro"], "mcc": report["mcc"]["value"],
                      "confusion": report["confusion_matrix"], "wrong_by_document": wrong,
                      "passages_by_document": {d: test.docs.count(d) for d in dict.fromkeys(test.docs)}}))


if __name__ == "__main__":
    main()
