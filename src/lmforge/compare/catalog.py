"""The course's fifteen topics and the comparison behind each: one list that `lmforge compare
--list` prints and the course book's index follows, so every table and figure has a number."""

from __future__ import annotations

import difflib
from typing import NamedTuple


class Topic(NamedTuple):
    number: int
    subject: str
    command: str  # the `lmforge compare NAME` (or other command) that measures it; "" when none yet
    measures: str


TOPICS: tuple[Topic, ...] = (
    Topic(1, "the training flow", "run", "every stage of one run: inputs, outputs, time, key settings "
          "(the run report's Stages table)"),
    Topic(2, "data cleaning", "cleaning", "none / exact / near dedup, quality presets, PII masking, missing-value "
          "rules on a corpus with labelled defects: kept, rejected, left, lost, held-out bits per byte"),
    Topic(3, "augmentation", "augmentation", "each augmentation operation's effect on a classifier (and "
          "`compare labeling`)"),
    Topic(4, "architectures", "architectures", "GPT, LLaMA, LSTM, GRU, gated CNN at equal size: bits per byte, "
          "tokens/s, memory"),
    Topic(5, "initialization", "init", "init schemes: signal at init, loss and gradient norm early in training"),
    Topic(6, "training configuration", "config", "batch size, LR, optimizer, schedule one at a time: loss, "
          "bits per byte, tokens/s, peak memory"),
    Topic(7, "hyperparameter search", "search", "grid vs random vs TPE vs TPE with pruning: best loss per compute"),
    Topic(8, "monitoring", "monitoring", "each metrics sink (console, JSONL, TensorBoard, W&B offline, MLflow, "
          "statistics): what it shows, overhead per step, files written"),
    Topic(9, "live adjustment", "adjustment", "fixed LR, step decay, cosine, cyclical, plateau, early stop, a live "
          "ctl change on one budget: final loss, steps saved"),
    Topic(10, "evaluation metrics", "metrics", "the same predictions under accuracy, P/R/F1, MCC, perplexity, "
          "bits per byte: where they disagree"),
    Topic(11, "validation and test splits", "splits", "holdout vs k-fold cross-validation: estimate and spread"),
    Topic(12, "tuning", "tuning", "one tuning change at a time: validation loss and train-validation gap"),
    Topic(13, "retraining", "continual", "continual training A then B: forgetting, gain, cost (and "
          "`compare transfer`)"),
    Topic(14, "common problems", "problems", "each training problem's measured symptoms; detection precision, "
          "recall and steps to detection"),
    Topic(15, "solutions", "problems", "each remedy's measured repair success, against a random remedy"),
)
OTHER_COMPARISONS = {"tokenizers": "BPE, WordPiece, Unigram, byte and char tokenizers: bytes per token, "
                     "bits per byte",
                     "transfer": "retraining (13): scratch vs pretrained vs frozen-k vs LoRA fine-tuning by "
                     "training-set size",
                     "eval": "two runs on the same held-out text: paired bootstrap and McNemar",
                     "labeling": "augmentation (3): gold vs majority vote vs label model vs pseudo-labels vs "
                     "active learning, label accuracy and macro-F1 per labeling budget"}

# comparisons beside the numbering that belong to a topic: the course book lists them under it (3b, 13b)
PART_OF = {"labeling": 3, "transfer": 13}


def listing() -> str:
    """The course topics with the command behind each, then comparisons outside the numbering."""
    lines = [f"{'#':>2}  {'subject':<28} {'command':<34} measures"]
    for t in TOPICS:
        cmd = ("lmforge run" if t.command == "run" else f"lmforge compare {t.command}") if t.command else "(not yet)"
        lines.append(f"{t.number:>2}  {t.subject:<28} {cmd:<34} {t.measures}")
    lines += [f"    {'(beside the course)':<28} {'lmforge compare ' + name:<34} {what}"
              for name, what in OTHER_COMPARISONS.items()]
    return "\n".join(lines)


def closest(name: str, known: list[str]) -> str | None:
    """The comparison a mistyped name most likely meant."""
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return match[0] if match else None
