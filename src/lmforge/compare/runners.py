"""How the course book (compare/book.py) runs each comparison at `--size tiny` (seconds to a minute
each: the tests) or `small` (the built-in corpus at a size that shows the effect: the book).

Every runner calls the comparison's own code, the same the `lmforge compare NAME` command calls,
with its sizes, and leaves the comparison's table in the common output form (compare/output.py)
in its folder, with `size` in result.json. Four comparisons start from the flow run of topic 1
(ROOT/flow, a finished `lmforge run`): tokenizers read its data, continual trains on from it
(domain A: Shakespeare), transfer, augmentation and labeling fine-tune it as their pretrained
base; the book runs topic 1 first.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmforge.compare.output import finished, pyplot, save_figure, write_table
from lmforge.config.schema import Config
from lmforge.errors import LmforgeError
from lmforge.finetune.base import Base
from lmforge.rundir import RunDir, atomic_write_json

Runner = Callable[[str, Path, list[str]], dict[str, Any]]

# the fine-tunes of transfer, augmentation and labeling: short passages read as 64 tokens, few
# passages per document; tiny also skips near-dedup clustering (exact dedup), seconds per arm
FINETUNE: dict[str, list[str]] = {
    "tiny": ["data.dedup=exact", "finetune.passage_chars=200", "finetune.max_tokens=64",
             "finetune.max_passages_per_doc=4", "finetune.test_passages_per_doc=4", "train.steps=4",
             "train.batch_size=8", "train.warmup_steps=1",
             "train.eval_interval=4", "train.log_interval=2", "eval.bootstrap_rounds=100", "train.threads=1"],
    "small": ["finetune.passage_chars=250", "finetune.max_tokens=64", "finetune.max_passages_per_doc=20",
              "finetune.test_passages_per_doc=20",
              "train.steps=100", "train.batch_size=16", "train.warmup_steps=10", "train.eval_interval=100",
              "eval.bootstrap_rounds=1000", "train.threads=1"],
}
# the edition task (modern or First Folio spelling) and four rules a labeler might write after
# reading a few pages of each edition; the last is weak on purpose (both editions use thou)
EDITION_RULES = ["data.authors=[shakespeare]", "data.editions=[modern,folio]", "finetune.label_field=edition",
                 "label.labels=[modern,folio]",
                 ("label.rules=[{name: v_for_u, kind: regex, label: folio, pattern: '\\bv[bcdfghjklmnpqrstvwxz]'},"
                 " {name: folio_spelling, kind: keyword, label: folio, keywords: [haue, giue, loue, doe, goe, heere,"
                 " selfe, neuer, euer, vpon, vnto]},"
                 " {name: modern_spelling, kind: keyword, label: modern, keywords: [have, give, love, ever, never,"
                 " upon, unto]},"
                 " {name: old_pronouns, kind: keyword, label: folio, keywords: [thou, thee, thy]}]")]


def stamp(out: Path, size: str) -> dict[str, Any]:
    """Mark the comparison's result.json with the book size it was measured at (written last)."""
    record = {**json.loads((out / "result.json").read_text()), "size": size}
    atomic_write_json(out / "result.json", record)
    return record


def flow_run(out: Path, size: str) -> RunDir:
    """The book's topic-1 run (ROOT/flow), which several comparisons start from."""
    flow = RunDir(out.parent / "flow")
    if not finished(flow.root, size):
        raise LmforgeError(f"{flow.root} holds no finished run of size {size} (the book's topic 1)",
                           f"run `lmforge compare all --size {size} --only run` first")
    return flow


def copy_figure(source: Path) -> Callable[[Path], None]:
    """A figure the comparison drew under its own name, as the book's figure.png."""
    return lambda path: shutil.copyfile(source, path) if source.is_file() else None


def run_flow(size: str, out: Path, overrides: list[str]) -> dict[str, Any]:
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
    return write_table(out, "run", "the training flow: each stage of one run and its time", ["stage", "seconds"],
                       rows, cells, copy_figure(run.report / "flow.png"), ["the run's own report: report/index.html"],
                       {"size": size})


def models(kind: str) -> Runner:
    def run(size: str, out: Path, overrides: list[str]) -> dict[str, Any]:
        from lmforge.compare.models import compare

        tiny = ["data.max_docs=3", "train.steps=8", "train.warmup_steps=1", "eval.max_tokens=2000"]
        compare(kind, None, (tiny if size == "tiny" else []) + overrides, out)
        return stamp(out, size)

    return run


