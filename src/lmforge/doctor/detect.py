"""The detectors: each reads a History (what was logged up to now) and returns a Finding or None.

Every detector looks only at what was logged so far, so the live doctor (called at each logged
step) and the offline doctor (which replays the logged records in the same order, `replay`) find
the same problems at the same steps. Thresholds come from `doctor.*` (DoctorConfig); how they
were chosen is in docs/doctor.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lmforge.config.schema import DoctorConfig
from lmforge.doctor.findings import Finding
from lmforge.doctor.history import History

Detector = Callable[[History, DoctorConfig], Finding | None]
MAX_POINTS = 40  # values kept in a finding's small curve


def _curve(steps: np.ndarray, values: np.ndarray) -> tuple[list[int], list[float]]:
    keep = np.linspace(0, len(steps) - 1, min(len(steps), MAX_POINTS)).astype(int) if len(steps) else []
    return [int(steps[i]) for i in keep], [float(values[i]) for i in keep]


def _finding(problem: str, metric: str, steps: np.ndarray, values: np.ndarray, at: int, summary: str,
             **evidence: object) -> Finding:
    s, v = _curve(steps, values)
    return Finding(problem, int(steps[at]), int(steps[0]) if len(steps) else 0, metric, summary, s, v,
                   dict(evidence))


def _windows(values: np.ndarray, k: int, shift: int = 0) -> np.ndarray:
    """Row i holds values[i-k+1-shift .. i-shift] (NaN before the start): trailing windows, in one array."""
    padded = np.concatenate([np.full(k + shift - 1, np.nan), values.astype(np.float64)])
    return sliding_window_view(padded[: len(padded) - shift], k)


def _nanmedian_rows(rows: np.ndarray) -> np.ndarray:
    """Median of each row, NaNs left out (an all-NaN row gives NaN). np.nanmedian does the same
    through masked arrays, several times slower, and this runs at every logged step."""
    if rows.shape[1] == 0:
        return np.full(rows.shape[0], np.nan)
    ordered = np.sort(rows, axis=1)  # NaNs sort to the end
    count = (~np.isnan(rows)).sum(axis=1)
    lo = np.clip((count - 1) // 2, 0, rows.shape[1] - 1)
    hi = np.clip(count // 2, 0, rows.shape[1] - 1)
    idx = np.arange(rows.shape[0])
    with np.errstate(invalid="ignore"):
        med = (ordered[idx, lo] + ordered[idx, hi]) / 2
    med[count == 0] = np.nan
    return med


def _smooth(values: np.ndarray, k: int = 5) -> np.ndarray:
    """Trailing median over k points: each value sees only the past."""
    return _nanmedian_rows(_windows(values, k)) if len(values) else values.astype(np.float64)


def _recent_update_ratio(h: History) -> float | None:
    """Median update/weight ratio over the last 3 statistics records (None without statistics):
    which way the LR is off, for ranking the remedies of a slow run."""
    _, u = h.series("stats", "update_ratio/global")
    u = u[np.isfinite(u)][-3:]
    return float(np.median(u)) if len(u) else None


def _progress(h: History, t: DoctorConfig) -> bool:
    return h.facts.steps > 0 and h.step >= t.min_progress * h.facts.steps


# ------------------------------------------------------------------ numbers that broke


def nonfinite(h: History, t: DoctorConfig) -> Finding | None:
    """NaN/Inf in the loss or gradient norm, a skipped step, or a non-finite statistic; names the
    first parameter whose statistics went non-finite when the statistics show it."""
    steps, loss = h.series("train", "loss")
    _, gnorm = h.series("train", "grad_norm")
    _, skipped = h.series("train", "skipped_steps")
    bad = ~np.isfinite(loss) | ~np.isfinite(gnorm) | (np.nan_to_num(skipped, nan=1.0) > 0)
    if not bad.any():
        return None
    i = int(np.argmax(bad))
    where = next((k.split("/", 1)[1] for r in h.stats if r["step"] >= steps[i] - 1
                  for k, v in r.items() if k.startswith(("grad_norm/", "param_norm/")) and not math.isfinite(v)
                  and not k.endswith("/global")), None)
    what = "loss" if not math.isfinite(loss[i]) else "gradient norm" if not math.isfinite(gnorm[i]) else "a step"
    summary = f"non-finite {what} at step {int(steps[i])}" + (f"; first in {where}" if where else "")
    return _finding("nonfinite", "loss", steps[: i + 1], loss[: i + 1], i, summary, module=where,
                    skipped_steps=float(np.nan_to_num(skipped[i], nan=0.0)))


# ------------------------------------------------------------------ gradients


def exploding_gradients(h: History, t: DoctorConfig) -> Finding | None:
    """Gradient norm `explode_factor` times its early median at two logged points in a row, a
    first-to-last block ratio above `explode_ratio` (AUTOTRAINER's 70), or a first loss
    `explode_init_loss` times log(vocabulary): an untrained model should guess about uniformly, so
    a far larger loss means its outputs are already blown up by the initialisation."""
    steps, g = h.series("train", "grad_norm")
    _, loss = h.series("train", "loss")
    if h.facts.log_vocab and len(loss) and math.isfinite(loss[0]) and loss[0] > t.explode_init_loss * h.facts.log_vocab:
        return _finding("exploding_gradients", "loss", steps[:1], loss[:1], 0,
                        f"first loss {loss[0]:.3g}, {loss[0] / h.facts.log_vocab:.1f}x log(vocabulary) "
                        f"{h.facts.log_vocab:.3g}: the outputs are blown up from the start", at_init=True,
                        grad_norm=float(g[0]))
    if len(g) >= 4:
        base = float(np.nanmedian(g[:3]))
        with np.errstate(invalid="ignore"):
            hit = np.isfinite(g) & (g > t.explode_factor * base) & (base > 0)
        hit[:3] = False
        # a runaway, not one bad batch: two logged points in a row above the factor (Pascanu et al.
        # 2013 describe norms that grow from step to step). Measured: the six-block run restarted at
        # LR 2e-3 with clipping had one norm of 31x its early median at step 25 and 0.8x at step 30
        hit = np.concatenate(([False], hit[1:] & hit[:-1]))
        if hit.any():
            i = int(np.argmax(hit))
            return _finding("exploding_gradients", "grad_norm", steps[: i + 1], g[: i + 1], i,
                            f"gradient norm {g[i]:.3g} at step {int(steps[i])}, {g[i] / base:.0f}x its early "
                            f"median {base:.3g}", factor=float(g[i] / base))
    for r in h.stats:
        blocks = h.blocks(r)
        if len(blocks) >= 2 and blocks[-1] > 0 and blocks[0] / blocks[-1] > t.explode_ratio:
            s, ratio = np.array([r["step"]]), np.array([blocks[0] / blocks[-1]])
            return _finding("exploding_gradients", "block_grad_ratio", s, ratio, 0,
                            f"first-to-last block gradient-norm ratio {ratio[0]:.3g} at step {r['step']}",
                            blocks=blocks)
    return None


def vanishing_gradients(h: History, t: DoctorConfig) -> Finding | None:
    """First-to-last block gradient-norm ratio below `vanish_ratio` (AUTOTRAINER's 1e-3), a global
    gradient norm below `vanish_norm`, or every block's gradient below `vanish_share` of the global
    norm (the embeddings and the output layer take all of it) in the first two statistics records."""
    rows = [(r["step"], h.blocks(r), r.get("grad_norm/global", math.nan)) for r in h.stats]
    low_share = False
    for k, (step, blocks, total) in enumerate(rows):
        ratio = blocks[0] / blocks[-1] if len(blocks) >= 2 and blocks[-1] > 0 else math.nan
        share = max(blocks) / total if blocks and math.isfinite(total) and total > 0 else math.nan
        # the share rule reads the start only: later, large trained blocks can take a small share
        was_low, low_share = low_share, k < 2 and math.isfinite(share) and share < t.vanish_share
        if ((math.isfinite(ratio) and ratio < t.vanish_ratio) or (math.isfinite(total) and total < t.vanish_norm)
                or (low_share and was_low)):
            s = np.array([x[0] for x in rows if x[0] <= step])
            v = np.array([x[2] for x in rows if x[0] <= step])
            return _finding("vanishing_gradients", "grad_norm/global", s, v, len(s) - 1,
                            f"at step {step}: global gradient norm {total:.3g}, first-to-last block ratio "
                            f"{ratio:.3g}, largest block's share {share:.3g}", ratio=ratio, share=share,
                            blocks=blocks)
    return None


# ------------------------------------------------------------------ the loss curve


def loss_spike(h: History, t: DoctorConfig) -> Finding | None:
    """A loss `spike_z` robust standard deviations above its local level (the median of the 5
    logged losses before it) and `spike_min_rise` above that level. The spread is the median
    absolute deviation (x 1.4826) of the step-to-step changes over the previous `window` logged
    losses, divided by sqrt(2): the batch noise alone. Measured on the scenario suite, the spread
    of the losses themselves (the first version) counts a falling curve's trend as noise, and a
    loss of 6.6 over a level of 4.75 scored only z 4."""
    steps, loss = h.series("train", "loss")
    half = max(4, t.window // 2)
    if len(loss) <= half:
        return None
    finite = np.where(np.isfinite(loss), loss, np.nan)
    level = _nanmedian_rows(_windows(finite, 5, shift=1))
    changes = _windows(np.diff(finite, prepend=np.nan), t.window, shift=1)  # row i: the changes before loss i
    count = np.isfinite(changes).sum(axis=1)
    mad = _nanmedian_rows(np.abs(changes - _nanmedian_rows(changes)[:, None]))
    spread = np.maximum(np.maximum(1.4826 * mad / math.sqrt(2), 0.01 * np.abs(level)), 1e-8)
    with np.errstate(invalid="ignore"):
        z = (finite - level) / spread
        hit = (count >= half) & (z > t.spike_z) & (finite > level * (1 + t.spike_min_rise))
    hit[:half] = False
    if not hit.any():
        return None
    i = int(np.argmax(hit))
    return _finding("loss_spike", "loss", steps[: i + 1], loss[: i + 1], i,
                    f"loss {loss[i]:.3f} at step {int(steps[i])}, z-score {z[i]:.1f} over its level "
                    f"{level[i]:.3f} (spread of the previous {int(count[i])} logged changes)",
                    z=float(z[i]), median=float(level[i]))


def lr_too_high(h: History, t: DoctorConfig) -> Finding | None:
    """Divergence (smoothed loss `diverge_factor` times its best, or above the first loss after
    having fallen) or a median update/weight ratio above `update_high`."""
    steps, loss = h.series("train", "loss")
    if len(loss) >= 3:
        sm = _smooth(np.where(np.isfinite(loss), loss, np.inf), 3)
        best = np.minimum.accumulate(sm)
        with np.errstate(invalid="ignore"):
            hit = (sm > t.diverge_factor * best) | ((sm > loss[0] * 1.05) & (best < loss[0]))
        hit[:2] = False
        if hit.any():
            i = int(np.argmax(hit))
            return _finding("lr_too_high", "loss", steps[: i + 1], loss[: i + 1], i,
                            f"loss diverged: {sm[i]:.3g} at step {int(steps[i])} (best {best[i]:.3g}, "
                            f"first {loss[0]:.3g})", best=float(best[i]))
    s, u = h.series("stats", "update_ratio/global")
    if len(u) >= 3:
        med = _smooth(u, 5)
        hit = med > t.update_high
        hit[:2] = False
        if hit.any():
            i = int(np.argmax(hit))
            return _finding("lr_too_high", "update_ratio/global", s[: i + 1], u[: i + 1], i,
                            f"median update/weight ratio {med[i]:.3g} at step {int(s[i])} (healthy ~1e-3)",
                            median_ratio=float(med[i]))
    return None


def lr_too_low(h: History, t: DoctorConfig) -> Finding | None:
    """From the third statistics record on: median update/weight ratio below `update_low` (the
    ratio needs no waiting: it is small from the first step when the LR is)."""
    s, u = h.series("stats", "update_ratio/global")
    if len(u) < 3:
        return None
    med = float(np.nanmedian(u))
    if med < t.update_low:
        return _finding("lr_too_low", "update_ratio/global", s, u, len(s) - 1,
                        f"median update/weight ratio {med:.2g} over {len(u)} statistics steps (healthy ~1e-3)",
                        median_ratio=med)
    return None


def overfitting(h: History, t: DoctorConfig) -> Finding | None:
    """The last `overfit_patience` validation losses all `overfit_rise` above the best, while the
    training loss at the last evaluation is below its value at the best one, and the best is below
    `underfit_share` of the unigram entropy (the model had learnt something to overfit from)."""
    es, ev = h.series("eval", "val_loss")
    if len(ev) < t.overfit_patience + 1 or not np.isfinite(ev).all():
        return None
    b = int(np.argmin(ev))
    ent = h.facts.unigram_entropy
    if ent is not None and ev[b] > t.underfit_share * ent:
        # the best validation loss is still where token frequencies alone get: nothing was learnt to
        # memorise yet (measured: dropout 0.9 has its best at the first evaluation, 5.50 over an
        # entropy of 5.23, and the validation loss then drifts up while the dropped-out training
        # loss falls)
        return None
    after = ev[b + 1:]
    if len(after) < t.overfit_patience or not (after[-t.overfit_patience:] > ev[b] * (1 + t.overfit_rise)).all():
        return None
    ts, tl = h.series("train", "loss")
    sm = _smooth(tl)
    at_best = sm[np.searchsorted(ts, es[b], side="right") - 1] if len(ts) else math.nan
    now = sm[-1] if len(sm) else math.nan
    if not (now < at_best and now < ev[b]):  # still learning, and below the best validation loss: a gap
        return None
    return _finding("overfitting", "val_loss", es, ev, len(es) - 1,
                    f"validation loss {ev[-1]:.3f} at step {int(es[-1])} vs best {ev[b]:.3f} at step {int(es[b])}, "
                    f"while training loss fell {at_best:.3f} -> {now:.3f}", best_step=int(es[b]),
                    best=float(ev[b]), gap=float(ev[-1] - now))


def underfitting(h: History, t: DoctorConfig) -> Finding | None:
    """Past `min_progress`: smoothed training loss and the last validation loss both above
    `underfit_share` of the unigram entropy, and the loss no longer falling (less than
    2 x `plateau_gain` over the last tenth of the steps)."""
    ent = h.facts.unigram_entropy
    if ent is None or not _progress(h, t):
        return None
    ts, tl = h.series("train", "loss")
    _, ev = h.series("eval", "val_loss")
    if len(tl) < 3 or ts[-1] - ts[0] < t.plateau_span * h.facts.steps:  # too short to tell stuck from falling
        return None
    sm = _smooth(tl)
    train_now = float(sm[-1])
    val_now = float(ev[-1]) if len(ev) else train_now
    # stuck, not merely slow: the loss gained less than 2 x plateau_gain over the last plateau_span of
    # the steps (over the last tenth, the first rule, a run 0.2 behind a healthy one counted as stuck
    # at step 100 of 200 in the suite, and was restarted for nothing)
    j = int(np.searchsorted(ts, ts[-1] - t.plateau_span * h.facts.steps, side="right")) - 1
    gain = (sm[max(0, j)] - train_now) / abs(sm[max(0, j)]) if sm[max(0, j)] else 0.0
    if train_now > t.underfit_share * ent and val_now > t.underfit_share * ent and gain < 2 * t.plateau_gain:
        return _finding("underfitting", "loss", ts, tl, len(ts) - 1,
                        f"training loss {train_now:.3f} and validation loss {val_now:.3f} at step {int(ts[-1])}, "
                        f"near the unigram entropy {ent:.3f}", unigram_entropy=ent,
                        update_ratio=_recent_update_ratio(h), dropout=h.facts.dropout)
    return None


def plateau(h: History, t: DoctorConfig) -> Finding | None:
    """Past `min_progress`: the smoothed loss gained less than `plateau_gain` (relative) over the
    last `plateau_span` of the run's steps, while still above `plateau_level` of the unigram entropy."""
    ent = h.facts.unigram_entropy
    if not _progress(h, t):
        return None
    ts, tl = h.series("train", "loss")
    span = t.plateau_span * h.facts.steps
    if len(tl) < 6 or ts[-1] - ts[0] < span:
        return None
    sm = _smooth(tl)
    j = int(np.searchsorted(ts, ts[-1] - span, side="right")) - 1
    gain = (sm[j] - sm[-1]) / abs(sm[j]) if sm[j] else 0.0
    high = ent is None or sm[-1] > t.plateau_level * ent
    if -t.plateau_gain < gain < t.plateau_gain and high:  # a rising loss is divergence, not a plateau
        return _finding("plateau", "loss", ts, tl, len(ts) - 1,
                        f"loss {sm[j]:.3f} -> {sm[-1]:.3f} over steps {int(ts[j])}-{int(ts[-1])} "
                        f"({gain:.1%} gain)", gain=float(gain), update_ratio=_recent_update_ratio(h),
                        dropout=h.facts.dropout)
    return None


def oscillation(h: History, t: DoctorConfig) -> Finding | None:
    """Over the last `window` logged steps: most consecutive loss steps change sign, and their mean
    size is more than `oscillation_swing` of the loss's level."""
    ts, tl = h.series("train", "loss")
    if len(tl) < t.window:
        return None
    w = tl[-t.window:]
    if not np.isfinite(w).all():
        return None
    d = np.diff(w)
    flips = float(np.mean(np.sign(d[1:]) != np.sign(d[:-1])))
    swing = float(np.mean(np.abs(d)) / max(1e-8, float(np.mean(np.abs(w)))))
    if flips > t.oscillation_share and swing > t.oscillation_swing:
        return _finding("oscillation", "loss", ts, tl, len(ts) - 1,
                        f"loss changes direction at {flips:.0%} of logged steps, by {swing:.0%} of its level",
                        flips=flips, swing=swing)
    return None


# ------------------------------------------------------------------ units and data


def dead_units(h: History, t: DoctorConfig) -> Finding | None:
    """In two statistics records in a row, some block's share of near-zero MLP activations above
    `dead_share`."""
    prev: set[str] = set()
    for r in h.stats:
        dead = {k for k, v in r.items() if k.startswith("act_zero/") and v > t.dead_share}
        both = dead & prev
        if both:
            key = min(both)
            s, v = h.series("stats", key)
            i = int(np.searchsorted(s, r["step"]))
            return _finding("dead_units", key, s[: i + 1], v[: i + 1], i,
                            f"{v[i]:.0%} of the activations in {key.split('/', 1)[1]} are near zero at step "
                            f"{r['step']}", blocks=sorted(k.split("/", 1)[1] for k in both))
        prev = dead
    return None


def repeated_data(h: History, t: DoctorConfig) -> Finding | None:
    """More than `repeat_epochs` passes over the training tokens."""
    n = h.facts.train_tokens
    ts, tok = h.series("train", "tokens")
    if not n or not len(tok):
        return None
    epochs = tok / n
    over = np.nonzero(epochs > t.repeat_epochs)[0]
    if not len(over):
        return None
    i = int(over[0])
    return _finding("repeated_data", "epochs", ts[: i + 1], epochs[: i + 1], i,
                    f"{epochs[i]:.0f} passes over the {n:,} training tokens by step {int(ts[i])}",
                    train_tokens=n)


def val_leak(h: History, t: DoctorConfig) -> Finding | None:
    """The tokenize stage's overlap check above `leak_overlap`, or, without dropout, the last three
    validation losses each more than 10% below the smoothed training loss."""
    es, ev = h.series("eval", "val_loss")
    if h.facts.leak_overlap is not None and h.facts.leak_overlap > t.leak_overlap and len(es):
        return _finding("val_leak", "val_loss", es[:1], ev[:1], 0,
                        f"{h.facts.leak_overlap:.1%} of the validation 13-grams occur in the training split",
                        overlap=h.facts.leak_overlap)
    if h.facts.dropout > 0 or len(ev) < 3 or not _progress(h, t):  # early, val runs ahead of the lagging train mean
        return None
    ts, tl = h.series("train", "loss")
    sm = _smooth(tl)
    idx = np.clip(np.searchsorted(ts, es[-3:], side="right") - 1, 0, len(ts) - 1)
    if (ev[-3:] < 0.9 * sm[idx]).all():
        return _finding("val_leak", "val_loss", es, ev, len(es) - 1,
                        f"validation loss {ev[-1]:.3f} below training loss {sm[idx[-1]]:.3f} at three "
                        "evaluations in a row, without dropout", train=float(sm[idx[-1]]))
    return None


# the order of checking, and so of repair when several problems show at once: a transient spike
# before the gradient and LR findings it also triggers
DETECTORS: dict[str, Detector] = {
    "nonfinite": nonfinite, "loss_spike": loss_spike, "exploding_gradients": exploding_gradients,
    "lr_too_high": lr_too_high, "vanishing_gradients": vanishing_gradients,
    "lr_too_low": lr_too_low, "overfitting": overfitting, "underfitting": underfitting, "plateau": plateau,
    "oscillation": oscillation, "dead_units": dead_units, "repeated_data": repeated_data, "val_leak": val_leak,
}


def check(h: History, t: DoctorConfig, skip: set[str] | frozenset[str] = frozenset()) -> list[Finding]:
    """Every detector not in `skip`, on the history as it stands."""
    out = []
    for name, detector in DETECTORS.items():
        if name not in skip:
            found = detector(h, t)
            if found is not None:
                out.append(found)
    return out


def replay(records: list[tuple[str, dict]], facts: object, t: DoctorConfig) -> Iterator[Finding]:
    """The offline doctor: feed the logged records in the order the live doctor saw them (a
    statistics record waits for the next training record, as the Monitor flushes it then) and
    check after each training and evaluation record; each problem is reported once."""
    h = History(facts)  # type: ignore[arg-type]
    seen: set[str] = set()
    pending: list[dict] = []
    for kind, rec in records:
        if kind == "stats":
            pending.append(rec)
            continue
        if kind == "train":
            for s in pending:
                h.add("stats", s)
            pending = []
        h.add(kind, rec)
        for f in check(h, t, seen):
            seen.add(f.problem)
            yield f
