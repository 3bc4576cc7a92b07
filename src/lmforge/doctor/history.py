"""What the doctor reads: a run's logged steps, evaluations and training statistics, with the
facts about the run that the detectors compare against (unigram entropy, passes over the data).

The live doctor fills a `History` from the training callbacks and `stats.jsonl`; the offline
doctor fills it from the run directory's files. Both then run the same detectors, so they agree.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir, read_jsonl

STATS_FILE = "stats.jsonl"
BLOCK = re.compile(r"(?:^|\.)(?:blocks|layers|h|layer)\.(\d+)\.")
GAIN_OR_BIAS = re.compile(r"(?:ln|norm)[^.]*\.weight$|bias$")  # 1-D parameters: their gradients do not vanish


def _num(value: Any) -> float:
    """A logged number; the JSON sinks write NaN and Inf as null, which come back as NaN."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass
class RunFacts:
    """Facts about a run that do not change while it trains."""

    steps: int = 0  # planned optimizer steps
    unigram_entropy: float | None = None  # nats per token of the training split's token counts
    log_vocab: float | None = None
    train_tokens: int | None = None
    leak_overlap: float | None = None  # share of validation n-grams seen in training (tokenize stage)
    dropout: float = 0.0
    lr: float = 0.0
    grad_clip: float = 0.0
    dtype: str = "float32"


@dataclass
class History:
    """Logged steps (`train`), evaluations (`evals`) and statistics (`stats`), oldest first."""

    facts: RunFacts = field(default_factory=RunFacts)
    train: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    stats: list[dict[str, float]] = field(default_factory=list)
    _series: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    _blocks: dict[int, list[float]] = field(default_factory=dict, repr=False)

    def blocks(self, record: dict[str, float]) -> list[float]:
        """Per-block gradient norms of a statistics record, computed once (block_grad_norms)."""
        key = id(record)
        if key not in self._blocks:
            self._blocks[key] = block_grad_norms(record)
        return self._blocks[key]

    def add(self, kind: str, record: dict[str, Any]) -> None:
        """One logged record, as the sinks write it (kind train, eval or stats)."""
        self._series.clear()
        rec = {k: _num(v) for k, v in record.items() if k != "kind" and (v is None or isinstance(v, (int, float)))}
        rec["step"] = int(record["step"])
        target = {"train": self.train, "eval": self.evals, "stats": self.stats}.get(kind)
        if target is not None:
            if target and target[-1]["step"] >= rec["step"]:  # a rollback: the steps after it are gone
                del target[next(i for i, r in enumerate(target) if r["step"] >= rec["step"]):]
                self._blocks.clear()
            target.append(rec)

    def truncate(self, step: int) -> None:
        """Forget what was logged after `step` (a repair went back to it: those steps are undone)."""
        for rows in (self.train, self.evals, self.stats):
            rows[:] = [r for r in rows if r["step"] <= step]
        self._series.clear()
        self._blocks.clear()

    def series(self, kind: str, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one metric; values NaN where it was not finite."""
        if (kind, key) not in self._series:  # detectors ask for the same series many times per check
            rows = {"train": self.train, "eval": self.evals, "stats": self.stats}[kind]
            rows = [r for r in rows if key in r]
            self._series[kind, key] = (np.array([r["step"] for r in rows], dtype=np.int64),
                                       np.array([r[key] for r in rows], dtype=np.float64))
        return self._series[kind, key]

    @property
    def step(self) -> int:
        """The newest step anything was logged at."""
        return max([r["step"] for r in (self.train[-1:] + self.evals[-1:] + self.stats[-1:])], default=0)


def block_grad_norms(record: dict[str, float]) -> list[float]:
    """Gradient norm per block (index order) from one statistics record's per-parameter norms,
    over the weight matrices (norm gains and biases left out)."""
    sums: dict[int, float] = {}
    for key, value in record.items():
        if key.startswith("grad_norm/"):
            name = key.split("/", 1)[1]
            m = BLOCK.search(name)
            if m and not GAIN_OR_BIAS.search(name):
                sums[int(m.group(1))] = sums.get(int(m.group(1)), 0.0) + value * value
    return [math.sqrt(sums[k]) for k in sorted(sums)]


def unigram_entropy(tokens: np.ndarray, vocab: int) -> float:
    """Entropy (nats) of the token frequencies: the loss of a model that learnt only how common
    each token is, and nothing of its context."""
    counts = np.bincount(tokens.astype(np.int64), minlength=vocab).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def read_facts(run: RunDir, cfg: Any) -> RunFacts:
    """The run's facts from its config and token files (what is missing stays None)."""
    facts = RunFacts(steps=cfg.train.steps, dropout=cfg.model.dropout, lr=cfg.train.lr,
                     grad_clip=cfg.train.grad_clip, dtype=cfg.train.dtype)
    meta_path = run.tokens / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        vocab = int(meta["vocab_size"])
        facts.log_vocab = math.log(vocab)
        train_bin = run.token_file("train")
        if train_bin.is_file():
            tokens = np.fromfile(train_bin, dtype=np.dtype(meta.get("dtype", "uint16")))
            facts.train_tokens = int(tokens.size)
            if tokens.size:
                facts.unigram_entropy = unigram_entropy(tokens, vocab)
    leak = run.tokens / "leakage.json"
    if leak.is_file():
        splits = json.loads(leak.read_text()).get("splits", {})
        if "val" in splits and "fraction" in splits["val"]:
            facts.leak_overlap = float(splits["val"]["fraction"])
    return facts


def is_run(path: Path) -> bool:
    return (path / "config.yaml").is_file()


def load_history(run: RunDir, cfg: Any) -> History:
    """The History of a finished or running run, from metrics.jsonl and stats.jsonl.
    Raises LmforgeError when the folder is not a run or has logged nothing yet."""
    if not run.root.is_dir():
        raise LmforgeError(f"{run.root} does not exist", "give the run directory, e.g. runs/NAME")
    if not is_run(run.root):
        raise LmforgeError(f"{run.root} is not a run directory (it has no config.yaml)",
                           "give the folder `lmforge run` or `lmforge train` wrote, e.g. runs/NAME")
    hist = History(read_facts(run, cfg))
    for rec in read_jsonl(run.metrics):
        if isinstance(rec.get("step"), int):
            hist.add(str(rec.get("kind")), rec)
    for rec in read_jsonl(run.root / STATS_FILE):
        if isinstance(rec.get("step"), int):
            hist.add("stats", rec)
    if not hist.train:
        raise LmforgeError(f"{run.metrics} holds no training steps yet" if run.metrics.is_file()
                           else f"{run.root} has no metrics.jsonl: it has not trained yet",
                           f"train it first (`lmforge train {run.root}`), or wait for its first logged step")
    return hist
