"""Text cleaning rules. Each takes text and returns text; none decides to drop a document."""

from __future__ import annotations

import re
import unicodedata

# Project Gutenberg marks the body with "*** START OF ..." / "*** END OF ..." lines (newer
# files) or "*END*THE SMALL PRINT" and "End of (the) Project Gutenberg ..." (older ones).
_START = re.compile(r"^\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG.*$|^\*END\*THE SMALL PRINT.*$",
                    re.IGNORECASE | re.MULTILINE)
_END = re.compile(r"^\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG.*$|^End of (the )?Project Gutenberg.*$",
                  re.IGNORECASE | re.MULTILINE)
# C0/C1 control characters except tab and newlines, plus zero-width and bidi controls that are
# invisible in text but split words and break hashing (Unicode TR #36 lists them as spoofing risks).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_TRAILING_WS = re.compile(r"[ \t\u3000]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")
# Full-width ASCII letters and digits (U+FF10..U+FF5A) -> ASCII; the ideographic space -> space.
# Chinese full-width punctuation (，。！？) is kept: it is the correct form in Chinese text.
_FULLWIDTH = {cp: cp - 0xFEE0 for cp in [*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B)]}
_FULLWIDTH[0x3000] = 0x20
# Elements whose content is never text, and elements that start a new line of text.
_NOT_TEXT = ["script", "style", "noscript", "template", "svg", "math", "object", "canvas"]
_BLOCKS = ("address,article,aside,blockquote,br,dd,details,div,dl,dt,fieldset,figcaption,figure,footer,form,"
           "h1,h2,h3,h4,h5,h6,header,hr,li,main,nav,ol,p,pre,section,summary,table,td,th,tr,ul")
_HTML_HINT = re.compile(r"<\s*(html|body|p|div|br|span|a|script|style)\b", re.IGNORECASE)


def normalize_unicode(text: str, form: str) -> str:
    """NFC keeps characters as written; NFKC also folds compatibility forms (ligatures, full-width)."""
    return text if form == "none" else unicodedata.normalize(form, text)


def fold_fullwidth(text: str) -> str:
    """Ｈｅｌｌｏ１２３ -> Hello123, so the same word is one word in dedup and in the tokenizer."""
    return text.translate(_FULLWIDTH)


def normalize_whitespace(text: str) -> str:
    """Unix newlines, no control characters, no trailing spaces, at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = _TRAILING_WS.sub("", text)
    text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip("\n") + "\n" if text.strip() else ""


def strip_gutenberg(text: str) -> tuple[str, bool]:
    """Cut the Project Gutenberg header and license footer. Returns (text, whether anything was cut)."""
    start = _START.search(text)
    end = _END.search(text, start.end() if start else 0)
    if not start and not end:
        return text, False
    body = text[start.end() if start else 0: end.start() if end else len(text)]
    return body, True


def strip_html(text: str) -> tuple[str, bool]:
    """The visible text of HTML: parsed by an HTML5 parser (selectolax's Lexbor), so comments,
    scripts, styles, entities, broken markup and a bare '<' in text are handled as browsers
    handle them; block elements become line breaks. Text without HTML tags is left alone."""
    if not _HTML_HINT.search(text):
        return text, False
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(text)
    tree.strip_tags(_NOT_TEXT)
    for node in tree.css(_BLOCKS):
        node.insert_before("\n")
        node.insert_after("\n")
    root = tree.root
    return (root.text(deep=True, separator="", strip=False) if root is not None else ""), True


def fix_mojibake(text: str) -> str:
    """Repair UTF-8 decoded as Latin-1/cp1252 and similar, with ftfy (an optional dependency)."""
    try:
        import ftfy
    except ImportError:  # checked before the run starts; see stage.check_ready
        return text
    return ftfy.fix_text(text, normalization="NFC")


def too_short(text: str, min_chars: int) -> str | None:
    """A reason to drop a document that is (nearly) empty after cleaning."""
    if not text.strip():
        return "empty after cleaning"
    if len(text) < min_chars:
        return f"{len(text)} characters, shorter than data.min_chars={min_chars}"
    return None
