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
    for name in book.RUNNERS:
        folder = root / ("flow" if name == "run" else name)
        assert json.loads((folder / "result.json").read_text())["size"] == "tiny"
        assert (folder / "figure.png").is_file(), name
    assert (root / "flow" / "report" / "index.html").is_file()
