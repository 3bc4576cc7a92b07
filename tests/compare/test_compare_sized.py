"""The sized comparisons (cleaning, config, monitoring, adjustment, metrics) at `--size tiny`, on a
few arms each and the test's own small corpus (cleaning builds its dirty corpus from three built-in
plays): the tables must show what each arm changed, and the cells must be reproducible and cached."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lmforge.compare import adjustment, cleaning, config, metrics, monitoring
from lmforge.compare import cells as cells_mod
from lmforge.compare.output import FILES
from tests.helpers.documents import make_docs


@pytest.fixture(scope="module")
def own_data(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Eight verse documents as .txt files: the `data.paths` of every comparison below."""
    folder = tmp_path_factory.mktemp("own")
    for doc in make_docs(8):
        (folder / f"{doc['id']}.txt").write_text(doc["text"] * 3)
    return ["data.corpus=none", f"data.paths=[{folder}]", "data.max_docs=null", "data.min_chars=50"]


def _rows(result: dict) -> dict[str, list]:
    return {row[0]: row for row in result["rows"]}


def test_config_changes_one_key_per_arm_and_reuses_measured_cells(own_data, tmp_path, monkeypatch) -> None:
    out = tmp_path / "config"
    result = config.run("tiny", out, own_data, only=["base", "batch x2", "sgd"])
    rows = _rows(result)
    col = config.COLUMNS.index("tokens seen")
    assert rows["batch x2"][col] == 2 * rows["base"][col]
    assert all(name in [f.name for f in out.iterdir()] for name in FILES)
    assert (out / "table.csv").read_text().splitlines()[0] == ",".join(config.COLUMNS)
    cells = {c["arm"]: c for c in json.loads((out / "cells.json").read_text())}
    assert cells["sgd"]["config"]["train"]["optimizer"] == "sgd" and cells["sgd"]["seed"] == 0
    assert cells["sgd"]["command"] == f"lmforge compare config --size tiny --only sgd --seeds 0 -o {out}"
    assert json.loads((out / "result.json").read_text())["number"] == 6

    def no_training(*args, **kwargs):
        raise AssertionError("a measured cell was trained again")

    monkeypatch.setattr(cells_mod, "train_cell", no_training)
    assert config.run("tiny", out, own_data, only=["base", "batch x2", "sgd"])["rows"] == result["rows"]


def test_monitoring_measures_each_sink_and_names_a_missing_one(own_data, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(monitoring, "installed", lambda package: package != "mlflow")
    result = monitoring.run("tiny", tmp_path / "mon", own_data, only=["jsonl", "tensorboard", "mlflow"])
    rows = _rows(result)
    files = monitoring.COLUMNS.index("files written")
    assert rows["jsonl"][files] == 1  # metrics.jsonl
    assert rows["tensorboard"][files] > rows["jsonl"][files]
    assert rows["tensorboard"][monitoring.COLUMNS.index("overhead vs JSONL")].endswith("%")
    assert "not installed (pip install mlflow)" in rows["mlflow"]


def test_adjustment_live_change_and_early_stop_on_one_budget(own_data, tmp_path) -> None:
    result = adjustment.run("tiny", tmp_path / "adj", own_data, only=["fixed lr", "live ctl lr/10", "early stopping"])
    cells = {c["arm"]: c["values"] for c in json.loads((tmp_path / "adj" / "cells.json").read_text())}
    assert cells["live ctl lr/10"]["events"] == {"control": 1}
    assert math.isclose(cells["live ctl lr/10"]["final_lr"], cells["fixed lr"]["final_lr"] / 10, rel_tol=1e-6)
    early = cells["early stopping"]
    assert (early["steps"] < early["budget_steps"]) == ("early_stop" in early["events"])
    rows = _rows(result)
    assert rows["fixed lr"][adjustment.COLUMNS.index("steps saved")] == "0"


def test_metric_scores_match_their_definitions() -> None:
    y = np.array([0, 0, 0, 1, 2, 2])
    pred = np.array([0, 0, 0, 0, 0, 0])  # the majority class every time
    s = metrics.scores(y, pred, nats=6 * math.log(3), nbytes=6)
    assert s["accuracy"] == 0.5 and s["MCC"] == 0.0
    assert math.isclose(s["macro recall"], (1 + 0 + 0) / 3) and math.isclose(s["perplexity"], 3.0)
    assert math.isclose(s["bits/byte"], math.log2(3))
    table = {"a": {**s}, "b": {**s, "accuracy": 0.4, "macro F1": 0.9}}
    found = metrics.disagreements(table)
    assert len(found) == 1 and "accuracy prefer a" in found[0] and "macro F1 prefer b" in found[0]


def test_metrics_scores_one_model_against_the_unigram_baseline(own_data, tmp_path) -> None:
    result = metrics.run("tiny", tmp_path / "met", own_data, only=["gpt"])
    rows = _rows(result)
    assert set(rows) == {"unigram baseline", "gpt"}
    assert rows["unigram baseline"][metrics.COLUMNS.index("MCC")] == 0.0
    assert all(isinstance(v, float) and math.isfinite(v) for v in rows["gpt"][1:])
    assert any(n.startswith(("where they disagree", "the metrics agree")) for n in result["notes"])


def test_dirty_corpus_labels_every_defect(tmp_path) -> None:
    _, _, kinds = cleaning.dirty_corpus("tiny", 0, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "dirty.jsonl").read_text().splitlines()]
    assert len(records) == len(kinds)
    missing = [r for r in records if "topic" not in r]
    assert missing and all(kinds[r["id"]][0] == "missing topic" for r in missing)
    everything = {r["id"]: r["text"] for r in records}
    kept_all = cleaning.outcome(kinds, everything)
    assert kept_all["duplicates_left"] == kept_all["duplicates_made"] > 0
    assert kept_all["pii_left"] == kept_all["pii_made"] > 0 and kept_all["passages_lost"] == 0
    originals = {i: t for i, t in everything.items() if kinds[i][0] not in ("exact copy", "near copy", "junk")}
    assert cleaning.outcome(kinds, originals)["duplicates_left"] == 0


def test_cleaning_dedup_and_pii_masking_through_the_data_stage(tmp_path) -> None:
    result = cleaning.run("tiny", tmp_path / "clean", [], only=["none", "exact dedup", "PII masking"])
    cells = {c["arm"]: c["values"] for c in json.loads((tmp_path / "clean" / "cells.json").read_text())}
    none, exact, pii = cells["none"], cells["exact dedup"], cells["PII masking"]
    assert none["rejected"] == 0 and none["duplicates_left"] == none["duplicates_made"]
    assert exact["duplicates_left"] < none["duplicates_left"] and exact["by_rule"].get("exact_duplicate", 0) > 0
    assert none["pii_left"] == none["pii_made"] > 0 and pii["pii_left"] == 0
    assert all(math.isfinite(v["heldout_bpb"]) for v in cells.values())
    assert len(result["rows"]) == 3
