"""Tokenizer training with the `tokenizers` library, and the byte length of every token.

The saved tokenizer.json loads in `tokenizers.Tokenizer.from_file` and in transformers'
`PreTrainedTokenizerFast(tokenizer_file=...)`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from lmforge.config import TokenizerConfig
from lmforge.rundir import atomic_write_text

UNK = "<unk>"


@lru_cache(maxsize=1)
def byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's byte-to-printable-character table used by byte-level BPE."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def train_bytelevel_bpe(texts: Iterable[str], cfg: TokenizerConfig) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency, special_tokens=[cfg.eos_token],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def train_char(texts: Iterable[str], cfg: TokenizerConfig) -> Tokenizer:
    """One token per character seen in training (at least min_frequency times); others map to <unk>."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text)
    chars = sorted(c for c, n in counts.items() if n >= cfg.min_frequency)
    vocab = {cfg.eos_token: 0, UNK: 1, **{c: i + 2 for i, c in enumerate(chars)}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([cfg.eos_token, UNK])
    return tok


def train_tokenizer(texts: Iterable[str], cfg: TokenizerConfig, out: Path) -> Tokenizer:
    """Train the configured tokenizer and save it atomically as tokenizer.json."""
    tok = train_bytelevel_bpe(texts, cfg) if cfg.kind == "bytelevel_bpe" else train_char(texts, cfg)
    atomic_write_text(out, tok.to_str())
    return tok


def token_byte_lengths(tok: Tokenizer) -> np.ndarray:
    """UTF-8 bytes each token stands for (special tokens count 0), for bits-per-byte."""
    size = tok.get_vocab_size(with_added_tokens=True)
    lengths = np.zeros(size, dtype=np.int64)
    specials = {t.content for t in tok.get_added_tokens_decoder().values()}
    is_bytelevel = isinstance(tok.pre_tokenizer, pre_tokenizers.ByteLevel)
    table = byte_decoder()
    for piece, idx in tok.get_vocab(with_added_tokens=True).items():
        if piece in specials:
            continue
        if is_bytelevel:
            lengths[idx] = sum(1 for ch in piece if ch in table)
        else:
            lengths[idx] = len(piece.encode("utf-8"))
    return lengths
