"""Did the search find a setting as good as the grid's, in expectation? Retrains the settings that
`bench/tune_search.py` runs picked, with fresh training seeds, and measures the compute a search
needed before its pick was as good on average as the full grid's pick.

Why: the grid's best validation loss is the lowest of 36 single runs, each with its own training
noise, so "reaching it exactly" asks a search to beat a lucky draw. A user keeps the setting, not
the draw: what matters is how well that setting trains again. So for each search seed this script
takes the grid's pick (its lowest value) and every pick a search held along the way (its best
completed trial so far, by observed value), retrains each with the same K fresh training seeds
(paired: the same seeds for every setting, none of them a search seed), and reports, per method,
the share of the grid's compute after which the search's pick had a mean value at or below the
grid pick's mean. The grid is measured the same way against its own final pick.

Usage (from the repository root):

    .venv/bin/python bench/tune_retrain.py --results tune_lr_range_seen,tune_lr_range_heldout
                                           [--retrain-seeds 8] [--first-retrain-seed 10000]
                                           [--jobs 2] [--name tune_retrain] [--out runs/bench-tune-retrain]
                                           [--analyse] [--recheck model.n_embd]

`--recheck KEY` asks whether a search would end better by re-checking its leaders: for each search
seed it also retrains each search's best completed trial for every value of KEY (the best trial
at each width, say) and scores the rule "search for less of the budget, then train the best trial
of each value m more times and keep the one with the lowest mean", with m = 1, 2 or 4 and the
budget those extra runs take out of the search. The first 4 retrain seeds are the extra runs; the
remaining ones judge.

Reads bench/results/NAME.json for each name in --results (runs with the grid and one or more
searches), writes bench/results/--name.json and prints the table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing as mp
import platform
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import optuna
import torch
from tune_search import cpu_line

from lmforge.compare.search import search_config
from lmforge.console import set_quiet
from lmforge.rundir import RunDir
from lmforge.train.stage import new_trainer
from lmforge.tune.study import prepare
from lmforge.tune.trial import trial_config

RESULTS = Path(__file__).resolve().parent / "results"


def picks(curve: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """(compute spent, params) each time the search's best completed trial changed."""
    out, best = [], math.inf
    for p in curve:
        if p["outcome"] == "complete" and p["value"] is not None and p["value"] < best:
            best = p["value"]
            out.append((p["spent"], p["params"]))
    return out


def key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def retrain(job: tuple[str, list[str], str, int]) -> tuple[str, int, float]:
    """Train one setting with one training seed; its validation loss at the last step, as a trial's."""
    root, overrides, params, seed = job
    set_quiet(True)
    cfg = trial_config(search_config(None, overrides), json.loads(params), 1)
    cfg.train.seed = seed
    run = RunDir(Path(root))
    folder = run.root / "retrain" / f"{hashlib.sha1(params.encode()).hexdigest()[:12]}-{seed}"
    trainer = new_trainer(run, cfg, [], checkpoint_dir=folder)
    trainer.fit()
    value = float(trainer.val_loss())
    shutil.rmtree(folder, ignore_errors=True)
    return params, seed, value if math.isfinite(value) else math.inf


def reach(pick_list: list[tuple[int, dict[str, Any]]], mean: dict[str, float], target: float) -> int | None:
    """Compute spent when the search's pick first had a retrained mean at or below `target`."""
    return next((spent for spent, params in pick_list if mean[key(params)] <= target + 1e-12), None)


def summary(shares: list[float | None]) -> dict[str, Any]:
    done = sorted(s for s in shares if s is not None)
    med = statistics.median([s if s is not None else math.inf for s in shares])
    return {"median": med, "min": done[0] if done else None, "max": done[-1] if done else None,
            "missed": len(shares) - len(done), "seeds": len(shares)}


def pick_at(pick_list: list[tuple[int, dict[str, Any]]], spent: float) -> dict[str, Any] | None:
    """The search's pick once it had spent `spent` steps (None before its first completed trial)."""
    held = [params for at, params in pick_list if at <= spent]
    return held[-1] if held else None


