"""Modern <-> early-modern spelling variants, learned from the built-in corpus's paired editions:
each First Folio text (`_gut_f`) beside its modern-spelling edition (`_gut`) of the same play.

The two word sequences are aligned with difflib; where the alignment replaces k words by k words,
each pair that looks like one word spelt two ways (same first letter, u/v and i/j counted alike, length within 2, character
similarity >= 0.6) is counted. A pair seen `min_count` times becomes a variant, the most frequent
spelling winning (have -> haue, upon -> vpon, here -> heere). The table is cached under
$LMFORGE_CACHE, so later runs read it without aligning again.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from lmforge.augment.ops import WORD
from lmforge.console import console
from lmforge.corpora import shakespeare
from lmforge.rundir import atomic_write_json


def same_word(a: str, b: str) -> bool:
    """Whether two different strings look like one word spelt two ways."""
    # early printers used u/v and i/j as positional forms of one letter (vpon, iest), so a first
    # letter differing only that way still counts as the same word
    first = a[:1] == b[:1] or {a[:1], b[:1]} in ({"u", "v"}, {"i", "j"})
    return (a != b and min(len(a), len(b)) >= 2 and first and abs(len(a) - len(b)) <= 2
            and difflib.SequenceMatcher(None, a, b).ratio() >= 0.6)


def aligned_pairs(modern: str, early: str) -> Counter[tuple[str, str]]:
    """(modern, early) word pairs the alignment of two editions of one text puts side by side."""
    a = [w.lower() for w in WORD.findall(modern)]
    b = [w.lower() for w in WORD.findall(early)]
    found: Counter[tuple[str, str]] = Counter()
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "replace" and i2 - i1 == j2 - j1:
            found.update((x, y) for x, y in zip(a[i1:i2], b[j1:j2]) if same_word(x, y))
    return found


def learn_variants(pairs: Iterable[tuple[str, str]], min_count: int = 3) -> dict[str, str]:
    """modern -> early spelling from (modern text, early text) pairs: the most frequent early
    spelling of each modern word seen at least `min_count` times."""
    counts: Counter[tuple[str, str]] = Counter()
    for modern, early in pairs:
        counts += aligned_pairs(modern, early)
    best: dict[str, tuple[int, str]] = {}
    for (m, e), n in counts.items():
        if n >= min_count and n > best.get(m, (0, ""))[0]:
            best[m] = (n, e)
    return {m: e for m, (_, e) in sorted(best.items())}


def invert(table: dict[str, str]) -> dict[str, str]:
    """early -> modern; an early spelling shared by two modern words keeps neither (then -> than or then)."""
    seen: Counter[str] = Counter(table.values())
    return {e: m for m, e in table.items() if seen[e] == 1}


def _stem(path: Path) -> str:
    return path.stem.rsplit("_gut", 1)[0]


def edition_pairs(max_pairs: int | None = None) -> list[tuple[Path, Path]]:
    """(modern, folio) files of the same play, matched by the closest file name (ratio >= 0.7)."""
    docs = shakespeare.documents(["shakespeare"], ["modern", "folio"])
    modern = [d.path for d in docs if d.edition == "modern"]
    out = []
    for folio in (d.path for d in docs if d.edition == "folio"):
        scored = [(difflib.SequenceMatcher(None, _stem(folio), _stem(m)).ratio(), m) for m in modern]
        ratio, best = max(scored)
        if ratio >= 0.7:
            out.append((best, folio))
    return out[:max_pairs] if max_pairs else out


def corpus_variants(max_pairs: int | None = 8, min_count: int = 3) -> dict[str, str]:
    """The modern -> early table learned from the corpus's paired editions, cached."""
    cache = shakespeare.cache_root() / f"spelling-{shakespeare.VERSION}-{max_pairs}-{min_count}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    pairs = edition_pairs(max_pairs)
    console.print(f"augment: learning spelling variants from {len(pairs)} paired editions (cached afterwards)")
    table = learn_variants(((m.read_text(encoding="utf-8", errors="replace"),
                             f.read_text(encoding="utf-8", errors="replace")) for m, f in pairs), min_count)
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cache, table)
    return table
