"""MinHash LSH: band choice, verified pairs, CJK shingles, keep rules, reasons in rejected/."""

from __future__ import annotations

import numpy as np
import pytest

from lmforge.config.schema import NearDedupConfig
from lmforge.data import dedup
from lmforge.data.minhash import NearDedup, candidate_probability, jaccard, optimal_bands, shingles
from tests.helpers.texts import AUSTEN, GUXIANG, MELVILLE, TAOHUAYUAN, edit_words


def test_bands_rows_put_the_curve_step_at_the_threshold() -> None:
    b, r = optimal_bands(0.8, 128)
    assert b * r <= 128
    assert candidate_probability(0.85, b, r) > 0.99  # above: almost always a candidate
    assert candidate_probability(0.8, b, r) > 0.9
    assert candidate_probability(0.3, b, r) < 0.002  # well below: almost never
    assert optimal_bands(0.8, 128, 0.5, 0.5) == (9, 13)  # datasketch's equal weights
    _, r2 = optimal_bands(0.5, 128)
    assert r2 < r  # a lower threshold needs shorter bands


def test_near_duplicates_found_and_verified() -> None:
    base = (AUSTEN + MELVILLE) * 2
    docs = [base, edit_words(base, 0.02, 1), edit_words(base, 0.4, 2), GUXIANG * 3]
    index = NearDedup(threshold=0.8, num_perm=128)
    for d in docs:
        index.add(d)
    res = index.clusters()
    assert res.cluster[1] == res.cluster[0]
    assert res.cluster[2] != res.cluster[0] and res.cluster[3] != res.cluster[0]
    sim = res.pairs[(0, 1)]
    assert sim == pytest.approx(jaccard(shingles(docs[0], 5, 5), shingles(docs[1], 5, 5)))
    assert 0.8 <= sim < 1.0


def test_chinese_uses_character_shingles() -> None:
    assert len(shingles(TAOHUAYUAN, 5, 5)) > 300  # one "word" per line would give a handful
    edited = TAOHUAYUAN.replace("桃花林", "梨花林", 1)
    index = NearDedup(threshold=0.8)
    index.add(TAOHUAYUAN)
    assert [i for i, _ in index.query(edited)] == [0]
    assert index.query(GUXIANG) == []


def test_verification_drops_false_candidates() -> None:
    # With 'none' every candidate counts; with 'exact' only pairs truly above the threshold do.
    base = AUSTEN * 3
    docs = [edit_words(base, f, s) for s, f in enumerate([0.0, 0.12, 0.14, 0.16, 0.18, 0.2])]
    for verify in ("exact", "none"):
        index = NearDedup(threshold=0.8, num_perm=64, verify=verify)
        for d in docs:
            index.add(d)
        res = index.clusters()
        for (i, j), sim in res.pairs.items():
            true = jaccard(index.shingles[i], index.shingles[j])
            assert verify == "none" or true >= 0.8 and sim == true


def records(*texts: str) -> list[dict]:
    return [{"id": f"d{i}", "source": "s", "text": t} for i, t in enumerate(texts)]


@pytest.mark.parametrize("keep,expected", [("first", "d0"), ("longest", "d1")])
def test_keep_rule_and_duplicate_of(keep: str, expected: str) -> None:
    base = (AUSTEN + MELVILLE) * 2
    recs = records(base, base + " And one more sentence at the end of it all.", TAOHUAYUAN)
    kept, rejected, stats = dedup.near_dedup(recs, NearDedupConfig(keep=keep), seed=1)
    assert [r["id"] for r in kept] == sorted([expected, "d2"])
    [rej] = rejected
    assert rej["rule"] == "near_duplicate" and rej["duplicate_of"] == expected and 0.8 <= rej["similarity"] <= 1
    assert all(r["cluster"] == expected for r in kept if r["id"] != "d2")
    assert stats["verified_pairs"] == 1


def test_cluster_action_keeps_all_with_one_cluster_id() -> None:
    base = AUSTEN * 3
    recs = records(base, edit_words(base, 0.01, 3), MELVILLE * 2)
    kept, rejected, _ = dedup.near_dedup(recs, NearDedupConfig(action="cluster"), seed=1)
    assert not rejected and [r["cluster"] for r in kept] == ["d0", "d0", "d2"]


def test_exact_dedup_ignores_case_and_spacing() -> None:
    kept, rejected = dedup.exact_dedup(records(AUSTEN, AUSTEN.upper().replace(" ", "  "), MELVILLE))
    assert [r["id"] for r in kept] == ["d0", "d2"] and rejected[0]["duplicate_of"] == "d0"


def test_contamination_removes_held_out_copy() -> None:
    recs = [{"id": "a", "split": "train"}, {"id": "b", "split": "val"}, {"id": "c", "split": "test"}]
    kept, rejected = dedup.cross_split_contamination(recs, {(0, 1): 0.9}, {"a": 0, "b": 1, "c": 2})
    assert [r["id"] for r in kept] == ["a", "c"]
    assert rejected[0]["rule"] == "split_contamination" and rejected[0]["duplicate_of"] == "a"


def test_reference_dedup() -> None:
    ref = [{"id": "old", "text": AUSTEN * 3}]
    kept, rejected = dedup.reference_dedup(records(edit_words(AUSTEN * 3, 0.01, 5), MELVILLE), ref,
                                           NearDedupConfig(), seed=1)
    assert [r["id"] for r in kept] == ["d1"] and rejected[0]["duplicate_of"] == "old"


def test_signatures_are_deterministic() -> None:
    a, b = NearDedup(), NearDedup()
    a.add(AUSTEN)
    b.add(AUSTEN)
    assert np.array_equal(a.sigs[0], b.sigs[0])
