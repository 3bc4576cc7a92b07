"""Each detector on recorded metric sequences: a case it must flag and a healthy one it must not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmforge.config.schema import DoctorConfig
from lmforge.doctor import detect
from lmforge.doctor.history import History, RunFacts, unigram_entropy

T = DoctorConfig()
ENT = 5.0  # unigram entropy of the made-up runs


def healthy_loss(n: int, seed: int = 0) -> np.ndarray:
    """A falling loss with batch noise: 6.2 -> about 3.5."""
    rng = np.random.default_rng(seed)
    return 3.5 + 2.7 * np.exp(-np.arange(n) / (n / 4)) + rng.normal(0, 0.03, n)


def history(loss: np.ndarray, val: list[float] | None = None, gnorm: np.ndarray | None = None,
            every: int = 5, eval_every: int = 25, stats: list[dict[str, float]] | None = None,
            steps: int | None = None, tokens_per_step: int = 1024, train_tokens: int = 700_000,
            dropout: float = 0.0, leak: float | None = None) -> History:
    n = len(loss)
    h = History(RunFacts(steps=steps or n * every, unigram_entropy=ENT, train_tokens=train_tokens,
                         dropout=dropout, leak_overlap=leak))
    g = gnorm if gnorm is not None else np.full(n, 0.5)
    vals = iter(val or [])
    for i in range(n):
        step = (i + 1) * every
        for rec in stats or []:
            if rec["step"] == step:
                h.add("stats", rec)
        h.add("train", {"step": step, "loss": float(loss[i]), "grad_norm": float(g[i]),
                        "tokens": step * tokens_per_step, "skipped_steps": 0})
        if step % eval_every == 0:
            v = next(vals, None)
            if v is not None:
                h.add("eval", {"step": step, "val_loss": v})
    return h


def stat(step: int, blocks: list[float], total: float, ratio: float = 1e-3, zero: float = 0.01) -> dict[str, float]:
    rec: dict[str, float] = {"step": step, "grad_norm/global": total, "update_ratio/global": ratio,
                             "grad_norm/tok_emb.weight": total, "grad_norm/blocks.0.ln1.weight": 0.3}
    for i, b in enumerate(blocks):
        rec[f"grad_norm/blocks.{i}.mlp.fc.weight"] = b
        rec[f"act_zero/blocks.{i}"] = zero
    return rec


def records(h: History) -> list[tuple[str, dict[str, float]]]:
    """A history's records in logged order (evaluations after the training step they follow)."""
    out = [("train", r) for r in h.train] + [("eval", r) for r in h.evals] + [("stats", r) for r in h.stats]
    return sorted(out, key=lambda kr: (kr[1]["step"], {"stats": 0, "train": 1, "eval": 2}[kr[0]]))


def healthy_stats(n: int, every: int = 10, **kw: float) -> list[dict[str, float]]:
    return [stat(s, [0.2, 0.15], 0.6, **kw) for s in range(every, n + 1, every)]


def healthy() -> History:
    loss = healthy_loss(60)
    val = [float(loss[i * 5 + 4]) + 0.05 for i in range(12)]
    return history(loss, val, stats=healthy_stats(300))


@pytest.mark.parametrize("name", list(detect.DETECTORS))
def test_no_detector_fires_on_a_healthy_run(name: str) -> None:
    assert detect.DETECTORS[name](healthy(), T) is None


def test_nonfinite_names_the_first_step_and_parameter() -> None:
    loss = healthy_loss(30)
    loss[17] = math.nan
    stats = healthy_stats(150)
    stats[8]["grad_norm/blocks.1.mlp.fc.weight"] = math.nan  # step 90 = logged step index 17
    f = detect.nonfinite(history(loss, stats=stats), T)
    assert f is not None and f.step == 90 and f.evidence["module"] == "blocks.1.mlp.fc.weight"