def analyse(per_seed: dict[str, dict[str, list]], values: dict[str, dict[int, float]], budget: int) -> dict[str, Any]:
    """Per method: the share of the grid's compute until its pick was, on retrained average, as good
    as the grid's final pick (first reach); and, at a third of the grid's compute, how many seeds'
    picks were as good and by how much they were worse (mean over the fresh seeds, paired)."""
    mean = {p: statistics.fmean(v.values()) for p, v in values.items()}
    methods = list(next(iter(per_seed.values())))
    table: dict[str, Any] = {}
    for m in methods:
        shares, third, final = [], [], []
        for d in per_seed.values():
            target = mean[key(d["grid"][-1][1])]  # the grid's pick: its lowest single value
            got = reach(d[m], mean, target)
            shares.append(None if got is None else got / budget)
            early = pick_at(d[m], budget / 3)
            third.append(math.inf if early is None else mean[key(early)] - target)
            final.append(mean[key(d[m][-1][1])] - target)
        table[m] = summary(shares) | {
            "shares": shares, "at_third_as_good": sum(t <= 1e-12 for t in third),
            "at_third_minus_grid_pick": statistics.median(third), "final_minus_grid_pick": statistics.median(final),
            "at_third": third, "final": final}
    return {"budget_steps": budget, "table": table, "means": mean}


RECHECK = (1, 2, 4)  # extra seeds per re-checked setting; the first 4 retrain seeds re-check, the rest judge


def region_bests(curve: list[dict[str, Any]], name: str, spent_max: float) -> list[dict[str, Any]]:
    """The params of the best completed trial for each value of `name`, within `spent_max` steps."""
    best: dict[Any, dict[str, Any]] = {}
    for p in curve:
        if p["outcome"] == "complete" and p["value"] is not None and p["spent"] <= spent_max:
            v = p["params"][name]
            if v not in best or p["value"] < best[v]["value"]:
                best[v] = p
    return [p["params"] for p in best.values()]


def recheck_plans(curves: dict[str, dict[str, list]], name: str, per_trial: int, budget: int) -> dict[str, Any]:
    """For each extra-seed count m: the share of the budget left to search once the best trial of
    each value of `name` is trained m more times, and (per seed, per search) those trials."""
    n_values = len({p["params"][name] for d in curves.values() for p in d["grid"]})
    plans = {}
    for m in RECHECK:
        share = 1 - n_values * m * per_trial / budget
        plans[m] = {"share": share, "picks": {s: {meth: region_bests(c, name, share * budget)
                                                  for meth, c in d.items() if meth != "grid"}
                                              for s, d in curves.items()}}
    return plans


def recheck_table(plans: dict[str, Any], per_seed: dict[str, dict[str, list]], values: dict[str, dict[int, float]],
                  seeds_train: list[int]) -> dict[str, Any]:
    """Final gap to the grid's pick (mean over the judging seeds) of each search's last pick, and
    of the re-checked pick: searching for `share` of the budget, then keeping the best trial of
    each value whose m extra runs have the lowest mean."""
    check, judge = seeds_train[:max(RECHECK)], seeds_train[max(RECHECK):]

    def mean(params: dict[str, Any], seeds: list[int]) -> float:
        return statistics.fmean(values[key(params)][k] for k in seeds)

    def describe(gaps: list[float], share: float) -> dict[str, Any]:
        gaps = sorted(gaps)
        return {"search_share": share, "median": statistics.median(gaps), "p75": gaps[int(0.75 * len(gaps))],
                "p90": gaps[int(0.9 * len(gaps))], "as_good": sum(g <= 1e-12 for g in gaps),
                "within_0.01": sum(g <= 0.01 for g in gaps), "worse_by_0.07": sum(g >= 0.07 for g in gaps),
                "seeds": len(gaps)}

    table = {}
    for meth in next(iter(per_seed.values())):
        if meth == "grid":
            continue
        target = {s: mean(d["grid"][-1][1], judge) for s, d in per_seed.items()}
        table[f"{meth}, its last pick"] = describe(
            [mean(d[meth][-1][1], judge) - target[s] for s, d in per_seed.items()], 1.0)
        for m, plan in plans.items():
            gaps = [mean(min(plan["picks"][s][meth], key=lambda p: mean(p, check[:m])), judge) - target[s]
                    for s in per_seed]
            table[f"{meth}, re-checked with {m} extra seed(s)"] = describe(gaps, plan["share"])
    return table


def report(record: dict[str, Any]) -> None:
    """The table, one line per method."""
    k = len(record["retrain_seeds"])
    rows = record["table"]
    n = next(iter(rows.values()))["seeds"]
    print(f"\neach pick retrained with the same {k} fresh training seeds; over {n} search seeds:")
    for m, row in rows.items():
        print(f"  {m}: as good as the grid's pick, on average, after a median {row['median']:.2f} of the grid's "
              f"compute ({row['min']}-{row['max']}, missed in {row['missed']}); at a third of it, "
              f"{row['at_third_as_good']} of {n} as good, median gap {row['at_third_minus_grid_pick']:+.4f}; "
              f"at the end, median gap {row['final_minus_grid_pick']:+.4f}")
    if record.get("recheck"):
        print(f"\nre-checking the best trial of each {record['recheck_key']} value (judged on the last "
              f"{k - max(RECHECK)} retrain seeds): final gap to the grid's pick over {n} seeds")
        for name, r in record["recheck"].items():
            print(f"  {name} (searching {r['search_share']:.2f} of the budget): median {r['median']:+.4f}, "
                  f"p75 {r['p75']:+.4f}, p90 {r['p90']:+.4f}; as good {r['as_good']}, within 0.01 "
                  f"{r['within_0.01']}, worse by 0.07 or more {r['worse_by_0.07']}")


