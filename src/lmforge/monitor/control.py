"""Live control: `lmforge ctl RUN ...` drops a command file; the running trainer polls and applies it.

Protocol (files only, so it works from any shell and needs no server):
  RUN/control/trainer.json        written at train start: pid, time, the process's start time
                                  (so a reused pid is not taken for the trainer); removed at the end
  RUN/control/cmd-<ns>-<pid>.json one command, written atomically:
                                  {"id", "action", "changes": {"train.lr": 1e-4}, "reason", "time"}
The trainer polls at every logging step (a step boundary), validates each command against the
typed TrainConfig, applies it or rejects it, deletes the file, and records the outcome in
events.jsonl as kind "control" or "control_rejected" with the command id, step and reason.
Nothing in a command is ever executed: values are parsed as YAML scalars and validated.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from lmforge.config.load import parse_override
from lmforge.config.schema import TrainConfig
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir, atomic_write_json, read_jsonl
from lmforge.train.loop import Callback

if TYPE_CHECKING:
    from lmforge.train.loop import Trainer

ACTIONS = ("set", "pause", "resume", "save", "stop", "eval")
# keys that can change while training runs; the rest (batch, device, dtype, seed...) shape the
# run itself and need a restart
LIVE_KEYS = ("lr", "min_lr", "warmup_steps", "weight_decay", "beta1", "beta2", "grad_clip", "steps",
             "eval_interval", "log_interval", "checkpoint_interval", "max_seconds")
PAUSE_POLL_S = 0.2


def control_dir(run: RunDir) -> Path:
    return run.root / "control"


def trainer_file(run: RunDir) -> Path:
    return control_dir(run) / "trainer.json"


def parse_changes(assignments: list[str], current: TrainConfig | None = None) -> dict[str, Any]:
    """`["train.lr=1e-4"]` -> {"train.lr": 0.0001}, validated against TrainConfig.
    Raises LmforgeError naming the bad key or value and what is allowed."""
    if not assignments:
        raise LmforgeError("`set` needs at least one key=value", "example: lmforge ctl RUN set train.lr=1e-4")
    changes: dict[str, Any] = {}
    for item in assignments:
        parts, value = parse_override(item)
        key = ".".join(parts)
        if len(parts) != 2 or parts[0] != "train" or parts[1] not in LIVE_KEYS:
            raise LmforgeError(f"'{key}' cannot be changed while training runs",
                               f"live keys: {', '.join('train.' + k for k in LIVE_KEYS)}")
        changes[key] = value
    validate_changes(changes, current or TrainConfig())
    return changes


def validate_changes(changes: dict[str, Any], current: TrainConfig) -> TrainConfig:
    """The config that would result, or LmforgeError. The running config is never touched here."""
    data = current.model_dump()
    for key, value in changes.items():
        section, _, field = str(key).partition(".")
        if section != "train" or field not in LIVE_KEYS or field not in TrainConfig.model_fields:
            raise LmforgeError(f"'{key}' cannot be changed while training runs",
                               f"live keys: {', '.join('train.' + k for k in LIVE_KEYS)}")
        data[field] = value
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        msgs = [f"train.{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors()]
        raise LmforgeError("invalid value: " + "; ".join(msgs),
                           "nothing was changed; allowed ranges are in docs/config.md") from None


def send(run: RunDir, action: str, changes: dict[str, Any] | None = None, reason: str | None = None) -> str:
    """Write one command file atomically; returns its id."""
    if action not in ACTIONS:
        raise LmforgeError(f"unknown control action '{action}'", f"actions: {', '.join(ACTIONS)}")
    cid = f"{time.time_ns()}-{os.getpid()}"
    atomic_write_json(control_dir(run) / f"cmd-{cid}.json",
                      {"id": cid, "action": action, "changes": changes or {},
                       "reason": reason or f"lmforge ctl {action}", "time": time.time()})
    return cid


def process_start(pid: int) -> tuple[int, float] | None:
    """When process `pid` started: (clock ticks since boot, exact; wall-clock seconds, to about a
    second), from /proc on Linux; None where /proc is missing or the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat[stat.rindex(")") + 2:].split()[19])  # field 22, counted after "(comm)"
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return ticks, btime + ticks / os.sysconf("SC_CLK_TCK")


