"""Script-aware text units shared by filters, dedup and the ledger.

English rules count words as spaCy's English tokenizer cuts them (reproduced in wordsplit.py,
without spaCy); Chinese and Japanese are written without spaces, so for them a "word" is one CJK
character. These helpers make every rule work on both, and on mixed text, without a word
segmenter (no spaCy, no jieba).
"""

from __future__ import annotations

import re

from lmforge.data import wordsplit

# CJK Unified Ideographs (+ extension A, compatibility), kana and Hangul syllables.
CJK_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_CJK = re.compile(f"[{CJK_CLASS}]")
# A quick regex token, for chunks holding CJK text and for the ledger's token count: one CJK
# character, a word (inner apostrophes kept: "o'er"), an English clitic split off ("'s", "'ll"),
# a run of dashes, or one other punctuation mark.
_CLITIC = "['’](?:s|S|ll|re|ve|d|m)(?![^\\W_])"
_TOKEN = re.compile(f"[{CJK_CLASS}]|[^\\W{CJK_CLASS}]+?(?={_CLITIC})|{_CLITIC}|[^\\W{CJK_CLASS}]+(?:['’][^\\W{CJK_CLASS}]+)*"
                    "|-+|[^\\w\\s]", re.UNICODE)
_WORD = re.compile(f"[{CJK_CLASS}]|[^\\W{CJK_CLASS}]+(?:['’][^\\W{CJK_CLASS}]+)*", re.UNICODE)
# Sentence ends, Western and Chinese (。！？ and the full-width forms), with closing quotes.
SENTENCE_END = re.compile(r"[.!?。！？…]+[\"'”’」』）)]*(?=\s|$)|[。！？]+")
TERMINAL_PUNCT = (".", "!", "?", '"', "'", "”", "’", "。", "！", "？", "…", "」", "』", "）")


def cjk_ratio(text: str, sample: int = 20_000) -> float:
    """Fraction of non-space characters that are CJK (on a prefix, for speed on long texts)."""
    head = text[:sample]
    visible = len(head) - sum(head.count(c) for c in " \n\t")
    return len(_CJK.findall(head)) / visible if visible else 0.0


def is_cjk(text: str, threshold: float = 0.3) -> bool:
    """Treat a text as CJK when at least 30% of its visible characters are CJK (a mixed-text rule)."""
    return cjk_ratio(text) >= threshold


def tokens(text: str) -> list[str]:
    """Words, CJK characters and punctuation marks, in order.

    English is cut as spaCy's English tokenizer cuts it (see wordsplit.py), so word counts match
    datatrove's; a whitespace-free chunk holding CJK characters gives one token per CJK character.
    """
    if not _CJK.search(text):
        return wordsplit.split(text)
    out: list[str] = []
    for chunk in text.split():
        out.extend(_TOKEN.findall(chunk) if _CJK.search(chunk) else wordsplit.split(chunk))
    return out


def words(text: str) -> list[str]:
    """Words and CJK characters, without punctuation."""
    return _WORD.findall(text)


def count_tokens(text: str) -> int:
    """The ledger's token count: words + CJK characters + punctuation (a tokenizer-free proxy)."""
    return len(_TOKEN.findall(text))


def sentences(text: str) -> list[str]:
    """Split at Western and Chinese sentence ends."""
    parts, start = [], 0
    for m in SENTENCE_END.finditer(text):
        chunk = text[start:m.end()].strip()
        if chunk:
            parts.append(chunk)
        start = m.end()
    tail = text[start:].strip()
    if tail:
        parts.append(tail)
    return parts
