"""`lmforge compare all --size tiny|small`: the course book. Every comparison of the catalog that
has a command runs into ROOT/NAME (the flow run, topic 1, into ROOT/flow) and an index page
(index.html and index.md) links every table and figure by course number.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmforge.compare.catalog import OTHER_COMPARISONS, TOPICS
from lmforge.compare.cells import check_size
from lmforge.compare.output import PAGE_STYLE, environment, pyplot, save_figure, write_table
from lmforge.console import console
from lmforge.rundir import RunDir, atomic_write_json, atomic_write_text

Runner = Callable[[str, Path, list[str]], dict[str, Any]]


def _flow(size: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    """Topic 1: one whole run (data to report); its report's flow chart is figure 1."""
    from lmforge.config.load import load_config
    from lmforge.pipeline import run_all

    keys = (["data.max_docs=4", "train.steps=30", "train.eval_interval=15", "train.checkpoint_interval=15",
             "eval.max_tokens=2000", "eval.task_items=10", "eval.bootstrap_rounds=100", "train.threads=1"]
            if size == "tiny" else ["train.threads=1"])
    cfg = load_config(None, "smoke", keys + overrides)
    run = RunDir(out)
    run_all(run, cfg)
    stages = {p.stem: json.loads(p.read_text()) for p in sorted(run.stages.glob("*.json"))}
    rows = [[name, f"{rec['seconds']:.1f}"] for name, rec in stages.items()]
    cells = [{"arm": "run", "seed": cfg.train.seed, "config": cfg.model_dump(mode="json"),
              "command": f"lmforge run -p smoke -o {out}", "values": {n: r["seconds"] for n, r in stages.items()}}]

    def figure(path: Path) -> None:
        import shutil

        flow = run.report / "flow.png"
        if flow.is_file():
            shutil.copyfile(flow, path)

    return write_table(out, "run", "the training flow: each stage of one run and its time", ["stage", "seconds"],
                       rows, cells, figure, ["the run's own report: report/index.html"], {"size": size})


def _models(kind: str) -> Runner:
    def run(size: str, out: Path, overrides: list[str]) -> dict[str, Any]:
        from lmforge.compare.models import compare

        tiny = ["data.max_docs=3", "train.steps=8", "train.warmup_steps=1", "eval.max_tokens=2000"]
        compare(kind, None, (tiny if size == "tiny" else []) + overrides, out)
        record = {**json.loads((out / "result.json").read_text()), "size": size}
        atomic_write_json(out / "result.json", record)
        return record

    return run


