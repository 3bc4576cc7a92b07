"""The live doctor: a training callback that runs the detectors at every logged step and
evaluation, records each finding as a `diagnosis` event, and under `doctor.policy=auto` applies
the first remedy, judges it `verify_steps` later, undoes it and tries the next when it did not help.
Every repair step is a `repair` event with the evidence before and after.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lmforge.config.schema import Config
from lmforge.doctor.detect import DETECTORS, check
from lmforge.doctor.findings import Finding
from lmforge.doctor.history import STATS_FILE, History, read_facts
from lmforge.doctor.repairs import REPAIRS, REPEATABLE, Applied, Context, undo
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir
from lmforge.train.loop import Callback

if TYPE_CHECKING:
    from lmforge.train.loop import Trainer

# slow problems are judged by progress: a repair that makes the loss fall by SLOW_PROGRESS within
# verify_steps worked, even if the loss has not yet left the problem's zone
SLOW = ("underfitting", "plateau", "lr_too_low")
SLOW_PROGRESS = 0.02
SNAPSHOT_EVERY = 3  # logged checks between refreshes of the rollback snapshot (auto only)
# an event, not a setting: its repairs go back to the last good snapshot, never to step 0
TRANSIENT = ("loss_spike",)
# the run blew up: a lowered LR is chosen by a range test from the restart weights (repairs.sweep_lr)
DIVERGED = ("lr_too_high", "exploding_gradients", "nonfinite")
Order = Callable[[Finding], list[str]]


def ranked(finding: Finding) -> list[str]:
    """The remedies in the doctor's order (findings.PROBLEMS)."""
    return finding.remedies


def random_order(seed: int) -> Order:
    """The baseline of the scenario suite: any repair, in random order (Kim et al. 2023 found such
    random repair comparable to published repair tools)."""
    rng = random.Random(seed)

    def order(finding: Finding) -> list[str]:
        names = list(REPAIRS)
        rng.shuffle(names)
        return names
    return order


class StatsTail:
    """Reads the records the Monitor appended to stats.jsonl since the last call (from where the
    last read ended, so a check costs what is new, not the whole file)."""

    def __init__(self, run: RunDir) -> None:
        self.path = run.root / STATS_FILE
        self.offset = 0

    def skip_existing(self) -> None:
        self.offset = self.path.stat().st_size if self.path.is_file() else 0

    def new(self) -> list[dict[str, Any]]:
        try:
            size = self.path.stat().st_size
        except OSError:
            return []
        if size < self.offset:  # rewritten (a resume truncated it)
            self.offset = 0
        if size == self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next call
        self.offset += end
        out = []
        for line in chunk[:end].splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("step"), int):
                out.append(rec)
        return out


