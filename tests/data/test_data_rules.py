"""Cleaning, PII masking and quality rules, on English and Chinese text."""

from __future__ import annotations

import pytest

from lmforge.data import clean, pii, quality
from lmforge.data.text import is_cjk, sentences, tokens
from tests.helpers.texts import AUSTEN, GUXIANG, MELVILLE, TAOHUAYUAN


def test_fullwidth_folds_letters_not_chinese_punctuation() -> None:
    assert clean.fold_fullwidth("ＧＰＴ－４模型，版本１２３。\u3000好") == "GPT－4模型，版本123。 好"


def test_whitespace_and_control_characters() -> None:
    assert clean.normalize_whitespace("a\u200bb\x07c  \r\n\r\n\r\n\r\nd\ufeff") == "abc\n\nd\n"


def test_html_stripped_only_when_present() -> None:
    text, cut = clean.strip_html("<html><body><p>Hello &amp; bye</p><script>x()</script><div>中文</div></body></html>")
    assert cut and "Hello & bye" in text and "中文" in text and "x()" not in text and "<" not in text
    assert clean.strip_html("a < b and c > d") == ("a < b and c > d", False)


def test_html_is_parsed_not_matched() -> None:
    """Markup that regular expressions get wrong: a bare '<' in text, a script holding a closing
    tag, a comment holding '>', unclosed elements, numeric entities, and blocks without a break."""
    page = ("<html><head><title>T</title><style>p{color:red}</style></head><body><!-- a > b -->"
            "<p>if 3 < 4 and 5 > 2 then<p>unclosed &eacute;&#x4e2d;<script>var s = '</div>';</script>"
            "<div>one</div>two<ul><li>x<li>y</ul><svg><text>no</text></svg></body></html>")
    text, cut = clean.strip_html(page)
    lines = [ln for ln in clean.normalize_whitespace(text).splitlines() if ln]
    assert cut and lines == ["T", "if 3 < 4 and 5 > 2 then", "unclosed é中", "one", "two", "x", "y"]


@pytest.mark.parametrize("text,kind", [
    ("mail zhang.san@example.com now", "email"),
    ("电话13812345678联系", "phone"),
    ("call +1 415 555 2671 today", "phone"),
    ("身份证号11010519491231002X。", "national_id"),
    ("ssn 123-45-6789.", "national_id"),
    ("card 4111 1111 1111 1111 ok", "credit_card"),
    ("server 192.168.0.1 down", "ip"),
])
def test_pii_masked_with_typed_placeholder(text: str, kind: str) -> None:
    out, counts = pii.mask(text, pii.ORDER)
    assert f"<{kind.upper()}>" in out and counts[kind] == 1


@pytest.mark.parametrize("text", [
    "身份证号110105194912310021。",  # wrong check digit
    "card 4111 1111 1111 1112 ok",  # fails Luhn
    "version 1.2.3.4.5 and 999.1.1.1",  # not an address
    "In the years 1599-1600 he wrote 37 plays.",
    "ssn 000-12-3456",  # area 000 is never issued
])
def test_pii_leaves_lookalikes_alone(text: str) -> None:
    out, counts = pii.mask(text, pii.ORDER)
    assert out == text and not counts


def test_checksums() -> None:
    assert pii.luhn_ok("4111111111111111") and not pii.luhn_ok("4111111111111112")
    assert pii.cn_id_ok("11010519491231002X") and not pii.cn_id_ok("110105194912310021")


def test_cjk_tokens_and_sentences() -> None:
    assert is_cjk(TAOHUAYUAN) and not is_cjk(AUSTEN)
    assert tokens("我爱Python编程。")[:3] == ["我", "爱", "Python"]
    assert sentences("你好。今天天气很好！你呢？Fine. Thanks") == ["你好。", "今天天气很好！", "你呢？", "Fine.", "Thanks"]


WEB = quality.plan("web", None, {})


@pytest.mark.parametrize("text", [AUSTEN + MELVILLE, TAOHUAYUAN + GUXIANG])
def test_good_prose_passes_gopher(text: str) -> None:
    assert quality.gopher_quality(text, WEB["gopher_quality"]) is None
    assert quality.gopher_repetition(text, WEB["gopher_repetition"]) is None


@pytest.mark.parametrize("text,reason", [
    ("buy cheap pills " * 200, "top_2_gram"),
    ("便宜药品快来买" * 100, "top_2_gram"),
    ((AUSTEN + "\n\n") * 4, "dup_para_frac"),
])
def test_gopher_repetition_rejects_with_reason(text: str, reason: str) -> None:
    assert quality.gopher_repetition(text, WEB["gopher_repetition"]) == reason


@pytest.mark.parametrize("text,reason", [
    (AUSTEN + " #" * 200, "gopher_too_many_hashes"),
    ("just a few words here", "gopher_short_doc"),
    (AUSTEN + " 123 456 789" * 100, "gopher_below_alpha_threshold"),
    ("Sailing ships cross cold northern oceans quickly. " * 30, "gopher_enough_stop_words"),
])
def test_gopher_quality_rejects_with_reason(text: str, reason: str) -> None:
    assert quality.gopher_quality(text, WEB["gopher_quality"]) == reason


def test_chinese_needs_chinese_stop_chars_not_english_ones() -> None:
    # Gopher's English stop-word rule would reject every Chinese document; the CJK rule does not.
    assert quality.gopher_quality(TAOHUAYUAN, WEB["gopher_quality"]) is None
    no_function_chars = "山水花鸟" * 40
    assert quality.gopher_quality(no_function_chars, WEB["gopher_quality"]) == "gopher_enough_stop_words"


def test_c4_drops_lines_and_pages() -> None:
    page = AUSTEN + "Click here\nPlease read our privacy policy before you continue reading.\n"
    reason, text = quality.c4(page, WEB["c4"])
    assert reason is None and "privacy policy" not in text and "Click here" not in text
    assert quality.c4("lorem ipsum dolor sit amet. " * 10, WEB["c4"])[0] == "lorem_ipsum"
    reason, text = quality.c4(TAOHUAYUAN.replace("。", "。\n"), WEB["c4"])
    assert reason is None and "晋太元中" in text  # Chinese lines end with 。 and count characters as words


def test_fineweb_rules() -> None:
    assert quality.fineweb(AUSTEN, WEB["fineweb"]) is None
    listy = "\n".join(f"item {i}" for i in range(50))
    assert quality.fineweb(listy, WEB["fineweb"]) == "line_punct_ratio"
    dup = (AUSTEN + "Subscribe to our newsletter now.\n") * 3
    assert quality.fineweb(dup, WEB["fineweb"]) == "char_dup_ratio"


def test_books_preset_keeps_speaker_lines_that_web_rejects() -> None:
    speakers = ["HAMLET.", "HORATIO."]
    play = "".join(f"{speakers[i % 2]}\n{line}\n\n" for i, line in enumerate(sentences(AUSTEN + MELVILLE)))
    books = quality.plan("books", None, {})
    assert all(quality.RULES[r](play, p) is None for r, p in books.items())
    assert quality.gopher_repetition(play, WEB["gopher_repetition"]) == "dup_line_frac"


def test_threshold_override_and_unknown_key() -> None:
    plan = quality.plan("web", ["c4"], {"c4.min_sentences": 9})
    assert list(plan) == ["c4"] and plan["c4"]["min_sentences"] == 9
    with pytest.raises(KeyError):
        quality.plan("web", None, {"c4.min_sentence": 9})
