"""`lmforge compare tokenizers`: every tokenizer kind trained at one vocabulary size on a run's
train split and measured on its validation split, side by side.

Bytes per token here divides the validation text's own UTF-8 bytes by the tokens it became (EOS
not counted), so a tokenizer that drops whitespace (WordPiece) is not flattered.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import ValidationError

from lmforge.config.schema import TokenizerConfig
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir, atomic_write_json, atomic_write_text, read_jsonl_gz
from lmforge.tokens.tokenizer import KINDS, build_and_train, for_documents

COLUMNS = ("kind", "vocab", "train_s", "bytes_per_token", "unk_rate", "vocab_used", "round_trip", "encode_mb_s")


def measure_kind(run: RunDir, kind: str, vocab_size: int, min_frequency: int, val_texts: list[str]) -> dict[str, Any]:
    """Train one kind and measure it on the validation texts."""
    try:
        cfg = TokenizerConfig(kind=kind, vocab_size=vocab_size, min_frequency=min_frequency)
    except ValidationError as exc:
        raise LmforgeError(f"{kind}: {exc.errors()[0]['msg']}", "choose a larger --vocab-size") from None
    start = time.perf_counter()
    tok = for_documents(build_and_train((r["text"] for r in read_jsonl_gz(run.split_file("train"))), cfg))
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    encs = tok.encode_batch_fast(val_texts, add_special_tokens=False)
    encode_s = time.perf_counter() - start
    ids = np.concatenate([np.asarray(e.ids, dtype=np.int64) for e in encs]) if encs else np.zeros(0, np.int64)
    n_bytes = sum(len(t.encode("utf-8")) for t in val_texts)
    specials = {t.content for t in tok.get_added_tokens_decoder().values()}
    ordinary = [i for p, i in tok.get_vocab(with_added_tokens=True).items() if p not in specials]
    unk = tok.token_to_id(cfg.unk_token)
    exact = all(tok.decode(e.ids) == t for e, t in zip(encs, val_texts))
    return {
        "kind": kind, "vocab": tok.get_vocab_size(with_added_tokens=True), "train_s": round(train_s, 2),
        "tokens": len(ids), "bytes": n_bytes, "bytes_per_token": round(n_bytes / max(1, len(ids)), 3),
        "unk_rate": float(f"{(ids == unk).mean():.3g}") if unk is not None and len(ids) else 0.0,
        "vocab_used": round(len(set(ids.tolist()) & set(ordinary)) / max(1, len(ordinary)), 3),
        "round_trip": exact, "encode_mb_s": round(n_bytes / 1e6 / max(encode_s, 1e-9), 2),
    }


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The comparison as a Markdown table."""
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    return head + "".join("| " + " | ".join(str(r[c]) for c in COLUMNS) + " |\n" for r in rows)


def compare_tokenizers(run: RunDir, kinds: Sequence[str], vocab_size: int, min_frequency: int = 2
                       ) -> dict[str, Any]:
    """Measure every kind; write compare/tokenizers.json and .md in the run directory.
    A kind named twice is measured once; none at all is refused (it would write an empty table)."""
    kinds = list(dict.fromkeys(kinds))
    if not kinds:
        raise LmforgeError("no tokenizer kind to compare", f"e.g. --kinds {','.join(KINDS)}")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise LmforgeError(f"unknown tokenizer kind(s): {', '.join(unknown)}", f"choose from {', '.join(KINDS)}")
    for split in ("train", "val"):
        run.require(run.split_file(split), "data")
    val_texts = [r["text"] for r in read_jsonl_gz(run.split_file("val"))]
    if not val_texts:
        raise LmforgeError("the validation split is empty: nothing to measure on",
                           "raise data.val_fraction or data.min_val_docs and rerun `lmforge data`")
    rows = [measure_kind(run, kind, vocab_size, min_frequency, val_texts) for kind in kinds]
    result = {"vocab_size": vocab_size, "min_frequency": min_frequency, "measured_on": "val",
              "note": "bytes_per_token = validation UTF-8 bytes / tokens; char ignores vocab_size above its "
                      "alphabet; train_s and encode_mb_s depend on machine load", "rows": rows}
    atomic_write_json(run.root / "compare" / "tokenizers.json", result)
    atomic_write_text(run.root / "compare" / "tokenizers.md", markdown(rows))
    return result