def run_splits(size: str, out: Path, overrides: list[str]) -> dict[str, Any]:
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
    return write_table(out, "splits", "validation: holdout vs k-fold, bias and spread of the estimate",
                       ["estimator", "mean estimate", "bias", "std over repeats", "models trained"], rows, cells,
                       copy_figure(out / "compare" / "splits.png"),
                       [f"truth {result['truth']:.4f} {result['metric']}"], {"size": size})


def run_tokenizers(size: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    """Beside the course: every tokenizer kind on the flow run's data (topic 1 makes it)."""
    from lmforge.compare.tokenizers import COLUMNS, compare_tokenizers
    from lmforge.tokens.tokenizer import KINDS

    flow = flow_run(out, size)
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


def run_search(size: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    """Topic 7: every search on the grid's compute. Tiny: a 4-point space, 20 steps a trial, one
    seed, three documents; small: the command's 36-point space and 60 steps, seeds 0 and 1."""
    from lmforge.compare import search

    if size == "tiny":
        space = {"train.lr": {"float": [3.0e-3, 3.0e-2], "log": True, "grid": 2},
                 "model.n_embd": {"int": [16, 32], "step": 16}}
        keys, seeds = ["data.max_docs=3", "data.dedup=exact", "train.steps=20", "train.eval_interval=5"], [0]
    else:
        space, keys, seeds = None, [], [0, 1]
    cfg = search.search_config(None, keys + overrides, space)
    methods = list(search.METHODS)
    record = search.run_compare_search(RunDir(out), cfg, seeds, methods)
    cells = [{"arm": method, "seed": seed, "config": search.method_config(cfg, method, seed).model_dump(mode="json"),
              "command": f"lmforge compare search --methods grid,{method} --seeds {seed + 1} -o {out}",
              "values": {"curve": curve}} for method, curves in record["curves"].items()
             for seed, curve in curves.items()]
    notes = [search.heading(record)] + ([("tiny: a 4-point space of LR and width (the command searches the "
                                         "36-point one)")] if size == "tiny" else [])
    return write_table(out, "search", "hyperparameter search: best validation loss per compute", search.COLUMNS,
                       search.rows(record), cells, copy_figure(out / "compare" / "search.png"), notes,
                       {"size": size})


def run_problems(size: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    """Topics 14 and 15 from one scenario suite: table 14 in OUT, table 15 in OUT/remedies.
    Tiny: one broken scenario (LR 5) and its healthy counterpart on three documents, 30 steps;
    small: the whole suite (every problem, six healthy families), 200 steps, two processes."""
    from dataclasses import replace

    from lmforge.compare import problems as P

    if size == "tiny":
        base = [b for b in P.BASE if not b.startswith(("train.steps", "train.eval_interval", "monitor.stats"))]
        base += ["train.steps=30", "train.eval_interval=10", "monitor.stats_interval=5", "doctor.verify_steps=10"]
        # its healthy counterpart (same corpus, no breaking change) is trained too: the false-alarm check
        chosen = [replace(s, corpus="three_docs") for s in P.SCENARIOS if s.name == "lr_5"]
        workers = 1
    else:
        base, chosen, workers = list(P.BASE), P.SCENARIOS + P.HEALTHY, 2
    result = P.run_suite(out, workers=workers, base=base + overrides, scenarios=chosen)
    P.figures(result, out)
    cells = [{"arm": f"{r['scenario']}-{r['arm']}", "seed": 0, "config": {"base": base + overrides},
              "command": f"lmforge compare problems -o {out}", "values": {k: v for k, v in r.items()
                                                                           if k not in ("train", "eval")}}
             for r in result["runs"]]
    tiny = ([("tiny: one scenario of the suite, 30 steps on three documents (the command runs the whole "
             "suite at 200 steps)")] if size == "tiny" else [])
    write_table(out / "remedies", "problems", "solutions: remedies tried and their measured success",
                P.REMEDY_COLUMNS, P.remedy_rows(result), cells, copy_figure(out / "fig15_eval.png"),
                [P.repair_line(result), "per problem: " + "; ".join(
                    f"{r[0]} repaired {r[1]} (random remedy {r[2]})" for r in P.repair_rows(result)), *tiny],
                {"size": size}, number=15)
    return write_table(out, "problems", "common problems: symptoms as measured and their detection",
                       P.PROBLEM_COLUMNS, P.problem_rows(result), cells, copy_figure(out / "fig14_train.png"),
                       [P.false_alarm_line(result), *tiny], {"size": size})


def run_tuning(size: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    """Topic 12: one tuning change at a time from the smoke preset (the command's default base).
    Tiny: three documents, 20 steps; small: the smoke preset's 12 documents, 300 steps."""
    from lmforge.compare.tuning import run_tuning as tuning
    from lmforge.config.load import load_config

    keys = (["data.max_docs=3", "data.dedup=exact", "train.steps=20", "train.eval_interval=10",
             "train.log_interval=5", "eval.max_tokens=2000"] if size == "tiny"
            else ["train.steps=300", "train.eval_interval=50"])
    cfg = load_config(None, "smoke", [*keys, "train.threads=1", "train.checkpoint_interval=100000", *overrides])
    tuning(RunDir(out), cfg)
    return stamp(out, size)


def run_continual(size: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    """Topic 13: the flow run (Shakespeare) trained on Milton by every method. Tiny: 6 steps of 4
    windows; small: 200 steps of the run's batch, the command's strengths and Fisher windows."""
    from lmforge.compare.continual import run_continual as continual
    from lmforge.finetune.base import resolve_base
    from lmforge.finetune.continual import METHODS

    base = resolve_base(flow_run(out, size).root)
    keys = (["data.dedup=exact", "train.steps=6", "train.batch_size=4", "train.warmup_steps=2",
             "train.log_interval=2"] if size == "tiny"
            else ["train.steps=200", "train.warmup_steps=20", "train.lr=1e-3", "train.min_lr=1e-4"])
    continual(base, RunDir(out), ["data.authors=[milton]", "train.threads=1", *keys, *overrides], list(METHODS), 0.25,
              {"ewc": 0.05, "l2": 0.05}, 8 if size == "tiny" else 64)
    return stamp(out, size)


def _finetune(size: str, out: Path, keys: list[str]) -> tuple[Base, Config]:
    """The flow run as the pretrained base, and the fine-tune config at `size` with `keys`."""
    from lmforge.finetune.base import resolve_base
    from lmforge.finetune.classify import finetune_config

    base = resolve_base(flow_run(out, size).root)
    return base, finetune_config(base, None, ["monitor.console=none", *FINETUNE[size], *keys])


def run_augmentation(size: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    """Topic 3: authorship (Shakespeare or Milton) from the flow run, with and without each
    operation. Tiny: 8 passages, two operations; small: 16 and 64 passages, every operation."""
    from lmforge.augment.ops import OPERATIONS
    from lmforge.compare.augmentation import run_augmentation as augmentation

    base, cfg = _finetune(size, out, overrides)
    sizes, ops = ([8], ["swap", "char_noise"]) if size == "tiny" else ([16, 64], list(OPERATIONS))
    augmentation(base, RunDir(out), cfg, sizes, ops, 0.1)
    return stamp(out, size)


def run_labeling(size: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    """Beside topic 3: the edition task labelled by gold labels, rules, the label model,
    pseudo-labels and active learning. Tiny: a budget of 8; small: budgets 16 and 48."""
    from lmforge.compare.labeling import run_labeling as labeling

    base, cfg = _finetune(size, out, [*EDITION_RULES, *overrides])
    labeling(base, RunDir(out), cfg, [8] if size == "tiny" else [16, 48])
    return stamp(out, size)


def run_transfer(size: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    """Beside topic 13: authorship fine-tuned from scratch, fully, frozen-k and with LoRA from the
    flow run (compare/transfer.py writes the common output form itself). Tiny: 8 passages, three
    arms; small: 32 and 256 passages, every arm."""
    from lmforge.compare.transfer import run_transfer as transfer

    base, cfg = _finetune(size, out, overrides)
    sizes, only = ([8], ["scratch", "full", "lora"]) if size == "tiny" else ([32, 256], None)
    transfer(base, RunDir(out), cfg, sizes, only)
    return stamp(out, size)


def sized(module: str) -> Runner:
    """A comparison built on compare/cells.py: its own `run(size, out, overrides)`."""
    def run(size: str, out: Path, overrides: list[str]) -> dict[str, Any]:
        import importlib

        return importlib.import_module(f"lmforge.compare.{module}").run(size, out, overrides)

    return run


# every comparison the book runs, by its `lmforge compare` name (`run`: topic 1)
RUNNERS: dict[str, Runner] = {
    "run": run_flow, "cleaning": sized("cleaning"), "augmentation": run_augmentation, "labeling": run_labeling,
    "architectures": models("architectures"), "init": models("init"), "config": sized("config"),
    "search": run_search, "monitoring": sized("monitoring"), "adjustment": sized("adjustment"),
    "metrics": sized("metrics"), "splits": run_splits, "tuning": run_tuning, "continual": run_continual,
    "transfer": run_transfer, "problems": run_problems, "tokenizers": run_tokenizers,
}
# inputs the book does not make, and the command that makes them
NEEDS: dict[str, str] = {
    "eval": "two finished runs on the same data: `lmforge run -o runs/a` and `lmforge run -o runs/b "
            "model.n_layer=2`, then `lmforge compare eval runs/a runs/b`",
}
