"""The `lmforge` command line. Thin: parse arguments, resolve the config, call one stage function."""

from __future__ import annotations

import json
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from lmforge.config.load import load_config, outside_effects, preset_names
from lmforge.config.schema import Config
from lmforge.console import console, say, set_quiet
from lmforge.errors import Interrupted, LmforgeError, StagePending
from lmforge.rundir import RunDir


class _CleanHelp:
    """Help without a value type beside flags: typer prints `--force <bool>`, which reads as if the
    flag took a value (it takes none). A flag's empty metavar leaves that column blank. And a
    command's summary in its group's table as one line: typer keeps the line breaks of a
    docstring's first paragraph there, which split a summary mid-sentence."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        if self.short_help is None and self.help:  # type: ignore[attr-defined]
            self.short_help = " ".join(self.help.split("\n\n")[0].split())  # type: ignore[attr-defined]

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params


class _Command(_CleanHelp, typer.core.TyperCommand):
    def invoke(self, ctx: Any) -> Any:
        """A training stopped by a signal exits 128 + its number (130 Ctrl-C, 143 SIGTERM); typer
        would turn every KeyboardInterrupt into 130."""
        try:
            return super().invoke(ctx)
        except Interrupted as exc:
            raise typer.Exit(exc.exit_code) from None


class _Group(_CleanHelp, typer.core.TyperGroup):
    pass


class _Typer(typer.Typer):
    """typer.Typer whose groups and commands use the clean help above."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", _Group)
        super().__init__(**kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


app = _Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
             help="lmforge: the whole training flow of a language model, measured and explained.")

class _CompareGroup(_Group):
    """`lmforge compare NAME`: a mistyped NAME gets the closest comparison's name."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        from lmforge.compare.catalog import closest

        if args and not args[0].startswith("-") and self.get_command(ctx, args[0]) is None:
            guess = closest(args[0], self.list_commands(ctx))
            raise LmforgeError(f"unknown comparison '{args[0]}'" + (f"; did you mean '{guess}'?" if guess else ""),
                               "`lmforge compare --list` shows every comparison with its course number")
        return super().resolve_command(ctx, args)


compare_app = _Typer(cls=_CompareGroup, no_args_is_help=True,
                          help="Measured comparisons that feed the course tables (--list: by course number).")
model_app = _Typer(no_args_is_help=True, help="Model families, sizes and initialisation.")
app.add_typer(compare_app, name="compare")
app.add_typer(model_app, name="model")


@compare_app.callback(invoke_without_command=True)
def compare_main(ctx: typer.Context, show: Annotated[bool, typer.Option(
        "--list", help="every comparison with its course number and what it measures")] = False) -> None:
    """Measured comparisons that feed the course tables."""
    if show:
        from lmforge.compare.catalog import listing

        typer.echo(listing())
        raise typer.Exit()

# Argument help is rich markup (typer's rich mode), where `[CONFIG]` is a style tag and vanishes:
# the help texts below use no square brackets.
PresetOpt = Annotated[str | None, typer.Option("--preset", "-p", help="a preset from `lmforge presets`")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="a YAML config file")]
ForceOpt = Annotated[bool, typer.Option("--force", help="rerun even if the stage is unchanged")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="print only errors and the final line")]
RunArg = Annotated[Path, typer.Argument(metavar="RUN_DIR", help="the run directory")]
Overrides = Annotated[list[str] | None, typer.Argument(
    metavar="KEY=VALUE", help="config overrides as section.key=value, e.g. train.steps=500")]
ConfigAndOverrides = Annotated[list[str] | None, typer.Argument(
    metavar="CONFIG|KEY=VALUE",
    help="an optional YAML config file, then overrides as section.key=value, e.g. train.steps=500")]


def _version(value: bool) -> None:
    """--version: the installed package's version, from its metadata (one number, pyproject's)."""
    if not value:
        return
    try:
        typer.echo(f"lmforge {package_version('lmforge')}")
    except PackageNotFoundError:
        raise LmforgeError("lmforge is not installed, so it has no version to show",
                           "install it with `pip install -e .` in the repository") from None
    raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_version,
                                          help="print the version and exit")] = False,
) -> None:
    """lmforge: the whole training flow of a language model, measured and explained."""


def _split_config_arg(args: list[str]) -> tuple[Path | None, list[str]]:
    """`lmforge run [CONFIG] [key=value ...]`: the first argument without '=' is the config file."""
    if args and "=" not in args[0]:
        return Path(args[0]), args[1:]
    return None, args


def resolve(run: RunDir, config: Path | None, preset: str | None, overrides: list[str]) -> Config:
    """Config for a stage command: an explicit file or preset, else the run's own config.yaml."""
    if config is None and preset is None and run.config.is_file():
        return load_config(run.config, None, overrides)
    return load_config(config, preset, overrides)


def announce_outside_effects(cfg: Config, sections: tuple[str, ...] = ("data", "monitor")) -> None:
    """Say which keys of this config will run commands or reach the network, before they do
    (even under --quiet: a config from someone else must not use them unseen)."""
    for line in outside_effects(cfg, sections):
        say(f"note: this config leaves the process: {line}")


def require_png(path: Path, option: str, default_name: str) -> None:
    """Figures are PNGs: matplotlib fails on another suffix and silently appends .png to none."""
    if path.suffix.lower() != ".png":
        better = path / default_name if path.is_dir() else path.with_suffix(".png")
        raise LmforgeError(f"{option} {path}: the figure is a PNG, so name a .png file", f"e.g. {option} {better}")


def _existing_run(run_dir: Path) -> Path:
    """eval and report read a run; a mistyped folder must not become a new run with a default config."""
    if not run_dir.is_dir():
        raise LmforgeError(f"run directory not found: {run_dir}", "give the folder `lmforge run -o` wrote")
    return run_dir


def _stage(name: str, run_dir: Path, config: Path | None, preset: str | None, overrides: list[str] | None,
           force: bool, quiet: bool, **opts: object) -> None:
    from lmforge.pipeline import run_stage_command

    set_quiet(quiet)
    run = RunDir(run_dir)
    cfg = resolve(run, config, preset, overrides or [])
    announce_outside_effects(cfg, {"data": ("data",), "train": ("monitor",)}.get(name, ()))
    ran = run_stage_command(run, cfg, name, force, **opts)
    if quiet:  # the pipeline's own last line was silenced with the rest
        record = run.stage_record(name) or {}
        say(f"{name}: done in {record['seconds']:.1f}s" if ran and "seconds" in record
            else f"{name}: unchanged, skipped")


