"""The augmentation operations: each takes a text, a rate in [0, 1] and a seeded random source,
and returns a changed text whose share of changed units follows the rate.

EDA (synonym replacement, random insertion, random swap, random deletion) follows Wei & Zou 2019,
"EDA: Easy Data Augmentation Techniques for Boosting Performance on Text Classification": the
rate is the share of words touched (their alpha), at least one word when the rate is above 0.
Character noise (swap, drop, repeat or replace one letter) and span masking (T5-style spans,
Raffel et al. 2020, of mean length 3 replaced by one mask token) act on characters and words;
the sentence shuffle reorders sentences; the spelling operations swap modern and early-modern
spellings learned from paired editions (augment/spelling.py). Paraphrase rewrites spans (chosen as
span masking chooses them) or the end of the text with words a trained model writes; the model
itself comes from a higher layer through `Resources.rewriter` (evaluate/paraphrase.py), since
this package sits below training and evaluation.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lmforge.errors import LmforgeError

WORD = re.compile(r"[A-Za-z][A-Za-z']*")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


# (the text before the words, the words replaced, a seed) -> the words that replace them
Rewriter = Callable[[str, str, int], str]


@dataclass
class Resources:
    """What some operations look words up in: neighbours (synonym source) and spelling tables;
    and what paraphrase writes with, and what its copies record about it (`provenance`: fields
    added to each copy an operation makes)."""

    synonyms: Mapping[str, list[str]] = field(default_factory=dict)
    to_early: Mapping[str, str] = field(default_factory=dict)
    to_modern: Mapping[str, str] = field(default_factory=dict)
    mask_token: str = "_"
    rewriter: Rewriter | None = None
    paraphrase_mode: str = "spans"
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)


Op = Callable[[str, float, random.Random, Resources], str]


def check_rate(rate: float, name: str = "rate") -> float:
    """A rate is a share: outside [0, 1] it means nothing, so it is refused."""
    if not isinstance(rate, int | float) or not 0.0 <= float(rate) <= 1.0:
        raise LmforgeError(f"augmentation {name} must be between 0 and 1, got {rate!r}",
                           "give the share of words (or characters) to change, e.g. rate=0.1")
    return float(rate)


def _count(n: int, rate: float) -> int:
    """How many of n units to touch: round(rate * n), at least one when rate > 0 and n > 0."""
    if rate <= 0 or n == 0:
        return 0
    return min(n, max(1, round(rate * n)))


def _words(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in WORD.finditer(text)]


def _replace_spans(text: str, edits: dict[tuple[int, int], str]) -> str:
    out, last = [], 0
    for (a, b), new in sorted(edits.items()):
        out.append(text[last:a])
        out.append(new)
        last = b
    out.append(text[last:])
    return "".join(out)


def _match_case(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def synonym_replace(text: str, rate: float, rng: random.Random, res: Resources) -> str:
    """Replace a share of the words that have a neighbour by one of their neighbours."""
    spans = [s for s in _words(text) if res.synonyms.get(text[s[0]:s[1]].lower())]
    picks = rng.sample(spans, min(len(spans), _count(len(_words(text)), rate)))
    return _replace_spans(text, {s: _match_case(rng.choice(res.synonyms[text[s[0]:s[1]].lower()]),
                                                text[s[0]:s[1]]) for s in picks})


def random_insert(text: str, rate: float, rng: random.Random, res: Resources) -> str:
    """Insert a neighbour of a random word at a random word boundary, n times."""
    spans = _words(text)
    words = [text[a:b] for a, b in spans]
    known = [w for w in words if res.synonyms.get(w.lower())]
    pool = [rng.choice(res.synonyms[w.lower()]) for w in known] or words
    if not spans:
        return text
    edits: dict[tuple[int, int], str] = {}
    for _ in range(_count(len(spans), rate)):
        _, b = rng.choice(spans)
        key = (b, b)
        edits[key] = edits.get(key, "") + " " + rng.choice(pool)
    return _replace_spans(text, edits)


def random_swap(text: str, rate: float, rng: random.Random, res: Resources) -> str:
    """Swap two random words, n times."""
    spans = _words(text)
    if len(spans) < 2:
        return text
    words = [text[a:b] for a, b in spans]
    for _ in range(_count(len(spans), rate)):
        i, j = rng.sample(range(len(words)), 2)
        words[i], words[j] = words[j], words[i]
    return _replace_spans(text, dict(zip(spans, words)))


def random_delete(text: str, rate: float, rng: random.Random, res: Resources) -> str:
    """Delete each of n random words (never all of them)."""
    spans = _words(text)
    n = min(_count(len(spans), rate), max(0, len(spans) - 1))
    gone = rng.sample(spans, n)
    out = _replace_spans(text, {s: "" for s in gone})
    return re.sub(r"[ \t]{2,}", " ", out)


def char_noise(text: str, rate: float, rng: random.Random, res: Resources) -> str:
    """Typos: a share of the letters each swapped with the next, dropped, doubled or replaced."""
    letters = [i for i, c in enumerate(text) if c.isalpha()]
    chars = list(text)
    for i in sorted(rng.sample(letters, _count(len(letters), rate)), reverse=True):
        kind = rng.randrange(4)
        if kind == 0 and i + 1 < len(chars):
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif kind == 1:
            chars[i] = ""
        elif kind == 2:
            chars[i] = chars[i] * 2
        else:
            new = rng.choice(string.ascii_lowercase.replace(chars[i].lower(), ""))
            chars[i] = new.upper() if chars[i].isupper() else new
    return "".join(chars)


def span_groups(n: int, target: int, rng: random.Random, mean_span: int = 3) -> list[tuple[int, int]]:
    """`target` of n word positions in spans of about `mean_span` (lengths drawn from an
    exponential, as T5's are about their mean), as (first, last) of each run of chosen words."""
    chosen: set[int] = set()
    while len(chosen) < target:
        length = max(1, min(target - len(chosen), round(rng.expovariate(1 / mean_span))))
        start = rng.randrange(n)
        chosen.update(range(start, min(n, start + length)))
    groups: list[tuple[int, int]] = []
    for i in sorted(chosen):
        if groups and groups[-1][1] == i - 1:
            groups[-1] = (groups[-1][0], i)
        else:
            groups.append((i, i))
    return groups


def span_mask(text: str, rate: float, rng: random.Random, res: Resources, mean_span: int = 3) -> str:
    """Mask a share of the words in spans of about `mean_span` words, each span by one mask token."""
    spans = _words(text)
    groups = span_groups(len(spans), _count(len(spans), rate), rng, mean_span)
    return _replace_spans(text, {(spans[i][0], spans[j][1]): res.mask_token for i, j in groups})


def paraphrase(text: str, rate: float, rng: random.Random, res: Resources) -> str:
    """Rewrite a share of the words with a trained model. Mode `spans`: spans as span_mask chooses
    them, left to right, each replaced by what the model writes after the (already rewritten) text
    before it; mode `continue`: the last share of the words replaced by the model's continuation
    of the rest. A causal model sees only the left context: the words after a span do not steer
    it. Each replacement starts where the word before it ends, so the model writes its own
    spacing and punctuation."""
    if res.rewriter is None:
        raise LmforgeError("the paraphrase operation has no model to write with",
                           "set augment.paraphrase.model to a trained run, and run it through `lmforge augment` "
                           "or `lmforge compare augmentation`")
    spans = _words(text)
    target = _count(len(spans), rate)
    if target == 0:
        return text
    if res.paraphrase_mode == "continue":
        groups = [(len(spans) - target, len(spans) - 1)]
    else:
        groups = span_groups(len(spans), target, rng)
    pieces: list[str] = []
    last = 0
    for i, j in groups:
        start, end = (spans[i - 1][1] if i > 0 else 0), spans[j][1]
        pieces.append(text[last:start])
        pieces.append(res.rewriter("".join(pieces), text[start:end], rng.randrange(2**63)))
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def sentence_shuffle(text: str, rate: float, rng: random.Random, res: Resources) -> str:
    """Move a share of the sentences to new places (at least two when the rate is above 0)."""
    sentences = [s for s in SENTENCE_END.split(text.strip()) if s]
    if len(sentences) < 2:
        return text
    n = min(len(sentences), max(2, _count(len(sentences), rate))) if rate > 0 else 0
    chosen = sorted(rng.sample(range(len(sentences)), n))
    moved = chosen[:]
    while n >= 2 and moved == chosen:
        rng.shuffle(moved)
    out = sentences[:]
    for dst, src in zip(chosen, moved):
        out[dst] = sentences[src]
    return " ".join(out)


def _respell(table: Mapping[str, str]) -> Op:
    def op(text: str, rate: float, rng: random.Random, res: Resources) -> str:
        known = [s for s in _words(text) if text[s[0]:s[1]].lower() in table]
        n = _count(len(known), rate)
        picks = rng.sample(known, n)
        return _replace_spans(text, {s: _match_case(table[text[s[0]:s[1]].lower()], text[s[0]:s[1]])
                                     for s in picks})
    return op


def to_early(text: str, rate: float, rng: random.Random, res: Resources) -> str:
    """Respell a share of the words that have a learned early-modern spelling (have -> haue)."""
    return _respell(res.to_early)(text, rate, rng, res)


def to_modern(text: str, rate: float, rng: random.Random, res: Resources) -> str:
    """Respell a share of the early-modern words that have a learned modern spelling (haue -> have)."""
    return _respell(res.to_modern)(text, rate, rng, res)


OPERATIONS: dict[str, Op] = {
    "synonym": synonym_replace, "insert": random_insert, "swap": random_swap, "delete": random_delete,
    "char_noise": char_noise, "span_mask": span_mask, "sentence_shuffle": sentence_shuffle,
    "to_early": to_early, "to_modern": to_modern, "paraphrase": paraphrase,
}
NEEDS_SYNONYMS = ("synonym", "insert")
NEEDS_SPELLING = ("to_early", "to_modern")
NEEDS_MODEL = ("paraphrase",)


def apply(name: str, text: str, rate: float, rng: random.Random, res: Resources) -> str:
    """Run one named operation, the rate checked first."""
    if name not in OPERATIONS:
        raise LmforgeError(f"unknown augmentation operation '{name}'", f"choose from: {', '.join(OPERATIONS)}")
    return OPERATIONS[name](text, check_rate(rate), rng, res)
