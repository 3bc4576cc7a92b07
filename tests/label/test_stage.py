"""The label stage: config rules and the user's lf_ functions vote; a function that raises is
reported with its record and the run goes on; human answers win; each label keeps its source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.config.load import load_config
from lmforge.errors import LmforgeError
from lmforge.label.store import append, log_path
from lmforge.pipeline import flow, run_stage, write_config
from lmforge.rundir import RunDir, read_jsonl_gz
from tests.helpers.documents import write_run

RULES = ("label.rules=[{name: swords, kind: keyword, label: war, keywords: [sword, blood]},"
         " {name: sweet, kind: regex, label: love, pattern: '(?i)\\bsweet\\w*'},"
         " {name: src, kind: field, label: war, field: source, equals: [camp]},"
         " {name: short, kind: length, label: love, max_chars: 20}]")


def docs_run(root: Path) -> RunDir:
    rows = [
        {"id": "w1", "text": "The sword is drawn and blood runs.", "source": "camp"},
        {"id": "w2", "text": "Blood on the field of the long day of battle.", "source": "town"},
        {"id": "l1", "text": "Sweet love, my sweetest heart, come near.", "source": "town"},
        {"id": "l2", "text": "Sweet rose.", "source": "town"},
        {"id": "n1", "text": "The weather was unremarkable all week long.", "source": "town"},
    ]
    for r in rows:
        r["split"] = "train"
    return write_run(root, {"train": rows[:4], "val": [{**rows[4], "split": "val"}], "test": []})


def labelled(run: RunDir) -> dict[str, dict]:
    return {r["id"]: r for s in ("train", "val", "test") for r in read_jsonl_gz(run.root / "labels" / f"{s}.jsonl.gz")}


def test_rules_vote_and_each_label_keeps_its_source(tmp_path: Path) -> None:
    run = docs_run(tmp_path / "r")
    cfg = load_config(None, "smoke", [RULES, "label.model=majority"])
    assert flow(cfg)[:3] == ["data", "label", "tokenize"]
    write_config(run, cfg)
    run_stage(run, cfg, "label")
    got = labelled(run)
    assert got["w1"]["label"] == "war" and got["l1"]["label"] == "love" and got["l2"]["label"] == "love"
    assert got["w2"]["label"] == "war" and "label" not in got["n1"]  # no rule voted: no label
    meta = got["w1"]["label_meta"]
    assert meta["source"] == "rule" and meta["by"] == "majority" and meta["confidence"] == 1.0 and meta["at"]
    summary = json.loads((run.root / "labels" / "summary.json").read_text())
    stats = {f["function"]: f for f in summary["functions"]}
    assert stats["swords"]["coverage"] == pytest.approx(2 / 5) and stats["src"]["coverage"] == pytest.approx(1 / 5)
    assert stats["src"]["overlap"] == pytest.approx(1 / 5) and stats["src"]["conflict"] == 0
    assert stats["short"]["votes"] == {"war": 0, "love": 1}
    # tokenize now reads the labelled documents
    assert run.documents("train") == run.root / "labels" / "train.jsonl.gz"


def test_a_raising_function_is_reported_with_its_record_and_the_run_goes_on(tmp_path: Path) -> None:
    run = docs_run(tmp_path / "r")
    module = tmp_path / "my_lfs.py"
    module.write_text(
        "def lf_weather(rec):\n    return 'love' if 'weather' in rec['text'] else None\n\n"
        "def lf_broken(rec):\n    if rec['id'] == 'l2':\n        raise ValueError('cannot read this one')\n"
        "    return None\n\n"
        "def lf_alien(rec):\n    return 'peace' if rec['id'] == 'w2' else None\n")
    cfg = load_config(None, "smoke", [RULES])
    write_config(run, cfg)
    run_stage(run, cfg, "label", force=True, functions=module)
    got = labelled(run)
    assert got["n1"]["label"] == "love"  # the user's function voted
    summary = json.loads((run.root / "labels" / "summary.json").read_text())
    errors = {(e["function"], e["record"]): e["error"] for e in summary["errors"]}
    assert "ValueError: cannot read this one" in errors[("lf_broken", "l2")]
    assert "not one of the labels" in errors[("lf_alien", "w2")]
    assert got["l2"]["label"] == "love"  # the other rules still labelled the record


def test_human_answers_win_over_rules(tmp_path: Path) -> None:
    run = docs_run(tmp_path / "r")
    append(log_path(run, "ana"), {"id": "w2", "label": "love", "source": "human", "by": "ana",
                                  "at": "2026-01-01T00:00:00", "confidence": 1.0})
    cfg = load_config(None, "smoke", [RULES])
    write_config(run, cfg)
    run_stage(run, cfg, "label")
    got = labelled(run)
    assert got["w2"]["label"] == "love" and got["w2"]["label_meta"]["source"] == "human"
    assert got["w2"]["label_meta"]["by"] == "ana" and got["w1"]["label_meta"]["source"] == "rule"


def test_bad_rules_are_config_errors() -> None:
    with pytest.raises(LmforgeError, match="needs keywords"):
        load_config(None, "smoke", ["label.rules=[{name: a, kind: keyword, label: x}]"])
    with pytest.raises(LmforgeError, match="not a regular expression"):
        load_config(None, "smoke", ["label.rules=[{name: a, kind: regex, label: x, pattern: '(unclosed'}]"])
