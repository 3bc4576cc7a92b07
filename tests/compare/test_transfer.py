"""lmforge compare transfer on a tiny base: every arm at every size on the same held-out passages,
the encoder arm from a second base, in the common output form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.compare.transfer import arms, run_transfer
from lmforge.errors import LmforgeError
from lmforge.finetune.base import resolve_base
from lmforge.finetune.classify import finetune_config
from lmforge.rundir import RunDir
from tests.helpers.finetune import finetune_keys, make_base, write_docs


def test_arms_share_held_out_passages_and_differ_in_what_trains(tmp_path: Path) -> None:
    assert list(arms(2)) == ["scratch", "full", "frozen-1", "frozen-2", "lora"]
    assert list(arms(1, encoder=True)) == ["scratch", "full", "frozen-1", "lora", "encoder"]
    base = make_base(tmp_path / "base")
    encoder = make_base(tmp_path / "enc", "model.family=encoder", seed=1)
    docs = write_docs(tmp_path / "docs.jsonl")
    found = resolve_base(base.root)
    cfg = finetune_config(found, None, finetune_keys(docs, "train.steps=4"))
    out = RunDir(tmp_path / "cmp")
    result = run_transfer(found, out, cfg, [8, 24], ["scratch", "full", "frozen-2", "encoder"],
                          resolve_base(encoder.root))
    rows = {(r["arm"], r["size"]): r for r in result["results"]}
    assert len(rows) == 8
    assert {r["train_passages"] for r in rows.values() if r["size"] == 8} == {8}
    assert len({r["test_passages"] for r in rows.values()}) == 1
    assert rows[("frozen-2", 8)]["trainable_params"] < rows[("full", 8)]["trainable_params"]
    assert rows[("scratch", 8)]["trainable_params"] == rows[("full", 8)]["trainable_params"]
    scratch = json.loads((out.root / "n8" / "scratch" / "finetune.json").read_text())
    assert scratch["init"] == "scratch"
    enc_lineage = json.loads((out.root / "n8" / "encoder" / "lineage.json").read_text())
    assert Path(enc_lineage["base"]["path"]) == encoder.root.resolve()
    enc_cfg = (out.root / "n8" / "encoder" / "config.yaml").read_text()
    assert "family: encoder" in enc_cfg and "pooling: cls" in enc_cfg
    # the common output form: table files, figure, cells, result.json last
    for name in ("table.md", "table.html", "table.csv", "figure.png", "cells.json", "result.json"):
        assert (out.root / name).stat().st_size > 0, name
    saved = json.loads((out.root / "result.json").read_text())
    assert saved["name"] == "transfer" and len(saved["rows"]) == 8
    assert "| encoder | 8 |" in (out.root / "table.md").read_text()
    assert any("pretrained start" in n and "scratch" in n for n in saved["notes"])
    # a second run reads every cell back instead of training again
    stamp = (out.root / "n8" / "full" / "finetune.json").stat().st_mtime_ns
    again = run_transfer(found, out, cfg, [8, 24], ["scratch", "full", "frozen-2", "encoder"],
                         resolve_base(encoder.root))
    assert again["rows"] == saved["rows"]
    assert (out.root / "n8" / "full" / "finetune.json").stat().st_mtime_ns == stamp


def test_unknown_arms_and_a_decoder_as_encoder_are_refused(tmp_path: Path) -> None:
    base = make_base(tmp_path / "base")
    docs = write_docs(tmp_path / "docs.jsonl")
    found = resolve_base(base.root)
    cfg = finetune_config(found, None, finetune_keys(docs, "train.steps=4"))
    out = RunDir(tmp_path / "cmp")
    with pytest.raises(LmforgeError, match="unknown arm"):
        run_transfer(found, out, cfg, [8], ["frozen-9"])
    with pytest.raises(LmforgeError, match="the encoder arm needs --encoder RUN"):
        run_transfer(found, out, cfg, [8], ["encoder"])
    with pytest.raises(LmforgeError, match="is a 'gpt' model, not an encoder"):
        run_transfer(found, out, cfg, [8], ["full"], found)