@app.command()
def run(
    args: ConfigAndOverrides = None,
    preset: PresetOpt = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="run directory (default runs/NAME)")] = None,
    force: ForceOpt = False,
    config_file: ConfigOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Run the whole flow: data, tokenize, train, eval, report."""
    from lmforge.pipeline import run_all

    set_quiet(quiet)
    config, overrides = _split_config_arg(args or [])
    if config_file is not None:  # -c, as the stage commands take it; then every argument is an override
        if config is not None:
            raise LmforgeError(f"two config files: -c {config_file} and {config}",
                               "give one (as -c FILE or as the first argument); overrides are key=value")
        config = config_file
    cfg = load_config(config, preset, overrides)
    announce_outside_effects(cfg)
    run_dir = RunDir(out or Path("runs") / cfg.name)
    run_all(run_dir, cfg, force=force)
    say(("done", "bold green"), f": report at {run_dir.report / 'index.html'}")


@app.command()
def data(run_dir: RunArg, overrides: Overrides = None, config: ConfigOpt = None, preset: PresetOpt = None,
         force: ForceOpt = False, quiet: QuietOpt = False) -> None:
    """Read, clean, deduplicate and split documents into RUN_DIR/data."""
    _stage("data", run_dir, config, preset, overrides, force, quiet)


@app.command()
def augment(run_dir: RunArg, overrides: Overrides = None, config: ConfigOpt = None, preset: PresetOpt = None,
            force: ForceOpt = False, quiet: QuietOpt = False) -> None:
    """Augmented copies of the training split into RUN_DIR/augment (augment.operations; docs/labeling.md)."""
    _stage("augment", run_dir, config, preset, overrides, force, quiet)


@app.command()
def tokenize(run_dir: RunArg, overrides: Overrides = None, config: ConfigOpt = None, preset: PresetOpt = None,
             force: ForceOpt = False, quiet: QuietOpt = False) -> None:
    """Train the tokenizer and pack every split into token files."""
    _stage("tokenize", run_dir, config, preset, overrides, force, quiet)


@app.command()
def train(run_dir: RunArg, overrides: Overrides = None, config: ConfigOpt = None, preset: PresetOpt = None,
          force: ForceOpt = False,
          resume: Annotated[bool, typer.Option("--resume", help="continue from the newest valid checkpoint")] = False,
          quiet: QuietOpt = False,
          ) -> None:
    """Train the model on RUN_DIR/tokens, writing checkpoints, metrics.jsonl and TensorBoard logs."""
    _stage("train", run_dir, config, preset, overrides, force, quiet, resume=resume)


@app.command("eval")
def eval_(run_dir: RunArg, overrides: Overrides = None, config: ConfigOpt = None, preset: PresetOpt = None,
          force: ForceOpt = False,
          task: Annotated[str | None, typer.Option(help="a built-in corpus task: authorship (the default), edition "
                                             "(modern or First Folio spelling) or work (which work, 42 classes)")
                    ] = None,
    cv: Annotated[int, typer.Option("--cv", min=0, help="k-fold cross-validation: train and score K models")] = 0,
          stratified: Annotated[bool, typer.Option("--stratified", help="stratify the folds by source")] = False,
          repeats: Annotated[int, typer.Option("--repeats", min=1, help="repeat the K folds R times")] = 1,
          cv_steps: Annotated[int | None, typer.Option("--cv-steps", min=1, help="training steps per fold")] = None,
          quiet: QuietOpt = False,
          ) -> None:
    """Score the newest checkpoint: every metric with its 95% interval, tasks and samples (eval.json).

    With --cv K, also train and score K models on k folds of the train+val documents."""
    extra = [f"eval.cv_folds={cv}", f"eval.cv_stratified={stratified}", f"eval.cv_repeats={repeats}"] if cv else []
    extra += [f"eval.cv_steps={cv_steps}"] if cv and cv_steps else []
    _stage("eval", _existing_run(run_dir), config, preset, [*(overrides or []), *extra], force, quiet)


@app.command()
def report(run_dir: RunArg, overrides: Overrides = None, config: ConfigOpt = None, preset: PresetOpt = None,
           force: ForceOpt = False, quiet: QuietOpt = False,
           lang: Annotated[str | None, typer.Option("--lang", help="en or zh (sets report.lang)")] = None) -> None:
    """Write RUN_DIR/report/index.html and index.md from what the run directory holds."""
    extra = [f"report.lang={lang}"] if lang is not None else []
    _stage("report", _existing_run(run_dir), config, preset, (overrides or []) + extra, force, quiet)


@app.command()
def generate(
    run_dir: RunArg,
    prompt: Annotated[str, typer.Option(help="text to continue")] = "ROMEO:",
    max_tokens: Annotated[int, typer.Option(min=1, help="tokens to generate")] = 200,
    temperature: Annotated[float, typer.Option(min=1e-3, help="sampling temperature")] = 0.8,
    top_k: Annotated[int, typer.Option(min=0, help="keep the k likeliest tokens; 0 keeps all")] = 50,
    top_p: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="nucleus sampling mass")] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    samples: Annotated[int, typer.Option(min=1, help="how many samples (seeds seed, seed+1, ...)")] = 1,
) -> None:
    """Sample text from the newest checkpoint of RUN_DIR."""
    from lmforge.evaluate.generate import sample
    from lmforge.evaluate.score import load_trained

    run = RunDir(run_dir)
    cfg = resolve(run, None, None, [])
    model, tok, _ = load_trained(run, cfg)
    for i in range(samples):
        if samples > 1:
            typer.echo(f"--- seed {seed + i}")
        typer.echo(sample(model, tok, prompt, max_tokens, temperature, top_k or None, top_p, seed + i,
                          cfg.model.block_size, cfg.tokenizer.eos_token))


@app.command()
def watch(
    run_dir: RunArg,
    once: Annotated[bool, typer.Option("--once", help="print one frame and exit")] = False,
    follow: Annotated[bool, typer.Option("--follow", help="keep watching after training ends")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="seconds between refreshes")] = 1.0,
    study: Annotated[bool, typer.Option("--study", help="show the run's hyperparameter study (`lmforge tune`)")] = False,
) -> None:
    """Live view of a running or finished run, read from its files (works from another shell).

    A run with a study and no training of its own (what `lmforge tune` leaves) shows the study."""
    from lmforge.monitor.watch import watch as watch_run

    run = RunDir(run_dir)
    if study or not run.metrics.is_file():
        from lmforge.tune.watch import has_study, watch_study

        if study or has_study(run):
            watch_study(run, interval, once)
            return
    watch_run(run, interval, once, follow)


@app.command()
def ctl(
    run_dir: RunArg,
    action: Annotated[str, typer.Argument(metavar="ACTION", help="set | pause | resume | save | stop | eval")],
    changes: Annotated[list[str] | None, typer.Argument(
        metavar="KEY=VALUE", help="for set: live keys as section.key=value, e.g. train.lr=1e-4")] = None,
    reason: Annotated[str | None, typer.Option(help="why (recorded in events.jsonl)")] = None,
    wait: Annotated[float, typer.Option(min=0.0, help="seconds to wait for the trainer's answer; 0 = don't")] = 60.0,
) -> None:
    """Steer a running training at its next logging step; every change lands in events.jsonl."""
    from lmforge.monitor.control import command

    outcome = command(RunDir(run_dir), action, changes or [], reason, wait)
    typer.echo(f"step {outcome['step']}: {outcome['message']}" if outcome else "sent")


@app.command()
def doctor(
    run_dir: Annotated[Path | None, typer.Argument(metavar="RUN_DIR", help="a run directory to diagnose")] = None,
    selftest: Annotated[bool, typer.Option("--selftest", help="run the scenario suite's quick subset "
                                           "(broken and healthy trainings) and print its scores")] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="--selftest: where its runs go")] = None,
    figures: Annotated[bool, typer.Option(help="draw one figure per finding in RUN_DIR/doctor/")] = True,
) -> None:
    """Diagnose a run from its logs: overfitting, underfitting, vanishing or exploding gradients,
    NaN, loss spikes, plateaus, LR too high or low, dead units, data problems; with remedies."""
    if selftest:
        from lmforge.compare.problems import compare_problems

        result = compare_problems(out or Path("runs") / "doctor-selftest", quick=True)
        typer.echo(result["table"])
        return
    if run_dir is None:
        raise LmforgeError("give a run directory, or --selftest", "example: lmforge doctor runs/smoke")
    from lmforge.doctor.offline import diagnose, live_events, write_diagnosis

    run = RunDir(run_dir)
    findings = diagnose(run)
    path = write_diagnosis(run, findings, figures)
    if not findings:
        typer.echo("no problem found")
    for f in findings:
        typer.echo(f"step {f.step:>6}  {f.severity:<7}  {f.problem}: {f.summary}")
        typer.echo(f"        why: {f.explanation}")
        typer.echo(f"        try: {', '.join(f.remedies)}")
    _, repairs = live_events(run)
    for r in repairs:
        typer.echo(f"step {r['step']:>6}  repair   {r['problem']}: {r['remedy']} {r['outcome']}")
    typer.echo(f"written to {path}")


lr_app = _Typer(no_args_is_help=True, help="Learning-rate schedules: draw them, find a good peak.")
app.add_typer(lr_app, name="lr")


@lr_app.command("plot")
def lr_plot(
    args: ConfigAndOverrides = None,
    preset: PresetOpt = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write (a .csv of every step beside it)")] = Path(
        "lr_schedule.png"),
) -> None:
    """Draw the config's learning-rate schedule, step by step."""
    from lmforge.train.schedule import lr_curve, plot_schedule

    require_png(out, "--out", "lr_schedule.png")
    config, overrides = _split_config_arg(args or [])
    cfg = load_config(config, preset, overrides)
    curve = lr_curve(cfg.train)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_schedule(cfg.train, str(out))
    out.with_suffix(".csv").write_text("step,lr\n" + "".join(f"{i},{v:.8g}\n" for i, v in enumerate(curve)))
    peak = max(range(len(curve)), key=curve.__getitem__)
    typer.echo(f"{cfg.train.schedule}: first {curve[0]:.3g}, peak {curve[peak]:.3g} at step {peak}, "
               f"last {curve[-1]:.3g} ({len(curve)} steps)")
    console.print(f"written: {out}, {out.with_suffix('.csv')}")


