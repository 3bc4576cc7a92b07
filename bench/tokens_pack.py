"""Packing throughput: lmforge's tokenize packing against a plain `Tokenizer.encode_batch` loop.

Both encode the same documents (the built-in corpus's modern-spelling plays) with the same
tokenizer (byte-level BPE, 2,048 tokens, trained once on those plays):

- peer: a plain loop over batches of 64 documents already in memory, `tok.encode_batch(batch)`,
  keeping each document's ids (what a user would write first); "peer fast" is the same loop with
  `encode_batch_fast` (no character offsets), which lmforge uses, so the gap between it and
  lmforge is lmforge's own overhead (reading, EOS, writing, the index);
- lmforge: `pack_split`, the real stage code: read the split's JSONL.gz from disk, encode, add EOS,
  write the flat uint16 file and the document index, count tokens and bytes per source.
  Run with workers = 0 (in-process, tokenizers' threads), then 1 and 2 worker processes.

Systems run alternately in each round; reported are medians over rounds, tokens/s and MB/s
(MB of UTF-8 text per second), and the median over rounds of each system's time divided by the
peer's (and by "peer fast"'s) in the same round.

    .venv/bin/python bench/tokens_pack.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tokenizers

from lmforge.config.schema import TokenizerConfig
from lmforge.corpora import shakespeare
from lmforge.data.clean import strip_gutenberg
from lmforge.rundir import RunDir, write_jsonl_gz
from lmforge.tokens.pack import Encoder, pack_split
from lmforge.tokens.tokenizer import load_tokenizer, token_byte_lengths, train_tokenizer


def corpus() -> list[dict]:
    docs = shakespeare.documents(["shakespeare"], ["modern"])
    return [{"id": d.id, "source": d.author, "text": strip_gutenberg(d.path.read_text(encoding="utf-8-sig"))[0]}
            for d in docs]


def peer(tok: tokenizers.Tokenizer, texts: list[str], fast: bool = False, batch: int = 64) -> int:
    """The plain loop: encode_batch (or encode_batch_fast, which skips character offsets) over
    batches, keep the ids."""
    encode = tok.encode_batch_fast if fast else tok.encode_batch
    n = 0
    for i in range(0, len(texts), batch):
        for enc in encode(texts[i: i + batch]):
            n += len(enc.ids) + 1  # + EOS, as packing writes
    return n


def ours(run: RunDir, tok: tokenizers.Tokenizer, workers: int, byte_lengths: np.ndarray) -> int:
    with Encoder(tok, None, tok.token_to_id("<|endoftext|>"), np.dtype(np.uint16), workers) as enc:
        summary, _ = pack_split(run, "train", enc, 64, {}, byte_lengths)
    return summary["tokens"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workers", default="0,1,2", help="worker counts for lmforge")
    args = ap.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]

    docs = corpus()
    texts = [d["text"] for d in docs]
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp) / "run")
        run.create()
        write_jsonl_gz(run.split_file("train"), docs)
        train_tokenizer(iter(texts), TokenizerConfig(vocab_size=2048), run.tokenizer)
        tok = load_tokenizer(run.tokenizer)
        run.tokens.mkdir(parents=True, exist_ok=True)
        byte_lengths = token_byte_lengths(tok)
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()}")
        print(f"python {platform.python_version()}, tokenizers {tokenizers.__version__}, numpy {np.__version__}")
        print(f"corpus: {len(docs)} documents, {mb:.2f} MB")
        systems = ["peer", "peer fast"] + [f"lmforge w={w}" for w in worker_counts]
        times: dict[str, list[float]] = {s: [] for s in systems}
        ratios: dict[str, list[float]] = {s: [] for s in systems}
        ratios_fast: dict[str, list[float]] = {s: [] for s in systems}
        tokens = 0
        for r in range(args.rounds):
            this: dict[str, float] = {}
            order = systems if r % 2 == 0 else systems[::-1]  # alternate, so drift hits both
            for name in order:
                start = time.perf_counter()
                if name.startswith("peer"):
                    n = peer(tok, texts, fast=name == "peer fast")
                else:
                    n = ours(run, tok, int(name.split("=")[1]), byte_lengths)
                this[name] = time.perf_counter() - start
                tokens = tokens or n
                assert n == tokens, f"{name} made {n} tokens, expected {tokens}"
            for name in systems:
                times[name].append(this[name])
                ratios[name].append(this[name] / this["peer"])
                ratios_fast[name].append(this[name] / this["peer fast"])
        print(f"tokens: {tokens:,}; rounds: {args.rounds}; load average after {os.getloadavg()}")
        print("| system | median s [min-max] | tokens/s | MB/s | time ÷ peer | time ÷ peer fast |")
        print("|---|---|---|---|---|---|")
        for name in systems:
            med = statistics.median(times[name])
            print(f"| {name} | {med:.2f} [{min(times[name]):.2f}-{max(times[name]):.2f}] | {tokens / med:,.0f} | "
                  f"{mb / med:.2f} | {statistics.median(ratios[name]):.3f} | {statistics.median(ratios_fast[name]):.3f} |")


if __name__ == "__main__":
    main()
