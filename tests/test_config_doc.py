"""docs/config.md is generated from the config models; this fails when it has drifted."""

from pathlib import Path

from lmforge.config.doc import reference


def test_config_reference_is_current():
    doc = Path(__file__).resolve().parents[1] / "docs" / "config.md"
    assert doc.read_text() == reference(), "run `make docs` to regenerate docs/config.md"


def test_reference_lists_every_section():
    text = reference()
    for section in ("data", "tokenizer", "model", "train", "eval", "report", "monitor"):
        assert f"## `{section}`" in text
    assert "`train.lr`" in text and "`model.n_layer`" in text
