"""The doctor's scenario suite and `lmforge compare problems`: deliberately broken trainings on
the built-in corpus (each broken by one config change a user could make) and healthy runs of
several families, each trained with the doctor watching (`suggest`), repairing (`auto`) and
repairing at random (the baseline). Writes the measured detection and repair rates as the
problem table (each problem, its symptoms as measured, detection precision and recall, steps to
detection) and the remedy table (each remedy tried and its measured success), and two figures of
the broken curves before and after their repair.

Repair success: the run ends with a validation loss within 5% of its healthy counterpart (the
same config without the breaking change; for overfitting, the broken run's own best validation
loss, which is what a healthy stop would have kept).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from lmforge.config.load import dump_config, load_config
from lmforge.config.schema import Config, DoctorConfig
from lmforge.doctor.live import Doctor, random_order, ranked
from lmforge.doctor.offline import diagnose
from lmforge.errors import LmforgeError
from lmforge.monitor import build_callbacks as monitor_callbacks
from lmforge.pipeline import run_stage, write_config
from lmforge.rundir import RunDir, atomic_write_json, atomic_write_text, read_jsonl
from lmforge.train.loop import Callback, Trainer
from lmforge.train.stage import run_train

# small shapes so the whole suite runs in minutes on 2 CPU cores: the smoke preset's GPT, 200 steps
BASE = ["train.steps=200", "train.warmup_steps=20", "train.eval_interval=20", "train.eval_batches=5",
        "train.log_interval=5", "train.checkpoint_interval=1000", "train.keep_checkpoints=1",
        "train.threads=1", "train.device=cpu", "monitor.stats_interval=10", "monitor.console=none",
        "monitor.tensorboard=false", "monitor.control=false", "monitor.peak_flops=1e11"]
CORPORA: dict[str, list[str]] = {
    "shakespeare": ["data.max_docs=12"],
    "three_docs": ["data.max_docs=3"],  # one training document: it repeats every few dozen steps
    # one training document cut to 20,000 characters (about 10,000 tokens): 30 passes in 300 steps
    "short_doc": ["data.max_docs=3", "data.max_doc_chars=20000"],
    "two_editions": ["data.editions=[modern,folio]", "data.dedup=none", "data.max_docs=40"],
}
REPAIR_TOLERANCE = 0.05


@dataclass(frozen=True)
class Scenario:
    name: str
    problem: str | None  # None: a healthy run
    overrides: tuple[str, ...] = ()
    corpus: str = "shakespeare"
    also: tuple[str, ...] = ()  # consequences of the same fault the doctor may also name
    reference: tuple[str, ...] = ()  # the healthy counterpart: these overrides instead
    quick: bool = False
    repairable: bool = True  # False: only new data fixes it (no live repair to score)
    corrupt: tuple[int, int] | None = None  # (first batch, count): a corrupted stretch of the token stream

    @property
    def own_best(self) -> bool:
        """Repair is judged against the run's own best validation loss (a healthy stop keeps it)."""
        return self.problem in ("overfitting", "repeated_data")


