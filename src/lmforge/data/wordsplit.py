"""English word splitting that reproduces spaCy's English tokenizer without importing spaCy.

datatrove's Gopher, repetition and FineWeb filters count words with spaCy's blank English
tokenizer, so lmforge's rules agree with them only if words are cut the same way. spaCy's
algorithm (spaCy 3.8 tokenizer.pyx, `_split_affixes` and `_attach_tokens`) is short:

1. split the text at whitespace;
2. a chunk that is a tokenizer exception ("special case") is replaced by its tokens;
3. otherwise peel prefixes (regex anchored at the start) and suffixes (the left-most match
   anchored at the end) one at a time, stopping early when what is left is an exception;
4. the core is kept whole if it is an exception or looks like a URL, else it is cut at infixes;
5. prefixes, core pieces and the suffixes (in reverse order of removal) are the tokens;
6. a final pass (`_apply_special_cases`) rejoins runs of tokens that spell an exception the
   rules would cut ("wed." -> we, d, . -> we, d.).

The regexes below are our own compiled versions of spaCy 3.8's rule lists (lang/punctuation.py
prefixes and suffixes, lang/en/punctuation.py infixes, lang/char_classes.py character classes),
and the exceptions are generated the way lang/en/tokenizer_exceptions.py and
lang/tokenizer_exceptions.py generate theirs. Approximations: letter classes come from Python's
Unicode tables rather than spaCy's script lists, the "icon" class is the main symbol blocks,
the URL pattern is shortened, and the final pass looks only inside one whitespace-free chunk
(spaCy's exceptions hold no spaces, so it cannot match across them). Chunks are cached, as spaCy
caches them.
"""

from __future__ import annotations

import re

# ------------------------------------------------------------------ character classes
# (after spaCy 3.8 lang/char_classes.py)


def _class_of(pred: str, ranges: list[tuple[int, int]]) -> str:
    """Regex class body of the characters in `ranges` for which str.<pred>() holds."""
    out = []
    for lo, hi in ranges:
        out.extend(re.escape(chr(c)) for c in range(lo, hi + 1) if getattr(chr(c), pred)())
    return "".join(out)


# Latin (basic, supplement, extended A-B, IPA, extended additional), Greek, Cyrillic, full-width.
_CASED = [(0x41, 0x24F), (0x250, 0x2AF), (0x370, 0x3FF), (0x400, 0x52F), (0x1E00, 0x1EFF), (0xFF21, 0xFF5A)]
# Scripts without case count as both lower and upper (spaCy's `_uncased`): CJK, kana, Hangul,
# Hebrew, Arabic/Persian, Indic.
_UNCASED = ("\u0591-\u05f4\u0620-\u064a\u066e-\u06d5\u0900-\u097f\u0980-\u09ff\u0b80-\u0bff"
            "\u0c00-\u0cff\u1100-\u11ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff")
LOWER = _class_of("islower", _CASED) + _UNCASED
UPPER = _class_of("isupper", _CASED) + _UNCASED
# char_classes._punct, _quotes, _hyphens, _currency (single characters; multi-character entries
# are written out in the regexes below).
PUNCT = "…,:;!?¿؟¡()\\[\\]{}<>_#*&。？！，、；：～·।،۔؛٪"
QUOTES = "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉〈〉⟦⟧"
CURRENCY = "$£€¥฿₽﷼₴₠-₿"
# char_classes._other_symbols, reduced to its main blocks (degree, copyright, arrows, technical,
# box drawing, shapes, dingbats, emoji).
ICONS = ("\u00a6\u00a9\u00ae\u00b0\u2195-\u2199\u21a1-\u21f3\u2300-\u231f\u2322-\u237b\u2500-\u25f7"
         "\u2600-\u266e\u2670-\u2767\u2794-\u27bf\u2800-\u28ff\u2b00-\u2b2f\U0001f000-\U0001faff")
_UNITS = ("km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb oz "
          "m/s km/h kmh mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K %")
_LETTER = "[^\\W\\d_]"  # any letter (spaCy's ALPHA)
_ALNUM = "[^\\W_]"