def _splits(size: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    from lmforge.compare.splits import prepare, run_compare_splits

    run = RunDir(out)
    tiny = size == "tiny"
    cfg = prepare(run, (["data.max_docs=9", "data.dedup=exact"] if tiny else []) + overrides)
    ks, repeats, steps, doc_tokens = ([2], 2, 4, 200) if tiny else ([2, 5], 3, 60, 2000)
    result = run_compare_splits(run, cfg, ks, repeats, steps, doc_tokens)
    rows = [[name, round(m["mean"], 4), round(m["bias"], 4), round(m["std"], 4), m["trainings"]]
            for name, m in result["methods"].items()]
    cells = [{"arm": name, "seed": result["seed"], "config": cfg.model_dump(mode="json"),
              "command": f"lmforge compare splits {out} --ks {','.join(map(str, ks))} --repeats {repeats} "
                         f"--steps {steps} --doc-tokens {doc_tokens}", "values": m}
             for name, m in result["methods"].items()]
    figure = out / "compare" / "splits.png"
    return write_table(out, "splits", "validation: holdout vs k-fold, bias and spread of the estimate",
                       ["estimator", "mean estimate", "bias", "std over repeats", "models trained"], rows, cells,
                       lambda p: p.write_bytes(figure.read_bytes()),
                       [f"truth {result['truth']:.4f} {result['metric']}"], {"size": size})


def _tokenizers(size: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    """Beside the course: every tokenizer kind on the flow run's data (topic 1 makes it)."""
    from lmforge.compare.tokenizers import COLUMNS, compare_tokenizers
    from lmforge.errors import LmforgeError
    from lmforge.tokens.tokenizer import KINDS

    flow = RunDir(out.parent / "flow")
    if not flow.split_file("val").is_file():
        raise LmforgeError(f"{flow.root} has no data yet", f"run `lmforge compare all --size {size} --only run` first")
    kinds = [k for k in KINDS if k != "pretrained"]
    vocab = 512
    result = compare_tokenizers(flow, kinds, vocab)
    rows = [[r[c] for c in COLUMNS] for r in result["rows"]]
    cells = [{"arm": r["kind"], "seed": None, "config": {"kind": r["kind"], "vocab_size": vocab},
              "command": f"lmforge compare tokenizers {flow.root} --kinds {r['kind']} --vocab-size {vocab}",
              "values": r} for r in result["rows"]]

    def figure(path: Path) -> None:
        fig, ax = pyplot().subplots(figsize=(7, 3.6), dpi=110)
        ax.bar([r["kind"] for r in result["rows"]], [r["bytes_per_token"] for r in result["rows"]], color="#4c72b0")
        ax.set_ylabel("validation bytes per token")
        ax.grid(alpha=0.3, axis="y")
        save_figure(fig, path)

    return write_table(out, "tokenizers", f"tokenizers at one vocabulary size ({vocab})", list(COLUMNS), rows,
                       cells, figure, [result["note"]], {"size": size})


def _comparison(module: str) -> Runner:
    def run(size: str, out: Path, overrides: list[str]) -> dict[str, Any]:
        import importlib

        return importlib.import_module(f"lmforge.compare.{module}").run(size, out, overrides)

    return run


# the comparisons the book knows how to run, by their `lmforge compare` name; a catalog entry
# without one here is listed in the index as not in the book yet
RUNNERS: dict[str, Runner] = {
    "run": _flow, "cleaning": _comparison("cleaning"), "architectures": _models("architectures"),
    "init": _models("init"), "config": _comparison("config"), "monitoring": _comparison("monitoring"),
    "adjustment": _comparison("adjustment"), "metrics": _comparison("metrics"), "splits": _splits,
    "tokenizers": _tokenizers,
}
# inputs the book does not make, and the command that makes them
NEEDS: dict[str, str] = {
    "eval": "two finished runs on the same data: `lmforge run -o runs/a` and `lmforge run -o runs/b "
            "model.n_layer=2`, then `lmforge compare eval runs/a runs/b`",
}


def finished(out: Path, size: str) -> dict[str, Any] | None:
    """The comparison's result when it finished at this size (its result.json is written last)."""
    path = out / "result.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return record if record.get("size") == size else None


def entries() -> list[tuple[str, str, str]]:
    """(label, subject, command) for every course topic, then the comparisons beside the course."""
    out = [(str(t.number), t.subject, t.command) for t in TOPICS]
    return out + [("-", f"beside the course: {name}", name) for name in OTHER_COMPARISONS]


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
    for label, subject, name in entries():
        if not name or (only and name not in only):
            continue
        folder = root / ("flow" if name == "run" else name)
        if name in NEEDS:
            comps[name] = {"status": "skipped", "why": f"inputs missing: {NEEDS[name]}"}
            console.print(f"[yellow]skipped {label} {subject}: `compare {name}` needs {NEEDS[name]}")
            continue
        if name not in RUNNERS:
            comps[name] = {"status": "skipped", "why": f"`lmforge compare {name}` has no book runner yet"}
            console.print(f"[yellow]skipped {label} {subject}: `compare {name}` is not in the book yet")
            continue
        if finished(folder, size):
            console.print(f"[dim]{label} {subject}: finished earlier, kept ({folder})")
            comps.setdefault(name, {"status": "done", "folder": str(folder)})
            continue
        console.print(f"[bold cyan]book[/]: {label} {subject} (`{name}`)")
        t0 = time.time()
        RUNNERS[name](size, folder, list(overrides or []))
        comps[name] = {"status": "done", "seconds": round(time.time() - t0, 1), "folder": str(folder)}
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
        folder = root / ("flow" if name == "run" else name)
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