@app.command("lr-find")
def lr_find_cmd(
    args: ConfigAndOverrides = None,
    preset: PresetOpt = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="run directory (default runs/NAME)")] = None,
    steps: Annotated[int, typer.Option(min=10, help="steps of the exponential sweep")] = 100,
    check_steps: Annotated[int, typer.Option(min=0, help="steps of each check run (0: no check)")] = 100,
    start_lr: Annotated[float, typer.Option(min=1e-12, help="first LR of the sweep")] = 1e-6,
    end_lr: Annotated[float, typer.Option(min=1e-12, help="last LR of the sweep")] = 1.0,
) -> None:
    """LR range test: sweep, suggest (valley and steepest rules), check half/at/double the suggestion."""
    from lmforge.pipeline import run_all
    from lmforge.train.lr_find import check_range, lr_find

    check_range(start_lr, end_lr)  # before data and tokenize, which may take a while
    config, overrides = _split_config_arg(args or [])
    cfg = load_config(config, preset, overrides)
    run_dir = RunDir(out or Path("runs") / cfg.name)
    run_all(run_dir, cfg, stages=["data", "tokenize"])
    found = lr_find(run_dir, cfg, steps, check_steps, start_lr, end_lr)
    s = found.sweep
    typer.echo(f"sweep: {len(s.lrs)} steps, {s.stopped}")
    typer.echo(f"steepest descent: {s.steepest:.3g}" if s.steepest else "steepest descent: none")
    typer.echo(f"valley: {s.valley:.3g}" if s.valley else "valley: none")
    for c in found.checks:
        val = f"{c['val_loss']:.4f}" if c["val_loss"] is not None else "-"
        typer.echo(f"  check lr {c['lr']:.3g}: train {c['train_loss']:.4f}, val {val}")
    if found.recommended:
        typer.echo(f"recommended: train.lr={found.recommended:.3g}")
    console.print(f"written: {run_dir.root / 'lr_find.json'}, lr_find.png")


