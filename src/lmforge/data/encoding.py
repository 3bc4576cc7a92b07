"""Decode bytes of unknown encoding: BOMs first, then UTF-8, then charset-normalizer's guess."""

from __future__ import annotations

import codecs

import charset_normalizer

BOMS = [(codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")]


# Control bytes text does not use: C0 controls and DEL, except tab, newline, carriage return, form feed.
_CONTROL_BYTES = bytes([*range(0x09), 0x0B, *range(0x0E, 0x20), 0x7F])
# Our own thresholds: random or compressed bytes hold ~11% control bytes, executables and images
# more; text holds none, or a stray few. Above 10% a file is binary even when it decodes (a file
# of NULs is valid UTF-8); between 1% and 10% it is binary only when it is not UTF-8 either.
BINARY_SHARE, SUSPECT_SHARE = 0.10, 0.01


def binary_reason(head: bytes) -> str | None:
    """Why the first bytes of a file look binary, or None for text (a few stray control bytes
    included: they are removed later and counted). UTF-16/32 text, which is full of NUL bytes,
    is recognised by its BOM or by charset-normalizer."""
    if not head or any(head.startswith(bom) for bom, _ in BOMS):
        return None
    share = (len(head) - len(head.translate(None, _CONTROL_BYTES))) / len(head)
    if share <= SUSPECT_SHARE:
        return None
    if b"\x00" in head:  # BOM-less UTF-16: every other byte is NUL for Latin text
        guess = charset_normalizer.from_bytes(head[:65536]).best()
        if guess is not None and guess.encoding.startswith("utf_16"):
            return None
    if share <= BINARY_SHARE:
        try:
            head.decode("utf-8")
            return None
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 3:  # only the cut at the end of the head: a split character
                return None
    return f"binary file ({share:.0%} of the first {len(head):,} bytes are control bytes)"


def looks_binary(raw: bytes) -> bool:
    """Whether bytes look like a binary file rather than text (see binary_reason)."""
    return binary_reason(raw[:1 << 18]) is not None


def detect(raw: bytes) -> str | None:
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
        for bom, name in BOMS:
            if raw.startswith(bom):
                encoding = name
                break
        else:
            try:
                return raw.decode("utf-8"), "utf-8", 0
            except UnicodeDecodeError:
                encoding = detect(raw) or "utf-8"
    try:
        return raw.decode(encoding), encoding, 0
    except UnicodeDecodeError:
        text = raw.decode(encoding, errors="replace")
        return text, encoding, text.count("\ufffd")
