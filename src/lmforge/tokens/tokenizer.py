"""Tokenizer training with the `tokenizers` library, loading with clear errors, and token byte lengths.

Five kinds, all saved as one tokenizer.json that loads in `tokenizers.Tokenizer.from_file` and in
transformers' `PreTrainedTokenizerFast(tokenizer_file=...)`:

- bytelevel_bpe: GPT-2's byte-level BPE; every string round-trips exactly, no unknown tokens.
- bpe, unigram: SentencePiece-style (spaces become '▁'); exact round trip for characters seen in
  training, unseen characters become the unknown token.
- wordpiece: BERT's; splits on whitespace and punctuation, so decoding does not restore spacing.
- char: one token per character seen in training.
- pretrained: not trained; a given tokenizer.json (a Hugging Face checkpoint's) is copied as is.

Training input is an iterator of documents, consumed once, so corpora larger than memory work:
the trainers keep word counts, never the text.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from lmforge.config.schema import TokenizerConfig
from lmforge.errors import LmforgeError
from lmforge.rundir import atomic_write_text, run_of

KINDS = ("bytelevel_bpe", "bpe", "unigram", "wordpiece", "char")
METASPACE = "▁"  # SentencePiece's meta symbol for a space (U+2581)
WORDPIECE_PREFIX = "##"  # BERT's continuing-subword prefix


def special_tokens(cfg: TokenizerConfig, with_unk: bool) -> list[str]:
    """Special tokens in id order: EOS first (id 0), then UNK, BOS, PAD when configured."""
    out = [cfg.eos_token]
    if with_unk:
        out.append(cfg.unk_token)
    out += [t for t in (cfg.bos_token, cfg.pad_token) if t]
    return list(dict.fromkeys(out))  # a token named twice is one token


@lru_cache(maxsize=1)
def byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's byte-to-printable-character table used by byte-level BPE
    (the table is from GPT-2's encoder.py, `bytes_to_unicode`)."""
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


def _bytelevel_bpe(cfg: TokenizerConfig) -> tuple[Tokenizer, trainers.Trainer]:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
        special_tokens=special_tokens(cfg, with_unk=False),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    return tok, trainer


def _metaspace(tok: Tokenizer) -> None:
    # Metaspace splits only at spaces, so runs of newlines are split off first: otherwise
    # "end.\nROMEO:" is one word, and Unigram training measured 3x slower on such long words.
    # prepend_scheme="never": the first word keeps its own spelling, so decode(encode(x)) == x
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\n+"), behavior="isolated"),
        pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="never"),
    ])
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="never")


def _bpe(cfg: TokenizerConfig) -> tuple[Tokenizer, trainers.Trainer]:
    tok = Tokenizer(models.BPE(unk_token=cfg.unk_token))
    _metaspace(tok)
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
                                  special_tokens=special_tokens(cfg, with_unk=True), show_progress=False)
    return tok, trainer


def _unigram(cfg: TokenizerConfig) -> tuple[Tokenizer, trainers.Trainer]:
    tok = Tokenizer(models.Unigram())
    _metaspace(tok)
    trainer = trainers.UnigramTrainer(vocab_size=cfg.vocab_size, special_tokens=special_tokens(cfg, with_unk=True),
                                      unk_token=cfg.unk_token, show_progress=False)
    return tok, trainer


def _wordpiece(cfg: TokenizerConfig) -> tuple[Tokenizer, trainers.Trainer]:
    tok = Tokenizer(models.WordPiece(unk_token=cfg.unk_token, continuing_subword_prefix=WORDPIECE_PREFIX))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix=WORDPIECE_PREFIX)
    trainer = trainers.WordPieceTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
                                        special_tokens=special_tokens(cfg, with_unk=True),
                                        continuing_subword_prefix=WORDPIECE_PREFIX, show_progress=False)
    return tok, trainer


