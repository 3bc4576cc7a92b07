"""Quality-filter throughput and agreement: lmforge's rules against datatrove's own filters.

Corpus: the built-in plays cut into passages of --lines lines (so there are many documents,
and both decisions occur). Each rule runs on the same passages in both systems, alternating, for
--repeats rounds; we report MB/s and documents/s (median), the speed ratio, and the fraction of
identical keep/reject decisions. Settings are equal: datatrove's defaults, and lmforge's
thresholds set to the same values (C4 with 3 words per line and 5 sentences, as datatrove).
datatrove's word splitting needs spaCy (pip install 'lmforge[bench-data]').

    .venv/bin/python bench/data_filters.py --lines 40 --repeats 3
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from lmforge.corpora import shakespeare
from lmforge.data import quality
from lmforge.data.clean import strip_gutenberg


def passages(lines: int) -> list[str]:
    out = []
    for doc in shakespeare.documents(["shakespeare"], ["modern"]):
        text = strip_gutenberg(doc.path.read_text(encoding="utf-8-sig", errors="replace"))[0].splitlines()
        out += ["\n".join(text[i:i + lines]) + "\n" for i in range(0, len(text), lines)]
    return [p for p in out if p.strip()]


def datatrove_filters() -> dict:
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    return {"gopher_quality": GopherQualityFilter(), "gopher_repetition": GopherRepetitionFilter(),
            "c4": C4QualityFilter(filter_no_terminal_punct=True), "fineweb": FineWebQualityFilter()}


def ours() -> dict:
    plan = quality.plan("web", ["gopher_quality", "gopher_repetition", "c4", "fineweb"],
                        {"c4.min_words_per_line": 3, "c4.min_sentences": 5})
    return {name: (quality.RULES[name], params) for name, params in plan.items()}


def decide_dt(flt, docs) -> tuple[list[bool], float]:
    from datatrove.data import Document

    batch = [Document(text=d, id=str(i)) for i, d in enumerate(docs)]
    t = time.perf_counter()
    out = [flt.filter(doc) for doc in batch]
    dt = time.perf_counter() - t
    return [o is True or (isinstance(o, tuple) and o[0]) for o in out], dt


def decide_ours(rule, docs) -> tuple[list[bool], float]:
    fn, params = rule
    t = time.perf_counter()
    out = [fn(d, params) for d in docs]
    dt = time.perf_counter() - t
    return [(o[0] if isinstance(o, tuple) else o) is None for o in out], dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from importlib.metadata import version

    docs = passages(args.lines)
    mb = sum(len(d.encode()) for d in docs) / 1e6
    print(f"machine: {platform.machine()}, python {platform.python_version()}, datatrove "
          f"{version('datatrove')}, spacy {version('spacy')}")
    print(f"documents {len(docs)}, {mb:.2f} MB")
    dt_f, our_f = datatrove_filters(), ours()
    print("| rule | datatrove MB/s | lmforge MB/s | lmforge docs/s | speed ratio | same decision | kept (dt / ours) |")
    print("|---|---|---|---|---|---|---|")
    totals = {"dt": 0.0, "ours": 0.0}
    for name in dt_f:
        t_dt, t_ours = [], []
        for _ in range(args.repeats):
            keep_dt, s = decide_dt(dt_f[name], docs)
            t_dt.append(s)
            keep_ours, s = decide_ours(our_f[name], docs)
            t_ours.append(s)
        a, b = statistics.median(t_dt), statistics.median(t_ours)
        totals["dt"] += a
        totals["ours"] += b
        same = sum(x == y for x, y in zip(keep_dt, keep_ours)) / len(docs)
        print(f"| {name} | {mb / a:.2f} | {mb / b:.2f} | {len(docs) / b:,.0f} | {a / b:.1f}x | {same:.2%} | "
              f"{sum(keep_dt)} / {sum(keep_ours)} |")
    print(f"| all four | {mb / totals['dt']:.2f} | {mb / totals['ours']:.2f} | | {totals['dt'] / totals['ours']:.1f}x | | |")


if __name__ == "__main__":
    main()
