"""The Dawid-Skene label model recovers known labels from noisy rules better than a majority
vote; majority vote counts votes; abstentions carry nothing."""

from __future__ import annotations

import numpy as np

from lmforge.label.model import ABSTAIN, dawid_skene, majority_vote, tied


def noisy_votes(n: int, k: int, accuracies: list[float], coverage: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gold labels and votes of voters each right with its own probability (wrong: a random
    other class), voting on a random `coverage` share of the records."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, k, n)
    votes = np.full((n, len(accuracies)), ABSTAIN)
    for j, acc in enumerate(accuracies):
        on = rng.random(n) < coverage
        right = rng.random(n) < acc
        wrong = (gold + rng.integers(1, k, n)) % k
        votes[on, j] = np.where(right, gold, wrong)[on]
    return gold, votes


def test_dawid_skene_beats_majority_vote_with_unequal_voters() -> None:
    # two careful voters and five careless ones: a vote count trusts the careless majority
    gold, votes = noisy_votes(3000, 3, [0.92, 0.9, 0.45, 0.45, 0.45, 0.45, 0.45], coverage=0.8, seed=0)
    covered = (votes != ABSTAIN).any(1)
    mv = majority_vote(votes, 3).argmax(1)
    post, conf, priors = dawid_skene(votes, 3)
    ds = post.argmax(1)
    acc_mv = (mv[covered] == gold[covered]).mean()
    acc_ds = (ds[covered] == gold[covered]).mean()
    assert acc_ds > acc_mv + 0.05, (acc_ds, acc_mv)
    # the estimated confusion matrices recover each voter's accuracy (when it votes) and coverage
    voting = conf[:, :, :3] / conf[:, :, :3].sum(2, keepdims=True)
    learned = np.array([np.trace(voting[j]) / 3 for j in range(votes.shape[1])])
    assert np.allclose(conf[:, :, 3], 0.2, atol=0.03)
    assert np.allclose(learned[:2], [0.92, 0.9], atol=0.04) and np.all(np.abs(learned[2:] - 0.45) < 0.05)
    assert np.allclose(priors, 1 / 3, atol=0.04)
    # probabilities are calibrated enough to rank: the surest half is more accurate than the rest
    sure = post.max(1)
    top = sure >= np.median(sure[covered])
    assert (ds[top & covered] == gold[top & covered]).mean() > (ds[~top & covered] == gold[~top & covered]).mean()


def test_majority_vote_shares_and_uncovered_records() -> None:
    votes = np.array([[0, 0, 1], [1, ABSTAIN, ABSTAIN], [ABSTAIN, ABSTAIN, ABSTAIN]])
    post = majority_vote(votes, 2)
    assert np.allclose(post, [[2 / 3, 1 / 3], [0, 1], [0.5, 0.5]])
    ds, _, priors = dawid_skene(votes, 2)
    assert np.allclose(ds[2], priors)  # no vote: the prior


def test_single_class_functions_inform_through_their_abstentions() -> None:
    # one function votes war on war records only, another love on love records only, a third
    # votes war on everything: counting votes ties every love record; abstentions tell them apart
    votes = np.array([[0, ABSTAIN, 0]] * 50 + [[ABSTAIN, 1, 0]] * 50)
    gold = np.array([0] * 50 + [1] * 50)
    assert tied(majority_vote(votes, 2))[50:].all()
    assert (dawid_skene(votes, 2)[0].argmax(1) == gold).all()
