"""Memory per record of the data stage's phase 2 (dedup, mixing, splits, outputs), without phase 1.

Phase 2 holds state for every document of the corpus, so its memory follows the number of
records, not their bytes. This feeds N short generated records (with exact and near copies)
straight into `stage.run_phase2` and `stage._write_outputs`, and reports peak RSS, so the cost
per record can be measured at full corpus counts in minutes. With --trace it also prints
tracemalloc's largest holders at the end of phase 2 (slow; use small N).

    python bench/data_phase2.py --records 200000 400000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

_WORDS = [
    'river', 'garden', 'letter', 'morning', 'window', 'harbour', 'stone', 'bridge',
    'winter', 'candle', 'market', 'lantern', 'orchard', 'meadow', 'valley', 'thunder',
    'silver', 'castle', 'shadow', 'forest', 'island', 'mirror', 'feather', 'ribbon',
]


def records(n: int, seed: int = 0) -> Iterator[dict]:
    """n records of ~40 words; every 50th repeats an earlier one and every 50th (offset 25) is a
    near copy, so exact and near dedup both have work. Two sources, one with a label."""
    rng = np.random.default_rng(seed)
    kept: list[str] = []
    for i in range(n):
        if i % 50 == 49 and kept:
            text = kept[int(rng.integers(len(kept)))]
        elif i % 50 == 25 and kept:
            words = kept[-1].split()
            words[int(rng.integers(len(words)))] = "changed"
            text = " ".join(words)
        else:
            text = " ".join(rng.choice(_WORDS, size=40)) + f" {i}."
            if len(kept) < 1000:
                kept.append(text)
        yield {"id": f"doc{i}", "source": "a" if i % 3 else "b", "text": text, "seq": [0, i]}


def run(n: int, trace: bool) -> dict[str, float]:
    from lmforge.config.schema import DataConfig
    from lmforge.data import stage
    from lmforge.data.ledger import LedgerBuilder
    from lmforge.rundir import RunDir

    if trace:
        import tracemalloc

        tracemalloc.start(3)
        inner = stage.assign_splits

        def split_and_show(*args: object) -> object:  # phase 2 holds the most just before the splits
            for stat in tracemalloc.take_snapshot().statistics("lineno")[:12]:
                print(stat, file=sys.stderr)
            return inner(*args)

        stage.assign_splits = split_and_show
    cfg = DataConfig(corpus="none", paths=["unused"], min_chars=1)
    with tempfile.TemporaryDirectory(prefix="lmforge-p2-") as tmp:
        run_dir = RunDir(Path(tmp) / "run")
        run_dir.data.mkdir(parents=True)
        folder = run_dir.data / ".phase2"
        spool, rejects = stage.Spool(folder / "kept.jsonl"), stage._Rejects(folder / "rejected.jsonl")
        ids = stage._UniqueIds()
        t = time.time()
        rows, info = stage.run_phase2(lambda: (ids(r) for r in records(n)), cfg, spool, rejects, folder)
        ledger = LedgerBuilder()
        stage._write_outputs(run_dir, spool, rows, rejects, ledger)
        out = ledger.build({}, info)
        spool.close()
        rejects.spool.close()
    return {"records": n, "kept": out["kept"], "rejected": out["rejected"], "seconds": round(time.time() - t, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, nargs="+", default=[100_000, 200_000])
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a single size, in this process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run(args.records[0], args.trace)), flush=True)
        return
    results = []
    for n in args.records:  # each size in a fresh process, so peak RSS is its own
        cmd = [sys.executable, __file__, "--one", "--records", str(n)] + (["--trace"] if args.trace else [])
        line = subprocess.run(cmd, check=True, capture_output=False, stdout=subprocess.PIPE, text=True).stdout
        results.append(json.loads(line.strip().splitlines()[-1]))
        print(line.strip(), flush=True)
    if len(results) > 1:
        a, b = results[0], results[-1]
        per = (b["peak_rss_mib"] - a["peak_rss_mib"]) * 2**20 / (b["records"] - a["records"])
        print(json.dumps({"bytes_per_record": round(per)}))


if __name__ == "__main__":
    main()
