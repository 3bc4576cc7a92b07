"""Word neighbours for synonym replacement and insertion, learned from the training documents
themselves, so nothing is downloaded at run time and the words fit the corpus (Early Modern
English has no modern thesaurus).

The method is distributional similarity: positive pointwise mutual information of words within
a small window, reduced by a truncated SVD (Levy, Goldberg & Dagan 2015, "Improving distributional
similarity with lessons learned from word embeddings"), neighbours by cosine. Neighbours are words
used in the same places — often synonyms, sometimes antonyms or siblings (king / duke); the docs
say so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np
from scipy import sparse

from lmforge.augment.ops import WORD


def neighbours(texts: Iterable[str], vocab: int = 3000, skip_top: int = 100, window: int = 2, dim: int = 64,
               k: int = 5, min_cosine: float = 0.5, min_count: int = 5) -> dict[str, list[str]]:
    """For each of the `vocab` most frequent words after the `skip_top` most frequent (function
    words), up to `k` nearest words by cosine of their PPMI-SVD vectors, above `min_cosine`."""
    docs = [[w.lower() for w in WORD.findall(t)] for t in texts]
    counts = Counter(w for d in docs for w in d)
    ranked = [w for w, c in counts.most_common() if c >= min_count]
    words = ranked[skip_top: skip_top + vocab]
    if len(words) < 10:
        return {}
    index = {w: i for i, w in enumerate(ranked[: skip_top + vocab])}  # context words include function words
    rows, cols = [], []
    target = {w: i for i, w in enumerate(words)}
    for d in docs:
        for i, w in enumerate(d):
            t = target.get(w)
            if t is None:
                continue
            for j in range(max(0, i - window), min(len(d), i + window + 1)):
                c = index.get(d[j]) if j != i else None
                if c is not None:
                    rows.append(t)
                    cols.append(c)
    m = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(words), len(index))).tocsr()
    total = m.sum()
    row = np.asarray(m.sum(1)).ravel()
    col = np.asarray(m.sum(0)).ravel() ** 0.75  # context distribution smoothing (Levy et al. 2015)
    col = col / col.sum()
    m = m.tocoo()
    pmi = np.log((m.data / total) / ((row[m.row] / total) * col[m.col]))
    keep = pmi > 0
    ppmi = sparse.csr_matrix((pmi[keep], (m.row[keep], m.col[keep])), shape=m.shape)
    from sklearn.decomposition import TruncatedSVD

    vec = TruncatedSVD(n_components=min(dim, min(ppmi.shape) - 1), random_state=0).fit_transform(ppmi)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True) + 1e-12
    sim = vec @ vec.T
    np.fill_diagonal(sim, -1)
    out: dict[str, list[str]] = {}
    for i, w in enumerate(words):
        best = np.argsort(-sim[i])[:k]
        near = [words[j] for j in best if sim[i, j] >= min_cosine]
        if near:
            out[w] = near
    return out
