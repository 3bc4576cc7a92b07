"""`lmforge compare all --size tiny|small`: the course book. Every comparison of the catalog runs
(compare/runners.py says how, at each size) into ROOT/NAME (the flow run, topic 1, into
ROOT/flow), and an index page (index.html and index.md) links every table and figure by course
number; a comparison that belongs to a topic without its own number is listed under it (3b, 13b).

Resumable at two levels: a comparison whose result.json says it finished at this size is not run
again, and inside one, cells already measured come from their cache (compare/output.py). A
comparison whose inputs the book cannot make (two finished runs, for `compare eval`) is skipped
with a line naming the command that makes them.
"""

from __future__ import annotations

import html
import json
import os
import time
from pathlib import Path
from typing import Any

from lmforge.compare.catalog import OTHER_COMPARISONS, PART_OF, TOPICS
from lmforge.compare.cells import check_size
from lmforge.compare.output import PAGE_STYLE, environment, finished
from lmforge.compare.runners import NEEDS, RUNNERS
from lmforge.console import console
from lmforge.rundir import atomic_write_json, atomic_write_text


def entries() -> list[tuple[str, str, str]]:
    """(label, subject, command) for every course topic, each followed by the comparisons that
    belong to it (3b, 13b), then the comparisons beside the course."""
    out = []
    for t in TOPICS:
        out.append((str(t.number), t.subject, t.command))
        out += [(f"{t.number}b", f"{t.subject}: {name}", name) for name, n in PART_OF.items() if n == t.number]
    return out + [("-", f"beside the course: {name}", name) for name in OTHER_COMPARISONS if name not in PART_OF]


# a topic whose command measured an earlier topic too keeps its table in a folder of that one's
SUBFOLDER = {"15": "remedies"}  # `compare problems`: table 14 in ROOT/problems, table 15 in ROOT/problems/remedies


def folder_of(root: Path, label: str, name: str) -> Path:
    """Where the book keeps the table of entry `label` (measured by `lmforge compare name`)."""
    folder = root / ("flow" if name == "run" else name)
    return folder / SUBFOLDER[label] if label in SUBFOLDER else folder


def build_book(size: str, root: Path, overrides: list[str] | None = None,
               only: list[str] | None = None) -> dict[str, Any]:
    """Run every comparison the book knows (resumably) and write the index pages."""
    check_size(size)
    known = [name for _, _, name in entries() if name]
    for name in only or []:
        if name not in known:
            from lmforge.compare.catalog import closest
            from lmforge.errors import LmforgeError

            guess = closest(name, known)
            raise LmforgeError(f"--only '{name}' is not a comparison of the book" +
                               (f"; did you mean '{guess}'?" if guess else ""), f"choose from: {', '.join(known)}")
    root.mkdir(parents=True, exist_ok=True)
    status_path = root / "book.json"
    book = json.loads(status_path.read_text()) if status_path.is_file() else {}
    if book.get("size") not in (None, size):
        from lmforge.errors import LmforgeError

        raise LmforgeError(f"{root} holds a book of size {book['size']}, not {size}",
                           f"choose another folder with -o, e.g. runs/book-{size}")
    book.update(size=size, environment=environment())
    comps = book.setdefault("comparisons", {})
    started = time.time()
    ran: set[str] = set()  # measured in this call
    for label, subject, name in entries():
        if not name or (only and name not in only):
            continue
        folder = folder_of(root, label, name)
        if name in NEEDS:
            comps[name] = {"status": "skipped", "why": f"inputs missing: {NEEDS[name]}"}
            console.print(f"[yellow]skipped {label} {subject}: `compare {name}` needs {NEEDS[name]}")
            continue
        if finished(folder, size):
            when = "measured with the entry above" if name in ran else "finished earlier, kept"
            console.print(f"[dim]{label} {subject}: {when} ({folder})")
            comps.setdefault(name, {"status": "done", "folder": str(folder)})
            continue
        console.print(f"[bold cyan]book[/]: {label} {subject} (`{name}`)")
        t0 = time.time()
        home = folder_of(root, "", name)  # the command's own folder (topic 15's table is inside topic 14's)
        RUNNERS[name](size, home, list(overrides or []))
        comps[name] = {"status": "done", "seconds": round(time.time() - t0, 1), "folder": str(home)}
        ran.add(name)
        atomic_write_json(status_path, book)  # progress survives an interruption
    book["last_wall_s"] = round(time.time() - started, 1)
    atomic_write_json(status_path, book)
    write_index(root, book)
    return book


def _rel(root: Path, path: Path) -> str:
    return os.path.relpath(path, root)


def write_index(root: Path, book: dict[str, Any]) -> None:
    """index.html and index.md: every topic by course number with its table and figure."""
    md = [f"# The course book ({book['size']})", "",
          "Every table and figure measured by `lmforge compare all --size " + book["size"] + "`.", "",
          "| # | subject | command | table | figure | status |", "|---|---|---|---|---|---|"]
    cards = []
    for label, subject, name in entries():
        folder = folder_of(root, label, name)
        info = book["comparisons"].get(name, {}) if name else {}
        result = finished(folder, book["size"]) if name else None
        cmd = ("lmforge run" if name == "run" else f"lmforge compare {name}") if name else "(not yet)"
        if result:
            table = _rel(root, folder / "table.html")
            fig = folder / "figure.png"
            md.append(f"| {label} | {subject} | `{cmd}` | [table]({_rel(root, folder / 'table.md')}) | "
                      + (f"[figure]({_rel(root, fig)})" if fig.is_file() else "-") + " | measured |")
            extra = (f'<a href="{html.escape(_rel(root, folder / "report" / "index.html"))}">run report</a> · '
                     if name == "run" else "")
            img = (f'<img src="{html.escape(_rel(root, fig))}" alt="figure {label}" loading="lazy">'
                   if fig.is_file() else "")
            img += "".join(f'<img src="{html.escape(_rel(root, d))}" alt="{html.escape(d.stem)}" loading="lazy">'
                           for d in sorted(folder.glob("architecture-*.png")))  # each family as built
            cards.append(f'<section><h2>{label}. {html.escape(subject)}</h2><p><code>{html.escape(cmd)}</code> · '
                         f'{extra}<a href="{html.escape(table)}">table {label}</a> · '
                         f'<a href="{html.escape(_rel(root, folder / "table.csv"))}">CSV</a></p>{img}</section>')
        else:
            why = info.get("why") or ("no command yet" if not name else "not run yet")
            md.append(f"| {label} | {subject} | `{cmd}` | - | - | {why} |")
            cards.append(f"<section><h2>{label}. {html.escape(subject)}</h2><p><code>{html.escape(cmd)}</code>: "
                         f"{html.escape(why)}</p></section>")
    env = book.get("environment", {})
    foot = f"{env.get('cpu', '')}, {env.get('cpus', '')} CPUs, torch {env.get('torch', '')}, {env.get('date', '')}"
    md += ["", foot, ""]
    atomic_write_text(root / "index.md", "\n".join(md))
    atomic_write_text(root / "index.html", (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>The course book</title>'
        f"<style>{PAGE_STYLE}</style></head><body><h1>The course book ({html.escape(book['size'])})</h1>\n"
        + "\n".join(cards) + f"\n<footer><p>{html.escape(foot)}</p></footer></body></html>\n"))
