"""`lmforge compare tokenizers`: one row per kind, written to the run directory."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lmforge.cli import app
from lmforge.compare.tokenizers import compare_tokenizers
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir


def test_compare_rows_and_files(small_run: RunDir) -> None:
    result = compare_tokenizers(small_run, ["bytelevel_bpe", "wordpiece", "char"], vocab_size=300)
    rows = {r["kind"]: r for r in result["rows"]}
    assert rows["bytelevel_bpe"]["vocab"] == 300 and rows["bytelevel_bpe"]["round_trip"] is True
    assert rows["wordpiece"]["round_trip"] is False
    assert rows["char"]["bytes_per_token"] == 1.0  # ASCII text, one character per token
    assert rows["bytelevel_bpe"]["bytes_per_token"] > 1.5  # merges make tokens longer than a character
    on_disk = json.loads((small_run.root / "compare" / "tokenizers.json").read_text())
    assert [r["kind"] for r in on_disk["rows"]] == ["bytelevel_bpe", "wordpiece", "char"]
    assert "| bytelevel_bpe | 300 |" in (small_run.root / "compare" / "tokenizers.md").read_text()


def test_unknown_kind_is_a_clear_error(small_run: RunDir) -> None:
    with pytest.raises(LmforgeError, match="unknown tokenizer kind"):
        compare_tokenizers(small_run, ["sentencepiece"], vocab_size=200)


def test_cli_prints_the_table(small_run: RunDir) -> None:
    out = CliRunner().invoke(app, ["compare", "tokenizers", str(small_run.root), "--kinds", "bpe,char",
                                   "--vocab-size", "128"])
    assert out.exit_code == 0, out.output
    assert "| bpe | 128 |" in out.output and "| char |" in out.output


def test_vocab_below_the_byte_alphabet_is_a_clear_error(small_run: RunDir) -> None:
    with pytest.raises(LmforgeError, match="vocab_size >= 257"):
        compare_tokenizers(small_run, ["bytelevel_bpe"], vocab_size=100)


def test_no_kind_is_refused_and_a_repeated_kind_measured_once(small_run: RunDir) -> None:
    with pytest.raises(LmforgeError, match="no tokenizer kind to compare"):
        compare_tokenizers(small_run, [], vocab_size=128)
    assert not (small_run.root / "compare" / "tokenizers.md").exists()  # no empty table written
    rows = compare_tokenizers(small_run, ["char", "char"], vocab_size=128)["rows"]
    assert [r["kind"] for r in rows] == ["char"]
