"""The one output form of every comparison: a table as Markdown, HTML and CSV, a figure, and the
cells behind the table, each with the config and seed that produced it and the command that
measures it again, so any number in the course book can be traced and reproduced.

A comparison's folder holds:
  table.md, table.html, table.csv   the table (one row per arm, or per arm and seed)
  figure.png                        the comparison's figure
  cells.json                        every measured cell: arm, seed, config, command, values
  result.json                       written last: title, course number, columns, rows, notes,
                                    environment, files; its presence marks the comparison done
  cells/ARM-sSEED.json              the per-cell cache: a cell whose config is unchanged is not rerun
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lmforge.rundir import atomic_write_json, atomic_write_text

FILES = ("table.md", "table.html", "table.csv", "figure.png", "cells.json", "result.json")


def course_number(name: str) -> int | None:
    """The course topic a comparison command belongs to (catalog.py), or None beside the course."""
    from lmforge.compare.catalog import TOPICS

    return next((t.number for t in TOPICS if t.command == name), None)


def environment() -> dict[str, Any]:
    """What a reader needs to judge a timing: versions, CPU model and cores, date."""
    import torch

    cpu = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                    if line.startswith("model name")), "")
    return {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
            "cpu": cpu, "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M")}


def _cell_text(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return "-" if value is None else str(value)


def markdown(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(_cell_text(v).replace("|", "\\|").replace("\n", " ") for v in r) + " |\n" for r in rows)


def html_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell_text(v))}</td>" for v in r) + "</tr>\n" for r in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def csv_text(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if v is None else v for v in r] for r in rows])
    return buf.getvalue()


PAGE_STYLE = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem}"
              "table{border-collapse:collapse;display:block;overflow-x:auto}"
              "td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}"
              "img{max-width:100%}")


def heading(name: str, title: str, number: int | None = None) -> str:
    number = number or course_number(name)
    return f"Table {number}. {title}" if number else title


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only backend (no display is needed to draw a figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> None:
    """Lay the figure out, write it under a temporary name, then move it into place (a crash never
    leaves half a PNG under the final name), and free it."""
    plt = pyplot()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def write_table(out: Path, name: str, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                cells: Sequence[dict[str, Any]], figure: Callable[[Path], Any] | None = None,
                notes: Sequence[str] = (), extra: dict[str, Any] | None = None,
                number: int | None = None) -> dict[str, Any]:
    """Write the comparison's table (Markdown, HTML, CSV), figure, cells and, last, result.json.
    `number` overrides the course number of `name` (a command that measures two topics)."""
    out.mkdir(parents=True, exist_ok=True)
    head = heading(name, title, number)
    note_md = "".join(f"\n{n}\n" for n in notes)
    atomic_write_text(out / "table.md", f"# {head}\n\n{markdown(columns, rows)}{note_md}")
    figure_html = ""
    if figure is not None:
        figure(out / "figure.png")
        if (out / "figure.png").is_file():
            figure_html = f'<p><img src="figure.png" alt="{html.escape(head)}"></p>'
    notes_html = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    atomic_write_text(out / "table.html", (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(head)}</title>'
        f"<style>{PAGE_STYLE}</style></head><body><h1>{html.escape(head)}</h1>\n"
        f"{html_table(columns, rows)}\n{notes_html}{figure_html}</body></html>\n"))
    atomic_write_text(out / "table.csv", csv_text(columns, rows))
    atomic_write_json(out / "cells.json", list(cells))
    record = {"name": name, "number": number or course_number(name), "title": title, "columns": list(columns),
              "rows": [list(r) for r in rows], "notes": list(notes), "environment": environment(),
              "files": [f for f in FILES if (out / f).is_file() or f == "result.json"], **(extra or {})}
    atomic_write_json(out / "result.json", record)
    return record


def finished(out: Path, size: str) -> dict[str, Any] | None:
    """The comparison's result when it finished at this book size (result.json is written last)."""
    path = out / "result.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return record if record.get("size") == size else None


def cell_identity(config: dict[str, Any], seed: int, version: str = "1") -> str:
    """A cell's cache key: its full config, its seed and the measuring code's version."""
    blob = json.dumps({"config": config, "seed": seed, "version": version}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_cell(out: Path, arm: str, seed: int, config: dict[str, Any], command: str,
                measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One cell of the table: measured by `measure`, or read back from cells/ when a cell with the
    same config and seed was measured before (an interrupted comparison resumes where it stopped)."""
    path = out / "cells" / f"{arm}-s{seed}.json"
    ident = cell_identity(config, seed)
    if path.is_file():
        try:
            old = json.loads(path.read_text())
            if old.get("identity") == ident:
                return old
        except json.JSONDecodeError:
            pass  # a damaged cache entry is measured again
    cell = {"arm": arm, "seed": seed, "identity": ident, "command": command, "config": config,
            "values": measure()}
    atomic_write_json(path, cell)
    return cell


def save_cell(out: Path, cell: dict[str, Any]) -> None:
    """Write back a cell whose values a comparison completed after training (scores read from
    the cell's folder), so a later run reads them from the cache alone."""
    atomic_write_json(out / "cells" / f"{cell['arm']}-s{cell['seed']}.json", cell)
