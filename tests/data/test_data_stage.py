"""The data stage end to end on small mixed inputs: outputs, rejected/ and a balanced ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.config.schema import DataConfig
from lmforge.data.stage import run_data
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir, read_jsonl_gz
from tests.helpers.texts import AUSTEN, MELVILLE, make_inputs


def run(tmp_path: Path, **cfg: object) -> tuple[RunDir, dict]:
    sources = make_inputs(tmp_path / "in")
    run_dir = RunDir(tmp_path / "run")
    opts: dict = {"min_chars": 100, "val_fraction": 0.1, "test_fraction": 0.1, **cfg}
    conf = DataConfig(corpus="none", sources=sources, **opts)
    return run_dir, run_data(run_dir, conf)


def test_every_record_kept_or_rejected_with_reason(tmp_path: Path) -> None:
    run_dir, ledger = run(tmp_path)
    kept = [r for s in ("train", "val", "test") for r in read_jsonl_gz(run_dir.split_file(s))]
    rejected = list(read_jsonl_gz(run_dir.rejected / "rejected.jsonl.gz"))
    assert ledger["in"] == 10 and ledger["balanced"]
    assert ledger["in"] == len(kept) + len(rejected) == ledger["kept"] + ledger["rejected"]
    assert all(r["rule"] and r["reason"] for r in rejected)
    by_rule = {r["rule"]: r for r in rejected}
    assert set(by_rule) == {"too_short", "missing_value", "read", "exact_duplicate", "near_duplicate"}
    assert by_rule["near_duplicate"]["duplicate_of"].endswith("taohua.txt")
    assert 0.8 <= by_rule["near_duplicate"]["similarity"] < 1
    assert by_rule["read"]["reason"].startswith("malformed JSON") and by_rule["read"]["origin"].endswith(":4")
    for src in ("texts", "recs"):
        s = ledger["sources"][src]
        assert s["balanced"] and s["in"] == s["kept"] + s["rejected"]
    assert all({"id", "source", "text", "split", "cluster"} <= set(r) for r in kept)
    assert ledger["pii_masked"] == {"email": 1}
    assert any("<EMAIL>" in r["text"] for r in kept)
    assert ledger["rules"]["near_duplicate"]["examples"][0]["preview"]
    assert ledger["tokens"]["kept"] > 0 and ledger["characters"]["kept"] > 0
    assert [f["step"] for f in ledger["funnel"]][:1] == ["read"]


def test_web_preset_and_language_filter(tmp_path: Path) -> None:
    _, ledger = run(tmp_path, languages=["en"], dedup="exact")
    assert ledger["rules"]["language"]["documents"] == 3  # the three Chinese texts
    assert ledger["sources"]["texts"]["diversity"]["languages"] == {"en": 2}
    _, ledger = run(tmp_path / "web", quality="web", filters=["fineweb"], min_val_docs=0, val_fraction=0)
    assert ledger["balanced"] and ledger["rules"]["fineweb"]["documents"] >= 1
    assert all(r.startswith("fineweb: ") for r in ledger["rules"]["fineweb"]["reasons"])


def test_same_result_with_two_datatrove_workers(tmp_path: Path) -> None:
    one_dir, one = run(tmp_path / "a")
    two_dir, two = run(tmp_path / "b", tasks=2, workers=2)
    assert (one["kept"], one["rejected"]) == (two["kept"], two["rejected"])
    ids = [sorted(r["id"].split("/in/")[-1] for r in read_jsonl_gz(d.split_file("train"))) for d in (one_dir, two_dir)]
    assert ids[0] == ids[1]


def test_unknown_threshold_key_stops_before_work(tmp_path: Path) -> None:
    with pytest.raises(LmforgeError, match="did you mean 'c4.min_sentences'"):
        run(tmp_path, thresholds={"c4.min_sentence": 2})
    assert not (tmp_path / "run" / "data").exists()


def test_dedup_against_matching_nothing_stops_before_work(tmp_path: Path) -> None:
    """The error names data.dedup_against[i] (not a source) and comes before phase 1 runs."""
    with pytest.raises(LmforgeError, match=r"data.dedup_against\[0\]: '.*nothere.txt' matches no file"):
        run(tmp_path, dedup_against=[str(tmp_path / "nothere.txt")])
    assert not (tmp_path / "run" / "data").exists()


def test_nothing_survives_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LmforgeError, match="no documents survived"):
        run(tmp_path, min_chars=10**7)


def test_changed_input_files_rerun_the_data_stage(tmp_path: Path) -> None:
    """The data identity covers the user's files: editing, adding or removing one re-runs the stage."""
    import os

    from lmforge.config.schema import Config
    from lmforge.pipeline import STAGES, stage_identity

    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text(AUSTEN, encoding="utf-8")
    cfg, run_dir = Config(data=DataConfig(corpus="none", paths=[str(folder)])), RunDir(tmp_path / "run")

    def ident() -> str:
        return stage_identity(run_dir, cfg, STAGES["data"])

    before = ident()
    assert ident() == before  # stable
    (folder / "a.txt").write_text(AUSTEN + "more\n", encoding="utf-8")
    edited = ident()
    assert edited != before
    (folder / "b.txt").write_text(MELVILLE, encoding="utf-8")
    added = ident()
    assert added != edited
    os.remove(folder / "b.txt")
    assert ident() == edited