def train_char(texts: Iterable[str], cfg: TokenizerConfig) -> Tokenizer:
    """One token per character seen at least min_frequency times; the most frequent first when
    vocab_size caps them. Others map to the unknown token."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text)
    specials = special_tokens(cfg, with_unk=True)
    keep = [c for c, n in counts.most_common(max(0, cfg.vocab_size - len(specials))) if n >= cfg.min_frequency]
    vocab = {t: i for i, t in enumerate(specials)}
    vocab.update({c: len(specials) + i for i, c in enumerate(sorted(keep))})
    # a BPE model without merges is a character lookup table
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=cfg.unk_token))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(specials)
    return tok


BUILDERS = {"bytelevel_bpe": _bytelevel_bpe, "bpe": _bpe, "unigram": _unigram, "wordpiece": _wordpiece}


def build_and_train(texts: Iterable[str], cfg: TokenizerConfig) -> Tokenizer:
    """Train the configured kind on a stream of documents (consumed once)."""
    if cfg.kind == "char":
        return train_char(texts, cfg)
    tok, trainer = BUILDERS[cfg.kind](cfg)
    try:
        tok.train_from_iterator(texts, trainer)
    except Exception as exc:  # the Rust trainers raise plain Exception
        if "not large enough to contain all chars" not in str(exc):
            raise
        # Unigram keeps every character of the training text; the others do not stop on it
        raise LmforgeError(f"tokenizer.vocab_size={cfg.vocab_size} is smaller than the number of distinct "
                           f"characters in the train split, which a {cfg.kind} vocabulary must all hold",
                           "raise tokenizer.vocab_size, or use tokenizer.kind=bytelevel_bpe "
                           "(256 byte symbols cover any text)") from None
    # trainers may add specials in their own order; make sure every one is registered as special
    tok.add_special_tokens(special_tokens(cfg, with_unk=cfg.kind != "bytelevel_bpe"))
    return tok


def train_tokenizer(texts: Iterable[str], cfg: TokenizerConfig, out: Path) -> Tokenizer:
    """Train the configured tokenizer and save it atomically as tokenizer.json."""
    chars = 0

    def counted() -> Iterable[str]:
        nonlocal chars
        for text in texts:
            chars += len(text)
            yield text

    tok = build_and_train(counted(), cfg)
    if chars == 0:
        raise LmforgeError("cannot train a tokenizer: the training split has no text",
                           "check data/train.jsonl.gz and data/ledger.json (were all documents rejected?)")
    atomic_write_text(out, tok.to_str())
    return tok


def load_tokenizer(path: Path) -> Tokenizer:
    """Load tokenizer.json, or say clearly why it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise LmforgeError(f"tokenizer file not found: {path}",
                           "run `lmforge tokenize RUN_DIR` first, or give the path to a tokenizer.json")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 -- the Rust side raises a plain Exception for any parse error
        raise LmforgeError(f"tokenizer file {path} is corrupt or not a `tokenizers` file: {exc}",
                           "delete it and rerun `lmforge tokenize RUN_DIR --force`") from None


def for_documents(tok: Tokenizer) -> Tokenizer:
    """The tokenizer set to encode special-token strings found in document text as plain text:
    packing writes the EOS/BOS ids itself, so a literal "<|endoftext|>" in a document must not
    become a document boundary (the setting is not saved in tokenizer.json)."""
    tok.encode_special_tokens = True
    return tok


def pretrained_tokenizer(cfg: TokenizerConfig, out: Path) -> Tokenizer:
    """Copy a ready tokenizer (tokenizer.path: a tokenizer.json, or a folder holding one, such as a
    Hugging Face checkpoint's) into the run instead of training one; its special tokens must hold
    the configured EOS (and BOS, PAD) token, since packing writes them."""
    path = Path(cfg.path or "")
    run = run_of(path) if path.is_dir() else None
    if run is not None:  # an lmforge run or checkpoint (model.init_from): the run's own tokenizer
        path = run.tokenizer
    elif path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():  # load_tokenizer's hint (rerun tokenize) would not help here
        raise LmforgeError(f"tokenizer.path: {path} not found",
                           "set tokenizer.path to a tokenizer.json, or to a folder holding one "
                           "(a Hugging Face checkpoint's)")
    tok = load_tokenizer(path)
    vocab = tok.get_vocab(with_added_tokens=True)
    for key, token in (("eos_token", cfg.eos_token), ("bos_token", cfg.bos_token), ("pad_token", cfg.pad_token)):
        if token and token not in vocab:
            specials = ", ".join(sorted(t.content for t in tok.get_added_tokens_decoder().values())) or "none"
            raise LmforgeError(f"tokenizer.{key}={token!r} is not in the vocabulary of {path}",
                               f"set tokenizer.{key} to one of its special tokens: {specials}")
    atomic_write_text(out, tok.to_str())
    return tok


def tokenizer_kind(tok: Tokenizer) -> str:
    """Recognise which of our kinds a tokenizer is, from its saved JSON (for byte accounting)."""
    spec = json.loads(tok.to_str())
    model = (spec.get("model") or {}).get("type")
    pre_spec = spec.get("pre_tokenizer") or {}
    pre = {p.get("type") for p in pre_spec.get("pretokenizers", [pre_spec])}
    if "ByteLevel" in pre:
        return "bytelevel_bpe"
    if "Metaspace" in pre:
        return "unigram" if model == "Unigram" else "bpe"
    if model == "WordPiece":
        return "wordpiece"
    return "char"


def token_byte_lengths(tok: Tokenizer) -> np.ndarray:
    """UTF-8 bytes each token stands for (special tokens count 0), for bits per byte.
    WordPiece drops whitespace, so its counts are a lower bound on the text's bytes."""
    size = tok.get_vocab_size(with_added_tokens=True)
    lengths = np.zeros(size, dtype=np.int64)
    specials = {t.content for t in tok.get_added_tokens_decoder().values()}
    kind = tokenizer_kind(tok)
    table = byte_decoder()
    for piece, idx in tok.get_vocab(with_added_tokens=True).items():
        if piece in specials:
            continue
        if kind == "bytelevel_bpe":
            lengths[idx] = sum(1 for ch in piece if ch in table)
        elif kind in ("bpe", "unigram"):
            lengths[idx] = len(piece.replace(METASPACE, " ").encode("utf-8"))
        elif kind == "wordpiece":
            lengths[idx] = len(piece.removeprefix(WORDPIECE_PREFIX).encode("utf-8"))
        else:
            lengths[idx] = len(piece.encode("utf-8"))
    return lengths


def token_text(tok: Tokenizer, idx: int) -> str:
    """The text one token stands for, readable (byte-level pieces decoded, '▁' shown as a space)."""
    return tok.decode([idx], skip_special_tokens=False)
