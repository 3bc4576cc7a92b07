"""Multiple-choice tasks scored by log-likelihood, with lm-evaluation-harness semantics.

For each item the model scores every choice as a continuation of the context; the summed
log-probability of the choice's tokens is its log-likelihood. As in EleutherAI's
lm-evaluation-harness:
- `acc` picks the choice with the highest log-likelihood;
- `acc_norm` divides each log-likelihood by the choice's length in characters first
  (`completion_len = len(choice)`), which removes the bias towards short choices;
- the continuation is `delimiter + choice` (the harness's target_delimiter, " " by default);
  trailing whitespace of the context moves into the continuation, the pair is encoded whole and
  the continuation's tokens are what follows the context's own encoding (its `_encode_pair`);
- an input longer than the model's window is cut on the left.

Task files are JSONL, one item a line: {"context": str, "choices": [str, ...], "gold": int}
with optional "id" and "delimiter". The built-in `next_line` task is made from held-out text.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

from lmforge.console import Ticker
from lmforge.errors import LmforgeError
from lmforge.evaluate.classification import classification_report
from lmforge.evaluate.stats import DEFAULT_ROUNDS, ratio_interval
from lmforge.runtime import autocast

BUILTIN_TASKS = ("next_line",)
# the per-task numbers a hyperparameter search can optimise (both: higher is better)
TASK_METRICS = ("acc", "acc_norm")
DEFAULT_DELIMITER = " "  # lm-evaluation-harness's default target_delimiter


@dataclass(frozen=True)
class MCItem:
    """One multiple-choice question."""

    context: str
    choices: list[str]
    gold: int
    delimiter: str = DEFAULT_DELIMITER
    id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------ task files


def _bad(path: Path, line: int, key: str, what: str, hint: str) -> LmforgeError:
    return LmforgeError(f"{path}:{line}: key '{key}': {what}", hint)


def parse_item(rec: Any, path: Path, line: int) -> MCItem:
    """Validate one JSONL record; every problem names the file, line and key."""
    fmt = 'each line must be {"context": "...", "choices": ["...", "..."], "gold": 0}'
    if not isinstance(rec, dict):
        raise LmforgeError(f"{path}:{line}: expected a JSON object, got {type(rec).__name__}", fmt)
    for key in ("context", "choices", "gold"):
        if key not in rec:
            raise _bad(path, line, key, "missing", fmt)
    context, choices, gold = rec["context"], rec["choices"], rec["gold"]
    if not isinstance(context, str):
        raise _bad(path, line, "context", f"must be a string, got {type(context).__name__}", fmt)
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
        raise _bad(path, line, "choices", "must be a list of at least two non-empty strings", fmt)
    if isinstance(gold, bool) or not isinstance(gold, int):
        raise _bad(path, line, "gold", f"must be an integer index into choices, got {gold!r}", fmt)
    if not 0 <= gold < len(choices):
        raise _bad(path, line, "gold", f"index {gold} is out of range for {len(choices)} choices",
                   f"gold counts from 0, so it must be between 0 and {len(choices) - 1}")
    delimiter = rec.get("delimiter", DEFAULT_DELIMITER)
    if not isinstance(delimiter, str):
        raise _bad(path, line, "delimiter", "must be a string", fmt)
    return MCItem(context, choices, gold, delimiter, str(rec.get("id", f"{path.name}:{line}")))


def task_names(specs: Sequence[str]) -> dict[str, str]:
    """The name each eval.tasks entry gets in eval.json (a file's stem), keyed by name. Two entries
    with one name would overwrite each other's results, so that is an error."""
    names: dict[str, str] = {}
    for spec in specs:
        name = spec if spec in BUILTIN_TASKS else Path(spec).stem
        if name in names:
            raise LmforgeError(f"eval.tasks: '{spec}' and '{names[name]}' would both be reported as '{name}'",
                               "list each task once, and rename task files whose names clash")
        names[name] = spec
    return names


def load_task(path: str | Path) -> list[MCItem]:
    """Read and validate a JSONL task file."""
    path = Path(path)
    if not path.is_file():
        raise LmforgeError(f"task file not found: {path}",
                           f"eval.tasks lists built-in names ({', '.join(BUILTIN_TASKS)}) or JSONL files")
    items = []
    with open(path, "rb") as fh:  # bytes, so a line that is not UTF-8 can be named
        for line_no, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise LmforgeError(f"{path}:{line_no}: not UTF-8 text (byte {exc.start + 1} of the line)",
                                   "save the task file as UTF-8") from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LmforgeError(f"{path}:{line_no}: malformed JSON ({exc.msg})",
                                   "each line must be one JSON object") from None
            items.append(parse_item(rec, path, line_no))
    if not items:
        raise LmforgeError(f"{path} holds no items", "add one JSON object per line")
    return items


# ------------------------------------------------------------ the built-in task


def next_line_task(texts: Sequence[str], n_items: int, n_choices: int = 4, context_lines: int = 4,
                   min_chars: int = 20, seed: int = 0) -> list[MCItem]:
    """Pick the true next line of a passage among lines drawn from elsewhere in held-out text.

    Targets and distractors are lines of at least `min_chars` characters (short lines such as
    speaker names or "Exit." would be guessable or repeated verbatim). Distractors never come
    from within 50 lines of the passage, nor equal the true line.
    """
    lines = [[ln.strip() for ln in t.splitlines() if ln.strip()] for t in texts]
    pool = [(d, i) for d, ls in enumerate(lines) for i, ln in enumerate(ls) if len(ln) >= min_chars]
    targets = [(d, i) for d, i in pool if i >= context_lines]
    if len(targets) < 1 or len(pool) < n_choices + 1:
        raise LmforgeError(f"the held-out text has too few lines ({len(pool)}) for the next_line task",
                           "hold out more documents (data.test_fraction) or drop 'next_line' from eval.tasks")
    rng = random.Random(seed)
    items = []
    for d, i in rng.sample(targets, min(n_items, len(targets))):
        gold_text = lines[d][i]
        distractors: list[str] = []
        for _attempt in range(1000 * n_choices):
            if len(distractors) == n_choices - 1:
                break
            dd, j = pool[rng.randrange(len(pool))]
            text = lines[dd][j]
            if (dd == d and abs(j - i) <= 50) or text == gold_text or text in distractors:
                continue
            distractors.append(text)
        if len(distractors) < n_choices - 1:
            raise LmforgeError(f"the held-out text has too few distinct lines for {n_choices} choices",
                               "lower eval.task_choices or hold out more documents")
        gold = rng.randrange(n_choices)
        choices = distractors[:gold] + [gold_text] + distractors[gold:]
        context = "\n".join(lines[d][i - context_lines: i]) + "\n"
        items.append(MCItem(context, choices, gold, "", f"doc{d}:line{i}"))
    return items


# ------------------------------------------------------------ scoring


def encode_pair(tok: Tokenizer, context: str, continuation: str, eos_id: int) -> tuple[list[int], list[int]]:
    """lm-evaluation-harness's `_encode_pair`: move the context's trailing whitespace into the
    continuation, encode the whole, and take what follows the context's encoding."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tok.encode(context + continuation).ids
    ctx = tok.encode(context).ids
    if not ctx:  # the harness conditions an empty context on the end-of-text token
        return [eos_id], whole
    return ctx, whole[len(ctx):]


@torch.no_grad()
def continuation_loglikelihoods(model: nn.Module, pairs: Sequence[tuple[list[int], list[int]]],
                                block_size: int, batch_size: int = 32, dtype: str = "float32") -> np.ndarray:
    """Summed log-probability of each continuation given its context, cut on the left to fit."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = np.zeros(len(pairs))
    inputs = []
    for ctx, cont in pairs:
        whole = (ctx + cont)[-(block_size + 1):]
        inputs.append((whole[:-1], whole[1:], min(len(cont), len(whole) - 1)))
    order = sorted(range(len(pairs)), key=lambda i: -len(inputs[i][0]))  # similar lengths together
    ticker = Ticker("eval: scoring task choices", len(order), "choices")
    for start in range(0, len(order), batch_size):
        batch = order[start: start + batch_size]
        width = len(inputs[batch[0]][0])
        x = torch.zeros(len(batch), width, dtype=torch.long)
        for row, i in enumerate(batch):
            seq = inputs[i][0]
            x[row, : len(seq)] = torch.tensor(seq)  # right padding: causal attention never sees it
        with autocast(device, dtype):
            logits = model(x.to(device))
        logp = F.log_softmax(logits.float(), dim=-1).cpu()
        for row, i in enumerate(batch):
            seq, targets, n_cont = inputs[i]
            pos = torch.arange(len(seq) - n_cont, len(seq))
            out[i] = float(logp[row, pos, torch.tensor(targets[-n_cont:])].sum()) if n_cont else 0.0
        ticker.advance(len(batch))
    model.train(was_training)
    return out


def score_items(model: nn.Module, tok: Tokenizer, items: Sequence[MCItem], block_size: int, eos_id: int,
                batch_size: int = 32, dtype: str = "float32") -> list[np.ndarray]:
    """Log-likelihood of every choice of every item."""
    pairs = [encode_pair(tok, it.context, it.delimiter + ch, eos_id) for it in items for ch in it.choices]
    flat = continuation_loglikelihoods(model, pairs, block_size, batch_size, dtype)
    out, at = [], 0
    for it in items:
        out.append(flat[at: at + len(it.choices)])
        at += len(it.choices)
    return out


def choices_made(items: Sequence[MCItem], lls: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The choice `acc` picks (highest log-likelihood) and the one `acc_norm` picks (highest
    log-likelihood per character of the choice), per item."""
    # np.argmax breaks ties towards the first choice, as the harness does
    pred = np.array([int(np.argmax(ll)) for ll in lls])
    pred_norm = np.array([int(np.argmax(ll / np.array([float(len(c)) for c in it.choices])))
                          for it, ll in zip(items, lls)])
    return pred, pred_norm


def accuracies(items: Sequence[MCItem], lls: Sequence[np.ndarray]) -> dict[str, float]:
    """acc and acc_norm alone (no intervals): what a search scores a trial with, cheaply."""
    gold = np.array([it.gold for it in items])
    pred, pred_norm = choices_made(items, lls)
    return {"acc": float((pred == gold).mean()), "acc_norm": float((pred_norm == gold).mean())}


def task_metrics(items: Sequence[MCItem], lls: Sequence[np.ndarray], rounds: int = DEFAULT_ROUNDS,
                 seed: int = 0) -> dict[str, Any]:
    """acc and acc_norm (lm-evaluation-harness definitions) with bootstrap intervals over items,
    the chance rate, and — when every item has the same number of choices — the full
    classification view of gold vs chosen position (a confusion matrix shows position bias)."""
    gold = np.array([it.gold for it in items])
    pred, pred_norm = choices_made(items, lls)
    hit, hit_norm = (pred == gold).astype(float), (pred_norm == gold).astype(float)
    ones = np.ones(len(items))
    out: dict[str, Any] = {
        "items": len(items),
        "acc": float(hit.mean()), "acc_ci95": ratio_interval(hit, ones, rounds, seed),
        "acc_norm": float(hit_norm.mean()), "acc_norm_ci95": ratio_interval(hit_norm, ones, rounds, seed),
        "chance": float(np.mean([1 / len(it.choices) for it in items])),
    }
    sizes = {len(it.choices) for it in items}
    if len(sizes) == 1:
        c = sizes.pop()
        stacked = np.stack(lls)
        proba = np.exp(stacked - stacked.max(1, keepdims=True))
        proba /= proba.sum(1, keepdims=True)  # the model's choice distribution (for AUC and calibration)
        out["classification"] = classification_report(gold.tolist(), pred.tolist(), proba=proba,
                                                      labels=list(range(c)), rounds=rounds, seed=seed)
    out["examples"] = [
        {"id": it.id, "context": it.context[-300:], "choices": it.choices, "gold": it.gold,
         "pred": int(p), "pred_norm": int(pn), "loglikelihoods": [round(float(v), 4) for v in ll]}
        for it, ll, p, pn in list(zip(items, lls, pred, pred_norm))[:3]
    ]
    return out