@app.command()
def tune(
    run_dir: RunArg,
    args: ConfigAndOverrides = None,
    preset: PresetOpt = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="delete RUN_DIR/tune/ and start a new study")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Hyperparameter search over the config's tune.space (Optuna): trials.csv, best.yaml, figures.

    Runs data and tokenize once, then tune.trials trials through the train stage; a study that
    was stopped resumes where it stopped."""
    from lmforge.tune.study import run_tune

    set_quiet(quiet)
    config, overrides = _split_config_arg(args or [])
    run = RunDir(run_dir)
    cfg = resolve(run, config, preset, overrides)
    announce_outside_effects(cfg, ("data", "monitor", "tune"))
    summary = run_tune(run, cfg, fresh=fresh)
    counts = ", ".join(f"{n} {o}" for o, n in summary["outcomes"].items() if n)
    best = summary["best"]
    say(f"tune: {summary['trials']} trials ({counts}), {summary['steps']:,} training steps")
    if best:
        say(f"best: trial {best['trial']}, {summary['metric']} {best['value']:.4f}: "
            + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["params"].items()))
        say(f"written: {run.root / 'tune'}/trials.csv, best.yaml (train it: lmforge run {run.root / 'tune' / 'best.yaml'}"
            f" -o {run.root})")
    else:
        say("no trial completed: see trials.csv for why")


@compare_app.command("splits")
def compare_splits(
    run_dir: RunArg,
    overrides: Overrides = None,
    ks: Annotated[str, typer.Option("--ks", help="comma-separated K values for k-fold")] = "2,5",
    repeats: Annotated[int, typer.Option(min=2, help="repeats of each estimator (for its spread)")] = 3,
    steps: Annotated[int, typer.Option(min=1, help="training steps of every model")] = 60,
    doc_tokens: Annotated[int, typer.Option(min=16, help="tokens kept from the middle of each document")] = 2000,
    seed: Annotated[int, typer.Option(help="seed of the truth split and the fold shuffles")] = 0,
) -> None:
    """Holdout vs k-fold vs stratified k-fold: bias and spread of the estimate (Kohavi 1995, in small).
    A fresh RUN_DIR is prepared first (built-in corpus, Shakespeare and Milton, tiny model)."""
    from lmforge.compare.splits import prepare, run_compare_splits, table

    try:
        k_values = sorted({int(k) for k in ks.split(",") if k.strip()})
    except ValueError:
        raise LmforgeError(f"--ks '{ks}' is not a list of integers", "example: --ks 2,5,10") from None
    if not k_values or min(k_values) < 2:
        raise LmforgeError(f"--ks '{ks}': every K must be at least 2", "example: --ks 2,5,10")
    run = RunDir(run_dir)
    cfg = prepare(run, overrides or [])
    result = run_compare_splits(run, cfg, k_values, repeats, steps, doc_tokens, seed)
    typer.echo(table(result))
    console.print(f"written: {run.root / 'compare' / 'splits.md'}, splits.json, splits.png")


@compare_app.command("tokenizers")
def compare_tokenizers_cmd(
    run_dir: RunArg,
    kinds: Annotated[str, typer.Option(help="comma-separated tokenizer kinds")] = "bytelevel_bpe,bpe,unigram,wordpiece,char",
    vocab_size: Annotated[int | None, typer.Option(min=64, help="one vocabulary size for all (default: the run's)")] = None,
) -> None:
    """Every tokenizer kind at one vocabulary size: bytes per token, unknown rate, vocabulary use, round trip."""
    from lmforge.compare.tokenizers import compare_tokenizers, markdown

    run = RunDir(run_dir)
    cfg = resolve(run, None, None, [])
    result = compare_tokenizers(run, [k.strip() for k in kinds.split(",") if k.strip()],
                                vocab_size or cfg.tokenizer.vocab_size, cfg.tokenizer.min_frequency)
    typer.echo(markdown(result["rows"]))
    console.print(f"written: {run.root / 'compare' / 'tokenizers.md'}, tokenizers.json")


@model_app.command("info")
def model_info_cmd(
    args: Annotated[list[str] | None, typer.Argument(
        metavar="CONFIG|KEY=VALUE",
        help="an optional YAML config file, then overrides as section.key=value, e.g. model.n_layer=4")] = None,
    preset: PresetOpt = None,
    batch: Annotated[int | None, typer.Option(min=1, help="sequences per batch (default train.batch_size)")] = None,
    vocab: Annotated[int | None, typer.Option(min=2, help="vocabulary size (default from --run or the config)")] = None,
    tokens_per_s: Annotated[float | None, typer.Option(min=0.0, help="measured throughput, for MFU")] = None,
    peak_gflops: Annotated[float | None, typer.Option(min=0.0, help="peak GFLOP/s (default: measured)")] = None,
    signal: Annotated[bool, typer.Option("--signal", help="check signal propagation at init")] = False,
    run_dir: Annotated[Path | None, typer.Option("--run", help="a run whose tokens give the real batch")] = None,
    figure: Annotated[Path | None, typer.Option(help="write the signal figure here (PNG)")] = None,
    params: Annotated[bool, typer.Option("--params", help="list every parameter: name, shape, init scheme")] = False,
) -> None:
    """Parameters, FLOPs per token, memory for a batch, MFU, and (--signal) signal propagation at init."""
    from lmforge.report.model_info import info_command, params_text

    config, overrides = _split_config_arg(args or [])
    cfg = load_config(config, preset, overrides)
    if params:
        typer.echo(params_text(cfg, vocab))
        return
    if figure is not None:
        require_png(figure, "--figure", "signal.png")
    typer.echo(info_command(cfg, batch, vocab, tokens_per_s, peak_gflops, signal, run_dir, figure))


@model_app.command("sizes")
def model_sizes_cmd() -> None:
    """List the size presets of every family (model.size)."""
    from lmforge.report.model_info import sizes_text

    typer.echo(sizes_text())


def _compare_models(kind: str, args: list[str] | None, only: list[str] | None, out: Path | None) -> None:
    from lmforge.compare.models import compare

    config, overrides = _split_config_arg(args or [])
    result = compare(kind, config, overrides, out, only)
    typer.echo(result["table"])
    typer.echo(f"written to {result['out']}/compare.md and compare.json ({result['wall_s']:.0f} s)")


OnlyOpt = Annotated[list[str] | None, typer.Option("--only", help="run only these arms (repeatable)")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="run directory for the comparison")]


@compare_app.command("problems")
def compare_problems_cmd(
    out: OutOpt = None,
    quick: Annotated[bool, typer.Option("--quick", help="a few scenarios only (what --selftest runs)")] = False,
    workers: Annotated[int, typer.Option(min=1, help="trainings at once")] = 2,
    tables_only: Annotated[bool, typer.Option("--tables-only", help="redraw tables and figures from an "
                                              "earlier problems.json, training nothing")] = False,
) -> None:
    """The doctor's scenario suite: broken and healthy trainings, detection and repair rates
    (tables 14 and 15, figures 14 and 15)."""
    from lmforge.compare.problems import compare_problems, from_results

    folder = out or Path("runs") / "compare-problems"
    result = from_results(folder) if tables_only else compare_problems(folder, quick, workers)
    typer.echo(result["table"])
    typer.echo(f"written to {folder}/problems.md, problems.json, fig14_train.png, fig15_eval.png")


@compare_app.command("architectures")
def compare_architectures(
    args: ConfigAndOverrides = None,
    only: OnlyOpt = None, out: OutOpt = None,
) -> None:
    """GPT, LLaMA, LSTM, GRU and gated CNN at about equal size on the built-in corpus: bits per byte,
    tokens/s, peak memory."""
    _compare_models("architectures", args, only, out)


@compare_app.command("init")
def compare_init(
    args: ConfigAndOverrides = None,
    only: OnlyOpt = None, out: OutOpt = None,
) -> None:
    """Init schemes on one GPT: signal at init, loss and gradient norm over the first 100 steps."""
    _compare_models("init", args, only, out)


labels_app = _Typer(no_args_is_help=True, help="Labels: rules and the label model, label issues, agreement, "
                    "import and export (docs/labeling.md).")
app.add_typer(labels_app, name="labels")


def _pairs(text: str | None, option: str) -> list[tuple[str, str]] | None:
    """`1=war,2=love` as [(key, label), ...], duplicates kept so they can be refused by name."""
    if not text:
        return None
    out = []
    for part in text.split(","):
        if "=" not in part:
            raise LmforgeError(f"{option} '{text}': '{part}' is not KEY=LABEL", f"example: {option} 1=war,2=love")
        key, lab = part.split("=", 1)
        out.append((key, lab.strip()))
    return out


@app.command()
def label(
    run_dir: RunArg,
    labeler: Annotated[str, typer.Option(help="your name: answers go to labels/human-NAME.jsonl")] = "me",
    labels: Annotated[str | None, typer.Option(help="comma-separated labels (default: label.labels)")] = None,
    keys: Annotated[str | None, typer.Option(help="one key per label, e.g. 1=war,2=love (default 1, 2, ...)")] = None,
    split: Annotated[str, typer.Option(help="which split's documents")] = "train",
) -> None:
    """Label documents one at a time: a key per label, s skip, u undo, n note, q quit. Every answer
    is saved at once; run it again to resume."""
    from lmforge.label.session import Session, build_app, label_keys
    from lmforge.label.store import log_path
    from lmforge.rundir import read_jsonl_gz

    run = RunDir(_existing_run(run_dir))
    cfg = resolve(run, None, None, [])
    pairs = _pairs(keys, "--keys")
    names = [v.strip() for v in labels.split(",") if v.strip()] if labels else list(cfg.label.labels)
    names = names or list(dict.fromkeys(lab for _, lab in pairs or []))
    key_map = label_keys(names, pairs)
    docs = [r for r in read_jsonl_gz(run.require(run.documents(split), "data")) if "augmented_from" not in r]
    queue = run.root / "labels" / "queue.json"  # `lmforge labels active`: the least sure documents first
    first = json.loads(queue.read_text())["ids"] if queue.is_file() else []
    session = Session(docs, key_map, log_path(run, labeler), labeler, first)
    if not sys.stdin.isatty():
        raise LmforgeError("lmforge label needs a terminal", "run it in an interactive shell")
    build_app(session).run()
    say(f"{len(session.state.labels)} labelled, {len(session.state.skipped)} skipped, "
        f"{len(session.pending())} to go: {session.log}")


@labels_app.command("apply")
def labels_apply(run_dir: RunArg, overrides: Overrides = None, config: ConfigOpt = None,
                 functions: Annotated[Path | None, typer.Option(help="a Python file of lf_* labeling functions")] = None,
                 force: ForceOpt = False, quiet: QuietOpt = False) -> None:
    """Run the label stage: label.rules (and --functions) vote, the label model decides, human answers win."""
    _stage("label", run_dir, config, None, overrides, force or functions is not None, quiet, functions=functions)


@labels_app.command("issues")
def labels_issues(run_dir: RunArg, field: Annotated[str, typer.Option(help="the label field")] = "label",
                  split: Annotated[str, typer.Option(help="which split")] = "train",
                  show: Annotated[int, typer.Option(help="how many suspects to print")] = 10) -> None:
    """Likely label errors (cleanlab on out-of-fold probabilities) into labels/issues.json."""
    from lmforge.label.issues import run_issues

    result = run_issues(RunDir(_existing_run(run_dir)), field, split)
    say(f"{len(result['issues'])} suspect labels among {result['records']} records (labels/issues.json)")
    for row in result["issues"][:show]:
        typer.echo(f"  {row['id']}: given {row['given']} (p={row['p_given']}), suggested {row['suggested']} "
                   f"(p={row['p_suggested']})")


@labels_app.command("kappa")
def labels_kappa(run_dir: RunArg, first: Annotated[str, typer.Argument(help="a labeler's name")],
                 second: Annotated[str, typer.Argument(help="another labeler's name")]) -> None:
    """Cohen's kappa between two labelers on the records both answered."""
    from lmforge.label.io import kappa
    from lmforge.label.store import log_path, read_log

    run = RunDir(_existing_run(run_dir))
    logs = [log_path(run, name) for name in (first, second)]
    for path in logs:
        if not path.is_file():
            raise LmforgeError(f"no answers from that labeler: {path} is missing", "check the name (--labeler)")
    out = kappa(read_log(logs[0]).labels, read_log(logs[1]).labels)
    typer.echo(f"Cohen's kappa {out['kappa']:.3f}, agreement {out['agreement']:.3f} on {out['records']} records")


