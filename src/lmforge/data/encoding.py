"""Decode bytes of unknown encoding: BOMs first, then UTF-8, then charset-normalizer's guess."""

from __future__ import annotations

import codecs

import charset_normalizer

_BOMS = [(codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")]


def looks_binary(raw: bytes) -> bool:
    """NUL bytes in the first 8 KiB mean binary, unless the text is UTF-16/32 (which has them)."""
    head = raw[:8192]
    if any(head.startswith(bom) for bom, _ in _BOMS):
        return False
    if b"\x00" not in head:
        return False
    # BOM-less UTF-16: every other byte is NUL for Latin text; charset-normalizer can tell.
    guess = charset_normalizer.from_bytes(head).best()
    return guess is None or not guess.encoding.startswith("utf_16")


def _detect(raw: bytes) -> str | None:
    """charset-normalizer's best guess; among equally good single-byte guesses prefer cp1252,
    the de facto meaning of 'latin-1' on the web (WHATWG Encoding Standard)."""
    matches = charset_normalizer.from_bytes(raw[:200_000])
    best = matches.best()
    if best is None:
        return None
    for m in matches:
        if (m.chaos, m.coherence) == (best.chaos, best.coherence) and "cp1252" in m.could_be_from_charset:
            return "cp1252"
    return best.encoding


def decode(raw: bytes, encoding: str = "auto") -> tuple[str, str, int]:
    """Return (text, encoding used, number of undecodable bytes replaced by U+FFFD)."""
    if encoding == "auto":
        for bom, name in _BOMS:
            if raw.startswith(bom):
                encoding = name
                break
        else:
            try:
                return raw.decode("utf-8"), "utf-8", 0
            except UnicodeDecodeError:
                encoding = _detect(raw) or "utf-8"
    try:
        return raw.decode(encoding), encoding, 0
    except UnicodeDecodeError:
        text = raw.decode(encoding, errors="replace")
        return text, encoding, text.count("\ufffd")
