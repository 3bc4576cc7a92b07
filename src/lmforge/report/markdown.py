"""report/index.md: the run report's Markdown twin, from the same context as index.html, for
reading in a terminal, a code review or a repository browser (figures are linked PNG files)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lmforge.report.lang import tr


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        return str("" if v is None else v).replace("|", "\\|").replace("\n", " ")

    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(cell(v) for v in r) + " |" for r in rows), ""]


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
    md += [f"## {_('Training')}", ""]
    for key, label in (("figure", "loss (nats per token)"), ("dynamics", "gradient norm per block"),
                       ("timeline", "live adjustments (details in the events table)")):
        if ctx.get(key):
            md += [f"![{_(label)}]({ctx[key]})", ""]
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