@labels_app.command("import")
def labels_import(run_dir: RunArg, file: Annotated[Path, typer.Argument(help="Label Studio JSON or CSV")],
                  labeler: Annotated[str, typer.Option(help="whose log the labels join")] = "import") -> None:
    """Add labels from a Label Studio JSON export or a CSV (id,label,...) as human answers."""
    from lmforge.label.io import import_labels

    n = import_labels(RunDir(_existing_run(run_dir)), file, labeler)
    say(f"imported {n} labels into labels/human-{labeler}.jsonl")


@labels_app.command("pseudo")
def labels_pseudo(run_dir: RunArg, model: Annotated[Path, typer.Option(help="a fine-tuned run (lmforge finetune)")],
                  threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="least confidence kept")] = 0.9,
                  split: Annotated[str, typer.Option(help="which split")] = "train") -> None:
    """Pseudo-labels: the fine-tuned classifier's labels where it is at least THRESHOLD sure."""
    from lmforge.finetune.pseudo import run_pseudo

    out = run_pseudo(RunDir(_existing_run(run_dir)), model, threshold, split)
    say(f"{out['labelled']} of {out['documents']} documents labelled by the model {out['by_label']}: "
        f"{out['log']}")


@labels_app.command("active")
def labels_active(run_dir: RunArg, model: Annotated[Path, typer.Option(help="a fine-tuned run (lmforge finetune)")],
                  n: Annotated[int, typer.Option(min=1, help="how many documents to queue")] = 20,
                  strategy: Annotated[str, typer.Option(help="entropy, margin or least_confidence")] = "entropy",
                  split: Annotated[str, typer.Option(help="which split")] = "train") -> None:
    """Queue the documents the classifier is least sure of; `lmforge label` shows them first."""
    from lmforge.finetune.pseudo import run_active

    out = run_active(RunDir(_existing_run(run_dir)), model, strategy, n, split)
    say(f"queued {len(out['ids'])} documents ({strategy}) in labels/queue.json")


