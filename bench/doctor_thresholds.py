"""How the doctor's thresholds were chosen: sweep each one over the scenario suite's recorded runs
(bench/doctor.py) and report, per value, the recall of the problem it serves and the false alarms
on the healthy runs. The offline doctor replays each run's logs (no training), so a sweep takes
seconds. Detection only: repairs keep what the suite's auto runs did.

    PYTHONPATH=src .venv/bin/python bench/doctor_thresholds.py runs/bench-doctor
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lmforge.compare.problems import rescore

SWEEPS: dict[str, tuple[str, list[float]]] = {
    "spike_z": ("loss_spike", [3, 4, 6, 8, 12]),
    "explode_factor": ("exploding_gradients", [5, 10, 20, 50, 100]),
    "diverge_factor": ("lr_too_high", [1.1, 1.25, 1.5, 2.0, 3.0]),
    "update_low": ("lr_too_low", [1e-5, 1e-4, 3e-4, 1e-3, 3e-3]),
    "vanish_share": ("vanishing_gradients", [0.01, 0.03, 0.05, 0.1, 0.2]),
    "overfit_rise": ("overfitting", [0.0, 0.01, 0.02, 0.05, 0.1]),
    "underfit_share": ("underfitting", [0.8, 0.85, 0.9, 0.93, 0.97, 1.0]),
    "plateau_gain": ("plateau", [0.003, 0.01, 0.02, 0.05]),
    "plateau_level": ("plateau", [0.8, 0.85, 0.9, 0.95]),
    "oscillation_swing": ("oscillation", [0.02, 0.05, 0.1, 0.2]),
    "dead_share": ("dead_units", [0.5, 0.7, 0.8, 0.9, 0.95]),
    "repeat_epochs": ("repeated_data", [1, 2, 4, 8, 16]),
    "leak_overlap": ("val_leak", [0.001, 0.01, 0.03, 0.05]),
    "min_progress": ("underfitting", [0.1, 0.2, 0.3, 0.5]),
}


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/bench-doctor")
    result = json.loads((out / "problems.json").read_text())
    keys = sys.argv[2:] or list(SWEEPS)
    for key in keys:
        problem, values = SWEEPS[key]
        print(f"\n{key} (serves {problem})")
        for v in values:
            r = rescore(out, result, **{key: v})
            row = r["problems"].get(problem, {})
            alarms = {k: a for k, a in r["false_alarms"].items() if a}
            print(f"  {v:<8g} recall {row.get('detected', 0)}/{len(row.get('scenarios', []))}, precision "
                  f"{row.get('precision') if row.get('precision') is None else round(row['precision'], 2)}, "
                  f"steps {row.get('steps')}, healthy runs with an alarm: {len(alarms)} {alarms or ''}")


if __name__ == "__main__":
    main()
