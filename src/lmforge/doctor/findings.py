"""A diagnosis: the problem, its evidence, what it means, and the remedies to try, best first.

The texts here are the doctor's explanations; the remedy names are the repairs of repairs.py.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# problem -> (plain-language explanation, remedies best first)
PROBLEMS: dict[str, tuple[str, list[str]]] = {
    "nonfinite": (
        ("the loss, the gradients or the weights became NaN or Inf: a number overflowed (usually an LR "
         "too high, no clipping, or float16 without enough range) and every later step is lost"),
        ["rollback_skip", "lower_lr", "bf16"]),
    "exploding_gradients": (
        ("gradient norms grew by orders of magnitude: each update overshoots, which feeds larger "
         "gradients again (Pascanu et al. 2013); clipping and a lower LR break the loop"),
        ["lower_lr", "rollback_skip", "bf16"]),
    "vanishing_gradients": (
        ("the gradients of the first blocks are orders of magnitude smaller than the last's (or all are "
         "tiny): the early layers barely learn; usually the initialisation is far too small for the depth"),
        ["reinit", "raise_lr"]),
    "loss_spike": (
        ("the loss jumped far above its recent level and the gradient norm with it: one batch or a "
         "too-large step threw the weights off; PaLM restarted before such spikes and skipped the batches"),
        ["rollback_skip", "lower_lr"]),
    "lr_too_high": (
        ("the loss rose above where it started or far above its best (divergence), or each step changes "
         "the weights by more than a tenth of their size: the learning rate is too high"),
        ["lower_lr", "rollback_skip"]),
    "lr_too_low": (
        ("each step changes the weights by less than 3e-4 of their size (healthy runs measured 2e-3 to "
         "1e-2) and the loss barely moves: the learning rate is too low"),
        ["raise_lr"]),
    "overfitting": (
        ("the validation loss rises while the training loss still falls: the model memorises its training "
         "data instead of learning what carries over"),
        ["stop_early", "raise_regularization"]),
    "underfitting": (
        ("training and validation loss stay near the unigram entropy, the loss of a model that knows only "
         "how common each token is, and no longer fall: the model uses almost nothing of the context"),
        ["lower_regularization", "raise_lr", "lower_lr", "larger_model"]),
    "plateau": (
        ("the loss has stopped falling over a large part of the run while it is still high: "
         "progress is too slow to reach a good model in the steps left"),
        ["raise_lr", "lower_lr", "larger_model"]),
    "oscillation": (
        ("the loss goes up and down from one logged step to the next by a large share of its level: the "
         "steps overshoot back and forth; a lower LR or a higher momentum smooths them"),
        ["lower_lr"]),
    "dead_units": (
        ("most MLP activations of a block are (near) zero: its units no longer pass signal or gradient"),
        ["reinit", "lower_lr"]),
    "repeated_data": (
        ("the training set is so small that every token has been seen many times: the model sees "
         "repeated batches and will memorise them"),
        ["stop_early", "raise_regularization"]),
    "val_leak": (
        ("validation text also appears in the training data (or validation loss sits below training loss "
         "without dropout): the validation loss flatters the model"),
        ["fix_data"]),
}

# update/weight ratios that tell which way the LR of a slow run is off: the healthy suite runs
# measured 1.8e-3 (end of the cosine) to 1.4e-2 (first steps)
UPDATE_FAST, UPDATE_SLOW = 2e-2, 1e-3

# remedy -> what it does, in plain words (docs/doctor.md has the details)
REMEDIES: dict[str, str] = {
    "rollback_skip": "go back to the last good weights and skip the batches since",
    "lower_lr": "lower the learning rate (tenfold, or after a divergence to what a short LR range test finds) "
                "and clip gradients tighter, training again from step 0 "
                "(after a spike: from the last good weights)",
    "raise_lr": "raise the learning rate (tenfold, or to a healthy update size), training again from step 0",
    "reinit": "re-initialise the weights with the family's default scheme, training again from step 0",
    "stop_early": "put back the weights of the best validation loss and stop",
    "raise_regularization": "more dropout and weight decay",
    "lower_regularization": "no dropout and a tenth of the weight decay, training again from step 0",
    "larger_model": "train a larger model (a new run)",
    "fix_data": "remove the text that validation shares with training (a new run)",
    "bf16": "train in bfloat16 instead of float16 (a new run)",
}

SEVERITY = {"nonfinite": "error", "lr_too_high": "error", "exploding_gradients": "error", "loss_spike": "warning",
            "vanishing_gradients": "error", "overfitting": "warning", "underfitting": "warning",
            "plateau": "warning", "oscillation": "warning", "lr_too_low": "warning", "dead_units": "warning",
            "repeated_data": "warning", "val_leak": "warning"}


@dataclass
class Finding:
    """One diagnosis. `values` are the metric's values over `steps` (a small curve for the figure)."""

    problem: str
    step: int  # when it was detected (the newest step of the evidence)
    first_step: int  # where the evidence starts
    metric: str
    summary: str  # the measured symptom in one line
    steps: list[int] = field(default_factory=list)
    values: list[float | None] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        return SEVERITY[self.problem]

    @property
    def explanation(self) -> str:
        return PROBLEMS[self.problem][0]

    @property
    def remedies(self) -> list[str]:
        ranked = list(PROBLEMS[self.problem][1])
        if self.evidence.get("at_init"):  # blown up before any step: the initialisation, not the LR
            ranked = ["reinit", *[r for r in ranked if r != "reinit"]]
        if self.problem in ("underfitting", "plateau"):  # slow for a reason the evidence can tell
            ratio, dropout = self.evidence.get("update_ratio"), self.evidence.get("dropout") or 0.0
            if self.evidence.get("lr_lowered") or (ratio is not None and ratio > UPDATE_FAST):
                # the steps are large, or this run diverged at ten times its LR: the loss is stuck
                # because it overshoots (Adam's update ratio stays moderate at a far too high LR: its
                # weights grow with it; measured at LR 0.5 in the suite's LR 5 run)
                first = "lower_lr"
            elif ratio is not None and ratio < UPDATE_SLOW:
                first = "raise_lr"
            else:
                first = "lower_regularization" if dropout > 0 else "raise_lr"
            ranked = [first, *[r for r in ranked if r != first]]
        return ranked

    def record(self) -> dict[str, Any]:
        """The events.jsonl fields of a `diagnosis` event."""
        out = asdict(self)
        out["values"] = [None if v is None or not math.isfinite(v) else round(float(v), 6)
                         for v in self.values]
        out.update(severity=self.severity, explanation=self.explanation, remedies=self.remedies,
                   remedy_texts=[REMEDIES[r] for r in self.remedies])
        return out