@labels_app.command("export")
def labels_export(run_dir: RunArg, file: Annotated[Path, typer.Argument(help="a .json (Label Studio) or .csv file")],
                  field: Annotated[str, typer.Option(help="the label field")] = "label") -> None:
    """Write the run's labels with their source, labeler, time and confidence."""
    from lmforge.label.io import export_labels

    n = export_labels(RunDir(_existing_run(run_dir)), file, field)
    say(f"exported {n} labels to {file}")


@compare_app.command("search")
def compare_search_cmd(
    args: ConfigAndOverrides = None,
    seeds: Annotated[int, typer.Option(min=1, help="seeds of every search (sampler and training)")] = 3,
    methods: Annotated[str, typer.Option(help="comma-separated: grid, random, tpe, tpe+hyperband")] = (
        "grid,random,tpe,tpe+hyperband"),
    out: OutOpt = None,
) -> None:
    """Grid vs random vs TPE vs TPE with Hyperband pruning on one space and the grid's compute:
    best validation loss against training steps spent, over seeds (built-in corpus)."""
    from lmforge.compare.search import METHODS, run_compare_search, search_config, table

    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in METHODS]
    if unknown or "grid" not in chosen:
        raise LmforgeError(f"--methods {methods!r}: " + (f"unknown {unknown}" if unknown else "grid is the yardstick"),
                           f"choose from {', '.join(METHODS)}, grid included")
    config, overrides = _split_config_arg(args or [])
    run = RunDir(out or Path("runs") / "compare-search")
    record = run_compare_search(run, search_config(config, overrides), list(range(seeds)), chosen)
    typer.echo(table(record))
    console.print(f"written: {run.root / 'compare'}/search.md, search.json, search.png ({record['wall_s']:.0f} s)")


@compare_app.command("transfer")
def compare_transfer(
    base: Annotated[Path, typer.Argument(metavar="BASE", help="the pretrained base (run, checkpoint or HF folder)")],
    args: ConfigAndOverrides = None,
    sizes: Annotated[str, typer.Option(help="comma-separated training-set sizes, in passages")] = "32,128,512",
    encoder: Annotated[Path | None, typer.Option(help="an encoder run (model.family=encoder): adds the encoder "
                                                 "arm, fine-tuned through its [CLS] token")] = None,
    only: OnlyOpt = None, out: OutOpt = None,
) -> None:
    """Scratch vs pretrained vs frozen-k vs LoRA (vs an encoder) fine-tuning at several
    training-set sizes: test macro-F1 and training time, table and figure (Yosinski et al. 2014
    in miniature)."""
    from lmforge.compare.output import markdown
    from lmforge.compare.transfer import run_transfer
    from lmforge.finetune.base import resolve_base
    from lmforge.finetune.classify import finetune_config

    try:
        size_list = sorted({int(v) for v in sizes.split(",") if v.strip()})
    except ValueError:
        raise LmforgeError(f"--sizes '{sizes}' is not a list of integers", "example: --sizes 32,128,512") from None
    if not size_list or min(size_list) < 2:
        raise LmforgeError(f"--sizes '{sizes}': every size must be at least 2 passages", "example: --sizes 32,128")
    config, overrides = _split_config_arg(args or [])
    found = resolve_base(base)
    cfg = finetune_config(found, config, ["monitor.console=none", *overrides])
    run = RunDir(out or Path("runs") / "compare-transfer")
    result = run_transfer(found, run, cfg, size_list, only, resolve_base(encoder) if encoder else None)
    typer.echo(markdown(result["columns"], result["rows"]))
    for note in result["notes"]:
        console.print(note)
    console.print(f"written: {run.root / 'table.md'}, table.html, table.csv, figure.png, result.json")


@compare_app.command("augmentation")
def compare_augmentation(
    base: Annotated[Path, typer.Argument(metavar="BASE", help="the pretrained base (run, checkpoint or HF folder)")],
    args: ConfigAndOverrides = None,
    sizes: Annotated[str, typer.Option(help="comma-separated training-set sizes, in passages")] = "16,64",
    ops: Annotated[str | None, typer.Option(help="comma-separated operations (default: every one)")] = None,
    rate: Annotated[float, typer.Option(help="share of each passage changed, in [0, 1]")] = 0.1,
    out: OutOpt = None,
) -> None:
    """Each augmentation operation's effect on a small classifier: test macro-F1 with 95%
    intervals at each training-set size, and an example of each operation. paraphrase writes
    with augment.paraphrase.model, by default the base itself."""
    from lmforge.augment.ops import OPERATIONS
    from lmforge.compare.augmentation import parse_sizes, run_augmentation
    from lmforge.finetune.base import resolve_base
    from lmforge.finetune.classify import finetune_config

    size_list = parse_sizes(sizes)
    config, overrides = _split_config_arg(args or [])
    found = resolve_base(base)
    cfg = finetune_config(found, config, ["monitor.console=none", *overrides])
    op_list = [o.strip() for o in ops.split(",") if o.strip()] if ops else list(OPERATIONS)
    run = RunDir(out or Path("runs") / "compare-augmentation")
    result = run_augmentation(found, run, cfg, size_list, op_list, rate)
    typer.echo(result["table"])
    console.print(f"written: {run.root}/table.md, table.html, table.csv, figure.png, cells.json, result.json")


