"""`lmforge compare eval A B`: the paired comparison of two trained runs on the same documents, and
the name of the file it writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.compare.paired import compare_eval, compare_eval_path, table
from lmforge.config.load import dump_config, load_config
from lmforge.errors import LmforgeError
from lmforge.rundir import atomic_write_text
from lmforge.train.stage import run_train
from tests.helpers.runs import make_doc_run


def test_compare_eval_pairs_two_runs(tmp_path):
    runs = []
    for name, seed in (("a", 1), ("b", 2)):
        run = make_doc_run(tmp_path / name)
        cfg = load_config(None, "smoke", [f"train.seed={seed}", "model.n_layer=1", "model.n_head=1",
                                          "model.n_embd=16", "model.block_size=16", "train.batch_size=4",
                                          f"train.steps={2 * seed}", "train.warmup_steps=0"])
        atomic_write_text(run.config, dump_config(cfg))
        run_train(run, cfg, show_progress=False)
        runs.append(run)
    res = compare_eval(runs[0], runs[1], "val", rounds=200)
    bpb = res["bits_per_byte"]
    assert bpb["paired_bootstrap"]["difference"] == pytest.approx(bpb["a"] - bpb["b"])
    assert res["next_line_acc_norm"] is None and "next_line" in res["note"]
    assert "| bits per byte |" in table(res)
    other = make_doc_run(tmp_path / "c", n_docs=7)
    with pytest.raises(LmforgeError, match="hold out different"):
        compare_eval(runs[0], other, "train")


def test_compare_eval_file_is_named_after_b_given_as_dot(tmp_path: Path, monkeypatch) -> None:
    """`lmforge compare eval ../a .` wrote a/compare/eval_vs_.json."""
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "b")
    assert compare_eval_path(Path("../a"), Path(".")).name == "eval_vs_b.json"
    assert compare_eval_path(Path("../a"), Path("../b/")).name == "eval_vs_b.json"
    assert compare_eval_path(Path("../a"), Path("../b/"), "val").name == "eval_vs_b_val.json"  # not the test file