def test_exploding_gradients_from_norm_growth_and_block_ratio() -> None:
    g = np.full(40, 0.5)
    g[25:] = 0.5 * np.geomspace(2, 200, 15)
    f = detect.exploding_gradients(history(healthy_loss(40), gnorm=g), T)
    # found at the second logged point in a row above the factor (a runaway, not one bad batch)
    assert f is not None and f.evidence["factor"] > T.explode_factor and f.step == (np.argmax(g > 10) + 2) * 5
    spike = np.full(40, 0.5)
    spike[25] = 50.0  # one batch, back to normal at the next log: clipping's business
    assert detect.exploding_gradients(history(healthy_loss(40), gnorm=spike), T) is None
    stats = [stat(10, [80.0, 0.5], 90.0)]
    assert detect.exploding_gradients(history(healthy_loss(10), stats=stats), T).metric == "block_grad_ratio"


def test_vanishing_gradients_when_blocks_get_no_gradient() -> None:
    tiny = [stat(s, [1e-3, 1e-3], 0.7) for s in (10, 20, 30)]  # the embeddings take it all
    f = detect.vanishing_gradients(history(healthy_loss(6), stats=tiny), T)
    assert f is not None and f.step == 20  # two records in a row
    ratio = [stat(10, [1e-6, 0.2], 0.5)]  # AUTOTRAINER's first-to-last ratio
    assert detect.vanishing_gradients(history(healthy_loss(2), stats=ratio), T).step == 10


def test_loss_spike_by_z_score() -> None:
    loss = healthy_loss(50)
    loss[40] += 1.5
    f = detect.loss_spike(history(loss), T)
    assert f is not None and f.step == 205 and f.evidence["z"] > T.spike_z
    loss[40] -= 1.45  # within the noise: no spike
    assert detect.loss_spike(history(loss), T) is None


def test_loss_spike_on_a_steeply_falling_curve() -> None:
    # a curve falling 0.02 per logged step with noise 0.05: the spread of the losses themselves
    # (the trend) is large, the spread of their changes is the noise alone
    rng = np.random.default_rng(1)
    loss = 6.0 - 0.02 * np.arange(50) + rng.normal(0, 0.05, 50)
    assert detect.loss_spike(history(loss), T) is None
    loss[40] = loss[39] * 1.35
    f = detect.loss_spike(history(loss), T)
    assert f is not None and f.step == 205 and f.evidence["median"] == pytest.approx(np.median(loss[35:40]))


def test_lr_too_high_on_divergence_and_on_large_updates() -> None:
    loss = np.concatenate([healthy_loss(20)[:10], np.geomspace(5, 600, 10)])
    assert detect.lr_too_high(history(loss), T) is not None
    big = healthy_stats(100, ratio=0.3)
    f = detect.lr_too_high(history(healthy_loss(20), stats=big), T)
    assert f is not None and f.metric == "update_ratio/global"


def test_lr_too_low_on_tiny_updates() -> None:
    small = healthy_stats(300, ratio=5e-6)
    h = history(np.full(60, 6.2), stats=small)
    f = detect.lr_too_low(h, T)
    assert f is not None and f.evidence["median_ratio"] == pytest.approx(5e-6)
    first = [f for f in detect.replay(records(h), h.facts, T) if f.problem == "lr_too_low"]
    assert first[0].step == 30  # the third statistics record
    assert detect.lr_too_low(history(np.full(60, 6.2), stats=healthy_stats(300, ratio=2e-3)), T) is None


def test_overfitting_needs_rising_val_and_falling_train() -> None:
    loss = healthy_loss(60)
    val = [5.5, 5.0, 4.6, 4.4, 4.45, 4.6, 4.8, 5.0, 5.2, 5.4, 5.6, 5.8]
    h = history(loss, val)
    f = detect.overfitting(h, T)
    assert f is not None and f.evidence["best_step"] == 100
    first = [f for f in detect.replay(records(h), h.facts, T) if f.problem == "overfitting"]
    assert first[0].step == 175  # two evaluations in a row above best x 1.02: 150 and 175
    flat = history(np.full(60, 6.0), val)  # training loss not falling: not overfitting
    assert detect.overfitting(flat, T) is None


