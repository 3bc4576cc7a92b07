"""Text cleaning rules. Each rule returns the new text; `verdict` rules return a reason to drop."""

from __future__ import annotations

import re
import unicodedata

# Project Gutenberg marks the body with "*** START OF ..." / "*** END OF ..." lines (newer
# files) or "*END*THE SMALL PRINT" and "End of (the) Project Gutenberg ..." (older ones).
_START = re.compile(r"^\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG.*$|^\*END\*THE SMALL PRINT.*$",
                    re.IGNORECASE | re.MULTILINE)
_END = re.compile(r"^\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG.*$|^End of (the )?Project Gutenberg.*$",
                  re.IGNORECASE | re.MULTILINE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TRAILING_WS = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")


def normalize_unicode(text: str, form: str) -> str:
    """NFC keeps characters as written; NFKC also folds compatibility forms (ligatures, full-width)."""
    return text if form == "none" else unicodedata.normalize(form, text)


def normalize_whitespace(text: str) -> str:
    """Unix newlines, no control characters, no trailing spaces, at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
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


def too_short(text: str, min_chars: int) -> str | None:
    """A reason to drop a document that is (nearly) empty after cleaning."""
    if not text.strip():
        return "empty"
    if len(text) < min_chars:
        return f"shorter than {min_chars} characters"
    return None