SCENARIOS: list[Scenario] = [
    Scenario("lr_5", "lr_too_high", ("train.lr=5", "train.min_lr=0.5"),
             also=("exploding_gradients", "nonfinite", "loss_spike", "dead_units", "oscillation"), quick=True),
    Scenario("lr_1e-6", "lr_too_low", ("train.lr=1e-6", "train.min_lr=1e-7"), also=("underfitting", "plateau")),
    Scenario("init_1e-5_deep", "vanishing_gradients",
             ("model.n_layer=8", "model.init=normal", "model.init_std=1e-5"),
             also=("underfitting", "plateau", "lr_too_low"), reference=("model.n_layer=8",)),
    Scenario("dropout_0.9", "underfitting", ("model.dropout=0.9",), also=("plateau",)),
    # one 10,000-token training document, a wider model, no weight decay: 30 passes in 300 steps
    Scenario("short_doc_wide", "overfitting", ("model.n_embd=128", "train.steps=300", "train.weight_decay=0"),
             corpus="short_doc", also=("repeated_data",)),
    Scenario("three_docs_repeat", "repeated_data", ("train.steps=300",), corpus="three_docs",
             also=("overfitting",)),
    Scenario("two_editions", "val_leak", (), corpus="two_editions", repairable=False),
    Scenario("init_std_1", "exploding_gradients", ("model.init=normal", "model.init_std=1.0"),
             also=("underfitting", "plateau", "lr_too_high", "val_leak")),
    # six blocks, a high LR and no clipping: the first block's gradients grow 240x the last's
    Scenario("deep_lr_0.02_no_clip", "exploding_gradients",
             ("model.n_layer=6", "train.lr=0.02", "train.grad_clip=0", "train.beta2=0.95"),
             also=("underfitting", "plateau", "loss_spike", "lr_too_high", "oscillation"), reference=("model.n_layer=6",)),
    Scenario("lr_10_no_clip", "nonfinite",
             ("train.lr=10", "train.min_lr=1", "train.grad_clip=0", "train.log_interval=1"),
             also=("lr_too_high", "exploding_gradients", "loss_spike", "dead_units", "oscillation")),
    Scenario("sgd_adam_lr", "plateau", ("train.optimizer=sgd",), also=("underfitting", "lr_too_low")),
    # 20 batches of random tokens from batch 100 on: a corrupted stretch of the token stream
    Scenario("corrupt_batches", "loss_spike", (), corrupt=(100, 20),
             also=("lr_too_high", "exploding_gradients", "underfitting", "plateau")),
    Scenario("sgd_lr_0.5_momentum_0.99", "oscillation",
             ("train.optimizer=sgd", "train.lr=0.5", "train.momentum=0.99", "train.schedule=constant"),
             also=("lr_too_high", "exploding_gradients", "loss_spike", "underfitting", "plateau")),
    Scenario("sgd_lr_2", "dead_units", ("train.optimizer=sgd", "train.lr=2", "train.min_lr=0.2"),
             also=("lr_too_high", "exploding_gradients", "loss_spike", "underfitting", "plateau", "oscillation")),
]
HEALTHY: list[Scenario] = [
    Scenario("gpt", None, (), quick=True),
    Scenario("gpt_deep_dropout", None, ("model.n_layer=4", "model.dropout=0.1")),
    Scenario("llama", None, ("model.family=llama", "model.n_kv_head=1")),
    Scenario("lstm", None, ("model.family=lstm", "model.n_layer=1", "model.n_embd=128", "train.lr=1e-2",
                            "train.min_lr=1e-3")),
    Scenario("cnn", None, ("model.family=cnn", "model.n_layer=3", "model.n_embd=96")),
    Scenario("gpt_wsd_wide", None, ("model.n_embd=128", "train.schedule=wsd", "train.lr=2e-3")),
]


class FinalLoss(Callback):
    """The validation loss of the weights training ends with (a stop may have restored others), and
    the optimizer steps trained in all (a restart or a rollback trains some steps twice). Placed
    after the doctor, it sees the step a logged record was made at and the step the doctor left."""

    def __init__(self) -> None:
        self.value = math.inf
        self.trained = 0
        self._last = 0

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self.trained += int(metrics["step"]) - self._last
        self._last = trainer.step

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self._last = trainer.step

    def on_train_end(self, trainer: Trainer) -> None:
        self.trained += trainer.step - self._last
        self._last = trainer.step
        self.value = trainer.val_loss() if trainer.val_data is not None else math.inf


class CorruptBatches(Callback):
    """A corrupted stretch of the training stream: the loader's batches [first, first + count)
    are uniformly random tokens (a shard of garbage), the same ones again after a rollback unless
    it skips past them. The fault behind the loss-spike scenario."""

    def __init__(self, first: int, count: int, vocab: int) -> None:
        self.first, self.count, self.vocab = first, count, vocab

    def on_train_start(self, trainer: Trainer) -> None:
        loader = trainer.loader
        clean = loader.next

        def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
            k = loader.batches
            x, y = clean()
            if self.first <= k < self.first + self.count:
                gen = torch.Generator().manual_seed(k)
                chunk = torch.randint(self.vocab, (x.shape[0], x.shape[1] + 1), generator=gen)
                return chunk[:, :-1], chunk[:, 1:]
            return x, y
        loader.next = next_batch  # type: ignore[method-assign]