# lang/punctuation.py TOKENIZER_PREFIXES: § % = — – +(not before a digit), punctuation,
# ellipses, quotes, currency, icons.
PREFIX = re.compile(f"^(?:\\.\\.+|US\\$|C\\$|A\\$|\\+(?![0-9])|[§%=—–{PUNCT}{QUOTES}{CURRENCY}{ICONS}])")
# lang/punctuation.py TOKENIZER_SUFFIXES; spaCy takes the left-most match that reaches the end.
_units = "|".join(re.escape(u) for u in _UNITS.split())
SUFFIX = re.compile(
    f"(?:……|\\.\\.+|['’][sS]|[{PUNCT}{QUOTES}{ICONS}—–]"
    f"|(?<=[0-9])\\+|(?<=°[FfCcKk])\\.|(?<=[0-9])(?:US\\$|C\\$|A\\$|[{CURRENCY}])|(?<=[0-9])(?:{_units})"
    f"|(?<=[0-9{LOWER}%²\\-+|(?:){PUNCT}{QUOTES}])\\.|(?<=[{UPPER}][{UPPER}])\\.)$")
# lang/en/punctuation.py TOKENIZER_INFIXES, in spaCy's order.
INFIX = re.compile(
    f"\\.\\.+|…|[{ICONS}]|(?<=[0-9])[+\\-*^](?=[0-9-])"
    f"|(?<=[{LOWER}{QUOTES}])\\.(?=[{UPPER}{QUOTES}])|(?<={_LETTER}),(?={_LETTER})"
    f"|(?<={_ALNUM})(?:-|–|—|--|---|——|~)(?={_LETTER})|(?<={_ALNUM})[:<>=/](?={_LETTER})")
# lang/tokenizer_exceptions.py URL_PATTERN, shortened: optional scheme, dotted host with a
# lower-case top-level domain, optional port and path.
_HOST = "A-Za-z0-9\u00a1-\uffff"
URL = re.compile(f"^(?:[\\w+\\-.]{{2,}}://)?(?:\\S+(?::\\S*)?@)?(?:(?:[{_HOST}][{_HOST}_\\-]{{0,62}})?[{_HOST}]\\.)+"
                 f"[{LOWER}]{{2,63}}(?::\\d{{2,5}})?(?:[/?#]\\S*)?$")


# ------------------------------------------------------------------ exceptions
# (generated as spaCy 3.8 lang/en/tokenizer_exceptions.py does)


