"""From votes to labels: majority vote, and the Dawid-Skene label model.

Votes are an (n records x m labeling functions) integer matrix, a class index or ABSTAIN (-1).
Dawid & Skene 1979 ("Maximum likelihood estimation of observer error-rates using the EM
algorithm", Applied Statistics 28(1)) treat each voter as having its own confusion matrix
pi_j[true, voted] and estimate the matrices, the class priors and every record's posterior over
classes by EM: the E-step computes posteriors from the current matrices, the M-step re-estimates
matrices and priors from the posteriors. Unlike a majority vote, a voter that is often wrong
counts for little and one that is rarely wrong for much.

Labeling functions abstain, and most vote one class only ("mentions a sword: war"). If an
abstention were a missing answer, such a function would always give the same answer and tell
nothing; so here abstaining is one more answer a voter can give (each confusion matrix has k + 1
columns, the last for ABSTAIN), and a function that votes war on war records and abstains on the
rest is recognised as informative about both.
"""

from __future__ import annotations

import numpy as np

ABSTAIN = -1


def tied(post: np.ndarray) -> np.ndarray:
    """Records whose two most likely classes are equally likely (a tied vote decides nothing)."""
    if post.shape[1] < 2:
        return np.zeros(len(post), dtype=bool)
    top = np.sort(post, 1)
    return np.isclose(top[:, -1], top[:, -2])


def majority_vote(votes: np.ndarray, k: int) -> np.ndarray:
    """Posteriors (n, k): each record's share of votes per class; a record without votes gets
    the uniform distribution (and a label probability of 1/k)."""
    counts = np.stack([(votes == c).sum(1) for c in range(k)], 1).astype(float)
    total = counts.sum(1, keepdims=True)
    return np.where(total > 0, counts / np.maximum(total, 1), 1.0 / k)


def dawid_skene(votes: np.ndarray, k: int, iterations: int = 100, tol: float = 1e-6, smoothing: float = 0.01
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EM for the Dawid-Skene model. Returns posteriors (n, k), confusion matrices (m, k, k + 1:
    the last column is the chance of abstaining) and priors (k,). Starts from the majority vote;
    `smoothing` keeps every matrix entry above zero."""
    n, m = votes.shape
    onehot = np.zeros((n, m, k + 1))
    answer = np.where(votes == ABSTAIN, k, votes)
    onehot[np.arange(n)[:, None], np.arange(m)[None, :], answer] = 1.0
    covered = (votes != ABSTAIN).any(1)
    post = majority_vote(votes, k)
    for _ in range(iterations):
        # M-step: priors and each voter's confusion matrix from the current posteriors
        priors = post[covered].mean(0) if covered.any() else np.full(k, 1.0 / k)
        conf = np.einsum("ik,ijl->jkl", post, onehot) + smoothing
        conf /= conf.sum(2, keepdims=True)
        # E-step: log posterior = log prior + sum over voters of log pi_j[true, voted]
        logp = np.log(priors + 1e-12)[None, :] + np.einsum("ijl,jkl->ik", onehot, np.log(conf))
        logp -= logp.max(1, keepdims=True)
        new = np.exp(logp)
        new /= new.sum(1, keepdims=True)
        new[~covered] = priors
        change = float(np.abs(new - post).max())
        post = new
        if change < tol:
            break
    return post, conf, priors
