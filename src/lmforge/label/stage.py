"""The label stage: the rules (and the user's lf_ functions) vote on every document, the label
model turns the votes into a label with its probability, and human answers (the label session,
an import) win over both. Writes labels/{split}.jsonl.gz — the documents with the chosen label in
`label.field` and its provenance in `label_meta` (no label where no rule voted or the vote is
tied) — and labels/summary.json (per-function
coverage, overlap, conflict, failures; the label model's priors and confusion matrices).
Order of precedence: a person's answer, then a model's pseudo-label, then the rules.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.config.schema import LabelConfig
from lmforge.console import console, show
from lmforge.errors import LmforgeError
from lmforge.label.model import dawid_skene, majority_vote, tied
from lmforge.label.rules import Function, Votes, apply_functions, from_module, from_rule, function_stats
from lmforge.label.store import FOLDER, Label, human_labels, model_labels
from lmforge.rundir import RunDir, atomic_write_json, read_jsonl_gz, write_jsonl_gz

SPLITS = ("train", "val", "test")


def output(run: RunDir) -> Path:
    return run.root / FOLDER / "train.jsonl.gz"


def class_names(cfg: LabelConfig) -> list[str]:
    """The classes: label.labels, else those the rules vote, in first-seen order."""
    names = list(cfg.labels) or list(dict.fromkeys(r.label for r in cfg.rules))
    if len(names) < 2:
        raise LmforgeError(f"label: {len(names)} class(es) known ({names}); a label needs at least two",
                           "list them in label.labels, e.g. label.labels=[shakespeare,milton]")
    unknown = sorted({r.label for r in cfg.rules} - set(names))
    if unknown:
        raise LmforgeError(f"label.rules vote {unknown}, which label.labels does not list", "add them to label.labels")
    return names


def combine(votes: Votes, model: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Posteriors (n, k) and what the label model learned."""
    k = len(votes.labels)
    if model == "majority":
        return majority_vote(votes.matrix, k), {"model": "majority"}
    post, conf, priors = dawid_skene(votes.matrix, k)
    return post, {"model": "dawid_skene", "priors": dict(zip(votes.labels, priors.round(4).tolist())),
                  "confusion": {f: conf[j].round(4).tolist() for j, f in enumerate(votes.functions)}}


def choose(rec: dict[str, Any], post: np.ndarray, covered: bool, votes: Votes, cfg: LabelConfig,
           human: dict[str, Label], model: str, stamp: str) -> dict[str, Any]:
    """The record with its label and provenance: a human answer, else a model's pseudo-label,
    else the label model's vote."""
    rid = str(rec.get("id"))
    out = {k: v for k, v in rec.items() if k not in (cfg.field, "label_meta")}
    if rid in human:
        lab = human[rid]
        out[cfg.field] = lab.label
        out["label_meta"] = {"source": lab.source, "by": lab.by, "at": lab.at, "confidence": lab.confidence}
    elif covered and float(post.max()) >= cfg.min_confidence:
        out[cfg.field] = votes.labels[int(post.argmax())]
        out["label_meta"] = {"source": "rule", "by": model, "at": stamp, "confidence": round(float(post.max()), 4)}
    return out


def run_label(run: RunDir, cfg: LabelConfig, functions: Path | None = None) -> dict[str, Any]:
    """Label every split; the stage's summary counts labels per source."""
    names = class_names(cfg)
    fns: list[Function] = [from_rule(r) for r in cfg.rules] + (from_module(functions) if functions else [])
    docs = {s: list(read_jsonl_gz(run.require(run.documents(s, before="label"), "data"))) for s in SPLITS
            if run.documents(s, before="label").is_file()}
    records = [r for s in docs for r in docs[s]]
    votes = apply_functions(records, fns, names)
    for err in votes.errors[:10]:
        show(("label", "yellow"), f": {err['function']} on record {err['record']}: {err['error']}")
    if len(votes.errors) > 10:
        show(("label", "yellow"), f": {len(votes.errors) - 10} more failures in labels/summary.json")
    post, learned = combine(votes, cfg.model)
    covered = (votes.matrix != -1).any(1) & ~tied(post)  # a tied vote decides nothing
    human = {**model_labels(run), **human_labels(run)}  # a person's answer wins over a model's
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    (run.root / FOLDER).mkdir(parents=True, exist_ok=True)
    counts = {"human": 0, "model": 0, "rule": 0, "none": 0}
    i = 0
    for split, recs in docs.items():
        out = []
        for rec in recs:
            labelled = choose(rec, post[i], bool(covered[i]), votes, cfg, human, cfg.model, stamp)
            counts[labelled.get("label_meta", {}).get("source", "none")] += 1
            out.append(labelled)
            i += 1
        write_jsonl_gz(run.root / FOLDER / f"{split}.jsonl.gz", out)
    summary = {"labels": names, "field": cfg.field, "records": len(records), "by_source": counts,
               "functions": function_stats(votes), "errors": votes.errors, **learned}
    atomic_write_json(run.root / FOLDER / "summary.json", summary)
    console.print(f"label: {len(records)} records: {counts['human']} by people, {counts['model']} by models, {counts['rule']} by rules, "
                  f"{counts['none']} without a label; {len(votes.errors)} function failures")
    return {k: summary[k] for k in ("labels", "records", "by_source")} | {"errors": len(votes.errors)}