def prepare(out: Path, corpus: str, base: list[str]) -> RunDir:
    """The corpus's data and tokenize stages, once, in out/corpus-NAME."""
    run = RunDir(out / f"corpus-{corpus}")
    cfg = load_config(None, "smoke", base + CORPORA[corpus])
    run.create()
    write_config(run, cfg)
    for stage in ("data", "tokenize"):
        run_stage(run, cfg, stage)
    return run


def _arm_config(s: Scenario, base: list[str], policy: str) -> Config:
    overrides = [*base, *CORPORA[s.corpus], *s.overrides, f"doctor.policy={policy}"]
    return load_config(None, "smoke", overrides)


def reference_of(s: Scenario) -> Scenario:
    """The healthy counterpart of a broken scenario: its corpus with the reference overrides."""
    if s.corpus == "shakespeare" and not s.reference:
        return next(h for h in HEALTHY if h.name == "gpt")
    return Scenario(f"healthy-{s.corpus}" + "".join(f"-{o}" for o in s.reference), None, s.reference, s.corpus)


def references(scenarios: list[Scenario]) -> list[Scenario]:
    return list(dict.fromkeys(reference_of(s) for s in scenarios
                              if s.problem is not None and s.repairable and not s.own_best))


def train_arm(root: str, corpus_root: str, s: Scenario, base: list[str], arm: str, seed: int = 0) -> dict[str, Any]:
    """One training of a scenario: arm suggest (detect only), auto (ranked repairs), random
    (repairs in random order) or reference (the healthy counterpart, no doctor)."""
    run = RunDir(root)
    done = run.root / "arm.json"
    if done.is_file():  # an interrupted suite, run again: this arm finished already
        return json.loads(done.read_text())
    shutil.rmtree(run.root, ignore_errors=True)
    run.create()
    shutil.copytree(Path(corpus_root) / "tokens", run.tokens)
    policy = {"suggest": "suggest", "auto": "auto", "random": "auto"}[arm]
    cfg = _arm_config(s, base, policy)
    atomic_write_text(run.config, dump_config(cfg))
    final = FinalLoss()
    order = random_order(seed) if arm == "random" else ranked

    fault: list[Callback] = []
    if s.corrupt is not None:
        vocab = int(json.loads((run.tokens / "meta.json").read_text())["vocab_size"])
        fault = [CorruptBatches(*s.corrupt, vocab)]

    def callbacks(r: RunDir, c: Config, model: Any, start: int, show: bool) -> list[Callback]:
        doctor = [Doctor(r, c, order)] if policy != "off" else []
        return fault + monitor_callbacks(r, c, model, start, show) + doctor + [final]

    started, error = time.time(), None
    try:
        run_train(run, cfg, show_progress=False, callbacks=callbacks)
    except LmforgeError as exc:  # training gave up (NaN for max_bad_steps in a row)
        error = exc.message
    events = read_jsonl(run.events)
    metrics = read_jsonl(run.metrics)
    result = {"scenario": s.name, "arm": arm, "seconds": time.time() - started, "error": error,
            "final_val": final.value if error is None else math.inf,
            "steps_trained": final.trained + _sweep_steps(events),
            "diagnoses": [e for e in events if e["kind"] == "diagnosis"],
            "repairs": [e for e in events if e["kind"] == "repair"],
            "train": [(r["step"], r.get("loss")) for r in metrics if r.get("kind") == "train"],
            "eval": [(r["step"], r.get("val_loss")) for r in metrics if r.get("kind") == "eval"]}
    atomic_write_json(done, result)
    return result


def _sweep_steps(events: list[dict[str, Any]]) -> int:
    """The steps the repairs' LR range tests trained (rolled back, so FinalLoss never saw them)."""
    return sum(int((e.get("changes") or {}).get("sweep_steps", 0)) for e in events
               if e["kind"] == "repair" and e.get("outcome") == "applied")