def _english_exceptions() -> dict[str, tuple[str, ...]]:
    """Chunks spaCy's English tokenizer splits (or keeps) by table rather than by rule."""
    exc: dict[str, tuple[str, ...]] = {}

    def both(word: str, *tails: str) -> None:  # "word" + tails, lower and title case
        for w in (word, word.title()):
            exc[w + "".join(tails)] = (w, *tails)

    for short in ("", "'"):  # every clitic with and without its apostrophe
        m, ll, d, ve, re_, s, nt = (short + x for x in ("m", "ll", "d", "ve", "re", "s", "nt"))
        nt = "n't" if short else "nt"
        both("i", m)
        both("i", m, "a")
        for p in ("i", "you", "he", "she", "it", "we", "they"):
            both(p, ll), both(p, ll, ve), both(p, d), both(p, d, ve)
        for p in ("i", "you", "we", "they"):
            both(p, ve)
        for p in ("you", "we", "they"):
            both(p, re_)
        for p in ("he", "she", "it"):
            both(p, s)
        for w in ("who", "what", "when", "where", "why", "how", "there", "that", "this", "these", "those"):
            both(w, ll), both(w, ll, ve), both(w, d), both(w, d, ve)
            if w not in ("these", "those"):
                both(w, s)
            if w not in ("that", "this"):
                both(w, re_), both(w, ve)
        for v in ("ca", "could", "do", "does", "did", "had", "may", "might", "must", "need", "ought", "sha",
                  "should", "wo", "would"):
            both(v, nt), both(v, nt, ve)
        for v in ("could", "might", "must", "should", "would"):
            both(v, ve)
        for v in ("ai", "are", "is", "was", "were", "have", "has", "dare"):
            both(v, nt)
        both("not", ve)
    for w in ("doin", "goin", "nothin", "nuthin", "ol", "somethin", "lovin", "havin"):
        for x in (w, w.title()):
            exc[x], exc[x + "'"] = (x,), (x + "'",)
    for w in ("em", "ll", "nuff"):
        exc[w], exc["'" + w] = (w,), ("'" + w,)
    for h in range(1, 13):
        for period in ("a.m.", "am", "p.m.", "pm"):
            exc[f"{h}{period}"] = (str(h), period)
    exc.update({"y'all": ("y'", "all"), "yall": ("y", "all"), "how'd'y": ("how", "'d", "'y"),
                "How'd'y": ("How", "'d", "'y"), "cannot": ("can", "not"), "Cannot": ("Can", "not"),
                "gonna": ("gon", "na"), "Gonna": ("Gon", "na"), "gotta": ("got", "ta"), "Gotta": ("Got", "ta"),
                "let's": ("let", "'s"), "Let's": ("Let", "'s"), "c'mon": ("c'm", "on"), "C'mon": ("C'm", "on")})
    whole = ("'S 's ‘S ‘s and/or w/o 're 'd 'Cause 'cause 'cos 'Cos 'coz 'Coz 'cuz 'Cuz 'bout ma'am Ma'am "
             "o'clock O'clock a.m. p.m. D.C. e.g. E.g. E.G. i.e. I.e. I.E. Ph.D. v.s. vs. co. Co. Corp. Inc. "
             "Ltd. Bros. Messrs. Mr. Mrs. Ms. Dr. Prof. Rev. Gen. Gov. Sen. Rep. Adm. Jr. St. Mt. Md. Mo. "
             "Mont. Ak. Ala. Ariz. Ark. Calif. Colo. Conn. Del. Fla. Ga. Ia. Id. Ill. Ind. Kan. Kans. Ky. La. "
             "Mass. Mich. Minn. Miss. N.C. N.D. N.H. N.J. N.M. N.Y. Neb. Nebr. Nev. Okla. Ore. Pa. S.C. "
             "Tenn. Va. Wash. Wis. Jan. Feb. Mar. Apr. Jun. Jul. Aug. Sep. Sept. Oct. Nov. Dec.")
    for w in whole.split():
        exc[w] = (w,)
    # en exclusions: real words that the clitic tables above would cut.
    for w in ("Ill", "ill", "Its", "its", "Hell", "hell", "Shell", "shell", "Shed", "shed", "were", "Were",
              "Well", "well", "Whore", "whore"):
        exc.pop(w, None)
    # lang/tokenizer_exceptions.py BASE_EXCEPTIONS.
    for w in ["'", "''", "—", "C++", '\\")', "<space>", "\\t", "\\n", "ä.", "ö.", "ü."] + [
            f"{c}." for c in "abcdefghijklmnopqrstuvwxyz"]:
        exc[w] = (w,)
    emoticons = (
        ':) :-) :)) :-)) :))) :-))) (: (-: =) (= :] :-] [: [-: [= =] :o) (o: :} :-} 8) 8-) (-8 ;) ;-) (; '
        "(-; :( :-( :(( :-(( :((( :-((( ): )-: =( >:( :') :'-) :'( :'-( :/ :-/ =/ =| :| :-| ]= =[ :1 :P "
        ':-P :p :-p :O :-O :o :-o :0 :-0 :() >:o :* :-* :3 :-3 =3 :> :-> :X :-X :x :-x :D :-D ;D ;-D =D '
        'xD XD xDD XDD 8D 8-D ^_^ ^__^ ^___^ >.< >.> <.< ._. ;_; -_- -__- v.v V.V v_v V_V o_o o_O O_o '
        'O_O 0_o o_0 0_0 o.O O.o O.O o.o 0.0 o.0 0.o @_@ <3 <33 <333 </3 (^_^) (-_-) (._.) (>_<) (*_*) '
        '(¬_¬) ಠ_ಠ ಠ︵ಠ (ಠ_ಠ) ¯\\(ツ)/¯ (╯°□°）╯︵┻━┻ ><(((*> '
    )
    for w in emoticons.split():
        exc[w] = (w,)
    for u in "cfkCFK":
        exc[f"°{u}."] = ("°", u, ".")
    # util.update_exc: every exception with ' also exists with ’.
    for key, toks in list(exc.items()):
        if "'" in key:
            exc[key.replace("'", "’")] = tuple(t.replace("'", "’") for t in toks)
    return exc


