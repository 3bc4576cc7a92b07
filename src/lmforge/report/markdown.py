"""report/index.md: the run report's Markdown twin, from the same context as index.html, for
reading in a terminal, a code review or a repository browser (figures are linked PNG files)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lmforge.report.lang import tr


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        return str("" if v is None else v).replace("|", "\\|").replace("\n", " ")

    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(cell(v) for v in r) + " |" for r in rows), ""]


def _num(v: Any, fmt: str = "{:,}") -> str:
    return "" if v is None else fmt.format(v)


def _model(model: dict[str, Any], _: Callable[[str], str]) -> list[str]:
    p = model["params"]
    rows: list[list[Any]] = [[_("family"), model["family"]]]
    rows += [[_(k), _num(v)] for k, v in model["shape"].items()]
    rows += [[_("vocabulary"), _num(model["vocab_size"])], [_("parameters"), _num(p["total"])],
             [_("embedding parameters"), _num(p["embedding"])],
             [_("non-embedding parameters"), _num(p["non_embedding"])]]
    rec = model.get("recorded_params")
    if rec:
        rows.append([_("recorded by the train stage"),
                     f"{rec['total']:,} ({_('same') if rec['total'] == p['total'] else _('DIFFERENT')})"])
    rows += [[_("FLOPs per token (forward + backward)"), _num(model["flops_per_token"])],
             [_("init scheme"), f"{model['init']} (std {model['init_std']})"
              + (f"; {_('weights from')} {model['init_from']}" if model.get("init_from") else "")],
             [_("parameter tensors per init rule"), ", ".join(f"{k} × {n}" for k, n in model["init_parameters"].items())]]
    if model.get("init_overrides"):
        rows.append([_("init overrides"), ", ".join(f"{k}: {v}" for k, v in model["init_overrides"].items())])
    md = [f"## {_('Model')}", "", *_table([_("key"), _("value")], rows), f"### {_('Signal check at init')}", ""]
    sig = model.get("signal")
    if not sig:
        return [*md, f"{_('not measured')}: {model.get('signal_skipped')}.", ""]
    md += [(f"{_('verdict')}: **{_(sig['status'])}** — {sig['reason']}; {_('loss at init')} {sig['loss']:.3f} "
           f"({sig['batch']} × {model['shape']['context']} {_('tokens')}, {sig['source']})."), ""]
    md += _table([_("layer"), _("activation std"), _("d loss / d output"), _("parameter gradients")],
                 [[_(r["layer"]) if r["layer"] == "embedding" else r["layer"].replace("block", _("block")),
                   f"{r['act_std']:.4g}", f"{r['act_grad_norm']:.4g}", f"{r['param_grad_norm']:.4g}"]
                  for r in sig["rows"]])
    if model.get("signal_figure"):
        md += [f"![{_('signal per block at init')}]({model['signal_figure']})", ""]
    return md


def _lr_batch(lb: dict[str, Any], _: Callable[[str], str]) -> list[str]:
    rows: list[list[Any]] = [[_("schedule"), lb["schedule"]], [_("peak learning rate"), f"{lb['peak_lr']:.4g}"],
                             [_("warmup steps"), lb["warmup_steps"]]]
    if lb.get("floor") is not None:
        rows.append([_("floor (train.min_lr)"), f"{lb['floor']:.4g}"])
    if lb.get("final_lr") is not None:
        rows.append([_("learning rate at the last step"), f"{lb['final_lr']:.4g}"])
    rows.append([_("planned steps"), _num(lb["steps"])])
    if lb.get("trained_steps") is not None:
        rows.append([_("trained steps"), _num(lb["trained_steps"])])
    drift = lb.get("drift")
    if drift:
        how = (_("as planned") if drift["first_step"] is None
               else f"{_('differs from the plan from step')} {drift['first_step']}")
        rows.append([_("logged learning rate"), (f"{how} ({lb['logged_points']} {_('points')}, "
                     f"{_('largest relative gap')} {drift['max_rel_gap']:.2g})")])
    rows += [[_("batch (sequences per step)"), (f"{lb['batch_size']} = {lb['micro_batch']} × {lb['grad_accum']} × "
              f"{lb['world']}")], [_("micro-batch"), lb["micro_batch"]], [_("gradient accumulation"), lb["grad_accum"]],
             [_("processes"), lb["world"]], [_("context length"), lb["context"]],
             [_("tokens per step"), _num(lb["tokens_per_step"])]]
    if lb.get("batch_warmup_steps"):
        rows.append([_("batch warmup steps"), lb["batch_warmup_steps"]])
    rows.append([_("planned tokens"), _num(lb["total_tokens"])])
    if lb.get("logged_tokens") is not None:
        rows.append([_("tokens trained (logged)"), _num(lb["logged_tokens"])])
    if lb.get("epochs") is not None:
        rows.append([_("passes over the training tokens"), f"{lb['epochs']:.2f}"])
    budget, probe = lb.get("budget"), lb.get("budget_probe")
    if budget:
        rows += [[_("time budget"), f"{budget.get('time_budget_s')} {_('s')}: {budget.get('steps')} {_('steps')}"],
                 [_("budget plan"), budget.get("why")]]
        if lb.get("train_seconds") is not None:
            rows.append([_("train stage time"), f"{lb['train_seconds']:.1f} {_('s')}"])
    if probe and "step_s" in probe:
        rows += [[_("measured step time"), f"{1000 * probe['step_s']:.1f} ms"],
                 [_("measured validation pass"), f"{probe['eval_s']:.2f} {_('s')}"]]
    md = [f"### {_('Learning-rate schedule and batch')}", "", *_table([_("key"), _("value")], rows)]
    if lb.get("figure"):
        md += [f"![{_('planned and logged learning rate')}]({lb['figure']})", ""]
    return md


def _repairs(repairs: list[dict[str, Any]], _: Callable[[str], str]) -> list[str]:
    return _table([_("step"), _("remedy"), _("outcome"), _("message")],
                  [[r.get("step"), f"`{r.get('remedy')}`", _(str(r.get("outcome"))), r.get("message")] for r in repairs])


def _doctor(doc: dict[str, Any], _: Callable[[str], str]) -> list[str]:
    md = ["## " + _("Doctor's findings"), ""]
    policy = f" (doctor.policy={doc['policy']})" if doc.get("policy") else ""
    if not doc["findings"]:
        if doc["checks"]:
            span = (f" ({_('steps')} {doc['checked_steps'][0]}–{doc['checked_steps'][1]})"
                    if doc.get("checked_steps") else "")
            what = (f" {_('The doctor checked')} {doc['checked']} {_('logged points')}{span} {_('for')}: "
                    + ", ".join(f"`{c}`" for c in doc["checks"]) + ".")
        else:
            what = f" {_('The doctor watched training and recorded no diagnosis.')}"
        md += [f"**{_('No problems found.')}**{what}{policy}", ""]
    else:
        source = f", {_('from `lmforge doctor RUN` (doctor/diagnosis.json)')}" if doc["source"] == "offline" else ""
        md += [(f"{len(doc['findings'])} {_('problem(s) found')} ({doc['errors']} {_('error(s)')}){policy}{source}; "
               f"{doc['applied']} {_('repair(s) applied')}."), ""]
    for i, f in enumerate(doc["findings"], 1):
        v = f["values"]
        evidence = f"{f['metric']}, {_('steps')} {v['from']}–{v['to']}"
        if "first" in v:
            evidence += (f": {v['first']:.4g} → {v['last']:.4g} ({_('min')} {v['low']:.4g}, "
                         f"{_('max')} {v['high']:.4g})")
        if v.get("non_finite"):
            evidence += f"; {v['non_finite']} {_('non-finite values')}"
        said = _(f["explanation"])
        md += [f"### {_('Finding')} {i}: {f['problem']}", "", f"**{_(f['severity'])}**. {said[:1].upper()}{said[1:]}.", ""]
        md += _table([_("key"), _("value")], [[_("symptom"), f["summary"]], [_("detected at step"), f["step"]],
                                              [_("evidence"), evidence], *[[f"`{k}`", x] for k, x in f["evidence"]]])
        if f["remedies"]:
            md += [f"{_('Remedies, best first')}:", "",
                   *(f"{n}. `{name}`" + (f": {_(text)}" if text else "") for n, (name, text) in
                     enumerate(f["remedies"], 1)), ""]
        if f["repairs"]:
            md += _repairs(f["repairs"], _)
        elif doc.get("policy") != "auto":
            md += [_("No repair applied (doctor.policy=auto applies them)."), ""]
    if doc.get("other_repairs"):
        md += _repairs(doc["other_repairs"], _)
    return md


def report_markdown(ctx: dict[str, Any], lang: str = "en") -> str:
    """The report's sections that have data, in the order of the HTML page."""
    def _(text: str) -> str:
        return tr(text, lang)

    md = [f"# {ctx['title']}", ""]
    md += [f"## {_('Flow')}", "", f"![{_('Figure')} 1. {_('the training flow of this run')}]({ctx['flow']})", ""]
    io = ctx["io"]
    md += _table([_("stage"), _("seconds"), _("inputs"), _("outputs")],
                 [[_(n), s.get("seconds"), _(io[n][0]) if n in io else "", _(io[n][1]) if n in io else ""]
                  for n, s in ctx["stages"].items()])
    ledger = ctx.get("ledger")
    if ledger:
        md += [f"## {_('Data ledger')}", "", f"{ledger['in']} → {ledger['kept']} + {ledger['rejected']}", ""]
        md += _table([_("source"), _("in"), _("kept"), _("rejected")],
                     [[src, s.get("in"), s.get("kept"), s.get("rejected")] for src, s in ledger["sources"].items()])
        md += _table([_("split"), _("documents"), _("characters"), _("bytes")],
                     [[n, s["documents"], s["characters"], s["bytes"]] for n, s in ledger["splits"].items()])
        if ctx.get("funnel"):
            md += [f"![{_('Cleaning funnel')}]({ctx['funnel']})", ""]
    tokens = ctx.get("tokens")
    if tokens:
        md += [f"## {_('Tokens')}", "", f"{tokens.get('kind')}, vocabulary {tokens.get('vocab_size')}", ""]
        md += _table([_("split"), _("documents"), _("tokens"), _("bytes per token")],
                     [[n, s.get("documents"), s.get("tokens"), s.get("bytes_per_token")]
                      for n, s in tokens.get("splits", {}).items()])
    if ctx.get("model"):
        md += _model(ctx["model"], _)
    md += [f"## {_('Training')}", ""]
    if ctx.get("lr_batch"):
        md += _lr_batch(ctx["lr_batch"], _)
    for key, label in (("figure", "loss (nats per token)"), ("dynamics", "gradient norm per block"),
                       ("timeline", "live adjustments (details in the events table)")):
        if ctx.get(key):
            md += [f"![{_(label)}]({ctx[key]})", ""]
    if ctx.get("doctor"):
        md += _doctor(ctx["doctor"], _)
    evaluation = ctx.get("evaluation")
    if evaluation:
        md += [f"## {_('Evaluation')} ({evaluation.get('checkpoint')})", ""]
        md += _table([_("split"), _("tokens"), _("loss"), _("perplexity"), _("bits per byte")],
                     [[n, s["tokens"], f"{s['loss']:.4f}", f"{s['perplexity']:.2f}", f"{s['bits_per_byte']:.4f}"]
                      for n, s in evaluation.get("splits", {}).items() if s.get("tokens")])
        samples = evaluation.get("samples") or []
        if samples:
            md += [f"### {_('Samples')}", ""]
            for s in samples:
                md += ["```text", str(s.get("text", "")), "```", ""]
    events = ctx.get("events")
    if events:
        md += [f"## {_('Events')}", ""]
        md += _table([_("kind"), _("step"), _("message")], [[e.get("kind"), e.get("step"), e.get("message")]
                                                            for e in events])
    md += [f"## {_('Config')}", "", "```yaml", ctx.get("config", "").rstrip(), "```", ""]
    return "\n".join(md)
