"""`lmforge compare labeling`: where the training labels come from, and what each source is worth.

One classification task (finetune/passages.py), its training passages labelled five ways, each
scored on the same held-out passages (whose labels are always the gold ones):

- gold: n passages, chosen at random (stratified), with their true labels — a person's budget of n;
- majority / label_model: no person at all — label.rules vote on every training passage and a
  majority vote or the Dawid-Skene model (label/model.py) decides; passages no rule covers are
  left out. Their budget is 0;
- pseudo: n gold passages, then the classifier trained on them labels the rest of the pool where
  it is at least `threshold` sure (label/select.py), and a second classifier trains on both;
- active: n/2 random gold passages, a classifier trained on them, then the n/2 passages it is
  least sure of (entropy, margin or least confidence) labelled too, and a classifier trained on n.

Label accuracy is measured against the gold labels of the passages each arm trained on.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from lmforge.compare.augmentation import f1_figure, f1_text
from lmforge.compare.output import markdown, write_table
from lmforge.compare.trainset import train_texts, with_train
from lmforge.config.load import config_over
from lmforge.config.schema import Config
from lmforge.console import console
from lmforge.errors import LmforgeError
from lmforge.finetune.base import Base, base_tokenizer
from lmforge.finetune.classify import predict, read_documents, run_finetune
from lmforge.finetune.passages import Split, Task, build_task, encode, subsample
from lmforge.finetune.pseudo import load_classifier
from lmforge.label.model import ABSTAIN, dawid_skene, majority_vote, tied
from lmforge.label.rules import apply_functions, from_rule
from lmforge.label.select import STRATEGIES, pseudo_labels, query
from lmforge.rundir import RunDir

NAME = "labeling"
COLUMNS = ["arm", "human labels", "train passages", "label accuracy", "test macro-F1 (95% CI)", "train s"]


class Pool:
    """The task's training passages as text with their gold labels, filled in on the first fine-tune."""

    def __init__(self, records: list[dict[str, Any]], cfg: Config) -> None:
        self.records, self.cfg = records, cfg
        self.texts: list[str] = []
        self.gold = np.zeros(0, dtype=np.int64)
        self.docs: list[str] = []
        self.labels: list[str] = []

    def fill(self, task: Task) -> None:
        if not self.texts:
            self.texts = train_texts(self.records, task, self.cfg.finetune)
            self.gold = task.splits["train"].y.copy()
            self.docs = list(task.splits["train"].docs)
            self.labels = list(task.labels)


def train_on(pool: Pool, pick: Sequence[int], labels: Sequence[int]) -> Any:
    """A task change: train on passages `pick` with `labels`."""
    def adjust(task: Task, tok: Tokenizer, prefix: list[int]) -> Task:
        pool.fill(task)
        if not pick:
            return task
        return with_train(task, [pool.texts[i] for i in pick], list(labels), [pool.docs[i] for i in pick], tok,
                          pool.cfg.finetune.max_tokens, prefix)
    return adjust


def pool_proba(base: Base, run: RunDir, cfg: Config, pool: Pool) -> np.ndarray:
    """Class probabilities of every pool passage from the classifier fine-tuned in `run`."""
    model = load_classifier(base, run, cfg, len(pool.labels))
    prefix = [model.backbone.cls_id] if getattr(getattr(model, "backbone", None), "bidirectional", False) else []
    x = encode(pool.texts, base_tokenizer(base), cfg.finetune.max_tokens, prefix)
    return predict(model, Split(x, pool.gold), dtype=cfg.train.dtype)


def rule_labels(pool: Pool, cfg: Config) -> dict[str, np.ndarray]:
    """Each pool passage's label by majority vote and by Dawid-Skene; ABSTAIN where no rule votes
    or the vote is tied."""
    unknown = sorted({r.label for r in cfg.label.rules} - set(pool.labels))
    if unknown:
        raise LmforgeError(f"label.rules vote {unknown}, which the task's labels {pool.labels} do not include",
                           "write rules that vote the task's labels")
    votes = apply_functions([{"id": str(i), "text": t} for i, t in enumerate(pool.texts)],
                            [from_rule(r) for r in cfg.label.rules], pool.labels)
    covered = (votes.matrix != ABSTAIN).any(1)
    k = len(pool.labels)
    out = {"majority": majority_vote(votes.matrix, k), "label_model": dawid_skene(votes.matrix, k)[0]}
    return {name: np.where(covered & ~tied(post), post.argmax(1), ABSTAIN) for name, post in out.items()}


