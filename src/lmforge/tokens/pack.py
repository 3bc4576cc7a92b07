"""The `tokenize` stage: train the tokenizer on the train split, then encode and pack every split.

Outputs (the format is described in docs/tokens.md):
  tokenizer/tokenizer.json      the tokenizer (loads in `tokenizers` and `transformers`)
  tokens/{split}.bin            flat token ids (uint16 or uint32), [BOS] doc EOS [BOS] doc EOS ...
  tokens/{split}.docs.npy       int64 start offset of each document in {split}.bin
  tokens/{split}.doc_sources.npy int32 index of each document's source in meta["sources"]
  tokens/meta.json              dtype, vocab_size, special ids, per-split counts, the tokenizer report
  tokens/leakage.json           train/held-out word 13-gram overlap (tokens/leakage.py)

Every split is streamed: documents are read, encoded and written a batch at a time, so a corpus
larger than memory packs in bounded memory.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import Counter, deque
from collections.abc import Iterator
from typing import Any, Self

import numpy as np
from tokenizers import Tokenizer

from lmforge.config.schema import TokenizerConfig
from lmforge.console import Ticker, console
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir, atomic_open, atomic_write_json, clear_temp, read_jsonl_gz
from lmforge.tokens.leakage import leakage_report
from lmforge.tokens.store import (
    META,
    write_doc_index,
    write_meta,
)
from lmforge.tokens.tokenizer import (
    for_documents,
    load_tokenizer,
    pretrained_tokenizer,
    token_byte_lengths,
    token_text,
    train_tokenizer,
)

SPLITS = ("train", "val", "test")
UINT16_VOCAB = int(np.iinfo(np.uint16).max) + 1


# ---------------------------------------------------------------- encoding


def pick_dtype(vocab: int, wanted: str) -> np.dtype:
    """uint16 when every id fits (half the disk and memory), else uint32."""
    if wanted == "uint16" and vocab > UINT16_VOCAB:
        raise LmforgeError(f"a vocabulary of {vocab} tokens does not fit in uint16 (at most {UINT16_VOCAB})",
                           "set tokenizer.dtype=uint32 (or auto), or lower tokenizer.vocab_size")
    if wanted == "auto":
        return np.dtype(np.uint16 if vocab <= UINT16_VOCAB else np.uint32)
    return np.dtype(wanted)


def encode_texts(tok: Tokenizer, texts: list[str], bos_id: int | None, eos_id: int,
                 dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Encode documents (tokenizers parallelises the batch) and join them: [BOS] ids EOS each.
    Returns the flat ids and each document's length. encode_batch_fast skips character offsets,
    which packing never uses."""
    encs = tok.encode_batch_fast(texts, add_special_tokens=False)
    head = [] if bos_id is None else [bos_id]
    pieces = [np.asarray(head + e.ids + [eos_id], dtype=dtype) for e in encs]
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    flat = np.concatenate(pieces) if pieces else np.zeros(0, dtype=dtype)
    return flat, lengths


_WORKER: dict[str, Any] = {}


def _worker_init(tokenizer_json: str, bos_id: int | None, eos_id: int, dtype: str) -> None:
    # one process per worker is the unit of parallelism, so the tokenizer's own threads are off
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _WORKER.update(tok=for_documents(Tokenizer.from_str(tokenizer_json)), bos=bos_id, eos=eos_id, dtype=np.dtype(dtype))