@compare_app.command("labeling")
def compare_labeling(
    base: Annotated[Path, typer.Argument(metavar="BASE", help="the pretrained base (run, checkpoint or HF folder)")],
    args: ConfigAndOverrides = None,
    budgets: Annotated[str, typer.Option(help="comma-separated human labeling budgets, in passages")] = "16,64",
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="pseudo-label confidence threshold")] = 0.9,
    strategy: Annotated[str, typer.Option(help="active learning: entropy, margin or least_confidence")] = "entropy",
    out: OutOpt = None,
) -> None:
    """Gold vs majority vote vs label model vs pseudo-labels vs active learning: label accuracy
    and test macro-F1 per labeling budget (label.rules from the config)."""
    from lmforge.compare.augmentation import parse_sizes
    from lmforge.compare.labeling import run_labeling
    from lmforge.finetune.base import resolve_base
    from lmforge.finetune.classify import finetune_config

    budget_list = parse_sizes(budgets)
    config, overrides = _split_config_arg(args or [])
    found = resolve_base(base)
    cfg = finetune_config(found, config, ["monitor.console=none", *overrides])
    run = RunDir(out or Path("runs") / "compare-labeling")
    result = run_labeling(found, run, cfg, budget_list, threshold, strategy)
    typer.echo(result["table"])
    console.print(f"written: {run.root}/table.md, table.html, table.csv, figure.png, cells.json, result.json")


@compare_app.command("tuning")
def compare_tuning(
    args: ConfigAndOverrides = None,
    only: OnlyOpt = None, out: OutOpt = None,
) -> None:
    """One tuning change at a time from the same base (deeper, wider, searched LR, dropout, L1, L2,
    early stopping): validation loss and train-validation gap, table and figure."""
    from lmforge.compare.tuning import run_tuning

    config, overrides = _split_config_arg(args or [])
    cfg = load_config(config, None if config else "smoke", overrides)
    run = RunDir(out or Path("runs") / "compare-tuning")
    result = run_tuning(run, cfg, only)
    typer.echo(result["table"])
    console.print(f"written: {run.root}/table.md, table.html, table.csv, figure.png, cells.json, result.json")


@compare_app.command("continual")
def compare_continual(
    base: Annotated[Path, typer.Argument(metavar="RUN_A", help="the run trained on domain A (or a checkpoint of it)")],
    overrides: Annotated[list[str] | None, typer.Argument(
        metavar="KEY=VALUE",
        help="domain B's data and the training on B as section.key=value, e.g. train.steps=200 (docs/finetune.md)")] = None,
    methods: Annotated[str, typer.Option(help="comma-separated: naive, replay, ewc, l2")] = "naive,replay,ewc,l2",
    replay: Annotated[float, typer.Option(min=0.01, max=0.99, help="share of each batch replayed from A")] = 0.25,
    ewc: Annotated[float, typer.Option(min=0.0, help="EWC strength (Fisher scaled to mean 1)")] = 0.05,
    l2: Annotated[float, typer.Option(min=0.0, help="L2-toward-start strength")] = 0.05,
    fisher_windows: Annotated[int, typer.Option(min=1, help="A's windows the Fisher is averaged over")] = 64,
    out: OutOpt = None,
) -> None:
    """Train A's model on domain B by each method; forgetting of A, gain on B and cost: table and figure."""
    from lmforge.compare.continual import run_continual
    from lmforge.finetune.base import resolve_base

    found = resolve_base(base)
    run = RunDir(out or Path("runs") / "compare-continual")
    result = run_continual(found, run, overrides or [], [m.strip() for m in methods.split(",") if m.strip()],
                           replay, {"ewc": ewc, "l2": l2}, fisher_windows)
    typer.echo(result["table"])
    console.print(f"written: {run.root}/table.md, table.html, table.csv, figure.png, cells.json, result.json")


SizeOpt = Annotated[str, typer.Option("--size", help="tiny (seconds: the tests) or small (the course book)")]
SeedsOpt = Annotated[str | None, typer.Option("--seeds", help="comma-separated seeds (default: tiny 0, small 0,1)")]


def _seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise LmforgeError(f"--seeds '{text}' is not a list of integers", "example: --seeds 0,1,2") from None


def _sized(name: str, overrides: list[str] | None, size: str, only: list[str] | None, seeds: str | None,
           out: Path | None) -> None:
    """Run one sized comparison (compare/NAME.py) and print its table."""
    import importlib

    from lmforge.compare.cells import check_size
    from lmforge.compare.output import markdown

    check_size(size)
    folder = out or Path("runs") / f"compare-{name}-{size}"
    result = importlib.import_module(f"lmforge.compare.{name}").run(size, folder, overrides or [], only,
                                                                    _seeds(seeds))
    typer.echo(markdown(result["columns"], result["rows"]))
    for note in result["notes"]:
        typer.echo(note)
    console.print(f"written: {folder}/table.md, table.html, table.csv, figure.png, cells.json")


@compare_app.command("cleaning")
def compare_cleaning(overrides: Overrides = None, size: SizeOpt = "small", only: OnlyOpt = None,
                     seeds: SeedsOpt = None, out: OutOpt = None) -> None:
    """Dedup, quality presets, PII masking and missing-value rules on a corpus with labelled defects:
    documents kept and rejected, defects left, good passages lost, held-out bits per byte."""
    _sized("cleaning", overrides, size, only, seeds, out)


@compare_app.command("config")
def compare_config(overrides: Overrides = None, size: SizeOpt = "small", only: OnlyOpt = None,
                   seeds: SeedsOpt = None, out: OutOpt = None) -> None:
    """Batch size, learning rate, optimizer and schedule, one at a time: loss, bits per byte, tokens/s,
    peak memory."""
    _sized("config", overrides, size, only, seeds, out)


@compare_app.command("monitoring")
def compare_monitoring(overrides: Overrides = None, size: SizeOpt = "small", only: OnlyOpt = None,
                       seeds: SeedsOpt = None, out: OutOpt = None) -> None:
    """Each metrics sink (console, JSONL, TensorBoard, W&B offline, MLflow, statistics): what it shows,
    overhead per step, files written."""
    _sized("monitoring", overrides, size, only, seeds, out)