def run_suite(out: Path, quick: bool = False, workers: int = 2, base: list[str] | None = None,
              scenarios: list[Scenario] | None = None, seed: int = 0) -> dict[str, Any]:
    """Every scenario's arms (in `workers` processes), then the scores. Returns the result dict
    also written to out/problems.json."""
    base = BASE if base is None else base
    chosen = scenarios if scenarios is not None else [s for s in SCENARIOS + HEALTHY if s.quick or not quick]
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    corpora = {s.corpus: prepare(out, s.corpus, base) for s in chosen}
    jobs: list[tuple[Scenario, str]] = []
    for s in chosen:
        jobs += [(s, "suggest")] if s.problem is None or not s.repairable else [(s, "suggest"), (s, "auto"), (s, "random")]
    for ref in references(chosen):
        jobs.append((ref, "suggest"))  # a healthy counterpart; the healthy runs are their own references
    jobs = list(dict.fromkeys(jobs))
    args = [(str(out / s.name / arm), str(corpora[s.corpus].root), s, base, arm, seed) for s, arm in jobs]
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(train_arm, *zip(*args, strict=True)))
    else:
        results = [train_arm(*a) for a in args]
    result = score(chosen, results)
    result.update(seconds=time.time() - started, workers=workers, base=base, quick=quick)
    atomic_write_json(out / "problems.json", result)
    return result


def _detected(arm: dict[str, Any]) -> dict[str, int]:
    """problem -> first step it was diagnosed at."""
    out: dict[str, int] = {}
    for e in arm["diagnoses"]:
        out.setdefault(e["problem"], int(e["step"]))
    return out


def score(scenarios: list[Scenario], results: list[dict[str, Any]]) -> dict[str, Any]:
    """Detection precision/recall per problem, steps to detection, false alarms on healthy runs,
    repair success of the doctor's order and of the random baseline."""
    by = {(r["scenario"], r["arm"]): r for r in results}
    rows: dict[str, dict[str, Any]] = {}
    remedies: dict[tuple[str, str], dict[str, int]] = {}
    false_alarms: dict[str, list[str]] = {}
    detections: dict[str, list[bool]] = {}  # problem -> correct? per detection
    for s in list(dict.fromkeys([*scenarios, *references(scenarios)])):
        found = _detected(by[(s.name, "suggest")])
        for problem in found:
            detections.setdefault(problem, []).append(s.problem is not None and problem in (s.problem, *s.also))
        if s.problem is None:
            false_alarms[s.name] = sorted(found)
            continue
        row = rows.setdefault(s.problem, {"problem": s.problem, "scenarios": [], "detected": 0, "steps": [],
                                          "symptoms": [], "repaired": 0, "random_repaired": 0})
        row["scenarios"].append(s.name)
        if s.problem in found:
            row["detected"] += 1
            row["steps"].append(found[s.problem])
            row["symptoms"].append(next(e["summary"] for e in by[(s.name, "suggest")]["diagnoses"]
                                        if e["problem"] == s.problem))
        suggest = by[(s.name, "suggest")]
        row["repairable"] = row.get("repairable", 0) + int(s.repairable)
        if not s.repairable:
            continue
        if s.own_best:
            target = min((v for _, v in suggest["eval"] if v is not None), default=math.inf)
        else:
            target = by[(reference_of(s).name, "suggest")]["final_val"]
        for arm, key in (("auto", "repaired"), ("random", "random_repaired")):
            ok = by[(s.name, arm)]["final_val"] <= target * (1 + REPAIR_TOLERANCE)
            row[key] += int(ok)
            row.setdefault(f"{arm}_final", []).append(by[(s.name, arm)]["final_val"])
            row.setdefault(f"{arm}_steps", []).append(by[(s.name, arm)].get("steps_trained"))
        row.setdefault("target", []).append(target)
        row.setdefault("broken_final", []).append(suggest["final_val"])
        for arm in ("auto", "random"):
            for e in by[(s.name, arm)]["repairs"]:
                if e["outcome"] in ("verified", "failed"):
                    tally = remedies.setdefault((arm, e["problem"], e["remedy"]), {"verified": 0, "failed": 0})
                    tally[e["outcome"]] += 1
    for problem, row in rows.items():
        n = len(row["scenarios"])
        row["recall"] = row["detected"] / n
        hits = detections.get(problem, [])
        row["precision"] = sum(hits) / len(hits) if hits else None
        m = row["repairable"]
        row["repair_rate"] = row["repaired"] / m if m else None
        row["random_repair_rate"] = row["random_repaired"] / m if m else None
    total = sum(r["repairable"] for r in rows.values())
    return {"problems": rows, "false_alarms": false_alarms,
            "precision_all": {p: (sum(h) / len(h)) for p, h in detections.items()},
            "remedies": [{"arm": a, "problem": p, "remedy": m, **t} for (a, p, m), t in sorted(remedies.items())],
            "repair_rate": sum(r["repaired"] for r in rows.values()) / max(1, total),
            "random_repair_rate": sum(r["random_repaired"] for r in rows.values()) / max(1, total),
            "scenarios": [asdict(s) for s in scenarios], "runs": results}


