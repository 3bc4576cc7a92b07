"""Holdout splits (random, stratified, grouped) and k-fold indices."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from lmforge.config.schema import DataConfig
from lmforge.data.splits import kfold_indices, split_documents, split_summary
from lmforge.errors import LmforgeError


def records(n: int, sources: dict[str, float] | None = None, cluster_size: int = 1) -> list[dict]:
    """n records; sources by share (in blocks, so input order correlates with source)."""
    sources = sources or {"a": 1.0}
    names = [name for name, share in sources.items() for _ in range(round(share * n))][:n]
    names += [names[-1]] * (n - len(names))
    return [{"id": f"d{i}", "source": names[i], "cluster": f"c{i // cluster_size}"} for i in range(n)]


def test_every_document_in_exactly_one_split_with_the_ratios() -> None:
    cfg = DataConfig(val_fraction=0.1, test_fraction=0.2, seed=3)
    splits = split_documents(records(200), cfg)
    assert len(splits) == 200
    assert Counter(splits) == {"train": 140, "val": 20, "test": 40}


def test_seeded_and_seed_dependent() -> None:
    recs = records(100)
    a = split_documents(recs, DataConfig(seed=1))
    assert a == split_documents(recs, DataConfig(seed=1))
    assert a != split_documents(recs, DataConfig(seed=2))


def test_count_works_like_records_without_fields() -> None:
    cfg = DataConfig(seed=5)
    assert split_documents(50, cfg) == split_documents([{} for _ in range(50)], cfg)


def test_stratified_keeps_each_source_in_the_same_ratio() -> None:
    recs = records(300, {"big": 0.9, "small": 0.1})
    cfg = DataConfig(val_fraction=0.1, test_fraction=0.1, split_stratify="source", seed=0)
    table = split_summary(recs, split_documents(recs, cfg), "source")
    assert table["val"] == {"big": 27, "small": 3} and table["test"] == {"big": 27, "small": 3}
    # at this size a random split misses that exact balance for some seed
    misses = 0
    for seed in range(10):
        plain = split_summary(recs, split_documents(recs, DataConfig(val_fraction=0.1, test_fraction=0.1,
                                                                     seed=seed)), "source")
        misses += plain["val"].get("small", 0) != 3
    assert misses > 0


def test_stratify_by_label() -> None:
    recs = [{"label": "pos" if i % 4 == 0 else "neg"} for i in range(400)]
    cfg = DataConfig(val_fraction=0.25, test_fraction=0.0, min_test_docs=0, split_stratify="label")
    splits = split_documents(recs, cfg)
    held = Counter(r["label"] for r, s in zip(recs, splits) if s == "val")
    assert held == {"pos": 25, "neg": 75}


def test_near_duplicate_clusters_never_straddle_splits() -> None:
    recs = records(120, cluster_size=3)
    for seed in range(5):
        splits = split_documents(recs, DataConfig(val_fraction=0.1, test_fraction=0.1, seed=seed))
        by_cluster: dict[str, set[str]] = {}
        for r, s in zip(recs, splits):
            by_cluster.setdefault(r["cluster"], set()).add(s)
        assert all(len(v) == 1 for v in by_cluster.values())
        assert Counter(splits)["val"] == 12
    # with grouping off, some cluster straddles
    loose = split_documents(recs, DataConfig(val_fraction=0.1, test_fraction=0.1, split_group="none"))
    assert any(len({s for r, s in zip(recs, loose) if r["cluster"] == c}) > 1 for c in {r["cluster"] for r in recs})


def test_stratified_and_grouped_together() -> None:
    recs = records(200, {"a": 0.5, "b": 0.5}, cluster_size=2)
    cfg = DataConfig(val_fraction=0.1, test_fraction=0.1, split_stratify="source")
    table = split_summary(recs, split_documents(recs, cfg), "source")
    assert table["val"] == {"a": 10, "b": 10}


def test_too_few_documents_is_a_clear_error() -> None:
    with pytest.raises(LmforgeError, match="only 2 documents") as err:
        split_documents(records(2), DataConfig())
    assert "val_fraction" in (err.value.hint or "")


def test_one_giant_cluster_cannot_be_held_out() -> None:
    recs = [{"cluster": "same"} for _ in range(30)]
    with pytest.raises(LmforgeError, match="validation|val split is empty"):
        split_documents(recs, DataConfig(val_fraction=0.1, test_fraction=0.1))


def test_kfold_covers_every_item_once() -> None:
    folds = kfold_indices(23, 5, seed=0)
    tests = np.concatenate([te for _, te in folds])
    assert sorted(tests.tolist()) == list(range(23))
    for tr, te in folds:
        assert not set(tr) & set(te) and len(tr) + len(te) == 23


def test_stratified_kfold_balances_labels_and_group_kfold_keeps_groups() -> None:
    labels = ["x"] * 40 + ["y"] * 10
    for _, te in kfold_indices(50, 5, seed=1, labels=labels):
        assert Counter(labels[i] for i in te) == {"x": 8, "y": 2}
    groups = [i // 5 for i in range(50)]
    for tr, te in kfold_indices(50, 5, seed=1, groups=groups):
        assert not {groups[i] for i in tr} & {groups[i] for i in te}
    folds = kfold_indices(50, 5, seed=1, labels=labels, groups=groups)
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(50))


@pytest.mark.parametrize(("n", "k", "match"), [(10, 1, "at least 2"), (3, 5, "cannot make 5 folds")])
def test_kfold_bad_k(n: int, k: int, match: str) -> None:
    with pytest.raises(LmforgeError, match=match):
        kfold_indices(n, k)


def test_kfold_too_few_groups() -> None:
    with pytest.raises(LmforgeError, match="only 2 groups"):
        kfold_indices(10, 3, groups=[i % 2 for i in range(10)])


def test_kfold_impossible_stratification_names_the_largest_stratum() -> None:
    with pytest.raises(LmforgeError, match="the largest has 3") as err:
        kfold_indices(5, 4, labels=["a", "a", "a", "b", "b"])
    assert "use 3 folds or fewer" in (err.value.hint or "")
