"""English word splitting as spaCy's English tokenizer does it (datatrove's Gopher word counts)."""

from __future__ import annotations

import pytest

from lmforge.data import wordsplit
from lmforge.data.text import tokens
from tests.helpers.texts import AUSTEN, MELVILLE

# Chunks where spaCy 3.8's English tokenizer and lmforge's earlier regex splitter disagreed;
# the expected tokens are spaCy's (checked against spaCy when it is installed, below).
SPACY_CASES = [
    ("madam;--you", ["madam;--you"]),  # no affix rule applies and ; is not an infix
    ("Hamlet,--", ["Hamlet,--"]),
    ("don't", ["do", "n't"]),  # contraction exceptions
    ("cannot", ["can", "not"]),
    ("wed.", ["we", "d."]),  # "wed" = we + d, then the "d." exception joins the period
    ("''tis", ["''", "tis"]),
    ("&c.'--", ["&", "c.", "'--"]),
    ("I.", ["I."]),  # one capital before a period is not split, two are
    ("THE.", ["THE", "."]),
    ("Mr.", ["Mr."]),
    ("e.g.", ["e.g."]),
    ("U.S.A.", ["U.S.A."]),
    ("a.m.,", ["a.m.", ","]),
    ("...so", ["...", "so"]),
    ("guests:)", ["guests", ":)"]),
    ("10km", ["10", "km"]),
    ("www.example.com/x,", ["www.example.com/x", ","]),
]
# Chunks both agreed on, which must not change.
STABLE_CASES = [
    ("o'er", ["o'er"]),
    ("thou'rt", ["thou'rt"]),
    ("he'll", ["he", "'ll"]),
    ("Antony's", ["Antony", "'s"]),
    ("well-a-day", ["well", "-", "a", "-", "day"]),
    ("'Tis", ["'", "Tis"]),
    ("you!'", ["you", "!", "'"]),
]


@pytest.mark.parametrize(("chunk", "expected"), SPACY_CASES + STABLE_CASES)
def test_chunks_split_as_spacy_english(chunk: str, expected: list[str]) -> None:
    assert list(wordsplit.split_chunk(chunk)) == expected


def test_tokens_drop_whitespace_and_keep_cjk_characters() -> None:
    assert tokens("  Mr. Darcy's\n\tletter--\n") == ["Mr.", "Darcy", "'s", "letter--"]
    assert tokens("我爱Python编程。 Don't!") == ["我", "爱", "Python", "编", "程", "。", "Do", "n't", "!"]


def test_same_tokens_as_spacy_when_installed() -> None:
    spacy = pytest.importorskip("spacy")
    nlp = spacy.blank("en")
    text = AUSTEN + MELVILLE + " ".join(c for c, _ in SPACY_CASES + STABLE_CASES)
    assert tokens(text) == [t.text for t in nlp(text) if t.text.strip()]
