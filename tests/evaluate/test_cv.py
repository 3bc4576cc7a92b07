"""Cross-validation through the train stage on a tiny hand-made run, and the stage's bad-input messages."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lmforge.errors import LmforgeError
from lmforge.evaluate.cv import cross_validate
from lmforge.evaluate.score import load_trained
from lmforge.monitor import build_callbacks
from lmforge.rundir import RunDir, write_jsonl_gz
from tests.helpers.runs import doc_run_config, make_doc_run


def test_cross_validation_trains_every_fold(tmp_path):
    run = make_doc_run(tmp_path / "run")
    cfg = doc_run_config(cv_folds=2, cv_stratified=True, cv_repeats=1)
    out = cross_validate(run, cfg, callbacks=build_callbacks)  # as the pipeline hands them
    assert out["k"] == 2 and out["documents"] == 5 and len(out["folds"]) == 2
    assert sorted(f["test_documents"] for f in out["folds"]) == [2, 3]
    for f in out["folds"]:
        assert f["steps"] == 3 and f["loss"] > 0 and f["tokens"] > 0
    losses = [f["loss"] for f in out["folds"]]
    assert out["summary"]["loss"]["mean"] == pytest.approx(np.mean(losses))
    assert out["summary"]["loss"]["std"] == pytest.approx(np.std(losses, ddof=1))
    # each fold trained in its own run directory, through the train stage
    assert (run.root / "cv" / "r0-f0" / "metrics.jsonl").is_file()


def test_more_folds_than_documents_is_a_clear_error(tmp_path):
    run = make_doc_run(tmp_path / "run", n_docs=4)
    with pytest.raises(LmforgeError, match="cannot make 9 folds: the run has only 3"):
        cross_validate(run, doc_run_config(cv_folds=9))


def test_a_run_without_checkpoint_is_a_clear_error(tmp_path):
    run = make_doc_run(tmp_path / "run")
    with pytest.raises(LmforgeError, match="no valid checkpoint") as err:
        load_trained(run, doc_run_config())
    assert "lmforge train" in (err.value.hint or "")
    with pytest.raises(LmforgeError, match="run directory not found"):
        load_trained(RunDir(tmp_path / "nowhere"), doc_run_config())


def test_cv_folds_of_one_is_rejected():
    with pytest.raises(LmforgeError, match="cv_folds"):
        doc_run_config(cv_folds=1)


def test_eval_json_keys_the_report_reads(tmp_path):
    """The report template reads splits.<split>.{tokens,loss,perplexity,bits_per_byte,bits_per_byte_ci95}."""
    from lmforge.evaluate.stage import run_eval
    from lmforge.train.stage import run_train

    run = make_doc_run(tmp_path / "run")
    cfg = doc_run_config(samples=1, sample_tokens=5, prompt="ab", tasks="[]")
    run_train(run, cfg, show_progress=False)
    run_eval(run, cfg)
    ev = json.loads(run.eval.read_text())
    for split in ("val", "test"):
        assert {"tokens", "loss", "perplexity", "bits_per_byte", "bits_per_byte_ci95",
                "accuracy", "top5_accuracy"} <= set(ev["splits"][split])
    assert ev["untrained"] and ev["samples"][0]["text"].startswith("ab")


@pytest.mark.parametrize(("field", "values", "keys", "match"), [
    ("cluster", ["c0", "c1", "c0", "c1", "c0"], {"cv_folds": 3}, "only 2 groups"),
    ("source", ["s0", "s1", "s0", "s1", "s0"], {"cv_folds": 4, "cv_stratified": True}, "the largest has 3"),
])
def test_impossible_folds_fail_before_any_scoring(tmp_path, monkeypatch, field, values, keys, match):
    """Enough documents for K, but too few groups or strata: run_eval stops before the holdout scoring."""
    from pathlib import Path

    from lmforge.evaluate import stage
    from lmforge.rundir import read_jsonl_gz

    run = make_doc_run(tmp_path / "run")
    at = 0
    for split in ("train", "val"):
        recs = list(read_jsonl_gz(run.split_file(split)))
        write_jsonl_gz(run.split_file(split), [{**r, field: values[at + i]} for i, r in enumerate(recs)])
        at += len(recs)
    monkeypatch.setattr(stage, "load_trained", lambda run, cfg: (None, None, Path("step-1")))

    def no_scoring(*args, **kwargs):
        raise AssertionError("scored a split before checking the folds")

    monkeypatch.setattr(stage, "score_split", no_scoring)
    with pytest.raises(LmforgeError, match=match):
        stage.run_eval(run, doc_run_config(tasks="[]", **keys))