class Doctor(Callback):
    """Diagnoses at every logged step; repairs under policy auto (see the module docstring)."""

    def __init__(self, run: RunDir, cfg: Config, order: Order = ranked) -> None:
        self.run, self.cfg, self.t = run, cfg, cfg.doctor
        self.auto = cfg.doctor.policy == "auto"
        self.order = order
        self.history = History(read_facts(run, cfg))
        self.stats = StatsTail(run)
        self.reported: set[str] = set()
        self.findings: list[Finding] = []
        self.repairs: list[dict[str, Any]] = []
        self.ctx = Context(cfg.model, cfg.train.seed)
        self.trial: dict[str, Any] | None = None  # the repair being verified
        self.tried: dict[str, list[str]] = {}
        self.since: dict[str, int] = {}  # problem -> the step of its verified repair
        self.checks = 0
        self.checked: list[int] = []  # the steps the detectors ran at
        self._candidate: dict[str, Any] | None = None

    # events ---------------------------------------------------------------
    def on_train_start(self, trainer: Trainer) -> None:
        self.history.facts.steps = trainer.cfg.steps
        self.stats.skip_existing()  # a resume: what was there is already past
        if self.auto:  # where training starts is the first place to go back to
            self.ctx.good = self.ctx.start = trainer.snapshot()

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        for rec in self.stats.new():
            self.history.add("stats", rec)
        self.history.add("train", metrics)
        self._check(trainer)

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self.history.add("eval", metrics)
        if self.auto and math.isfinite(metrics["val_loss"]) and trainer.best_val == metrics["val_loss"]:
            self.ctx.best = {k: v.detach().clone() for k, v in trainer.raw_model.state_dict().items()}
            self.ctx.notes["best_step"] = trainer.step
        self._check(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        """What was checked, so a run without findings can say what it was cleared of."""
        span = f"steps {self.checked[0]}-{self.checked[-1]}" if self.checked else "no logged step"
        self.run.event("doctor", f"checked {len(self.checked)} logged points ({span}) for {len(DETECTORS)} problems: "
                       f"{len(self.findings)} found", step=trainer.step, policy=self.cfg.doctor.policy,
                       checks=list(DETECTORS), checked=len(self.checked),
                       checked_steps=[self.checked[0], self.checked[-1]] if self.checked else [],
                       findings=len(self.findings), repairs=sum(r["outcome"] == "applied" for r in self.repairs))

    # diagnosis --------------------------------------------------------------
    def _check(self, trainer: Trainer) -> None:
        self.checked.append(trainer.step)
        found = check(self.history, self.t, self.reported | set(self.since))
        for problem, step in self.since.items():  # repaired: judged only on what came after the repair
            if problem not in self.reported:
                again = DETECTORS[problem](self.history_since(step), self.t)
                found += [again] if again is not None else []
        for f in found:
            self._report(trainer, f)
        if not self.auto:
            return
        if self.trial is not None:
            self.trial["found"].update(f.problem for f in found)
            self._verify(trainer)
        elif found:
            if "lr_ceiling" in self.ctx.notes and found[0].problem in SLOW:  # evidence for the ranking
                found[0].evidence["lr_lowered"] = True
            self._repair(trainer, found[0], self.order(found[0]))
        elif not any(f.severity == "error" for f in self.findings if f.step >= trainer.step - 1):
            self._keep_snapshot(trainer)

    def _report(self, trainer: Trainer, f: Finding) -> None:
        if f.problem == "nonfinite" and f.evidence.get("module") is None:
            f.evidence["module"] = first_nonfinite_module(trainer)
            if f.evidence["module"]:
                f.summary += f"; first non-finite output in {f.evidence['module']}"
        self.reported.add(f.problem)
        self.findings.append(f)
        self.run.event("diagnosis", f"{f.problem}: {f.summary}", **f.record())

    def _keep_snapshot(self, trainer: Trainer) -> None:
        """Two snapshots a few checks apart: the older one is the rollback target, so the
        weights restored were taken well before whatever goes wrong next."""
        self.checks += 1
        if self.checks % SNAPSHOT_EVERY == 0:
            if self._candidate is not None:
                self.ctx.good = self._candidate
            self._candidate = trainer.snapshot()

    # repair -----------------------------------------------------------------
    def _repair(self, trainer: Trainer, f: Finding, order: list[str]) -> None:
        tried = self.tried.setdefault(f.problem, [])
        if sum(r["outcome"] == "applied" for r in self.repairs) >= self.t.max_repairs:
            return
        for name in order:
            if name in tried:
                continue
            tried.append(name)
            self.ctx.notes["median_ratio"] = f.evidence.get("median_ratio") or f.evidence.get("update_ratio")
            self.ctx.notes["restart"] = self.t.restart and f.problem not in TRANSIENT
            self.ctx.notes["diverged"] = f.problem in DIVERGED
            was = trainer.step
            before = tuple(a.copy() for a in self.history.series("train", "loss"))
            try:
                applied = REPAIRS[name](trainer, self.ctx)
            except LmforgeError as exc:
                self._event(trainer, f, name, "not applied", str(exc))
                continue
            if trainer.step < was:  # went back: what was logged and snapshotted since is undone
                self._candidate, self.checks = None, 0
                self.history.truncate(trainer.step)
            restarted = trainer.step == 0 < was
            # a slow problem restarted is judged where it was found: at the same step as the abandoned
            # run (30 steps in, a lower LR is still behind a higher one; measured on the suite's LR 5 run)
            wait = max(self.t.verify_steps, was) if restarted and f.problem in SLOW else self.t.verify_steps
            self.trial = {"finding": f, "applied": applied, "since": trainer.step, "order": order,
                          "before": before if restarted else None, "found": set(), "judge_at": trainer.step + wait}
            self._event(trainer, f, name, "applied", f"applied {name}: {applied.changes}", changes=applied.changes)
            if trainer.should_stop:  # stop_early: nothing left to verify
                self.trial = None
                self.reported.discard(f.problem)
            return
        self._event(trainer, f, "-", "gave up", f"no remedy left for {f.problem}; tried {', '.join(tried)}")

    def _verify(self, trainer: Trainer) -> None:
        trial = self.trial
        assert trial is not None
        if trainer.step < trial["judge_at"]:
            return
        f: Finding = trial["finding"]
        applied: Applied = trial["applied"]
        # other problems that showed while this repair was judged get their turn: found again, repaired
        self.reported -= trial["found"] - {f.problem}
        after = self.history_since(trial["since"])
        again = DETECTORS[f.problem](after, self.t)
        self.trial = None
        progress = (_progress(self.history, trial["since"]) if trial["before"] is None
                    else _ahead(self.history, *trial["before"]))
        worked = again is None or (f.problem in SLOW and progress > SLOW_PROGRESS)
        if worked:
            self._event(trainer, f, applied.name, "verified", f"{f.problem} gone {trainer.step - trial['since']} "
                        f"steps after {applied.name}", after=_evidence(after))
            self.reported.discard(f.problem)  # may be diagnosed (and repaired, from the top) again later,
            self.tried.pop(f.problem, None)  # on what is logged from now on
            self.since[f.problem] = trainer.step
            return
        why = again.summary if again is not None else (f"the loss is {progress:.1%} below the run before the "
                                                        f"restart at the same step (wanted {SLOW_PROGRESS:.0%})")
        # the right direction, not far enough: keep it and go further (a divergence always wants a
        # lower LR; a raised LR only when the loss did fall)
        if (applied.name == "lower_lr" and f.problem not in SLOW) or (applied.name in REPEATABLE and progress > 0):
            self._event(trainer, f, applied.name, "failed", f"{f.problem} still there after {applied.name}: "
                        f"{why}; kept, and repeated", after=_evidence(after))
            self.tried[f.problem].remove(applied.name)
            self._repair(trainer, again or f, [applied.name, *trial["order"]])
            return
        undone = undo(trainer, applied, self.ctx)
        self._event(trainer, f, applied.name, "failed", f"{f.problem} still there after {applied.name}: "
                    f"{why}" + ("; undone" if undone else ""), after=_evidence(after))
        self._repair(trainer, f, trial["order"])

    def history_since(self, step: int) -> History:
        """The records logged after `step` (what a repair is judged on)."""
        h = History(self.history.facts)
        h.train = [r for r in self.history.train if r["step"] > step]
        h.evals = [r for r in self.history.evals if r["step"] > step]
        h.stats = [r for r in self.history.stats if r["step"] > step]
        return h

    def _event(self, trainer: Trainer, f: Finding, remedy: str, outcome: str, message: str, **extra: Any) -> None:
        rec = {"problem": f.problem, "remedy": remedy, "outcome": outcome, "step": trainer.step,
               "detected_step": f.step, "before": {"metric": f.metric, "steps": f.steps, "values": f.record()["values"]},
               **extra}
        self.repairs.append(rec)
        self.run.event("repair", message, **rec)


def _progress(h: History, since: int) -> float:
    """Relative fall of the training loss (median of the last 3 logged) from the repair to now."""
    steps, loss = h.series("train", "loss")
    before, after = loss[steps <= since][-3:], loss[steps > since][-3:]
    if not len(before) or not len(after):
        return 0.0
    b, a = float(np.nanmedian(before)), float(np.nanmedian(after))
    return (b - a) / abs(b) if math.isfinite(a) and math.isfinite(b) and b else 0.0


def _ahead(h: History, old_steps: np.ndarray, old_loss: np.ndarray) -> float:
    """After a restart: how far the new training loss (median of the last 3 logged) is below the
    abandoned run's at the same step, relative to it (the same number of steps on both sides)."""
    steps, loss = h.series("train", "loss")
    if not len(steps) or not len(old_steps):
        return 0.0
    now = int(steps[-1])
    old = old_loss[old_steps <= now][-3:] if (old_steps <= now).any() else old_loss[:1]
    b, a = float(np.nanmedian(old)), float(np.nanmedian(loss[-3:]))
    return (b - a) / abs(b) if math.isfinite(a) and math.isfinite(b) and b else 0.0


def _evidence(h: History) -> dict[str, Any]:
    steps, loss = h.series("train", "loss")
    es, ev = h.series("eval", "val_loss")
    fin = lambda a: [None if not math.isfinite(x) else round(float(x), 6) for x in a]
    return {"steps": steps.tolist(), "loss": fin(loss), "eval_steps": es.tolist(), "val_loss": fin(ev)}


@torch.no_grad()
def first_nonfinite_module(trainer: Trainer) -> str | None:
    """The first module (in call order) whose output is not finite on one validation window, or
    the first parameter that is not finite. None when both are finite (the gradients overflowed)."""
    model = trainer.raw_model
    if model.carries_state:  # a forward here would move the state it carries between batches
        return None
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            return f"parameter {name}"
    if trainer.val_data is None or len(trainer.val_data) <= trainer.loader.block_size:
        return None
    first: list[str] = []

    def hook(name: str) -> Callable:
        def fn(module: Any, args: Any, out: Any) -> None:
            t = out[0] if isinstance(out, tuple) else out
            if not first and isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all():
                first.append(name)
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n]
    was = model.training
    model.eval()
    try:
        x = torch.as_tensor(np.asarray(trainer.val_data[: trainer.loader.block_size], dtype=np.int64))[None]
        model(x.to(trainer.device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was)
    return first[0] if first else None
