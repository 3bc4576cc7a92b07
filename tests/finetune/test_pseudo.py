"""A fine-tuned classifier labels another run's documents: pseudo-labels above the threshold
with source model and confidence, below a person's answer; active learning queues the least
sure documents first for the label session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.config.load import load_config
from lmforge.finetune.base import resolve_base
from lmforge.finetune.classify import finetune_config, run_finetune
from lmforge.finetune.pseudo import document_proba, run_active, run_pseudo
from lmforge.label.session import Session, label_keys
from lmforge.label.store import Label, append, log_path, model_labels
from lmforge.pipeline import run_stage, write_config
from lmforge.rundir import RunDir, read_jsonl, read_jsonl_gz
from tests.helpers.documents import write_run
from tests.helpers.finetune import finetune_keys, make_base, write_docs


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    tmp = tmp_path_factory.mktemp("pseudo")
    base = resolve_base(make_base(tmp / "base").root)
    docs = write_docs(tmp / "docs.jsonl")
    cfg = finetune_config(base, None, finetune_keys(docs, "train.steps=30", "train.lr=3e-3"))
    run_finetune(base, RunDir(tmp / "ft"), cfg, show_progress=False)
    unseen = [{**r, "split": "train"} for r in read_jsonl(write_docs(tmp / "new.jsonl", per_class=5, seed=7))]
    return tmp / "ft", unseen


def test_pseudo_labels_keep_the_sure_ones_with_their_source(tuned: tuple[Path, list[dict]], tmp_path: Path) -> None:
    model, docs = tuned
    run = write_run(tmp_path / "r", {"train": docs})
    labels, proba = document_proba(model, docs)
    assert labels == ["x", "y"] and proba.shape == (10, 2)
    gold = [labels.index(d["author"]) for d in docs]
    assert (proba.argmax(1) == gold).mean() >= 0.8  # the classifier learned the letters
    threshold = float(sorted(proba.max(1))[4])  # the surer half
    out = run_pseudo(run, model, threshold)
    got = model_labels(run)
    assert out["labelled"] == len(got) == int((proba.max(1) >= threshold).sum()) >= 5
    lab = next(iter(got.values()))
    assert lab.source == "model" and lab.by == str(model.resolve()) and threshold <= lab.confidence <= 1.0
    # a person's answer wins over the model's; the model's over the rules'
    rid = next(iter(got))
    other = "y" if got[rid].label == "x" else "x"
    append(log_path(run, "ana"), Label(rid, other, "human", "ana").as_dict())
    rule = "label.rules=[{name: any, kind: length, label: x, min_chars: 0}]"
    cfg = load_config(None, "smoke", ["label.labels=[x,y]", rule])
    write_config(run, cfg)
    run_stage(run, cfg, "label")
    final = {r["id"]: r for r in read_jsonl_gz(run.root / "labels" / "train.jsonl.gz")}
    assert final[rid]["label"] == other and final[rid]["label_meta"]["source"] == "human"
    sources = {r["label_meta"]["source"] for r in final.values()}
    assert sources == {"human", "model", "rule"}


def test_active_learning_queues_the_least_sure_first(tuned: tuple[Path, list[dict]], tmp_path: Path) -> None:
    model, docs = tuned
    run = write_run(tmp_path / "r", {"train": docs})
    _, proba = document_proba(model, docs)
    queue = run_active(run, model, "margin", 3)
    unsure = [docs[i]["id"] for i in abs(proba[:, 0] - proba[:, 1]).argsort()[:3]]
    assert queue["ids"] == unsure
    assert json.loads((run.root / "labels" / "queue.json").read_text())["ids"] == unsure
    session = Session(docs, label_keys(["x", "y"]), log_path(run, "ana"), "ana", queue["ids"])
    assert session.current()["id"] == unsure[0]