@compare_app.command("adjustment")
def compare_adjustment(overrides: Overrides = None, size: SizeOpt = "small", only: OnlyOpt = None,
                       seeds: SeedsOpt = None, out: OutOpt = None) -> None:
    """Fixed LR, step decay, cosine, cyclical, reduce-on-plateau, early stopping and a live `ctl` LR
    change on one step budget: final loss, steps saved."""
    _sized("adjustment", overrides, size, only, seeds, out)


@compare_app.command("metrics")
def compare_metrics(overrides: Overrides = None, size: SizeOpt = "small", only: OnlyOpt = None,
                    seeds: SeedsOpt = None, out: OutOpt = None) -> None:
    """The same predictions under accuracy, precision/recall/F1, MCC, perplexity and bits per byte:
    where the metrics disagree."""
    _sized("metrics", overrides, size, only, seeds, out)


@compare_app.command("all")
def compare_all(overrides: Overrides = None, size: SizeOpt = "small",
                out: Annotated[Path | None, typer.Option("--out", "-o", help="folder of the book")] = None,
                only: Annotated[list[str] | None, typer.Option(
                    "--only", help="only these comparisons, by command name (`run` for topic 1; repeatable)")] = None,
                ) -> None:
    """The course book: every comparison of `compare --list`, resumable, and an index page
    (index.html, index.md) linking every table and figure by course number."""
    from lmforge.compare.book import build_book

    root = out or Path("runs") / f"book-{size}"
    book = build_book(size, root, overrides or [], only)
    done = sum(1 for c in book["comparisons"].values() if c.get("status") == "done")
    typer.echo(f"{done} comparisons measured, {len(book['comparisons']) - done} skipped, "
               f"{book['last_wall_s']:.0f} s this time")
    console.print(f"written: {root / 'index.html'}, {root / 'index.md'}")


@app.command("export")
def export_cmd(
    run_dir: RunArg,
    out: Annotated[Path, typer.Argument(help="folder to write")],
    fmt: Annotated[str, typer.Option("--format", help="export format: hf")] = "hf",
    force: Annotated[bool, typer.Option("--force", help="replace a folder that is not empty")] = False,
) -> None:
    """Write the newest checkpoint as a Hugging Face model folder (GPT2LMHeadModel / LlamaForCausalLM)."""
    from lmforge.export import export_run

    if fmt != "hf":
        raise LmforgeError(f"unknown export format '{fmt}'", "supported: --format hf")
    summary = export_run(run_dir, out, force)
    typer.echo(f"exported {summary['checkpoint']} as {summary['architecture']} to {summary['out']}")


@compare_app.command("eval")
def compare_eval_cmd(
    run_a: Annotated[Path, typer.Argument(help="run directory A")],
    run_b: Annotated[Path, typer.Argument(help="run directory B (same held-out documents)")],
    split: Annotated[str, typer.Option(help="held-out split to compare on")] = "test",
) -> None:
    """Paired comparison of two runs on the same held-out text: bootstrap and McNemar p-values."""
    from lmforge.compare.paired import compare_eval_path, run_compare_eval, table

    if split not in ("val", "test"):
        raise LmforgeError(f"--split '{split}': choose val or test")
    typer.echo(table(run_compare_eval(run_a, run_b, split)))
    console.print(f"written: {compare_eval_path(run_a, run_b, split)}")


@app.command()
def finetune(
    base: Annotated[Path, typer.Argument(metavar="BASE", help="an lmforge run, one of its checkpoints/step-N "
                                         "folders, or a Hugging Face model folder")],
    args: ConfigAndOverrides = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="run directory (default runs/NAME-finetune)")] = None,
    quiet: QuietOpt = False,
    task: Annotated[str | None, typer.Option(help="a built-in corpus task: authorship (the default), edition "
                                             "(modern or First Folio spelling) or work (which work, 42 classes)")
                    ] = None,
    cv: Annotated[int, typer.Option("--cv", min=0, help="K-fold cross-validation over documents: K fine-tunes, "
                                    "mean and spread of test macro-F1/MCC in cv.json")] = 0,
) -> None:
    """Fine-tune a classifier on BASE: labels from finetune.label_field, passages split by document;
    full, frozen (finetune.freeze_blocks=K) or LoRA (finetune.lora=true). Writes finetune.json
    (with --cv K: one fine-tune per fold in fold-I/, and cv.json)."""
    from lmforge.finetune.base import resolve_base
    from lmforge.finetune.classify import finetune_config, run_finetune

    set_quiet(quiet)
    config, overrides = _split_config_arg(args or [])
    found = resolve_base(base)
    cfg = finetune_config(found, config, overrides, task)
    run_dir = RunDir(out or Path("runs") / cfg.name)
    if cv:
        from lmforge.finetune.cv import RESULT, run_cv

        if cv < 2:
            raise LmforgeError(f"--cv {cv}: cross-validation needs at least 2 folds", "use --cv 5")
        record = run_cv(found, run_dir, cfg, cv, show_progress=not quiet)
        f1, mcc = record["f1_macro"], record["mcc"]
        say(("done", "bold green"), f": {cv} folds, test macro-F1 {f1['mean']:.3f} ± {f1['std']:.3f} (min "
            f"{f1['min']:.3f}, max {f1['max']:.3f}), MCC {mcc['mean']:.3f} ± {mcc['std']:.3f}; {run_dir.root / RESULT}")
        return
    result = run_finetune(found, run_dir, cfg, show_progress=not quiet)
    test = result["test"]
    f1, ci = test["f1_macro"]["value"], test["f1_macro"]["ci95"]
    interval = f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""
    say(("done", "bold green"), f": {result['method']}, test macro-F1 {f1:.3f}{interval}, MCC "
        f"{test['mcc']['value']:.3f} on {test['n']} passages; {run_dir.root / 'finetune.json'}")


@app.command()
def presets() -> None:
    """List the built-in presets."""
    for name in preset_names():
        typer.echo(name)




def main() -> None:
    """Entry point: user mistakes end with one clear message and exit code 2, never a traceback;
    a stage waiting on a scheduler (data.executor=slurm) exits 3."""
    try:
        app()
    except StagePending as exc:
        say(("pending:", "bold yellow"), f" {exc.message}")
        if exc.hint:
            say(("  next:", "yellow"), f" {exc.hint}")
        sys.exit(3)
    except LmforgeError as exc:
        say(("error:", "bold red"), f" {exc.message}")
        if exc.hint:
            say(("  hint:", "yellow"), f" {exc.hint}")
        sys.exit(2)
    except KeyboardInterrupt:
        say(("interrupted", "yellow"))
        sys.exit(130)


if __name__ == "__main__":
    main()
