"""`lmforge compare all`: the book runs what it knows, skips with a reason what it cannot make,
does not rerun a finished comparison, and indexes every table and figure by course number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmforge.cli import app
from lmforge.compare import book
from lmforge.compare.output import write_table
from lmforge.errors import LmforgeError


def _fake(calls: list[str]):
    def run(size: str, out: Path, overrides: list[str]) -> dict:
        calls.append(out.name)

        def figure(path: Path) -> None:
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots()
            ax.plot([1, 2], [2, 1])
            fig.savefig(path)
            plt.close(fig)

        return write_table(out, "config", "a measured table", ["arm", "value"], [["a", 1.0]],
                           [{"arm": "a", "seed": 0, "config": {}, "command": "x", "values": {}}], figure,
                           extra={"size": size})

    return run


def test_book_runs_skips_resumes_and_indexes(tmp_path, monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setitem(book.RUNNERS, "config", _fake(calls))
    root = tmp_path / "book"
    result = book.build_book("tiny", root, only=["config", "eval"])
    assert calls == ["config"]
    assert result["comparisons"]["config"]["status"] == "done"
    eval_skip = result["comparisons"]["eval"]
    assert eval_skip["status"] == "skipped" and "lmforge run -o runs/a" in eval_skip["why"]
    assert set(result["comparisons"]) == {"config", "eval"}
    index = (root / "index.html").read_text()
    assert "<h2>6. training configuration</h2>" in index and 'href="config/table.html"' in index
    assert 'src="config/figure.png"' in index and (root / "config" / "figure.png").is_file()
    import re

    assert all((root / link).is_file() for link in re.findall(r'(?:src|href)="([^"]+)"', index))  # nothing broken
    md = (root / "index.md").read_text()
    assert "| 6 | training configuration | `lmforge compare config` | [table](config/table.md)" in md
    search = next(line for line in md.splitlines() if line.startswith("| 7 |"))
    assert "`lmforge compare search`" in search and "not run yet" in search  # listed, not run by --only
    # resumable: a finished comparison is kept
    book.build_book("tiny", root, only=["config"])
    assert calls == ["config"]
    with pytest.raises(LmforgeError, match="size tiny"):
        book.build_book("small", root)
    with pytest.raises(LmforgeError, match="did you mean 'metrics'"):
        book.build_book("tiny", root, only=["metric"])


def test_every_catalog_comparison_has_a_runner_or_names_its_inputs() -> None:
    from lmforge.compare.catalog import OTHER_COMPARISONS, TOPICS

    named = {t.command for t in TOPICS if t.command} | set(OTHER_COMPARISONS)
    assert named <= set(book.RUNNERS) | set(book.NEEDS), named - set(book.RUNNERS) - set(book.NEEDS)
    assert not set(book.RUNNERS) & set(book.NEEDS)
    labels = [label for label, _, _ in book.entries()]
    numbered = [label for label in labels if label != "-"]
    assert numbered[:4] == ["1", "2", "3", "3b"] and "13b" in numbered and len(numbered) == len(set(numbered)) == 17


def test_comparisons_that_start_from_the_flow_run_say_so(tmp_path) -> None:
    for name in ("tokenizers", "continual", "transfer", "augmentation", "labeling"):
        with pytest.raises(LmforgeError, match="no finished run of size tiny") as err:
            book.RUNNERS[name]("tiny", tmp_path / name, [])
        assert "--only run" in (err.value.hint or "")


def test_the_index_links_the_new_comparisons_and_both_problem_tables(tmp_path, monkeypatch) -> None:
    """Topics 3, 3b, 7, 12, 13, 13b, 14 and 15: each row links its own table and figure."""
    import re

    def fake(name: str):
        def run(size: str, out: Path, overrides: list[str]) -> dict:
            if name == "problems":
                write_table(out / "remedies", name, "remedies", ["a"], [[1]], [], None, extra={"size": size},
                            number=15)
            return write_table(out, name, f"{name} table", ["a"], [[1]], [], None, extra={"size": size})
        return run

    new = ["augmentation", "labeling", "search", "tuning", "continual", "transfer", "problems"]
    for name in new:
        monkeypatch.setitem(book.RUNNERS, name, fake(name))
    root = tmp_path / "book"
    book.build_book("tiny", root, only=new)
    md = (root / "index.md").read_text()
    for label, folder in (("3", "augmentation"), ("3b", "labeling"), ("7", "search"), ("12", "tuning"),
                          ("13", "continual"), ("13b", "transfer"), ("14", "problems"), ("15", "problems/remedies")):
        row = next(line for line in md.splitlines() if line.startswith(f"| {label} |"))
        assert f"[table]({folder}/table.md)" in row and "measured" in row, row
    assert (root / "problems" / "remedies" / "table.md").read_text().startswith("# Table 15.")
    index = (root / "index.html").read_text()
    assert "<h2>13b. retraining: transfer</h2>" in index
    assert all((root / link).is_file() for link in re.findall(r'(?:src|href)="([^"]+)"', index))


def test_sized_commands_refuse_an_unknown_size(tmp_path) -> None:
    res = CliRunner().invoke(app, ["compare", "config", "--size", "huge", "-o", str(tmp_path / "x")])
    assert isinstance(res.exception, LmforgeError) and "tiny, small" in (res.exception.hint or "")
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_the_whole_tiny_book(tmp_path) -> None:
    """Every comparison of the book at --size tiny, for real (minutes on 2 cores)."""
    root = tmp_path / "book"
    result = book.build_book("tiny", root)
    done = [n for n, c in result["comparisons"].items() if c["status"] == "done"]
    assert set(book.RUNNERS) <= set(done)
    for label, _, name in book.entries():
        if name in book.RUNNERS:
            folder = book.folder_of(root, label, name)
            assert json.loads((folder / "result.json").read_text())["size"] == "tiny"
            assert (folder / "figure.png").is_file(), name
    assert (root / "flow" / "report" / "index.html").is_file()
    md = (root / "index.md").read_text()
    assert md.count("| measured |") == len(book.entries()) - len(book.NEEDS)  # all but `compare eval`
