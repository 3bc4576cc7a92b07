"""--cv K: folds of whole documents (no document on both sides of a fold), every class in every
test fold, the mean and spread recorded; and the clear errors around it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.config.load import config_over
from lmforge.errors import LmforgeError
from lmforge.finetune.base import resolve_base
from lmforge.finetune.classify import finetune_config
from lmforge.finetune.cv import document_folds, run_cv
from lmforge.rundir import RunDir
from tests.helpers.finetune import finetune_keys, make_base, write_docs


def _rows(path: Path, **kw: object) -> list[dict]:
    return [json.loads(line) for line in write_docs(path, **kw).read_text().splitlines()]  # type: ignore[arg-type]


def test_no_document_crosses_folds_and_each_is_tested_once(tmp_path: Path) -> None:
    base = make_base(tmp_path / "base")
    rows = _rows(tmp_path / "d.jsonl", per_class=10, classes=("x", "y", "z"))
    for i, row in enumerate(rows):
        row["work"] = f"w{i // 2}"  # pairs of documents (of one class) that must stay together
    cfg = finetune_config(resolve_base(base.root), None, ["finetune.group_field=work", "finetune.val_fraction=0.3"])
    for seed in range(3):
        folds = document_folds(rows, config_over(cfg, None, [f"finetune.seed={seed}"]), 4)
        assert len(folds) == 4
        tested = [i for fold in folds for i, s in enumerate(fold) if s == "test"]
        assert sorted(tested) == list(range(len(rows)))  # each document in exactly one test fold
        for fold in folds:
            assert {rows[i]["author"] for i, s in enumerate(fold) if s == "test"} == {"x", "y", "z"}
            assert {"train", "val", "test"} == set(fold)
            for work in {r["work"] for r in rows}:  # a group never straddles two splits
                assert len({s for r, s in zip(rows, fold) if r["work"] == work}) == 1


def test_cv_trains_one_model_per_fold_and_records_mean_and_spread(tmp_path: Path) -> None:
    base = make_base(tmp_path / "base")
    docs = write_docs(tmp_path / "docs.jsonl", per_class=5)
    found = resolve_base(base.root)
    cfg = finetune_config(found, None, finetune_keys(docs, "train.steps=3", "finetune.max_passages_per_doc=3"))
    record = run_cv(found, RunDir(tmp_path / "cv"), cfg, 2, show_progress=False)
    saved = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert saved["folds"] == 2 and len(saved["results"]) == 2 == len(record["results"])
    f1s = [r["f1_macro"] for r in saved["results"]]
    assert saved["f1_macro"]["mean"] == pytest.approx(sum(f1s) / 2)
    assert saved["f1_macro"]["min"] == min(f1s) and saved["f1_macro"]["std"] >= 0
    tested: list[str] = []
    for i in (1, 2):
        lineage = json.loads((tmp_path / "cv" / f"fold-{i}" / "lineage.json").read_text())
        docs_of = {s: set(v) for s, v in lineage["documents"].items()}
        assert not docs_of["train"] & docs_of["test"] and not docs_of["val"] & docs_of["test"]
        assert sorted(docs_of["test"]) == sorted(saved["results"][i - 1]["test_documents"])
        tested += saved["results"][i - 1]["test_documents"]
    assert sorted(tested) == sorted(f"{c}{i}" for c in "xy" for i in range(5))


def test_cv_refuses_too_few_documents_and_the_position_split(tmp_path: Path) -> None:
    base = make_base(tmp_path / "base")
    rows = _rows(tmp_path / "d.jsonl", per_class=4)
    cfg = finetune_config(resolve_base(base.root), None, [])
    with pytest.raises(LmforgeError, match=r"--cv 4: every class needs at least 5 documents.*x \(4\), y \(4\)"):
        document_folds(rows, cfg, 4)
    with pytest.raises(LmforgeError, match="finetune.split=position holds out part of each"):
        document_folds(rows, config_over(cfg, None, ["finetune.split=position"]), 2)
    with pytest.raises(LmforgeError, match="one class only"):
        document_folds([r for r in rows if r["author"] == "x"], cfg, 2)
    del rows[2]["author"]
    with pytest.raises(LmforgeError, match="'author' is missing, null or empty in 1 of 8 records"):
        document_folds(rows, cfg, 2)


def test_built_in_tasks_set_their_keys_and_an_unknown_one_is_refused(tmp_path: Path) -> None:
    found = resolve_base(make_base(tmp_path / "base").root)
    edition = finetune_config(found, None, [], "edition")
    assert (edition.finetune.label_field, edition.finetune.group_field) == ("edition", "work")
    assert edition.data.editions == ["modern", "folio"] and edition.data.authors == ["shakespeare"]
    work = finetune_config(found, None, ["finetune.max_passages_per_doc=10"], "work")
    assert (work.finetune.label_field, work.finetune.split, work.finetune.max_passages_per_doc) == ("work", "position", 10)
    with pytest.raises(LmforgeError, match="unknown task 'genre'"):
        finetune_config(found, None, [], "genre")
