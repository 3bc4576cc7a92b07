"""Augmentation operations change the configured share of a text, keep the rest, and refuse a
rate outside [0, 1]; spelling variants are learned from two aligned editions."""

from __future__ import annotations

import difflib
import random

import pytest

from lmforge.augment.ops import OPERATIONS, WORD, Resources, apply, check_rate
from lmforge.augment.spelling import invert, learn_variants
from lmforge.augment.synonyms import neighbours
from lmforge.errors import LmforgeError

TEXT = " ".join(f"w{chr(97 + i % 26)}{chr(97 + i % 7)}x" for i in range(200)) + ". Second sentence here. Third one now. Fourth at last."


def words(text: str) -> list[str]:
    return WORD.findall(text)


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_delete_and_swap_touch_the_configured_share(rate: float) -> None:
    n = len(words(TEXT))
    deleted = apply("delete", TEXT, rate, random.Random(0), Resources())
    assert len(words(deleted)) == n - round(rate * n)
    swapped = apply("swap", TEXT, rate, random.Random(0), Resources())
    assert sorted(words(swapped)) == sorted(words(TEXT))  # the same words, moved
    moved = sum(a != b for a, b in zip(words(swapped), words(TEXT)))
    assert 0 < moved <= 2 * round(rate * n)


def test_synonym_replacement_uses_the_neighbour_table() -> None:
    res = Resources(synonyms={"wbbx": ["alpha"], "wccx": ["beta"]})
    out = apply("synonym", TEXT, 1.0, random.Random(0), res)
    assert "alpha" in out and "beta" in out and "wbbx" not in out and "wddx" in out
    assert apply("synonym", TEXT, 0.0, random.Random(0), res) == TEXT


def test_char_noise_and_span_mask_scale_with_the_rate() -> None:
    low = apply("char_noise", TEXT, 0.02, random.Random(1), Resources())
    high = apply("char_noise", TEXT, 0.2, random.Random(1), Resources())
    same = lambda a: difflib.SequenceMatcher(None, a, TEXT, autojunk=False).ratio()
    assert low != TEXT and same(low) > 0.97  # a few characters changed, not none
    assert 0.7 < same(high) < 0.9 and same(high) < same(low)  # ten times the rate changes more
    masked = apply("span_mask", TEXT, 0.3, random.Random(0), Resources(mask_token="<M>"))
    assert "<M>" in masked
    kept = len(words(masked.replace("<M>", "")))
    assert kept == len(words(TEXT)) - round(0.3 * len(words(TEXT)))


def test_sentence_shuffle_keeps_the_sentences() -> None:
    text = "One a. Two b. Three c. Four d. Five e."
    out = apply("sentence_shuffle", text, 1.0, random.Random(0), Resources())
    assert out != text and sorted(out.split(". ")) != [] and sorted(s.strip(".") for s in out.split(". ")) == \
        sorted(s.strip(".") for s in text.split(". "))


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan")])
def test_a_rate_outside_zero_one_is_refused(rate: float) -> None:
    with pytest.raises(LmforgeError, match="between 0 and 1"):
        check_rate(rate)
    with pytest.raises(LmforgeError, match="between 0 and 1"):
        apply("swap", TEXT, rate, random.Random(0), Resources())


def test_unknown_operation_names_the_known_ones() -> None:
    with pytest.raises(LmforgeError, match="char_noise"):
        apply("shout", TEXT, 0.1, random.Random(0), Resources())
    assert set(OPERATIONS) >= {"synonym", "insert", "swap", "delete", "to_early", "to_modern"}


def test_spelling_variants_are_learned_from_aligned_editions() -> None:
    modern = "I have heard you speak upon the matter and I have done. " * 4
    early = "I haue heard you speake vpon the matter and I haue done. " * 4
    table = learn_variants([(modern, early)], min_count=3)
    assert table == {"have": "haue", "speak": "speake", "upon": "vpon"}
    assert invert(table)["vpon"] == "upon"
    res = Resources(to_early=table, to_modern=invert(table))
    out = apply("to_early", "Have you spoken upon it?", 1.0, random.Random(0), res)
    assert out == "Haue you spoken vpon it?"
    assert apply("to_modern", out, 1.0, random.Random(0), res) == "Have you spoken upon it?"


def test_distributional_neighbours_pair_words_used_alike() -> None:
    rng = random.Random(0)
    texts = []
    for _ in range(300):
        animal = rng.choice(["cat", "dog"])
        colour = rng.choice(["red", "blue"])
        texts.append(f"the {animal} ran home and the {colour} door shut " + " ".join(
            rng.choice(["a", "b", "c", "d", "e", "f", "g", "h"]) for _ in range(4)))
    near = neighbours(texts, vocab=20, skip_top=0, min_count=1, min_cosine=0.0, k=1, dim=8)
    assert near["cat"] == ["dog"] and near["red"] == ["blue"]


def test_the_schema_accepts_every_registered_operation_and_no_other() -> None:
    from typing import get_args

    from lmforge.config.schema import AugmentOp

    assert set(get_args(AugmentOp.model_fields["name"].annotation)) == set(OPERATIONS)


def test_paraphrase_without_a_model_is_refused_before_writing() -> None:
    from lmforge.augment.stage import PROVIDERS, resources
    from lmforge.config.schema import AugmentConfig

    with pytest.raises(LmforgeError, match="no model to write with"):
        apply("paraphrase", "some words here", 0.5, random.Random(0), Resources())
    cfg = AugmentConfig.model_validate({"operations": [{"name": "paraphrase"}], "paraphrase": {"model": "r"}})
    saved = PROVIDERS.pop("paraphrase", None)  # as when the layer that loads models was never imported
    try:
        with pytest.raises(LmforgeError, match="needs a trained model"):
            resources(cfg, [])
    finally:
        if saved is not None:
            PROVIDERS["paraphrase"] = saved