EXCEPTIONS = _english_exceptions()


# ------------------------------------------------------------------ the splitter


def _affix_split(chunk: str, specials: dict[str, tuple[str, ...]]) -> list[str]:
    """Prefixes, suffixes and infixes with the given exceptions (tokenizer.pyx `_split_affixes`)."""
    special = specials.get(chunk)
    if special is not None:
        return list(special)
    prefixes: list[str] = []
    suffixes: list[str] = []
    s, last = chunk, -1
    while s and len(s) != last:
        if s in specials:
            break
        last = len(s)
        m = PREFIX.match(s)
        pre = m.end() if m else 0
        if pre and s[pre:] in specials:
            prefixes.append(s[:pre])
            s = s[pre:]
            break
        rest = s[pre:] if pre else s  # spaCy searches the suffix in what the prefix left
        m = SUFFIX.search(rest)
        suf = len(rest) - m.start() if m else 0
        if suf and s[:-suf] in specials:
            suffixes.append(s[-suf:])
            s = s[:-suf]
            break
        if pre and suf and pre + suf <= len(s):
            prefixes.append(s[:pre])
            suffixes.append(s[-suf:])
            s = s[pre:-suf]
        elif pre:
            prefixes.append(s[:pre])
            s = s[pre:]
        elif suf:
            suffixes.append(s[-suf:])
            s = s[:-suf]
    out = prefixes
    if s:
        special = specials.get(s)
        if special is not None:
            out.extend(special)
        elif URL.match(s):
            out.append(s)
        else:
            start = 0
            for m in INFIX.finditer(s):
                if m.start() == 0:  # an infix at the very start is not a split point
                    continue
                if m.start() != start:
                    out.append(s[start:m.start()])
                out.append(m.group())
                start = m.end()
            if s[start:]:
                out.append(s[start:])
    out.extend(reversed(suffixes))
    return out


# tokenizer.pyx `add_special_case` / `_apply_special_cases`: an exception that the affix rules
# would cut ("d.", "''", "'em") is also found as a run of tokens inside a longer chunk
# ("wed." -> we, d, . -> we, d.). Keyed by the rule-only tokens of the exception.
_RETOKENIZE = {tuple(toks): EXCEPTIONS[key] for key in EXCEPTIONS
               if len(toks := _affix_split(key, {})) > 1}
_RETOKENIZE_FIRST = {k[0] for k in _RETOKENIZE}
_RETOKENIZE_MAX = max(map(len, _RETOKENIZE))


def _apply_exceptions(toks: list[str]) -> list[str]:
    """Replace runs of tokens that spell a cut exception by the exception's tokens."""
    spans = []
    for i, t in enumerate(toks):
        if t in _RETOKENIZE_FIRST:
            for j in range(min(len(toks), i + _RETOKENIZE_MAX), i + 1, -1):
                if tuple(toks[i:j]) in _RETOKENIZE:
                    spans.append((j - i, i, j))
    if not spans:
        return toks
    taken: set[int] = set()
    chosen = []
    for _, i, j in sorted(spans, key=lambda x: (-x[0], x[1])):  # longest, then left-most
        if i not in taken and j - 1 not in taken:
            chosen.append((i, j))
        taken.update(range(i, j))
    out, at = [], 0
    for i, j in sorted(chosen):
        out += toks[at:i]
        out += _RETOKENIZE[tuple(toks[i:j])]
        at = j
    return out + toks[at:]


def split_chunk(chunk: str) -> tuple[str, ...]:
    """spaCy's English tokens of one whitespace-free chunk."""
    toks = _affix_split(chunk, EXCEPTIONS)
    if len(toks) > 1:
        toks = _apply_exceptions(toks)
    return tuple(toks)


_CACHE: dict[str, tuple[str, ...]] = {}


def split(text: str) -> list[str]:
    """spaCy-English tokens of `text`, whitespace dropped (as datatrove's word tokenizer returns)."""
    out: list[str] = []
    extend, cache = out.extend, _CACHE
    for chunk in text.split():
        toks = cache.get(chunk)
        if toks is None:
            if len(cache) > 500_000:
                cache.clear()
            toks = cache[chunk] = split_chunk(chunk)
        extend(toks)
    return out