def _worker_encode(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return encode_texts(_WORKER["tok"], texts, _WORKER["bos"], _WORKER["eos"], _WORKER["dtype"])


class Encoder:
    """Encodes batches of documents in input order: in-process when workers == 0, else on a pool
    of worker processes started once per stage, with at most 2 batches per worker in flight
    (bounded memory, unlike Pool.imap's eager feed)."""

    def __init__(self, tok: Tokenizer, bos_id: int | None, eos_id: int, dtype: np.dtype, workers: int) -> None:
        self.tok, self.bos_id, self.eos_id, self.dtype, self.workers = tok, bos_id, eos_id, dtype, workers
        self.pool: Any = None

    def __enter__(self) -> Self:
        if self.workers:
            ctx = mp.get_context("spawn")  # fork after tokenizers used its threads can deadlock (its own warning)
            self.pool = ctx.Pool(self.workers, _worker_init,
                                 (self.tok.to_str(), self.bos_id, self.eos_id, self.dtype.name))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()

    def encode(self, batches: Iterator[list[str]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if self.pool is None:
            for texts in batches:
                yield encode_texts(self.tok, texts, self.bos_id, self.eos_id, self.dtype)
            return
        pending: deque[Any] = deque()
        for texts in batches:
            pending.append(self.pool.apply_async(_worker_encode, (texts,)))
            if len(pending) >= 2 * self.workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


# ---------------------------------------------------------------- packing


class SplitStats:
    """Counts gathered while a split streams past: documents, tokens, bytes, ids used."""

    def __init__(self, vocab: int, byte_lengths: np.ndarray) -> None:
        self.byte_lengths = byte_lengths
        self.id_counts = np.zeros(vocab, dtype=np.int64)
        self.starts: list[np.ndarray] = []
        self.source_ids: list[int] = []
        self.tokens_by_source: Counter[str] = Counter()
        self.tokens = self.text_bytes = 0

    def add(self, flat: np.ndarray, lengths: np.ndarray, records: list[dict[str, Any]],
            sources: dict[str, int]) -> None:
        self.starts.append(self.tokens + np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64))
        self.tokens += int(lengths.sum())
        self.id_counts += np.bincount(flat, minlength=len(self.id_counts))
        for rec, n in zip(records, lengths.tolist()):
            src = str(rec.get("source", ""))
            self.source_ids.append(sources.setdefault(src, len(sources)))
            self.tokens_by_source[src] += n
            self.text_bytes += len(rec["text"].encode("utf-8"))

    def summary(self) -> dict[str, Any]:
        n_bytes = int((self.id_counts * self.byte_lengths).sum())
        return {"documents": len(self.source_ids), "tokens": self.tokens, "bytes": n_bytes,
                "bytes_per_token": round(n_bytes / max(1, self.tokens), 4), "text_bytes": self.text_bytes,
                "tokens_by_source": dict(sorted(self.tokens_by_source.items())),
                "sources": sorted(self.tokens_by_source)}


def _record_batches(run: RunDir, split: str, size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for rec in read_jsonl_gz(run.documents(split)):
        batch.append(rec)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def pack_split(run: RunDir, split: str, encoder: Encoder, batch_docs: int, sources: dict[str, int],
               byte_lengths: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """Encode one split and stream it to {split}.bin with its document index.
    `sources` maps source names to ids, shared by all splits (new names are added).
    Returns the split's summary and how often each token id occurs."""
    stats = SplitStats(encoder.tok.get_vocab_size(with_added_tokens=True), byte_lengths)
    held: deque[list[dict[str, Any]]] = deque()  # records of batches in flight, in order
    # the split streams past without a count up front; its totals land in meta.json
    ticker = Ticker(f"tokenize: packing {split}", unit="documents")

    def texts() -> Iterator[list[str]]:
        for records in _record_batches(run, split, batch_docs):
            held.append(records)
            yield [r["text"] for r in records]

    with atomic_open(run.token_file(split), "wb") as out:
        for flat, lengths in encoder.encode(texts()):
            out.write(flat.tobytes())
            stats.add(flat, lengths, held.popleft(), sources)
            ticker.advance(len(lengths))
    starts = np.concatenate(stats.starts) if stats.starts else np.zeros(0, dtype=np.int64)
    write_doc_index(run.tokens, split, starts, np.asarray(stats.source_ids, dtype=np.int32))
    return stats.summary(), stats.id_counts


# ---------------------------------------------------------------- the report


def round_trip_exact(tok: Tokenizer, run: RunDir, split: str, max_chars: int = 20_000) -> bool:
    """Whether decode(encode(text)) gives the text back, on the first documents of a split."""
    for i, rec in enumerate(read_jsonl_gz(run.documents(split))):
        text = rec["text"][:max_chars]
        if tok.decode(tok.encode(text, add_special_tokens=False).ids) != text:
            return False
        if i >= 2:
            break
    return True


def tokenizer_report(tok: Tokenizer, cfg: TokenizerConfig, splits: dict[str, Any],
                     counts: dict[str, np.ndarray], byte_lengths: np.ndarray, exact: bool) -> dict[str, Any]:
    """Bytes per token on validation, vocabulary use, unknown-token rate, the longest tokens."""
    specials = {t.content for t in tok.get_added_tokens_decoder().values()}
    ordinary = np.asarray([i for p, i in tok.get_vocab(with_added_tokens=True).items() if p not in specials])
    unk_id = tok.token_to_id(cfg.unk_token)
    held = "val" if splits["val"]["tokens"] else "train"
    longest = sorted(ordinary.tolist(), key=lambda i: (-int(byte_lengths[i]), i))[:10]
    unk_rate = float(f"{counts[held][unk_id] / max(1, splits[held]['tokens']):.3g}") if unk_id is not None else 0.0
    return {
        "measured_on": held,
        "bytes_per_token": splits[held]["bytes_per_token"],
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "vocab_used_train": round(float((counts["train"][ordinary] > 0).mean()), 4) if len(ordinary) else 0.0,
        "vocab_used_" + held: round(float((counts[held][ordinary] > 0).mean()), 4) if len(ordinary) else 0.0,
        "unk_rate": unk_rate,
        "round_trip_exact": exact,
        "longest_tokens": [{"id": i, "text": token_text(tok, i), "bytes": int(byte_lengths[i])} for i in longest],
    }


def summary_line(meta: dict[str, Any], leak: dict[str, Any]) -> str:
    """One line for the console; every figure in it is also in meta.json or leakage.json."""
    rep, tr = meta["report"], meta["splits"]["train"]
    overlap = ", ".join(f"{s} {v['fraction']:.2%}" for s, v in leak["splits"].items())
    return (f"tokenize: {meta['kind']}, {meta['vocab_size']} tokens ({meta['dtype']}); train {tr['tokens']:,} tokens; "
            f"{rep['measured_on']} {rep['bytes_per_token']} bytes/token, {rep['vocab_used_train']:.0%} of the "
            f"vocabulary used, unknown {rep['unk_rate']:.2%}; {leak['n']}-grams seen in train: {overlap}")


def _heldout_docs(run: RunDir, split: str) -> Iterator[tuple[str, str]]:
    for rec in read_jsonl_gz(run.documents(split)):
        yield str(rec.get("id", "")), rec["text"]


def _ticked(text: str, ticker: Ticker) -> str:
    """Count a document as the tokenizer trainer (Rust, silent here) pulls it from the generator."""
    ticker.advance()
    return text


def check_model_vocab(vocab: int, model_vocab: int | None, cfg: TokenizerConfig) -> None:
    """Stop before packing when the model (a pretrained folder's) has fewer rows than the tokenizer."""
    if model_vocab is not None and vocab > model_vocab:
        raise LmforgeError(f"the tokenizer ({cfg.path or cfg.kind}) has {vocab} tokens but the model's vocabulary "
                           f"(model.vocab_size) is {model_vocab}",
                           "use the tokenizer saved with the model: tokenizer.kind=pretrained")


def run_tokenize(run: RunDir, cfg: TokenizerConfig, model_vocab: int | None = None) -> dict[str, Any]:
    """The stage: train (or copy a pretrained) tokenizer, pack every split, write meta.json and
    leakage.json. Returns meta. `model_vocab` is model.vocab_size, checked against the tokenizer."""
    for split in SPLITS:
        run.require(run.split_file(split), "data")
    run.tokenizer.parent.mkdir(parents=True, exist_ok=True)
    run.tokens.mkdir(parents=True, exist_ok=True)
    # meta.json, written last, marks the token files complete: without it a tokenize killed midway
    # would leave new .bin files beside the old meta.json, and `lmforge train` would read the mix
    (run.tokens / META).unlink(missing_ok=True)
    clear_temp(run.tokens)
    if cfg.kind == "pretrained":
        pretrained_tokenizer(cfg, run.tokenizer)
    else:
        ticker = Ticker("tokenize: training the tokenizer", unit="documents read")
        texts = (_ticked(rec["text"], ticker) for rec in read_jsonl_gz(run.documents("train")))
        train_tokenizer(texts, cfg, run.tokenizer)
    tok = for_documents(load_tokenizer(run.tokenizer))  # what later stages load, so pack with exactly that
    vocab = tok.get_vocab_size(with_added_tokens=True)
    check_model_vocab(vocab, model_vocab, cfg)
    dtype = pick_dtype(vocab, cfg.dtype)
    byte_lengths = token_byte_lengths(tok)
    sources: dict[str, int] = {}
    splits: dict[str, Any] = {}
    counts: dict[str, np.ndarray] = {}
    bos_id = tok.token_to_id(cfg.bos_token) if cfg.bos_token else None
    with Encoder(tok, bos_id, tok.token_to_id(cfg.eos_token), dtype, cfg.workers) as encoder:
        for split in SPLITS:
            splits[split], counts[split] = pack_split(run, split, encoder, cfg.batch_docs, sources, byte_lengths)
    if splits["train"]["tokens"] == 0:
        raise LmforgeError("the train split is empty after packing", "check data/train.jsonl.gz and the data stage")
    report = tokenizer_report(tok, cfg, splits, counts, byte_lengths, round_trip_exact(tok, run, "val"))
    meta = {"dtype": dtype.name, "vocab_size": vocab, "eos_id": tok.token_to_id(cfg.eos_token),
            "bos_id": tok.token_to_id(cfg.bos_token) if cfg.bos_token else None,
            "unk_id": tok.token_to_id(cfg.unk_token), "kind": cfg.kind, "sources": list(sources),
            "format": "docs/tokens.md", "doc_index": "{split}.docs.npy: int64 start offset of each document; "
            "{split}.doc_sources.npy: int32 index into sources", "splits": splits, "report": report}
    ticker = Ticker("tokenize: leakage check, train n-grams", splits["train"]["documents"], "documents")
    leak = leakage_report((_ticked(r["text"], ticker) for r in read_jsonl_gz(run.documents("train"))),
                          {s: _heldout_docs(run, s) for s in ("val", "test")}, cfg.leakage_ngram)
    atomic_write_json(run.tokens / "leakage.json", leak)
    write_meta(run.tokens, meta)
    console.print(summary_line(meta, leak))
    return {**meta, "leakage": {s: v["fraction"] for s, v in leak["splits"].items()}}
