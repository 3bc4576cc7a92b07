"""Label issues on real text: passages of the built-in corpus labelled by edition (modern vs First
Folio) or author, a share of the labels flipped at random, cleanlab's find_label_issues on
out-of-fold probabilities (label/issues.py). Prints precision and recall per seed.

usage: python bench/label_issues.py [--field edition|author] [--flip 0.1] [--seeds 3] [--chars 250]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from lmforge.corpora import shakespeare
from lmforge.finetune.passages import cut_passages
from lmforge.label.issues import find_issues, out_of_fold_proba, precision_recall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--field", default="edition", choices=["edition", "author"])
    ap.add_argument("--flip", type=float, default=0.1)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--chars", type=int, default=250)
    ap.add_argument("--per-doc", type=int, default=10)
    args = ap.parse_args()
    authors = ["shakespeare"] if args.field == "edition" else ["shakespeare", "milton"]
    editions = ["modern", "folio"] if args.field == "edition" else ["modern"]
    texts, labels, groups = [], [], []
    for doc in shakespeare.documents(authors, editions):
        for p in cut_passages(doc.path.read_text(encoding="utf-8", errors="replace"), args.chars, args.per_doc):
            texts.append(p)
            labels.append(getattr(doc, args.field))
            groups.append(doc.id)
    names = sorted(set(labels))
    gold = np.array([names.index(x) for x in labels])
    print(platform.processor() or platform.machine(), f"{len(texts)} passages, classes",
          {n: int((gold == i).sum()) for i, n in enumerate(names)})
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        flipped = sorted(rng.choice(len(gold), round(args.flip * len(gold)), replace=False).tolist())
        noisy = gold.copy()
        noisy[flipped] = (gold[flipped] + rng.integers(1, len(names), len(flipped))) % len(names)
        start = time.time()
        proba = out_of_fold_proba(texts, noisy.tolist(), folds=5, seed=seed, groups=groups)
        found = find_issues(noisy.tolist(), proba)
        pr = precision_recall(found, flipped)
        print(f"seed {seed}: flipped {len(flipped)}, found {pr['found']}, precision {pr['precision']:.3f}, "
              f"recall {pr['recall']:.3f}, {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