def run_labeling(base: Base, out: RunDir, cfg: Config, budgets: list[int], threshold: float = 0.9,
                 strategy: str = "entropy") -> dict[str, Any]:
    """Every arm at every budget; the table, figure and cells in `out` (compare/output.py)."""
    if not cfg.label.rules:
        raise LmforgeError("compare labeling needs label.rules (the rules the majority vote and the label model "
                           "combine)", "give them in a config file; docs/labeling.md has rules for the edition task")
    if strategy not in STRATEGIES:
        raise LmforgeError(f"unknown strategy '{strategy}'", f"choose from: {', '.join(STRATEGIES)}")
    cfg = config_over(cfg, None, ["finetune.train_passages=null"])
    records = read_documents(out, cfg)
    pool = Pool(records, cfg)
    started = time.time()
    results: list[dict[str, Any]] = []

    def fit(name: str, budget: int, pick: Sequence[int], labels: Sequence[int], extra: dict[str, Any] | None = None
            ) -> RunDir:
        run = RunDir(out.root / f"b{budget}" / name)
        # a pick smaller than one batch (the active-learning seed at a small budget) trains in smaller batches
        arm_cfg = config_over(cfg, None, [f"train.batch_size={len(pick)}"]) if len(pick) < cfg.train.batch_size else cfg
        res = run_finetune(base, run, arm_cfg, show_progress=False, records=records, adjust=train_on(pool, pick, labels))
        right = [int(pool.gold[i] == lab) for i, lab in zip(pick, labels)]
        f1 = res["test"]["f1_macro"]
        results.append({"arm": name, "budget": budget, "train_passages": len(pick),
                        "label_accuracy": float(np.mean(right)) if right else None,
                        "f1_macro": f1["value"], "f1_ci95": f1["ci95"], "train_seconds": res["train_seconds"],
                        **(extra or {})})
        console.print(f"labeling: {name} (budget {budget}): label accuracy "
                      f"{results[-1]['label_accuracy']}, test macro-F1 {f1['value']:.3f}")
        return run

    seed = cfg.finetune.seed
    pool.fill(build_task(records, cfg.finetune, base_tokenizer(base), cfg.finetune.max_tokens))
    everything = list(range(len(pool.texts)))
    for name, lab in rule_labels(pool, cfg).items():
        pick = [i for i in everything if lab[i] != ABSTAIN]
        fit(name, 0, pick, [int(lab[i]) for i in pick], {"coverage": len(pick) / len(everything)})
    for budget in budgets:
        gold_pick = subsample(everything, pool.gold, budget, seed)
        gold_run = fit("gold", budget, gold_pick, [int(pool.gold[i]) for i in gold_pick])
        # pseudo: the gold classifier labels the rest of the pool where it is sure
        proba = pool_proba(base, gold_run, cfg, pool)
        rest = [i for i in everything if i not in set(gold_pick)]
        idx, cls, _ = pseudo_labels(proba[rest], threshold)
        pseudo = [rest[i] for i in idx.tolist()]
        fit("pseudo", budget, gold_pick + pseudo, [int(pool.gold[i]) for i in gold_pick] + cls.tolist(),
            {"pseudo_labels": len(pseudo), "pseudo_accuracy": float(np.mean([pool.gold[i] == c for i, c in
                                                                          zip(pseudo, cls.tolist())])) if pseudo else None})
        # active: half at random, then the half the first classifier is least sure of
        seed_pick = subsample(everything, pool.gold, max(2, budget // 2), seed)
        seed_run = fit("active-seed", max(2, budget // 2), seed_pick, [int(pool.gold[i]) for i in seed_pick])
        asked = query(pool_proba(base, seed_run, cfg, pool), strategy, budget - len(seed_pick), exclude=seed_pick)
        pick = seed_pick + asked
        fit(f"active-{strategy}", budget, pick, [int(pool.gold[i]) for i in pick])
    record = {"labels": pool.labels, "label_field": cfg.finetune.label_field, "budgets": budgets,
              "pool": len(pool.texts), "threshold": threshold, "strategy": strategy, "steps": cfg.train.steps,
              "rules": [r.name for r in cfg.label.rules], "wall_s": round(time.time() - started, 1), "results": results}
    rows = [[r["arm"], r["budget"], r["train_passages"],
             "-" if r["label_accuracy"] is None else f"{r['label_accuracy']:.3f}", f1_text(r),
             f"{r['train_seconds']:.0f}"] for r in results]
    cells = [{"arm": f"{r['arm']}-b{r['budget']}", "seed": seed, "config": cfg.model_dump(mode="json"),
              "command": shlex.join(["lmforge", "compare", "labeling", str(base.path), str(out.config), "--budgets",
                                     str(max(2, r["budget"])), "--threshold", str(threshold), "--strategy", strategy,
                                     "-o", str(out.root)]), "values": r} for r in results]
    notes = [(f"a pool of {len(pool.texts)} training passages labelled by each arm ({cfg.finetune.label_field}); "
             f"label accuracy against the gold labels of the passages each arm trained on; test macro-F1 on the same "
             f"held-out passages with gold labels; rules: {', '.join(record['rules'])}")]
    labelled = [{**r, "arm": f"{r['arm']} ({r['budget']})"} for r in results]  # one bar per row of the table
    write_table(out.root, NAME, "labeling: gold vs rules vs label model vs pseudo-labels vs active learning",
                COLUMNS, rows, cells, lambda p: f1_figure(labelled, "arm", None, p), notes, record)
    return {"table": markdown(COLUMNS, rows), **record}
