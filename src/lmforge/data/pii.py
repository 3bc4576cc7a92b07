"""PII masking with typed placeholders: <EMAIL>, <PHONE>, <IP>, <CREDIT_CARD>, <NATIONAL_ID>.

Number-like patterns are confirmed by their checksums (Luhn for cards, ISO 7064 MOD 11-2 for the
Chinese resident ID, the SSA's rules for US SSNs) so that ordinary numbers are left alone.
Boundaries are checked by hand rather than with \\b because Chinese characters count as word
characters: in "电话13812345678" there is no word boundary before the 1.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable

# Patterns start with a plain character class so that the regex engine can skip ahead to
# candidates quickly (a leading look-behind defeats that and made masking 10x slower on prose);
# the boundary checks are done by `_bounded` on the match instead.
EMAIL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}")
IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
IPV6 = re.compile(r"[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){7}")
CARD = re.compile(r"\d(?:[ -]?\d){12,18}")
CN_ID = re.compile(r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]")
US_SSN = re.compile(r"\d{3}-\d{2}-\d{4}")
# Chinese mobile numbers (1[3-9] + 9 digits, optional +86), international +CC numbers, and
# North American (xxx) xxx-xxxx forms. Bare digit runs are not phones: too many false alarms.
PHONE = re.compile(
    r"(?:(?:\+|00)86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}"
    r"|\+\d{1,3}[- ]?(?:\(\d{1,4}\)|\d{1,4})(?:[- ]\d{2,4}){1,4}"
    r"|\(\d{3}\)\s?\d{3}[-.]\d{4}|\d{3}[-.]\d{3}[-.]\d{4}"
)


def _bounded(m: re.Match[str], before: str, after: str) -> bool:
    """No character of `before` just before the match and none of `after` just after it."""
    s, i, j = m.string, m.start(), m.end()
    return not (i > 0 and s[i - 1] in before) and not (j < len(s) and s[j] in after)


_DIGITS = "0123456789"
_WORDISH = _DIGITS + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _ipv4(m: re.Match[str]) -> bool:
    tail = m.string[m.end():m.end() + 2]
    dotted_on = len(tail) == 2 and tail[0] == "." and tail[1] in _DIGITS  # 1.2.3.4.5 is a version
    return not dotted_on and _bounded(m, _DIGITS + ".", _DIGITS) and all(int(p) <= 255 and (p == "0" or not p.startswith("0"))
                                                      for p in m.group().split("."))


def _ssn(m: re.Match[str]) -> bool:
    """SSA rules: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    area, group, serial = m.group().split("-")
    return (_bounded(m, _DIGITS + "-", _DIGITS + "-") and area not in ("000", "666") and not area.startswith("9")
            and group != "00" and serial != "0000")


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number carries (ISO/IEC 7812)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def cn_id_ok(number: str) -> bool:
    """GB 11643-1999 check character: ISO 7064 MOD 11-2 over the first 17 digits."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(d) * w for d, w in zip(number[:17], weights))
    return "10X98765432"[total % 11] == number[17].upper()


def _card(m: re.Match[str]) -> bool:
    digits = re.sub(r"\D", "", m.group())
    return _bounded(m, _DIGITS + "-", _DIGITS + "-") and 13 <= len(digits) <= 19 and luhn_ok(digits)


# type -> (pattern, confirmation); order matters: IDs and cards before phones, which could overlap.
MASKS: dict[str, list[tuple[re.Pattern[str], Callable[[re.Match[str]], bool]]]] = {
    "email": [(EMAIL, lambda m: _bounded(m, "._%+-", "-") and not m.group().endswith("."))],
    "national_id": [(CN_ID, lambda m: _bounded(m, _WORDISH, _WORDISH) and cn_id_ok(m.group())), (US_SSN, _ssn)],
    "credit_card": [(CARD, _card)],
    "ip": [(IPV4, _ipv4), (IPV6, lambda m: _bounded(m, _WORDISH + ":", _WORDISH + ":"))],
    "phone": [(PHONE, lambda m: _bounded(m, _DIGITS + "+", _DIGITS))],
}
ORDER = ["email", "national_id", "credit_card", "ip", "phone"]


# Where a match can be: around an '@', a ':hex:' group, or a run of digits. Masking runs only on
# windows around these triggers, so prose without them costs one fast scan per trigger.
_TRIGGERS: dict[str, tuple[re.Pattern[str], int, int]] = {
    "email": (re.compile("@"), 80, 260),
    "ipv6": (re.compile(r":[0-9A-Fa-f]{1,4}:"), 6, 40),
    "digits": (re.compile(r"\d[\d ()+.\-]*"), 6, 2),
}
_KIND_TRIGGERS = {"email": ["email"], "ip": ["digits", "ipv6"], "phone": ["digits"],
                  "credit_card": ["digits"], "national_id": ["digits"]}


def _windows(text: str, kinds: set[str]) -> list[tuple[int, int]]:
    """Merged (start, end) spans of the text around every trigger the wanted kinds need."""
    spans = []
    for name in sorted({t for k in kinds for t in _KIND_TRIGGERS[k]}):
        pattern, before, after = _TRIGGERS[name]
        spans += [(max(0, m.start() - before), min(len(text), m.end() + after)) for m in pattern.finditer(text)]
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _mask_all(text: str, kinds: set[str], counts: Counter[str]) -> str:
    for kind in ORDER:
        if kind not in kinds:
            continue
        tag = f"<{kind.upper()}>"
        for pattern, confirm in MASKS[kind]:
            def sub(m: re.Match[str], tag: str = tag, kind: str = kind,
                    confirm: Callable[[re.Match[str]], bool] = confirm) -> str:
                if not confirm(m):
                    return m.group()
                counts[kind] += 1
                return tag
            text = pattern.sub(sub, text)
    return text


def mask(text: str, kinds: Iterable[str]) -> tuple[str, Counter[str]]:
    """Replace each confirmed match by <KIND>. Returns the text and the count per kind."""
    counts: Counter[str] = Counter()
    wanted = set(kinds)
    if not wanted:
        return text, counts
    parts, last = [], 0
    for start, end in _windows(text, wanted):
        parts += [text[last:start], _mask_all(text[start:end], wanted, counts)]
        last = end
    parts.append(text[last:])
    return "".join(parts), counts
