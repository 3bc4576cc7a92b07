"""The tokenize stage: token files, the document index, meta.json, the report and leakage.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lmforge.config.schema import TokenizerConfig
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir, read_jsonl_gz
from lmforge.tokens.pack import pick_dtype, run_tokenize
from lmforge.tokens.store import load_tokens
from lmforge.tokens.tokenizer import load_tokenizer
from tests.helpers.documents import make_docs, write_run

CFG = TokenizerConfig(vocab_size=300, batch_docs=7)  # 7: batches do not divide the splits evenly


def test_document_index_points_at_each_document(small_run: RunDir) -> None:
    meta = run_tokenize(small_run, CFG.model_copy(update={"bos_token": "<s>"}))
    tok = load_tokenizer(small_run.tokenizer)
    for split in ("train", "val", "test"):
        data = np.asarray(load_tokens(small_run.tokens, split))
        starts = np.load(small_run.tokens / f"{split}.docs.npy", allow_pickle=False)
        sources = np.load(small_run.tokens / f"{split}.doc_sources.npy", allow_pickle=False)
        docs = list(read_jsonl_gz(small_run.split_file(split)))
        assert len(starts) == len(docs) == len(sources) == meta["splits"][split]["documents"]
        ends = np.append(starts[1:], len(data))
        for doc, s, e, src in zip(docs, starts, ends, sources):
            ids = data[s:e].tolist()
            assert ids[0] == meta["bos_id"] and ids[-1] == meta["eos_id"]  # [BOS] doc EOS
            assert tok.decode(ids[1:-1]) == doc["text"]
            assert meta["sources"][src] == doc["source"]
        assert len(data) == meta["splits"][split]["tokens"]


def test_meta_and_report(small_run: RunDir) -> None:
    meta = run_tokenize(small_run, CFG)
    on_disk = json.loads((small_run.tokens / "meta.json").read_text())
    assert on_disk["dtype"] == "uint16" and on_disk["vocab_size"] == 300 and on_disk["kind"] == "bytelevel_bpe"
    val = meta["splits"]["val"]
    # byte-level BPE: the token bytes are the text's bytes (EOS counts none)
    assert val["bytes"] == val["text_bytes"]
    assert val["bytes_per_token"] == pytest.approx(val["bytes"] / val["tokens"], abs=1e-3)
    assert sum(val["tokens_by_source"].values()) == val["tokens"]
    report = meta["report"]
    assert report["measured_on"] == "val" and report["round_trip_exact"] is True
    assert report["unk_rate"] == 0.0 and 0 < report["vocab_used_train"] <= 1
    lengths = [t["bytes"] for t in report["longest_tokens"]]
    assert lengths == sorted(lengths, reverse=True) and lengths[0] > 3


def test_wordpiece_report_says_round_trip_is_not_exact(small_run: RunDir) -> None:
    meta = run_tokenize(small_run, CFG.model_copy(update={"kind": "wordpiece"}))
    assert meta["report"]["round_trip_exact"] is False
    assert meta["splits"]["val"]["bytes"] < meta["splits"]["val"]["text_bytes"]  # whitespace is dropped


def test_worker_processes_write_identical_files(tmp_path: Path) -> None:
    docs = make_docs(30)
    outs = []
    for workers in (0, 2):
        run = write_run(tmp_path / f"w{workers}", {"train": docs[:24], "val": docs[24:27], "test": docs[27:]})
        run_tokenize(run, CFG.model_copy(update={"workers": workers, "batch_docs": 4}))
        outs.append([(run.tokens / f).read_bytes() for f in ("train.bin", "train.docs.npy", "val.bin", "test.bin")])
    assert outs[0] == outs[1]


def test_leakage_finds_copied_documents(tmp_path: Path) -> None:
    docs = make_docs(30, seed=1)
    fresh = make_docs(2, seed=99, prefix="new")
    run = write_run(tmp_path / "run", {"train": docs[:26], "val": [docs[0], fresh[0]], "test": [fresh[1]]})
    run_tokenize(run, CFG)
    leak = json.loads((run.tokens / "leakage.json").read_text())
    val, test = leak["splits"]["val"], leak["splits"]["test"]
    assert leak["n"] == 13
    worst = {d["id"]: d["fraction"] for d in val["worst_documents"]}
    assert worst["d0"] == 1.0  # a training document copied into validation
    assert worst[fresh[0]["id"]] < 0.2  # a fresh one (the synthetic vocabulary is tiny, so not 0)
    assert val["documents_over_half"] == 1
    assert 0.4 < val["fraction"] < 0.7 and test["fraction"] < 0.2


def test_uint16_too_small_for_the_vocabulary_is_a_clear_error() -> None:
    assert pick_dtype(65536, "auto") == np.uint16 and pick_dtype(65537, "auto") == np.uint32
    with pytest.raises(LmforgeError, match="does not fit in uint16"):
        pick_dtype(70_000, "uint16")


def test_missing_split_says_to_run_data(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.create()
    with pytest.raises(LmforgeError, match="'data' stage has not run"):
        run_tokenize(run, CFG)


def test_empty_train_split_is_a_clear_error(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", {"train": [], "val": make_docs(2)})
    with pytest.raises(LmforgeError, match="no text"):
        run_tokenize(run, CFG)


def test_truncated_token_file_is_detected(small_run: RunDir) -> None:
    run_tokenize(small_run, CFG)
    path = small_run.token_file("val")
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(LmforgeError, match="truncated"):
        load_tokens(small_run.tokens, "val")


def test_unknown_rate_counts_characters_unseen_in_train(tmp_path: Path) -> None:
    docs = make_docs(12)
    odd = {"id": "odd", "source": "a", "text": "§" * 10 + " the king"}
    run = write_run(tmp_path / "run", {"train": docs[:10], "val": [odd], "test": docs[10:]})
    meta = run_tokenize(run, CFG.model_copy(update={"kind": "char"}))
    report = meta["report"]
    assert report["unk_rate"] == pytest.approx(10 / meta["splits"]["val"]["tokens"], rel=1e-2)
    assert report["round_trip_exact"] is False


@pytest.mark.parametrize("kind,workers", [("bytelevel_bpe", 0), ("bytelevel_bpe", 1), ("char", 0)])
def test_special_token_text_in_a_document_is_not_a_boundary(tmp_path: Path, kind: str, workers: int) -> None:
    """A literal "<|endoftext|>" (or the BOS string) in a document is text: only packing writes EOS/BOS."""
    docs = make_docs(12)
    for d in docs[:10:3]:
        d["text"] += " quoted <|endoftext|> and <s> inside\n"
    run = write_run(tmp_path / "run", {"train": docs[:8], "val": docs[8:10], "test": docs[10:]})
    cfg = CFG.model_copy(update={"kind": kind, "bos_token": "<s>", "workers": workers, "min_frequency": 1})
    meta = run_tokenize(run, cfg)
    tokens = np.fromfile(run.token_file("train"), dtype=meta["dtype"])
    assert int((tokens == meta["eos_id"]).sum()) == 8 and int((tokens == meta["bos_id"]).sum()) == 8
    assert meta["splits"]["train"]["bytes"] == meta["splits"]["train"]["text_bytes"]
    assert meta["report"]["round_trip_exact"]


def test_a_killed_tokenize_leaves_no_meta_beside_new_files(small_run: RunDir, monkeypatch: pytest.MonkeyPatch) -> None:
    """meta.json marks the token files complete: a rerun removes it first, and the temp files
    of a writer that was killed are cleared."""
    from lmforge.tokens import pack

    run_tokenize(small_run, CFG)
    stale = small_run.tokens / ".train.bin.abc123.tmp"
    stale.write_bytes(b"left by a SIGKILL")

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # stands in for a kill in the middle of packing

    monkeypatch.setattr(pack, "pack_split", killed)
    with pytest.raises(KeyboardInterrupt):
        run_tokenize(small_run, CFG.model_copy(update={"vocab_size": 300}))
    assert not (small_run.tokens / "meta.json").exists() and not stale.exists()
    with pytest.raises(LmforgeError, match="tokenize"):
        load_tokens(small_run.tokens, "train")
