"""Peak memory and throughput of `lmforge data` on inputs far larger than memory should allow.

Generates a JSON Lines .gz file and a plain-text file under a scratch folder (default /tmp),
runs `lmforge data` on each under `/usr/bin/time -v` (default config, near dedup on), reports
peak RSS, wall time and MB/s, and deletes the files. Sizes are in GB of the file on disk.

    python bench/data_stream.py --gz-gb 2 --txt-gb 3
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_WORDS = ["the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not", "he", "I", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "they", "you", "were", "her", "she", "there", "been", "one", "all", "we", "their", "has", "would", "when", "if", "so", "no", "what", "up", "out", "about", "into", "than", "them", "can", "only", "other", "new", "some", "could", "these", "two", "may", "first", "then", "do", "any", "like", "my", "now", "over", "such", "our", "man", "me", "even", "most", "made", "after", "also", "did", "many", "before", "must", "through", "back", "years", "where", "much", "your", "way", "well", "down", "should", "because", "each", "just", "those", "people", "how", "too", "little", "state", "good", "very", "make", "world", "still", "own", "see", "men", "work", "long", "get", "here", "between", "both", "life", "being", "under", "never", "day", "same", "another", "know", "while", "last", "might", "us", "great", "old", "year", "off", "come", "since", "against", "go", "came", "right", "used", "take", "three", "river", "garden", "letter", "morning", "window", "harbour"]


def _sentences(rng: np.random.Generator, n: int) -> list[str]:
    out = []
    for _ in range(n):
        words = rng.choice(_WORDS, size=int(rng.integers(8, 24)))
        out.append(" ".join(words).capitalize() + ".")
    return out


def _document(rng: np.random.Generator, pool: list[str], k: int) -> str:
    """About k sentences in paragraphs of 4-8; a random number keeps every document distinct."""
    picks = rng.integers(0, len(pool), size=k)
    paras, i = [], 0
    while i < k:
        j = i + int(rng.integers(4, 9))
        paras.append(" ".join(pool[p] for p in picks[i:j]))
        i = j
    return f"Record {int(rng.integers(1 << 62))}. " + "\n\n".join(paras) + "\n"


def make_jsonl_gz(path: Path, gb: float, seed: int = 0) -> int:
    """A .jsonl.gz of `gb` GB on disk; returns the uncompressed bytes."""
    rng = np.random.default_rng(seed)
    pool = _sentences(rng, 50_000)
    raw = 0
    with open(path, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", compresslevel=1) as gz:
        i = 0
        while fh.tell() < gb * 1e9:
            lines = []
            for _ in range(1000):
                k = int(np.clip(rng.lognormal(3.6, 0.7), 4, 600))  # ~40 sentences, ~5 KB, long tail
                lines.append(json.dumps({"id": f"doc{i}", "text": _document(rng, pool, k), "lang": "en"}) + "\n")
                i += 1
            data = "".join(lines).encode()
            raw += len(data)
            gz.write(data)
    return raw


def make_text(path: Path, gb: float, seed: int = 1) -> int:
    rng = np.random.default_rng(seed)
    pool = _sentences(rng, 50_000)
    with open(path, "w", encoding="utf-8") as fh:
        while fh.tell() < gb * 1e9:
            fh.write("".join(_document(rng, pool, 200) + "\n" for _ in range(200)))
        return fh.tell()


def run_data(inputs: Path, run: Path, *overrides: str) -> dict[str, float]:
    """`lmforge data` under /usr/bin/time -v: peak RSS (GiB) and wall seconds."""
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "lmforge", "data", str(run), "--quiet",
           "data.corpus=none", f"data.paths=[{inputs}]", *overrides]
    t = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.time() - t
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    if proc.returncode != 0 or peak is None:
        raise SystemExit(f"lmforge data failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    ledger = json.loads((run / "data" / "ledger.json").read_text(encoding="utf-8"))
    return {"peak_rss_gib": int(peak.group(1)) / 2**20, "wall_s": wall, "documents_in": ledger["in"],
            "kept": ledger["kept"], "balanced": ledger["balanced"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gz-gb", type=float, default=2.0)
    ap.add_argument("--txt-gb", type=float, default=3.0)
    ap.add_argument("--scratch", default="/tmp")
    args = ap.parse_args()
    info = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in info if ln.startswith("flags")), [])
    print(f"CPU: {cpu}, {os.cpu_count()} cores, {' '.join(f for f in flags if f.startswith('avx'))}; "
          f"Python {platform.python_version()}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="lmforge-bench-", dir=args.scratch))
    try:
        for kind, gb in (("jsonl.gz", args.gz_gb), ("txt", args.txt_gb)):
            if gb <= 0:
                continue
            path = folder / f"big.{kind}"
            t = time.time()
            raw = make_jsonl_gz(path, gb) if kind == "jsonl.gz" else make_text(path, gb)
            size = path.stat().st_size
            print(f"{kind}: generated {size / 1e9:.2f} GB on disk ({raw / 1e9:.2f} GB of text and JSON) "
                  f"in {time.time() - t:.0f} s", flush=True)
            res = run_data(path, folder / f"run-{kind}")
            res.update(file_gb=size / 1e9, raw_gb=raw / 1e9, mb_per_s=raw / 1e6 / res["wall_s"])
            print(json.dumps({kind: res}), flush=True)
            path.unlink()
            shutil.rmtree(folder / f"run-{kind}", ignore_errors=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
