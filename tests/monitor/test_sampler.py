"""The text sample logged at each eval uses the eval section's sampling settings."""

from __future__ import annotations

from pathlib import Path

from lmforge.config.load import load_config
from lmforge.monitor import _sampler
from tests.helpers.runs import add_tokenizer, make_token_run


def test_sample_at_eval_keeps_eval_top_p(tmp_path: Path, monkeypatch) -> None:
    """eval.top_p was dropped (None passed), so the logged samples ignored nucleus sampling."""
    from lmforge.evaluate import generate

    run = make_token_run(tmp_path / "run")
    add_tokenizer(run)
    seen = {}
    monkeypatch.setattr(generate, "sample", lambda *args: seen.setdefault("args", args) and "text")
    cfg = load_config(None, "smoke", ["eval.top_p=0.5", "eval.top_k=7", "monitor.sample_tokens=4"])
    _sampler(run, cfg)(None)
    assert seen["args"][3:8] == (4, cfg.eval.temperature, 7, 0.5, cfg.eval.seed)  # tokens, T, top_k, top_p, seed