def run_all(settings: list[str], overrides: list[str], seeds_train: list[int], jobs: int,
            out: Path) -> dict[str, dict[int, float]]:
    """Every setting, once per fresh training seed, on `jobs` processes."""
    set_quiet(True)
    prepare(RunDir(out), search_config(None, overrides))
    work = [(str(out), overrides, s, k) for s in settings for k in seeds_train]
    print(f"{len(settings)} settings x {len(seeds_train)} training seeds = {len(work)} runs on {jobs} processes",
          flush=True)
    values: dict[str, dict[int, float]] = {}
    started = time.time()
    with mp.get_context("spawn").Pool(jobs) as pool:
        for i, (params, seed, value) in enumerate(pool.imap_unordered(retrain, work, chunksize=4), 1):
            values.setdefault(params, {})[seed] = value
            if i % 500 == 0:
                print(f"  {i}/{len(work)} runs, {time.time() - started:.0f} s", flush=True)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True, help="comma-separated names of bench/results/NAME.json")
    parser.add_argument("--retrain-seeds", type=int, default=8)
    parser.add_argument("--first-retrain-seed", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2, help="processes, one training thread each")
    parser.add_argument("--name", default="tune_retrain")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-tune-retrain"))
    parser.add_argument("--analyse", action="store_true", help="recompute the table from bench/results/NAME.json")
    parser.add_argument("--recheck", metavar="KEY", help="also retrain each search's best trial per value of KEY "
                        "(e.g. model.n_embd) and measure re-checking them with extra seeds; with --analyse, "
                        "only the settings not yet in NAME.json are trained")
    args = parser.parse_args()
    started = time.time()
    records = [json.loads((RESULTS / f"{n}.json").read_text()) for n in args.results.split(",")]
    overrides = records[0]["settings"]["overrides"]
    if any(r["settings"]["overrides"] != overrides or r["space"] != records[0]["space"] for r in records):
        raise SystemExit("the results files were run with different settings or spaces; give one kind at a time")
    methods = ["grid", *(m for m in records[0]["curves"] if m != "grid")]
    per_seed = {s: {m: picks(r["curves"][m][s]) for m in methods} for r in records for s in r["curves"]["grid"]}
    curves = {s: {m: r["curves"][m][s] for m in methods} for r in records for s in r["curves"]["grid"]}
    budget = records[0]["budget_steps"]
    settings = {key(p) for d in per_seed.values() for pl in d.values() for _, p in pl}
    plans = {}
    if args.recheck:
        per_trial = next(iter(curves.values()))["grid"][0]["steps"]
        plans = recheck_plans(curves, args.recheck, per_trial, budget)
        settings |= {key(p) for plan in plans.values() for d in plan["picks"].values() for ps in d.values()
                     for p in ps}
    out = RESULTS / f"{args.name}.json"
    if args.analyse:
        record = json.loads(out.read_text())
        record["values"] = {p: {int(k): v for k, v in d.items()} for p, d in record["values"].items()}
        missing = sorted(settings - set(record["values"]))
        if missing:
            record["values"] |= run_all(missing, overrides, record["retrain_seeds"], args.jobs, args.out)
            record["recheck_wall_s"] = time.time() - started
    else:
        seeds_train = list(range(args.first_retrain_seed, args.first_retrain_seed + args.retrain_seeds))
        record = {"results": args.results.split(","), "retrain_seeds": seeds_train,
                  "values": run_all(sorted(settings), overrides, seeds_train, args.jobs, args.out),
                  "wall_s": time.time() - started, "cpu": cpu_line(),
                  "versions": {"optuna": optuna.__version__, "torch": torch.__version__,
                               "python": platform.python_version()}}
    record.update(analyse(per_seed, record["values"], budget))
    if plans:
        record["recheck_key"] = args.recheck
        record["recheck"] = recheck_table(plans, per_seed, record["values"], record["retrain_seeds"])
    out.write_text(json.dumps(record, separators=(",", ":")) + "\n")
    report(record)
    extra = f" (+{record['recheck_wall_s']:.0f} s for the re-check settings)" if "recheck_wall_s" in record else ""
    print(f"wall {record['wall_s']:.0f} s{extra}; cpu {record['cpu']}; {record['versions']}")


if __name__ == "__main__":
    main()