# a process that started this long after a record was written cannot have written it (the
# wall-clock start from /proc is good to about a second)
START_SLACK_S = 2.0


def trainer_alive(run: RunDir) -> dict[str, Any] | None:
    """The running trainer's record, or None when no live trainer owns this run. A record whose
    process is gone, or whose pid now belongs to a process that started later (the pid was reused
    after a kill or a reboot), is stale and owns nothing."""
    path = trainer_file(run)
    try:
        info = json.loads(path.read_text())
        pid = int(info["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
        return None
    start = process_start(pid)
    if start is not None:
        ticks, wall = start
        if info.get("pid_start") is not None and info["pid_start"] != ticks:
            return None
        if isinstance(info.get("started"), (int, float)) and wall > info["started"] + START_SLACK_S:
            return None
    return info


def stale_hint(run: RunDir) -> str:
    """What to do when a record wrongly claims a run (a process we cannot tell from the trainer)."""
    return (f"if no lmforge training runs there, {trainer_file(run)} is stale (left by a killed run): "
            "delete it")


def wait_outcome(run: RunDir, cid: str, timeout: float) -> dict[str, Any] | None:
    """The events.jsonl record answering command `cid`, or None after `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        for rec in read_jsonl(run.events):
            if rec.get("id") == cid:
                return rec
        if time.time() >= deadline:
            return None
        time.sleep(0.1)


class Controller(Callback):
    """Applies `lmforge ctl` commands at step boundaries (every logging step)."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.dir = control_dir(run)
        self.paused = False
        self.decay_ratio: dict[int, float] = {}

    def on_train_start(self, trainer: Trainer) -> None:
        self.decay_ratio = decay_ratios(trainer.optimizer, trainer.cfg.weight_decay)
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob("cmd-*.json"):  # left by an earlier run: never replay a stale "stop"
            self.run.event("control_rejected", f"ignored a command left from before this run: {stale.name}",
                           step=trainer.step, reason="stale")
            stale.unlink(missing_ok=True)
        start = process_start(os.getpid())
        atomic_write_json(trainer_file(self.run), {"pid": os.getpid(), "started": time.time(),
                                                   "pid_start": start[0] if start else None})

    def on_step_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self.poll(trainer)
        while self.paused and not trainer.should_stop and not trainer.interrupted:
            time.sleep(PAUSE_POLL_S)
            self.poll(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        trainer_file(self.run).unlink(missing_ok=True)

    def poll(self, trainer: Trainer) -> None:
        """Apply every waiting command, oldest first."""
        for path in sorted(self.dir.glob("cmd-*.json")):
            try:
                cmd = json.loads(path.read_text())
                if not isinstance(cmd, dict):
                    raise TypeError("not a JSON object")
            except (json.JSONDecodeError, OSError, UnicodeDecodeError, TypeError) as exc:
                self._record(trainer, "control_rejected", f"unreadable command {path.name}: {exc}", {})
                path.unlink(missing_ok=True)
                continue
            try:
                self.apply(trainer, cmd)
            except LmforgeError as exc:
                self._record(trainer, "control_rejected", f"rejected: {exc}", cmd)
            except Exception as exc:  # noqa: BLE001 -- a command must never kill the run it steers
                self._record(trainer, "control_rejected", f"failed: {type(exc).__name__}: {exc}", cmd)
            path.unlink(missing_ok=True)

    def apply(self, trainer: Trainer, cmd: dict[str, Any]) -> None:
        action = cmd.get("action")
        if action == "set" and trainer.dist.world > 1:
            # only rank 0 reads commands: a new LR on rank 0 alone would split the ranks
            raise LmforgeError("`set` is not available under torchrun yet",
                               "use pause/resume/stop/save/eval, or train in one process")
        if action == "set":
            changes = cmd.get("changes")
            if not isinstance(changes, dict) or not changes:
                raise LmforgeError("`set` needs a mapping of key -> value")
            new = validate_changes(changes, trainer.cfg)
            if new.steps <= trainer.step:
                raise LmforgeError(f"train.steps={new.steps} is not after the current step {trainer.step}")
            old = {k: getattr(trainer.cfg, k.split(".", 1)[1]) for k in changes}
            # `new` was validated as a whole; copying field by field through validate_assignment
            # could fail half-way on a cross-field rule (e.g. lr and min_lr changed together)
            trainer.cfg.__dict__.update({k.split(".", 1)[1]: getattr(new, k.split(".", 1)[1]) for k in changes})
            sync_optimizer(trainer.optimizer, trainer.cfg, self.decay_ratio)
            desc = ", ".join(f"{k}: {old[k]} -> {getattr(new, k.split('.', 1)[1])}" for k in changes)
            self._record(trainer, "control", f"set {desc}", cmd, changes={k: getattr(new, k.split('.', 1)[1])
                                                                           for k in changes}, old=old)
        elif action == "pause":
            self.paused = True
            self._record(trainer, "control", "paused", cmd)
        elif action == "resume":
            self.paused = False
            self._record(trainer, "control", "resumed", cmd)
        elif action == "stop":
            trainer.should_stop = True
            self.paused = False
            self._record(trainer, "control", "stop requested: a checkpoint is written and training ends", cmd)
        elif action == "save":  # every process takes part (under torchrun: at the step boundary)
            trainer.request("save", lambda path: self._record(trainer, "control", f"saved {Path(path).name}", cmd))
        elif action == "eval":
            if not trainer.can_validate:
                raise LmforgeError("this run has no validation split to evaluate on")
            trainer.request("eval", lambda loss: self._record(trainer, "control", f"evaluated: val_loss {loss:.4f}",
                                                              cmd, val_loss=loss))
        else:
            raise LmforgeError(f"unknown control action '{action}'", f"actions: {', '.join(ACTIONS)}")

    def _record(self, trainer: Trainer, kind: str, message: str, cmd: dict[str, Any], **extra: Any) -> None:
        self.run.event(kind, message, step=trainer.step, id=cmd.get("id"), action=cmd.get("action"),
                       reason=cmd.get("reason", "lmforge ctl"), **extra)


def decay_ratios(optimizer: Any, weight_decay: float) -> dict[int, float]:
    """Each param group's weight decay as a multiple of train.weight_decay (0 for norms, biases and
    embeddings), so a live change scales exactly the groups that decay."""
    out = {}
    for group in optimizer.param_groups:
        wd = group.get("weight_decay", 0.0)
        out[id(group)] = wd / weight_decay if weight_decay > 0 else float(group.get("name") in ("decay", "matrix"))
    return out


def sync_optimizer(optimizer: Any, cfg: TrainConfig, decay_ratio: dict[int, float]) -> None:
    """Push optimizer settings that live in the param groups (the LR is set by the loop each step)."""
    for group in optimizer.param_groups:
        if "weight_decay" in group:
            group["weight_decay"] = cfg.weight_decay * decay_ratio.get(id(group), 0.0)
        if "betas" in group:
            group["betas"] = (cfg.beta1, cfg.beta2)


def command(run: RunDir, action: str, assignments: list[str], reason: str | None = None,
            wait: float = 30.0) -> dict[str, Any] | None:
    """`lmforge ctl`: check the command here (so a typo fails at once), send it, and wait for the
    trainer's answer. Returns the answering event, or None when not waiting."""
    from lmforge.config.load import load_config

    if action not in ACTIONS:
        raise LmforgeError(f"unknown control action '{action}'", f"actions: {', '.join(ACTIONS)}")
    if action != "set" and assignments:
        raise LmforgeError(f"`{action}` takes no key=value arguments (got {' '.join(assignments)})")
    changes = None
    if action == "set":  # a typo is reported whether or not a training runs
        current = load_config(run.config).train if run.config.is_file() else None
        changes = parse_changes(assignments, current)
    if trainer_alive(run) is None:
        raise LmforgeError(f"no training is running in {run.root}",
                           f"start one with `lmforge train {run.root}`; `lmforge watch {run.root}` shows its state")
    cid = send(run, action, changes, reason)
    if wait <= 0:
        return None
    outcome = wait_outcome(run, cid, wait)
    if outcome is None:
        raise LmforgeError(f"the trainer did not answer within {wait:g}s; the command stays queued",
                           "it is read at the next logging step (train.log_interval); a paused or slow run answers later")
    if outcome["kind"] == "control_rejected":
        raise LmforgeError(f"the trainer rejected the command: {outcome['message']}")
    return outcome