def rescore(out: Path, result: dict[str, Any], **thresholds: Any) -> dict[str, Any]:
    """The detection scores again with other doctor.* thresholds, by replaying each suggest run's
    logs through the offline doctor (which finds what the live one would have). Repairs keep
    what the auto runs did under the thresholds they ran with."""
    t = DoctorConfig(**thresholds)
    runs = []
    for r in result["runs"]:
        if r["arm"] == "suggest":
            r = {**r, "diagnoses": [f.record() for f in diagnose(RunDir(out / r["scenario"] / "suggest"), t)]}
        runs.append(r)
    scenarios = [Scenario(**{**s, "overrides": tuple(s["overrides"]), "also": tuple(s["also"]),
                             "reference": tuple(s["reference"]),
                             "corrupt": tuple(s["corrupt"]) if s.get("corrupt") else None})
                 for s in result["scenarios"]]
    return {**result, **score(scenarios, runs), "thresholds": thresholds}


def _fmt(x: float | None, pct: bool = True) -> str:
    return "-" if x is None else f"{x:.0%}" if pct else f"{x:.3g}"


PROBLEM_COLUMNS = ["problem", "scenarios", "symptom as measured (first scenario)", "detected", "precision",
                   "steps to detection"]
REMEDY_COLUMNS = ["problem", "remedy", "doctor's order: verified / failed", "random order: verified / failed"]
REPAIR_COLUMNS = ["problem", "repaired (doctor)", "repaired (random remedy)", "broken final val", "repaired final val",
                  "healthy target", "steps trained (doctor)"]


def problem_rows(result: dict[str, Any]) -> list[list[str]]:
    """Table 14: each problem, its symptom as measured, how often and how soon it was detected."""
    rows = []
    for p, row in result["problems"].items():
        symptom = row["symptoms"][0] if row["symptoms"] else "not detected"
        rows.append([p, ", ".join(row["scenarios"]), symptom, f"{row['detected']}/{len(row['scenarios'])}",
                     _fmt(row["precision"]), ", ".join(str(s) for s in row["steps"]) or "-"])
    return rows


def false_alarm_line(result: dict[str, Any]) -> str:
    healthy = result["false_alarms"]
    alarms = sum(1 for v in healthy.values() if v)
    return (f"False alarms on {len(healthy)} healthy runs: {alarms}"
            + "".join(f"; {k}: {', '.join(v)}" for k, v in healthy.items() if v))


def remedy_rows(result: dict[str, Any]) -> list[list[str]]:
    """Table 15: each remedy tried, verified or failed, in the doctor's order and in random order."""
    tally: dict[tuple[str, str], dict[str, str]] = {}
    for r in result["remedies"]:
        tally.setdefault((r["problem"], r["remedy"]), {})[r["arm"]] = f"{r['verified']} / {r['failed']}"
    return [[p, m, arms.get("auto", "-"), arms.get("random", "-")] for (p, m), arms in sorted(tally.items())]


def repair_rows(result: dict[str, Any]) -> list[list[str]]:
    """Per problem: repaired by the doctor and by a random remedy, with the validation losses."""
    rows = []
    for p, row in result["problems"].items():
        n = row["repairable"]
        if not n:
            rows.append([p, "n/a: needs new data", "n/a", "-", "-", "-", "-"])
            continue
        rows.append([p, f"{row['repaired']}/{n}", f"{row['random_repaired']}/{n}",
                     *(", ".join(_fmt(v, False) for v in row[k]) for k in ("broken_final", "auto_final", "target")),
                     ", ".join(str(v) if v is not None else "-" for v in row.get("auto_steps", []))])
    return rows


def repair_line(result: dict[str, Any]) -> str:
    return (f"Repair success: doctor {result['repair_rate']:.0%}, random remedy {result['random_repair_rate']:.0%} "
            f"(within {REPAIR_TOLERANCE:.0%} of the healthy counterpart's validation loss)")