def test_overfitting_needs_a_best_below_the_unigram_level() -> None:
    # the best validation loss at the unigram level (nothing learnt yet) then drifting up, while
    # the training loss falls: what dropout 0.9 does, not overfitting
    val = [ENT * 1.02, ENT * 1.05, ENT * 1.08, ENT * 1.1]
    assert detect.overfitting(history(healthy_loss(20), val), T) is None
    learnt = [v - 1.0 for v in val]
    assert detect.overfitting(history(healthy_loss(20) - 1.0, learnt), T) is not None


def test_slow_run_remedies_follow_the_update_ratio() -> None:
    stuck = np.full(60, ENT * 1.02)

    def first_remedy(ratio: float, dropout: float = 0.0) -> str:
        h = history(stuck, [ENT * 1.03] * 12, stats=healthy_stats(300, ratio=ratio), dropout=dropout)
        f = detect.underfitting(h, T)
        assert f is not None and f.evidence["update_ratio"] == pytest.approx(ratio)
        return f.remedies[0]

    assert first_remedy(5e-2) == "lower_lr"  # large steps: stuck because it overshoots
    assert first_remedy(1e-4) == "raise_lr"
    assert first_remedy(5e-3, dropout=0.5) == "lower_regularization"
    assert first_remedy(5e-3) == "raise_lr"


def test_underfitting_near_the_unigram_entropy() -> None:
    loss = np.full(60, ENT * 1.02)
    h = history(loss, [ENT * 1.03] * 12)
    assert detect.underfitting(h, T) is not None
    first = [f for f in detect.replay(records(h), h.facts, T) if f.problem == "underfitting"]
    assert first[0].step == T.min_progress * 300  # not before min_progress of the run
    assert detect.underfitting(history(np.full(60, ENT * 0.8), [ENT * 0.8] * 12), T) is None


def test_plateau_and_oscillation() -> None:
    assert detect.plateau(history(np.full(60, 5.8) + np.random.default_rng(0).normal(0, 0.01, 60)), T) is not None
    zigzag = 4.0 + 0.8 * (np.arange(40) % 2)
    f = detect.oscillation(history(zigzag), T)
    assert f is not None and f.evidence["flips"] > T.oscillation_share


def test_dead_units_twice_in_a_row() -> None:
    stats = healthy_stats(60)
    stats[2]["act_zero/blocks.1"] = 0.97
    assert detect.dead_units(history(healthy_loss(12), stats=stats), T) is None  # once is noise
    stats[3]["act_zero/blocks.1"] = 0.97
    f = detect.dead_units(history(healthy_loss(12), stats=stats), T)
    assert f is not None and f.step == 40 and f.evidence["blocks"] == ["blocks.1"]


def test_repeated_data_counts_passes() -> None:
    f = detect.repeated_data(history(healthy_loss(60), train_tokens=10_000), T)
    assert f is not None and f.evidence["train_tokens"] == 10_000
    assert f.step == 5 * math.ceil((T.repeat_epochs * 10_000 / 1024 + 1e-9) / 5)


def test_val_leak_from_overlap_or_a_val_loss_below_train() -> None:
    assert detect.val_leak(history(healthy_loss(60), [4.0] * 12, leak=0.4), T).evidence["overlap"] == 0.4
    loss = np.full(60, 4.0)
    assert detect.val_leak(history(loss, [3.0] * 12), T) is not None
    assert detect.val_leak(history(loss, [3.0] * 12, dropout=0.2), T) is None  # dropout explains it


def test_replay_finds_what_the_prefix_checks_find() -> None:
    loss = healthy_loss(50)
    loss[40] += 1.5
    h = history(loss)
    found = list(detect.replay(records(h), h.facts, T))
    assert [f.problem for f in found] == ["loss_spike"] and found[0].step == 205


def test_unigram_entropy() -> None:
    assert unigram_entropy(np.array([0, 1, 2, 3] * 10), 8) == pytest.approx(math.log(4))
