"""Cross-validation through the train stage on a tiny hand-made run, and the stage's bad-input messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

from lmforge.config.load import load_config
from lmforge.errors import LmforgeError
from lmforge.evaluate.cv import cross_validate
from lmforge.evaluate.score import load_trained
from lmforge.monitor import build_callbacks
from lmforge.rundir import RunDir, atomic_write_json, write_jsonl_gz

CHARS = "abcdefghij \n"


def make_run(root, n_docs: int = 6) -> RunDir:
    """A run directory as the data and tokenize stages leave it: char tokenizer, token files, sources."""
    run = RunDir(root)
    run.create()
    vocab = {"<|endoftext|>": 0, **{c: i + 1 for i, c in enumerate(CHARS)}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(["<|endoftext|>"])
    run.tokenizer.parent.mkdir(parents=True)
    tok.save(str(run.tokenizer))
    rng = np.random.default_rng(0)
    splits = {}
    for split, count in (("train", n_docs - 2), ("val", 1), ("test", 1)):
        docs = [rng.integers(1, len(CHARS) + 1, 300).astype(np.uint16) for _ in range(count)]
        docs = [np.append(d, 0).astype(np.uint16) for d in docs]
        run.tokens.mkdir(parents=True, exist_ok=True)
        np.concatenate(docs).tofile(run.token_file(split))
        np.save(run.tokens / f"{split}.docs.npy", np.cumsum([0] + [len(d) for d in docs[:-1]]).astype(np.int64))
        write_jsonl_gz(run.split_file(split), [{"id": f"{split}{i}", "text": "x", "source": f"s{i % 2}"}
                                              for i in range(count)])
        splits[split] = {"tokens": int(sum(len(d) for d in docs)), "documents": count}
    atomic_write_json(run.tokens / "meta.json", {"dtype": "uint16", "vocab_size": len(vocab), "eos_id": 0,
                                                 "kind": "char", "splits": splits})
    return run


def tiny_config(**eval_keys):
    over = ["model.n_layer=1", "model.n_head=1", "model.n_embd=16", "model.block_size=16",
            "train.batch_size=4", "train.steps=3", "train.warmup_steps=0", "train.eval_interval=3",
            "train.checkpoint_interval=3", "train.log_interval=1", "eval.bootstrap_rounds=100"]
    over += [f"eval.{k}={v}" for k, v in eval_keys.items()]
    return load_config(None, "smoke", over)


def test_cross_validation_trains_every_fold(tmp_path):
    run = make_run(tmp_path / "run")
    cfg = tiny_config(cv_folds=2, cv_stratified=True, cv_repeats=1)
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
    run = make_run(tmp_path / "run", n_docs=4)
    with pytest.raises(LmforgeError, match="cannot make 9 folds: the run has only 3"):
        cross_validate(run, tiny_config(cv_folds=9))


def test_a_run_without_checkpoint_is_a_clear_error(tmp_path):
    run = make_run(tmp_path / "run")
    with pytest.raises(LmforgeError, match="no valid checkpoint") as err:
        load_trained(run, tiny_config())
    assert "lmforge train" in (err.value.hint or "")
    with pytest.raises(LmforgeError, match="run directory not found"):
        load_trained(RunDir(tmp_path / "nowhere"), tiny_config())


def test_cv_folds_of_one_is_rejected():
    with pytest.raises(LmforgeError, match="cv_folds"):
        tiny_config(cv_folds=1)


def test_eval_json_keys_the_report_reads(tmp_path):
    """The report template reads splits.<split>.{tokens,loss,perplexity,bits_per_byte,bits_per_byte_ci95}."""
    from lmforge.evaluate.stage import run_eval
    from lmforge.train.stage import run_train

    run = make_run(tmp_path / "run")
    cfg = tiny_config(samples=1, sample_tokens=5, prompt="ab", tasks="[]")
    run_train(run, cfg, show_progress=False)
    run_eval(run, cfg)
    ev = json.loads(run.eval.read_text())
    for split in ("val", "test"):
        assert {"tokens", "loss", "perplexity", "bits_per_byte", "bits_per_byte_ci95",
                "accuracy", "top5_accuracy"} <= set(ev["splits"][split])
    assert ev["untrained"] and ev["samples"][0]["text"].startswith("ab")


def test_compare_splits_writes_table_and_figure(tmp_path):
    from lmforge.compare.splits import run_compare_splits, table

    run = make_run(tmp_path / "run", n_docs=8)
    result = run_compare_splits(run, tiny_config(), ks=[2], repeats=2, steps=2, doc_tokens=64)
    assert set(result["methods"]) == {"holdout 2/3", "2-fold", "stratified 2-fold"}
    for m in result["methods"].values():
        assert len(m["estimates"]) == 2
        assert m["bias"] == pytest.approx(np.mean(m["estimates"]) - result["truth"])
    assert result["methods"]["2-fold"]["trainings"] == 4
    assert "| 2-fold |" in table(result)
    for ext in ("json", "md", "png"):
        assert (run.root / "compare" / f"splits.{ext}").is_file()
    with pytest.raises(LmforgeError, match="too few for K=5"):
        run_compare_splits(run, tiny_config(), ks=[5], repeats=2, steps=2, doc_tokens=64)


def test_compare_eval_pairs_two_runs(tmp_path):
    from lmforge.compare.paired import compare_eval, table
    from lmforge.config.load import dump_config
    from lmforge.rundir import atomic_write_text
    from lmforge.train.stage import run_train

    runs = []
    for name, seed in (("a", 1), ("b", 2)):
        run = make_run(tmp_path / name)
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
    other = make_run(tmp_path / "c", n_docs=7)
    with pytest.raises(LmforgeError, match="hold out different"):
        compare_eval(runs[0], other, "train")


@pytest.mark.parametrize(("field", "values", "keys", "match"), [
    ("cluster", ["c0", "c1", "c0", "c1", "c0"], {"cv_folds": 3}, "only 2 groups"),
    ("source", ["s0", "s1", "s0", "s1", "s0"], {"cv_folds": 4, "cv_stratified": True}, "the largest has 3"),
])
def test_impossible_folds_fail_before_any_scoring(tmp_path, monkeypatch, field, values, keys, match):
    """Enough documents for K, but too few groups or strata: run_eval stops before the holdout scoring."""
    from pathlib import Path

    from lmforge.evaluate import stage
    from lmforge.rundir import read_jsonl_gz

    run = make_run(tmp_path / "run")
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
        stage.run_eval(run, tiny_config(tasks="[]", **keys))