def tables(result: dict[str, Any]) -> str:
    """Table 14 (problems, symptoms as measured, detection) and table 15 (remedies and success)."""
    from lmforge.compare.output import markdown

    return "\n".join([
        "Table 14. Training problems: symptoms as measured and their detection", "",
        markdown(PROBLEM_COLUMNS, problem_rows(result)), false_alarm_line(result), "",
        "Table 15. Remedies tried and their measured success", "",
        markdown(REMEDY_COLUMNS, remedy_rows(result)), markdown(REPAIR_COLUMNS, repair_rows(result)),
        repair_line(result)]) + "\n"


def figures(result: dict[str, Any], out: Path) -> list[Path]:
    """Figure 14: each broken scenario's training loss, untreated and repaired (repairs marked);
    figure 15: the same for the validation loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {(r["scenario"], r["arm"]): r for r in result["runs"]}
    broken = [s for s in result["scenarios"] if s["problem"] is not None]
    paths = []
    for number, key, label in ((14, "train", "training loss"), (15, "eval", "validation loss")):
        cols = 3
        rows = max(1, math.ceil(len(broken) / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
        for ax, s in zip(axes.flat, broken, strict=False):
            for arm, style in (("suggest", "tab:red"), ("auto", "tab:green")):
                r = runs.get((s["name"], arm))
                if r is None:
                    continue
                pts = [(st, v) for st, v in r[key] if v is not None and math.isfinite(v)]
                if pts:
                    ax.plot(*zip(*pts, strict=True), color=style, lw=1,
                            label="untreated" if arm == "suggest" else "repaired")
                for e in r["repairs"] if arm == "auto" else []:
                    if e["outcome"] == "applied":
                        ax.axvline(e["step"], color="tab:green", ls=":", lw=0.8)
            ax.set_title(f"{s['problem']} ({s['name']})", fontsize=8)
            ax.set_yscale("log")
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6)
        for ax in list(axes.flat)[len(broken):]:
            ax.axis("off")
        fig.suptitle(f"Figure {number}. {label} before and after repair (dotted: a repair applied)", fontsize=9)
        fig.tight_layout()
        path = out / f"fig{number}_{key}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


def compare_problems(out: Path, quick: bool = False, workers: int = 2) -> dict[str, Any]:
    """`lmforge compare problems`: run the suite, write problems.md, problems.json and the figures."""
    result = run_suite(out, quick=quick, workers=workers)
    text = tables(result)
    atomic_write_text(out / "problems.md", text)
    result["figures"] = [str(p) for p in figures(result, out)]
    result["table"] = text
    return result


def collect(out: Path) -> dict[str, Any]:
    """The scores of whatever an interrupted suite finished: every scenario whose arms (and healthy
    counterpart) all wrote their arm.json."""
    known = {s.name: s for s in SCENARIOS + HEALTHY}
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("*/*/arm.json"))]
    have = {(r["scenario"], r["arm"]) for r in runs}
    for s in SCENARIOS:
        if s.problem is not None and s.repairable and not s.own_best:
            ref = reference_of(s)
            known.setdefault(ref.name, ref)
    done = []
    for s in SCENARIOS + HEALTHY:
        arms = ["suggest"] if s.problem is None or not s.repairable else ["suggest", "auto", "random"]
        need = [(s.name, a) for a in arms]
        if s.problem is not None and s.repairable and not s.own_best:
            need.append((reference_of(s).name, "suggest"))
        if all(n in have for n in need):
            done.append(s)
    if not done:
        raise LmforgeError(f"no finished scenario in {out}", f"run the suite: lmforge compare problems --out {out}")
    result = score(done, runs)
    result.update(partial=len(done) < len(SCENARIOS + HEALTHY), quick=False)
    return result


def from_results(out: Path) -> dict[str, Any]:
    """Tables and figures again from an earlier suite's problems.json, or from the arms an
    interrupted suite finished (no training)."""
    path = out / "problems.json"
    result = json.loads(path.read_text()) if path.is_file() else collect(out)
    if not path.is_file():
        atomic_write_json(path, result)
    text = tables(result)
    atomic_write_text(out / "problems.md", text)
    result["figures"] = [str(p) for p in figures(result, out)]
    result["table"] = text
    return result


