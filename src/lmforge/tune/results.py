"""What a study leaves in RUN/tune/: trials.csv, best.yaml, summary.json (with fANOVA importance),
the figures the run report shows, and the trials in TensorBoard's hparams view."""

from __future__ import annotations

import csv
import io
import math
import shutil
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lmforge.config.load import dump_config
from lmforge.config.schema import Config
from lmforge.rundir import RunDir, atomic_write_json, atomic_write_text
from lmforge.tune.objective import best_of
from lmforge.tune.space import with_values
from lmforge.tune.storage import outcome, tune_dir
from lmforge.tune.trial import OUTCOMES

FIGURES = {"history": "optimization history", "parallel": "parallel coordinates",
           "importance": "parameter importance (fANOVA)", "intermediate": "metric at each evaluation"}


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial: number, outcome, metric, steps, seconds, each key of the space, reason."""
    keys = list(study.user_attrs.get("space", {})) or sorted({k for t in study.trials for k in t.params})
    rows = []
    for t in study.get_trials(deepcopy=False):
        value = t.value if t.state == TrialState.COMPLETE else (
            list(t.intermediate_values.values())[-1] if t.intermediate_values and outcome(t) == "pruned" else None)
        rows.append({"number": t.number, "state": outcome(t), "value": value,
                     "steps": t.user_attrs.get("steps"), "tokens": t.user_attrs.get("tokens"),
                     "seconds": t.user_attrs.get("seconds"),
                     **{k: t.params.get(k) for k in keys}, "reason": t.user_attrs.get("reason", "")})
    return rows


def write_trials_csv(run: RunDir, study: optuna.Study) -> Path:
    """RUN/tune/trials.csv, rewritten whole (atomically) after every trial."""
    rows = trial_rows(study)
    path = tune_dir(run) / "trials.csv"
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
    return path


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)]
    way = study.direction.name.lower()
    return best_of(done, way, key=lambda t: t.value) if done else None


def best_config(base: Config, trial: FrozenTrial) -> Config:
    """The base config with the best trial's values: a complete config `lmforge run` trains."""
    return with_values(base, dict(trial.params))


def importance(study: optuna.Study) -> dict[str, float] | None:
    """fANOVA importance (Hutter et al. 2014, Optuna's implementation) of each key over the
    completed trials; None with fewer than two, or when no key varies."""
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 2:
        return None
    try:
        return {k: float(v) for k, v in get_param_importances(
            study, evaluator=FanovaImportanceEvaluator(seed=0)).items()}
    except (RuntimeError, ValueError):
        return None


def write_figures(study: optuna.Study, folder: Path, scores: dict[str, float] | None) -> list[str]:
    """Optuna's matplotlib figures as PNGs; a figure with nothing to show is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    def parallel() -> Any:
        return ovm.plot_parallel_coordinate(study)

    def importances() -> Any:
        if not scores:
            raise ValueError("no importance")
        _, ax = plt.subplots(figsize=(6, 0.5 + 0.4 * len(scores)))
        names = list(scores)[::-1]
        ax.barh(names, [scores[n] for n in names])
        ax.set_xlabel("fANOVA importance (share of the metric's variance)")
        ax.set_title("parameter importance")
        return ax

    makers = {"history": lambda: ovm.plot_optimization_history(study), "parallel": parallel,
              "importance": importances, "intermediate": lambda: ovm.plot_intermediate_values(study)}
    written = []
    # Optuna marks its matplotlib plots experimental, and sets a style: both stay inside this block
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore")
        for name, make in makers.items():
            try:
                ax = make()
            except (ValueError, RuntimeError):
                continue
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(max(fig.get_size_inches()[0], 7), max(fig.get_size_inches()[1], 4))
            fig.tight_layout()
            fig.savefig(folder / f"{name}.png", dpi=100)
            plt.close(fig)
            written.append(name)
    return written


def write_hparams(study: optuna.Study, folder: Path, metric: str) -> None:
    """Each finished trial as one run of TensorBoard's hparams view (RUN/tune/tb/)."""
    from torch.utils.tensorboard import SummaryWriter

    shutil.rmtree(folder, ignore_errors=True)
    with SummaryWriter(log_dir=str(folder)) as writer:
        for row in trial_rows(study):
            if row["state"] not in OUTCOMES:
                continue
            params = {k: v for k, v in row.items() if k not in ("number", "value", "tokens", "reason", "seconds")
                      and v is not None}
            params["trial"] = row["number"]
            value = row["value"] if row["value"] is not None else math.nan
            tag = metric.replace(":", "_")  # task:NAME.METRIC: a colon is not a tag character
            writer.add_hparams(params, {f"hparam/{tag}": value, "hparam/steps": row["steps"] or 0},
                               run_name=f"trial-{row['number']:04d}")


def write_results(run: RunDir, base: Config, study: optuna.Study) -> dict[str, Any]:
    """Everything above, and summary.json, which the run report reads."""
    folder = tune_dir(run)
    write_trials_csv(run, study)
    rows = trial_rows(study)
    best = best_trial(study)
    scores = importance(study)
    summary: dict[str, Any] = {
        "study": study.study_name, "metric": base.tune.metric, "direction": study.direction.name.lower(),
        "sampler": base.tune.sampler,
        "pruner": base.tune.pruner, "trials": len(rows),
        "outcomes": {o: sum(r["state"] == o for r in rows) for o in
                     (*OUTCOMES, "interrupted", "running", "waiting")},
        "steps": sum(r["steps"] or 0 for r in rows), "best": None, "importance": scores}
    if best is not None:
        atomic_write_text(folder / "best.yaml",
                          f"# the best trial ({best.number}) of study {study.study_name}: "
                          f"{base.tune.metric} {best.value:.4f}\n" + dump_config(best_config(base, best)))
        summary["best"] = {"trial": best.number, "value": best.value, "params": best.params,
                           "steps": best.user_attrs.get("steps")}
    summary["figures"] = write_figures(study, folder, scores)
    write_hparams(study, folder / "tb", base.tune.metric)
    atomic_write_json(folder / "summary.json", summary)
    return summary
