"""Tokenizer training, round trips, byte accounting, loading in transformers, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer

from lmforge.config.schema import TokenizerConfig
from lmforge.errors import LmforgeError
from lmforge.tokens.tokenizer import (
    KINDS,
    build_and_train,
    load_tokenizer,
    pretrained_tokenizer,
    token_byte_lengths,
    tokenizer_kind,
    train_tokenizer,
)
from tests.helpers.documents import make_docs

TEXTS = [d["text"] for d in make_docs(20)]
ODD = ["", " leading space", "trailing  \n\n", "tabs\tand\r\nCRLF", "ünïcödé — “quotes” 日本語 🙂",
       "\x00control\x7f", "ROMEO:\n  But soft!"]


def trained(kind: str, tmp_path: Path, **kw: object) -> Tokenizer:
    return train_tokenizer(iter(TEXTS), TokenizerConfig(kind=kind, vocab_size=300, **kw), tmp_path / f"{kind}.json")


@pytest.mark.parametrize("text", ODD + TEXTS[:2])
def test_bytelevel_round_trip_is_exact(tmp_path: Path, text: str) -> None:
    tok = trained("bytelevel_bpe", tmp_path)
    ids = tok.encode(text, add_special_tokens=False).ids
    assert tok.decode(ids) == text
    # every byte is accounted for, so bits per byte divides by the true byte count
    assert int(token_byte_lengths(tok)[ids].sum()) == len(text.encode("utf-8"))


@pytest.mark.parametrize("kind", ["bpe", "unigram", "char"])
def test_lossless_kinds_round_trip_on_seen_characters(tmp_path: Path, kind: str) -> None:
    tok = trained(kind, tmp_path)
    text = TEXTS[3]
    ids = tok.encode(text, add_special_tokens=False).ids
    assert tok.decode(ids) == text
    assert int(token_byte_lengths(tok)[ids].sum()) == len(text.encode("utf-8"))
    assert tok.token_to_id("<unk>") not in ids


@pytest.mark.parametrize("kind", ["bpe", "unigram", "char", "wordpiece"])
def test_unseen_characters_become_unk(tmp_path: Path, kind: str) -> None:
    tok = trained(kind, tmp_path)
    assert tok.token_to_id("<unk>") in tok.encode("the 日本", add_special_tokens=False).ids


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_saves_loads_and_is_recognised(tmp_path: Path, kind: str) -> None:
    cfg = TokenizerConfig(kind=kind, vocab_size=300, bos_token="<s>", pad_token="<pad>")
    tok = train_tokenizer(iter(TEXTS), cfg, tmp_path / "tok.json")
    loaded = load_tokenizer(tmp_path / "tok.json")
    assert loaded.encode(TEXTS[0]).ids == tok.encode(TEXTS[0]).ids
    assert tokenizer_kind(loaded) == kind
    assert loaded.token_to_id(cfg.eos_token) == 0  # EOS is always id 0
    specials = {t.content for t in loaded.get_added_tokens_decoder().values()}
    assert {"<s>", "<pad>", cfg.eos_token} <= specials
    assert loaded.get_vocab_size() <= 300
    # specials never come out of ordinary text
    assert not {0, loaded.token_to_id("<s>"), loaded.token_to_id("<pad>")} & set(loaded.encode(TEXTS[1]).ids)


def test_vocab_size_and_min_frequency_shape_the_vocabulary(tmp_path: Path) -> None:
    small = trained("bytelevel_bpe", tmp_path, min_frequency=2)
    big = train_tokenizer(iter(TEXTS), TokenizerConfig(vocab_size=400), tmp_path / "big.json")
    strict = trained("bytelevel_bpe", tmp_path, min_frequency=10_000)
    assert small.get_vocab_size() == 300 and big.get_vocab_size() > 300
    assert strict.get_vocab_size() == 256 + 1  # no merge is frequent enough: bytes + EOS


def test_transformers_loads_and_encodes_identically(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    for kind in ("bytelevel_bpe", "unigram"):
        tok = trained(kind, tmp_path)
        hf = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / f"{kind}.json"))
        for text in ODD[1:] + TEXTS[:3]:
            assert hf(text)["input_ids"] == tok.encode(text).ids
            assert hf.decode(hf(text)["input_ids"], skip_special_tokens=True) == tok.decode(tok.encode(text).ids)


def test_missing_tokenizer_file_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(LmforgeError, match="not found.*") as err:
        load_tokenizer(tmp_path / "nope.json")
    assert "lmforge tokenize" in (err.value.hint or "")


@pytest.mark.parametrize("content", ["", "{not json", '{"model": {"type": "BPE"}}'])
def test_corrupt_tokenizer_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text(content)
    with pytest.raises(LmforgeError, match="corrupt"):
        load_tokenizer(path)


def test_empty_training_text_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LmforgeError, match="no text"):
        train_tokenizer(iter(["", ""]), TokenizerConfig(kind="char"), tmp_path / "t.json")


def test_bytelevel_vocab_below_the_byte_alphabet_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="vocab_size >= 257"):
        TokenizerConfig(kind="bytelevel_bpe", vocab_size=200)
    TokenizerConfig(kind="char", vocab_size=200)  # fine for the others


@pytest.mark.parametrize("kind", KINDS)
def test_training_reads_the_stream_once(tmp_path: Path, kind: str) -> None:
    """Corpora larger than memory: training consumes a one-pass iterator, never a list."""
    pulled: list[int] = []

    def stream():  # a generator cannot be rewound; a second pass would see nothing
        for i, text in enumerate(TEXTS):
            pulled.append(i)
            yield text

    tok = train_tokenizer(stream(), TokenizerConfig(kind=kind, vocab_size=300), tmp_path / "t.json")
    assert pulled == list(range(len(TEXTS)))
    no_space = str.maketrans("", "", " \n")  # WordPiece does not keep spacing
    assert tok.decode(tok.encode(TEXTS[0]).ids).translate(no_space) == TEXTS[0].translate(no_space)


@pytest.mark.parametrize("other", ["eos_token", "bos_token", "pad_token"])
def test_unk_token_sharing_a_special_token_is_a_config_error(other: str) -> None:
    """One string would be one id: unseen characters would be packed as EOS (or BOS, PAD)."""
    with pytest.raises(ValueError, match="unk_token '<x>' is also the EOS, BOS or PAD token"):
        TokenizerConfig(kind="bpe", unk_token="<x>", **{other: "<x>"})
    TokenizerConfig(kind="bytelevel_bpe", unk_token="<x>", **{other: "<x>"})  # never writes unk: allowed


def test_unigram_vocab_below_the_alphabet_is_a_clear_error() -> None:
    """Unigram must hold every character it trained on; a smaller vocab_size is the user's to fix."""
    text = "".join(chr(0x4E00 + i) for i in range(200)) * 3
    with pytest.raises(LmforgeError, match="vocab_size=64 is smaller than the number of distinct characters"):
        build_and_train(iter([text]), TokenizerConfig(kind="unigram", vocab_size=64))


def test_pretrained_path_not_found_names_the_key(tmp_path: Path) -> None:
    """The hint is about tokenizer.path, not about rerunning the tokenize stage."""
    cfg = TokenizerConfig(kind="pretrained", path=str(tmp_path / "nope"))
    with pytest.raises(LmforgeError, match="tokenizer.path: .*nope not found") as err:
        pretrained_tokenizer(cfg, tmp_path / "out.json")
    assert "folder holding one" in err.value.hint
