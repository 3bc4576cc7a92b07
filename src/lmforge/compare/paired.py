"""`lmforge compare eval A B`: are two runs' models really different on the same held-out text?

Two models scored on the same documents are paired: the same hard documents are hard for both.
A paired test uses that; comparing two separate intervals does not and misses real differences.
- Bits per byte per document → paired bootstrap over documents (tokenizer-independent, so two
  runs with different tokenizers compare fairly; each run counts its own bytes).
- The built-in next_line task (the same questions when both runs hold out the same text with the
  same eval settings) → McNemar's exact test and a paired bootstrap on acc_norm per question.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lmforge.config.load import load_config
from lmforge.errors import LmforgeError
from lmforge.evaluate.lm import NATS_TO_BITS, bits_per_byte, per_document, score_tokens
from lmforge.evaluate.score import load_trained
from lmforge.evaluate.stage import task_items
from lmforge.evaluate.stats import mcnemar, paired_bootstrap
from lmforge.evaluate.tasks import score_items
from lmforge.rundir import RunDir, atomic_write_json, read_jsonl_gz
from lmforge.tokens.store import load_doc_starts, load_tokens
from lmforge.tokens.tokenizer import token_byte_lengths


def _doc_ids(run: RunDir, split: str) -> list[str]:
    return [str(rec.get("id")) for rec in read_jsonl_gz(run.require(run.split_file(split), "data"))]


def _documents(run: RunDir, cfg: Any, model: Any, tok: Any, split: str) -> dict[str, np.ndarray]:
    """Per-document nats and bytes over the whole split (no token budget: both runs must see the
    same text, and budgets in tokens would cut different text under different tokenizers)."""
    data = load_tokens(run.tokens, split)
    starts = load_doc_starts(run.tokens, split)
    scores = score_tokens(model, data, cfg.model.block_size, cfg.eval.batch_size, None, cfg.train.dtype)
    targets = np.asarray(data[1: len(scores) + 1], dtype=np.int64)
    return per_document(scores, targets, token_byte_lengths(tok), starts)


def _task_hits(run: RunDir, cfg: Any, model: Any, tok: Any) -> tuple[list[str], np.ndarray]:
    """Question ids and acc_norm hits of the built-in next_line task."""
    items, _ = task_items(run, cfg, "next_line")
    eos = tok.token_to_id(cfg.tokenizer.eos_token) or 0
    lls = score_items(model, tok, items, cfg.model.block_size, eos, cfg.eval.batch_size * 2, cfg.train.dtype)
    hits = [int(np.argmax(ll / np.array([float(len(c)) for c in it.choices]))) == it.gold
            for it, ll in zip(items, lls)]
    return [f"{it.id}:{it.choices[it.gold]}" for it in items], np.array(hits)


def compare_eval(run_a: RunDir, run_b: RunDir, split: str = "test", rounds: int = 10_000) -> dict[str, Any]:
    """Paired comparison of the newest checkpoints of two runs on the same held-out split."""
    ids_a, ids_b = _doc_ids(run_a, split), _doc_ids(run_b, split)
    if ids_a != ids_b:
        raise LmforgeError(
            f"the runs hold out different {split} documents ({len(ids_a)} in {run_a.root}, "
            f"{len(ids_b)} in {run_b.root}): a paired comparison needs the same documents",
            "prepare both runs from the same data stage settings (data.* and data.seed)")
    out: dict[str, Any] = {"split": split, "documents": ids_a, "a": str(run_a.root), "b": str(run_b.root)}
    docs, hits = {}, {}
    for key, run in (("a", run_a), ("b", run_b)):
        cfg = load_config(run.require(run.config, "data"))
        model, tok, latest = load_trained(run, cfg)
        out[f"checkpoint_{key}"] = latest.name
        docs[key] = _documents(run, cfg, model, tok, split)
        try:
            hits[key] = _task_hits(run, cfg, model, tok)
        except LmforgeError as exc:  # held-out text too short for the task: compare the text only
            hits[key] = None
            out["note"] = f"next_line not compared: {exc.message}"
    a, b = docs["a"], docs["b"]
    out["bits_per_byte"] = {
        "a": bits_per_byte(a["nats"].sum(), a["bytes"].sum()), "b": bits_per_byte(b["nats"].sum(), b["bytes"].sum()),
        # A − B in bits per byte: negative means A compresses the text better
        "paired_bootstrap": _scaled(paired_bootstrap(a["nats"], b["nats"], a["bytes"], rounds, den_b=b["bytes"]),
                                    NATS_TO_BITS),
    }
    if hits["a"] is None or hits["b"] is None:
        out["next_line_acc_norm"] = None
        return out
    (qa, ha), (qb, hb) = hits["a"], hits["b"]
    if qa == qb:
        out["next_line_acc_norm"] = {
            "a": float(ha.mean()), "b": float(hb.mean()), "items": len(qa),
            "mcnemar": mcnemar(ha, hb),
            "paired_bootstrap": paired_bootstrap(ha.astype(float), hb.astype(float), rounds=rounds),
        }
    else:
        out["next_line_acc_norm"] = None
        out["note"] = "next_line questions differ between the runs (eval.task_* or eval.seed differ): not compared"
    return out


def _scaled(res: dict[str, Any], factor: float) -> dict[str, Any]:
    res = dict(res)
    res["difference"] *= factor
    if res.get("ci95"):
        res["ci95"] = [v * factor for v in res["ci95"]]
    return res


def table(res: dict[str, Any]) -> str:
    """The comparison as Markdown."""
    bpb = res["bits_per_byte"]
    pb = bpb["paired_bootstrap"]
    ci = f"{pb['ci95'][0]:+.4f} … {pb['ci95'][1]:+.4f}" if pb["ci95"] else "n/a (one document)"
    p = f"{pb['p_value']:.4f}" if pb["p_value"] is not None else "n/a"
    head = (f"A = {res['a']} ({res['checkpoint_a']}), B = {res['b']} ({res['checkpoint_b']}), "
            f"{res['split']} split, {len(res['documents'])} documents")
    row = (f"| bits per byte | {bpb['a']:.4f} | {bpb['b']:.4f} | {pb['difference']:+.4f} | {ci} | {p} "
           "| paired bootstrap over documents |")
    lines = [head, "", "| measure | A | B | A − B | 95% interval | p-value | test |",
             "|---|---|---|---|---|---|---|", row]
    t = res.get("next_line_acc_norm")
    if t:
        tb = t["paired_bootstrap"]
        tci = f"{tb['ci95'][0]:+.3f} … {tb['ci95'][1]:+.3f}" if tb["ci95"] else "n/a"
        lines.append(f"| next_line acc_norm ({t['items']} questions) | {t['a']:.3f} | {t['b']:.3f} | "
                     f"{tb['difference']:+.3f} | {tci} | {t['mcnemar']['p_value']:.4f} | McNemar, exact |")
    return "\n".join(lines) + "\n"


def run_compare_eval(run_a: Path, run_b: Path, split: str = "test") -> dict[str, Any]:
    """Compare and write RUN_A/compare/eval_vs_<B>[_<split>].json."""
    res = compare_eval(RunDir(run_a), RunDir(run_b), split)
    atomic_write_json(compare_eval_path(run_a, run_b, split), res)
    return res


def compare_eval_path(run_a: Path, run_b: Path, split: str = "test") -> Path:
    """RUN_A/compare/eval_vs_<B's folder name>.json for the test split, ..._<split>.json for another
    (so comparing on val does not overwrite the test comparison); B is resolved, so `.` or
    `runs/b/` is named too."""
    suffix = "" if split == "test" else f"_{split}"
    return Path(run_a) / "compare" / f"eval_vs_{Path(run_b).resolve().name}{suffix}.json"
