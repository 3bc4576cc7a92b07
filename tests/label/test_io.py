"""Label Studio JSON and CSV round trips; a file of the wrong shape is refused with where it is
wrong and nothing labelled before is lost; Cohen's kappa of two labelers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.errors import LmforgeError
from lmforge.label.io import export_labels, from_csv, import_labels, kappa, to_csv
from lmforge.label.store import Label, append, human_labels, log_path
from tests.helpers.documents import make_docs, write_run


def run_with_answers(root: Path):
    run = write_run(root, {"train": make_docs(4), "val": make_docs(2, prefix="v")})
    for rid, lab in (("d0", "war"), ("d1", "love"), ("v0", "war")):
        append(log_path(run, "ana"), Label(rid, lab, "human", "ana", "2026-01-01T00:00:0" + rid[-1]).as_dict())
    return run


def test_label_studio_round_trip(tmp_path: Path) -> None:
    run = run_with_answers(tmp_path / "a")
    out = tmp_path / "tasks.json"
    assert export_labels(run, out, "label") == 3
    tasks = json.loads(out.read_text())
    assert len(tasks) == 6 and tasks[0]["data"]["record_id"] == "d0" and tasks[0]["data"]["text"]
    assert tasks[0]["annotations"][0]["result"][0]["value"]["choices"] == ["war"]
    other = write_run(tmp_path / "b", {"train": make_docs(4), "val": make_docs(2, prefix="v")})
    assert import_labels(other, out, "ls") == 3
    got = human_labels(other)
    assert {k: v.label for k, v in got.items()} == {"d0": "war", "d1": "love", "v0": "war"}
    assert got["d0"].by == "label-studio:ana" and got["d0"].source == "human"


def test_csv_round_trip(tmp_path: Path) -> None:
    labels = [Label("a", "war", "rule", "dawid_skene", "2026-01-01T00:00:00", 0.8, "unsure")]
    to_csv(tmp_path / "l.csv", labels)
    assert from_csv(tmp_path / "l.csv", "x") == labels


@pytest.mark.parametrize(("content", "where"), [
    ('{"data": {}}', "top level"),
    ('[{"text": "no data"}]', r"task \[0\]"),
    ('[{"data": {"text": "t"}}]', r"task \[0\].data"),
    ('[{"data": {"record_id": "d0"}, "annotations": [{"result": [{"value": {"choices": "war"}}]}]}]',
     r"task \[0\].annotations\[0\].result\[0\].value.choices"),
    ("[{", "not JSON"),
])
def test_a_label_studio_file_of_the_wrong_shape_is_refused_and_nothing_is_lost(tmp_path: Path, content: str,
                                                                                 where: str) -> None:
    run = run_with_answers(tmp_path / "a")
    before = log_path(run, "ana").read_bytes()
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(LmforgeError, match=where):
        import_labels(run, bad, "ana")
    assert log_path(run, "ana").read_bytes() == before


def test_a_csv_without_a_label_column_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,tag\na,war\n")
    with pytest.raises(LmforgeError, match=r"no column\(s\) \['label'\]"):
        from_csv(bad, "x")


def test_cohens_kappa_of_two_labelers() -> None:
    lab = lambda rid, x: Label(rid, x, "human", "p")
    a = {str(i): lab(str(i), x) for i, x in enumerate("aabbaabbab")}
    b = {str(i): lab(str(i), x) for i, x in enumerate("aabbaabbba")}
    out = kappa(a, b)
    # agreement 0.8, chance 0.5 -> kappa 0.6
    assert out["records"] == 10 and out["agreement"] == pytest.approx(0.8) and out["kappa"] == pytest.approx(0.6)
    with pytest.raises(LmforgeError, match="share 0"):
        kappa(a, {"x": lab("x", "a")})
