"""What a base carries for a classification task before any fine-tuning: a linear probe
(scikit-learn logistic regression, balanced class weights, standardised features) on the frozen
pooled vectors of the pretrained base and of the same shape freshly initialised, on the
training passages `compare transfer` uses at each size, scored on the same test passages.

If the pretrained vectors probe no better than random ones, a pretrained start has little to
give a small training set (the probing method of Alain & Bengio 2016, "Understanding
intermediate layers using linear classifier probes").

Usage: python bench/transfer_probe.py BASE OUT [--encoder RUN] [--sizes 32,256] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from default_run import cpu_line

from lmforge.finetune.base import base_tokenizer, load_backbone, resolve_base
from lmforge.finetune.classify import finetune_config, read_documents
from lmforge.finetune.passages import build_task, subsample
from lmforge.models.classifier import SequenceClassifier
from lmforge.rundir import RunDir


@torch.no_grad()
def features(model: SequenceClassifier, x: np.ndarray, batch: int = 64) -> np.ndarray:
    model.eval()
    return np.concatenate([model.pooled(torch.from_numpy(x[i: i + batch])).numpy() for i in range(0, len(x), batch)])


def probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, matthews_corrcoef
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))
    clf.fit(train_x, train_y)
    pred = clf.predict(test_x)
    return {"f1_macro": round(float(f1_score(test_y, pred, average="macro")), 3),
            "mcc": round(float(matthews_corrcoef(test_y, pred)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("base", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--encoder", type=Path)
    ap.add_argument("--sizes", default="32,256")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    torch.set_num_threads(1)
    print(cpu_line({}), flush=True)
    sizes = [int(s) for s in a.sizes.split(",")]
    starts = [("decoder", resolve_base(a.base), ["last", "mean"])]
    if a.encoder:
        starts.append(("encoder", resolve_base(a.encoder), ["cls", "mean"]))
    base = starts[0][1]
    cfg = finetune_config(base, None, ["monitor.console=none", *a.overrides])
    records = read_documents(RunDir(a.out), cfg)
    rows = []
    for kind, start, poolings in starts:
        tok = base_tokenizer(start)
        model_cfg = start.model
        for init in ("pretrained", "random"):
            backbone = load_backbone(start, model_cfg, tok, init == "pretrained", cfg.train.seed)
            prefix = [backbone.cls_id] if getattr(backbone, "bidirectional", False) else []
            task = build_task(records, cfg.finetune, tok, cfg.finetune.max_tokens, prefix)
            tr, te = task.splits["train"], task.splits["test"]
            for pooling in poolings:
                model = SequenceClassifier(backbone, len(task.labels), pooling)
                f_tr, f_te = features(model, tr.x), features(model, te.x)
                for size in sizes:
                    keep = subsample(list(range(len(tr.y))), tr.y, size, cfg.finetune.seed)
                    res = probe(f_tr[keep], tr.y[keep], f_te, te.y)
                    row = {"base": kind, "init": init, "pooling": pooling, "train_passages": len(keep),
                           "test_passages": len(te.y), **res}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    (a.out / "probe.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
