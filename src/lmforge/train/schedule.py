"""Learning-rate schedules as pure functions of the step: easy to plot, to test and to resume.

Every schedule maps (step, cfg) -> lr for the optimizer step about to run (step counts from 0).
Warmup, where a schedule has one, rises linearly from lr/warmup_steps to lr. `min_lr` is the
floor of decaying schedules and the base of cyclical ones; it is capped at `lr`, so a search
that samples a small lr never gets a floor above its peak.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from lmforge.config.schema import TrainConfig

Schedule = Callable[[int, TrainConfig], float]


def _floor(cfg: TrainConfig) -> float:
    return min(cfg.min_lr, cfg.lr)


def _warmup(step: int, cfg: TrainConfig) -> float | None:
    """The warmup LR while warming up, else None."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    return None


def _plan(cfg: TrainConfig) -> list[tuple[int, int]]:
    """(from step, step count) pieces: one for a plain run; a time-budgeted run's re-plans
    (train.budget_replans) when they end at this run's count."""
    replans = [(int(r), int(n)) for r, n in cfg.budget_replans]
    return replans if replans and replans[-1][1] == cfg.steps else [(0, cfg.steps)]


def _progress(step: int, cfg: TrainConfig) -> float:
    """0 at the end of warmup, 1 at the last step. When a time budget changed the step count
    mid-run, the decay goes on from the progress it had reached at the change and covers the rest
    over the new count's remaining steps: the LR bends there, and reaches its floor at the last
    step. It jumps only when a re-plan leaves just the step it was made at (the budget is spent):
    that step is the last, so it runs at the floor."""
    done, pieces = 0.0, _plan(cfg)
    for i, (start, count) in enumerate(pieces):
        if step < start:
            break
        at = min(step, pieces[i + 1][0]) if i + 1 < len(pieces) else step
        origin = max(start, cfg.warmup_steps)
        # at or past the piece's last step it is done, also when a re-plan left only its own step
        frac = 1.0 if at >= count - 1 else max(0.0, (at - origin) / max(1, count - 1 - origin))
        done += (1.0 - done) * frac
    return done


def constant(step: int, cfg: TrainConfig) -> float:
    w = _warmup(step, cfg)
    return cfg.lr if w is None else w


def linear(step: int, cfg: TrainConfig) -> float:
    w = _warmup(step, cfg)
    return w if w is not None else cfg.lr + (_floor(cfg) - cfg.lr) * _progress(step, cfg)


def cosine(step: int, cfg: TrainConfig) -> float:
    """Warmup then half a cosine down to the floor (Loshchilov & Hutter 2017, without restarts)."""
    w = _warmup(step, cfg)
    if w is not None:
        return w
    lo = _floor(cfg)
    return lo + 0.5 * (cfg.lr - lo) * (1 + math.cos(math.pi * _progress(step, cfg)))


def wsd(step: int, cfg: TrainConfig) -> float:
    """Warmup-stable-decay (Hu et al. 2024, MiniCPM; Hägele et al. 2024): hold the peak, then decay
    linearly to the floor over the last `decay_fraction` of the steps. A run can be extended by
    branching off a stable-phase checkpoint."""
    w = _warmup(step, cfg)
    if w is not None:
        return w
    decay_steps = max(1, round(cfg.decay_fraction * cfg.steps))
    start = cfg.steps - decay_steps
    if step < start:
        return cfg.lr
    frac = min(1.0, (step - start + 1) / decay_steps)
    return cfg.lr + (_floor(cfg) - cfg.lr) * frac


def step_decay(step: int, cfg: TrainConfig) -> float:
    """Multiply by gamma (default 0.1) every step_size steps after warmup, as PyTorch's StepLR."""
    w = _warmup(step, cfg)
    if w is not None:
        return w
    gamma = cfg.gamma if cfg.gamma is not None else 0.1
    return cfg.lr * gamma ** ((step - cfg.warmup_steps) // cfg.step_size)


def exponential(step: int, cfg: TrainConfig) -> float:
    """lr·gamma^k after warmup; without gamma, the constant factor that takes lr to the floor at
    the last step."""
    w = _warmup(step, cfg)
    if w is not None:
        return w
    if cfg.gamma is not None:
        return cfg.lr * cfg.gamma ** (step - cfg.warmup_steps)
    return cfg.lr * (max(_floor(cfg), 1e-12) / cfg.lr) ** _progress(step, cfg)


def inverse_sqrt(step: int, cfg: TrainConfig) -> float:
    """Vaswani et al. 2017: the peak at the end of warmup, then lr * sqrt(warmup / step)."""
    w = _warmup(step, cfg)
    if w is not None:
        return w
    return cfg.lr * math.sqrt(max(1, cfg.warmup_steps) / (step + 1))


def _cyclical(step: int, cfg: TrainConfig, mode: str) -> float:
    """Smith 2017, "Cyclical Learning Rates for Training Neural Networks": a triangle between
    min_lr and lr with half-period step_size; triangular2 halves the height every cycle,
    exp_range scales it by gamma**step. Same formula as PyTorch's CyclicLR."""
    lo = _floor(cfg)
    cycle = math.floor(1 + step / (2 * cfg.step_size))
    x = abs(step / cfg.step_size - 2 * cycle + 1)
    height = (cfg.lr - lo) * max(0.0, 1 - x)
    if mode == "triangular2":
        height /= 2 ** (cycle - 1)
    elif mode == "exp_range":
        height *= (cfg.gamma if cfg.gamma is not None else 0.9999) ** step
    return lo + height


def one_cycle(step: int, cfg: TrainConfig) -> float:
    """Smith & Topin 2019, "Super-Convergence": cosine up from lr/div_factor to lr over pct_start
    of the steps, then cosine down to lr/(div_factor*final_div_factor). Matches PyTorch's
    OneCycleLR (anneal_strategy='cos', three_phase=False)."""
    start = cfg.lr / cfg.div_factor
    end = start / cfg.final_div_factor
    peak_step = cfg.pct_start * cfg.steps - 1
    last = cfg.steps - 1

    def cos(a: float, b: float, pct: float) -> float:
        return b + (a - b) / 2 * (math.cos(math.pi * pct) + 1)

    if step <= peak_step:
        return cos(start, cfg.lr, step / max(1e-9, peak_step))
    return cos(cfg.lr, end, min(1.0, (step - peak_step) / max(1e-9, last - peak_step)))


SCHEDULES: dict[str, Schedule] = {
    "constant": constant,
    "linear": linear,
    "cosine": cosine,
    "wsd": wsd,
    "step": step_decay,
    "exponential": exponential,
    "inverse_sqrt": inverse_sqrt,
    "triangular": lambda s, c: _cyclical(s, c, "triangular"),
    "triangular2": lambda s, c: _cyclical(s, c, "triangular2"),
    "exp_range": lambda s, c: _cyclical(s, c, "exp_range"),
    "one_cycle": one_cycle,
}


def lr_at(step: int, cfg: TrainConfig) -> float:
    """The configured schedule's LR for `step`."""
    return SCHEDULES[cfg.schedule](step, cfg)


def lr_curve(cfg: TrainConfig) -> list[float]:
    """The LR at every step of the run."""
    return [lr_at(s, cfg) for s in range(cfg.steps)]


def plot_schedule(cfg: TrainConfig, path: str, title: str | None = None) -> None:
    """Draw the schedule to a PNG (for `lmforge lr plot`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = lr_curve(cfg)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(range(len(curve)), curve, lw=1.6)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title(title or f"{cfg.schedule}: peak {cfg.lr:g}, {cfg.steps} steps, warmup {cfg.warmup_steps}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
