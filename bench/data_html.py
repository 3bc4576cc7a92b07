"""HTML to text: the HTML5 parser (selectolax/Lexbor, `clean.strip_html`) against the regular
expressions lmforge used before, on real pages: speed, and what changes in the text.

    python bench/data_html.py [--pages 400] [GLOB ...]

Without globs it samples pages found on this machine (Rust's and the system's documentation).
Speed: median of 5 interleaved repeats per extractor (the machine may be shared).
"""

from __future__ import annotations

import argparse
import glob
import html
import platform
import random
import re
import statistics
import time
from collections import Counter
from pathlib import Path

import selectolax

from lmforge.data import clean

# The regex rules lmforge used before (the baseline being measured).
_SCRIPT_STYLE = re.compile(r"<(script|style|noscript)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_BLOCK_TAG = re.compile(r"<\s*/?\s*(p|div|br|li|ul|ol|h[1-6]|tr|table|section|article|blockquote|pre)\b[^>]*>",
                        re.IGNORECASE)
_TAG = re.compile(r"<[^>]{0,2000}>")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_MARKUP_LEFT = re.compile(r"<[/!a-zA-Z][^<>\n]{0,200}>|&[a-zA-Z]+;|&#x?[0-9a-fA-F]+;")
_WORD = re.compile(r"\w+")
_DEFAULT = ["/root/.rustup/toolchains/*/share/doc/rust/html/**/*.html", "/usr/share/doc/**/*.html"]


def regex_strip(text: str) -> str:
    text = _COMMENT.sub("", text)
    text = _SCRIPT_STYLE.sub("", text)
    text = _BLOCK_TAG.sub("\n", text)
    text = _TAG.sub("", text)
    return html.unescape(text)


def parser_strip(text: str) -> str:
    return clean.strip_html(text)[0]


def pages(patterns: list[str], n: int, seed: int = 0) -> list[str]:
    found = sorted({p for pat in patterns for p in glob.glob(pat, recursive=True) if Path(p).stat().st_size > 2000})
    random.Random(seed).shuffle(found)
    out = []
    for path in found[:n]:
        out.append(Path(path).read_text(encoding="utf-8", errors="replace"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pages", type=int, default=400)
    ap.add_argument("globs", nargs="*", default=_DEFAULT)
    args = ap.parse_args()
    docs = pages(args.globs, args.pages)
    mb = sum(len(d.encode()) for d in docs) / 1e6
    print(f"{len(docs)} pages, {mb:.1f} MB; Python {platform.python_version()}, selectolax {selectolax.__version__}")
    times: dict[str, list[float]] = {"regex": [], "parser": []}
    for _ in range(5):
        for name, fn in (("regex", regex_strip), ("parser", parser_strip)):
            t = time.perf_counter()
            for d in docs:
                fn(d)
            times[name].append(time.perf_counter() - t)
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name}: median {med:.2f} s over 5 repeats = {mb / med:.1f} MB/s")
    stats: Counter[str] = Counter()
    for d in docs:
        old, new = (clean.normalize_whitespace(f(d)) for f in (regex_strip, parser_strip))
        stats["chars_regex"] += len(old)
        stats["chars_parser"] += len(new)
        stats["pages_differ"] += old != new
        stats["markup_left_regex"] += len(_MARKUP_LEFT.findall(old))
        stats["markup_left_parser"] += len(_MARKUP_LEFT.findall(new))
        w_old, w_new = Counter(_WORD.findall(old)), Counter(_WORD.findall(new))
        stats["words_only_regex"] += sum((w_old - w_new).values())
        stats["words_only_parser"] += sum((w_new - w_old).values())
        stats["words_regex"] += sum(w_old.values())
    for key, value in stats.items():
        print(f"{key}: {value:,}")


if __name__ == "__main__":
    main()
