"""The augment stage: copies of training documents only, each with its origin, operation and
label; held-out splits untouched and what tokenize reads; the default flow does not run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.augment.ops import WORD
from lmforge.config.load import load_config
from lmforge.errors import LmforgeError
from lmforge.pipeline import ORDER, STAGES, flow, run_stage, stage_identity, write_config
from lmforge.rundir import RunDir, file_sha256, read_jsonl_gz
from tests.helpers.documents import make_docs, write_run

OPS = 'augment.operations=[{name: swap, rate: 0.2}, {name: delete, rate: 0.1, copies: 2}, {name: char_noise, rate: 0.05}]'


def labelled_run(root: Path) -> RunDir:
    docs = make_docs(14)
    for i, d in enumerate(docs):
        d["author"] = "a" if i % 2 else "b"
        d["split"] = "train" if i < 8 else "val" if i < 11 else "test"
    return write_run(root, {s: [d for d in docs if d["split"] == s] for s in ("train", "val", "test")})


def test_copies_of_the_training_split_only_with_origin_operation_and_label(tmp_path: Path) -> None:
    run = labelled_run(tmp_path / "r")
    held = {s: file_sha256(run.split_file(s)) for s in ("val", "test")}
    cfg = load_config(None, "smoke", [OPS])
    write_config(run, cfg)
    assert run_stage(run, cfg, "augment")
    out = list(read_jsonl_gz(run.documents("train")))
    originals = {r["id"]: r for r in read_jsonl_gz(run.split_file("train"))}
    copies = [r for r in out if "augmented_from" in r]
    assert len(out) == len(originals) + len(copies)
    assert len(copies) == 4 * len(originals)  # swap 1 + delete 2 + char_noise 1 copies, none unchanged here
    for c in copies:
        orig = originals[c["augmented_from"]]
        assert c["author"] == orig["author"] and c["split"] == "train" and c["text"] != orig["text"]
        assert c["operation"] in ("swap", "delete", "char_noise") and c["cluster"] == orig["id"]
    ledger = __import__("json").loads((run.root / "augment" / "ledger.json").read_text())
    assert ledger["operations"]["delete"]["made"] == 2 * len(originals) and ledger["copies"] == len(copies)
    # held-out splits: never rewritten, and tokenize reads them from data/
    assert {s: file_sha256(run.split_file(s)) for s in ("val", "test")} == held
    assert run.documents("val") == run.split_file("val") and run.documents("test") == run.split_file("test")
    assert not (run.root / "augment" / "val.jsonl.gz").exists()


def test_deleted_share_follows_the_rate(tmp_path: Path) -> None:
    run = labelled_run(tmp_path / "r")
    cfg = load_config(None, "smoke", ["augment.operations=[{name: delete, rate: 0.3}]"])
    write_config(run, cfg)
    run_stage(run, cfg, "augment")
    out = list(read_jsonl_gz(run.documents("train")))
    originals = {r["id"]: r for r in out if "augmented_from" not in r}
    for c in (r for r in out if "augmented_from" in r):
        n = len(WORD.findall(originals[c["augmented_from"]]["text"]))
        assert len(WORD.findall(c["text"])) == n - round(0.3 * n)


def test_default_flow_skips_the_optional_stages_and_keeps_tokenize_identity(tmp_path: Path) -> None:
    plain = load_config(None, "smoke", [])
    assert flow(plain) == ORDER == ["data", "tokenize", "train", "eval", "report"]
    augmented = load_config(None, "smoke", [OPS])
    assert flow(augmented) == ["data", "augment", "tokenize", "train", "eval", "report"]
    run = labelled_run(tmp_path / "r")
    before = stage_identity(run, plain, STAGES["tokenize"])
    assert stage_identity(run, augmented, STAGES["tokenize"]) != before
    assert stage_identity(run, load_config(None, "smoke", ["augment.seed=3"]), STAGES["tokenize"]) == before


def test_a_rate_outside_zero_one_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(LmforgeError, match=r"augment.operations.0.rate"):
        load_config(None, "smoke", ["augment.operations=[{name: swap, rate: 1.2}]"])


def test_no_operations_is_a_clear_error(tmp_path: Path) -> None:
    from lmforge.augment.stage import run_augment

    run = labelled_run(tmp_path / "r")
    with pytest.raises(LmforgeError, match="augment.operations is empty"):
        run_augment(run, load_config(None, "smoke", []).augment)
