"""The whole flow, end to end, through the real command line on the built-in corpus (smoke preset)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

LMFORGE = [sys.executable, "-m", "lmforge"]


def lmforge(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*LMFORGE, *args], check=False, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "200", **(env or {})}, cwd=cwd)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    run = tmp_path_factory.mktemp("e2e") / "smoke"
    proc = lmforge("run", "--preset", "smoke", "-o", str(run))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return run, proc


def test_every_artifact_of_the_layout(smoke_run):
    run, _ = smoke_run
    for rel in ["config.yaml", "data/train.jsonl.gz", "data/val.jsonl.gz", "data/test.jsonl.gz",
                "data/rejected/rejected.jsonl.gz", "data/ledger.json", "tokenizer/tokenizer.json",
                "tokens/train.bin", "tokens/val.bin", "tokens/test.bin", "tokens/meta.json",
                "metrics.jsonl", "events.jsonl", "eval.json", "report/index.html", "report/loss.png",
                "report/funnel.png"]:
        assert (run / rel).is_file(), rel
    assert any((run / "tb").iterdir())
    ckpts = sorted((run / "checkpoints").glob("step-*"))
    assert ckpts, "no checkpoint"
    for name in ["model.safetensors", "optimizer.pt", "rng.safetensors", "state.json"]:
        assert (ckpts[-1] / name).is_file()


def test_ledger_balances_and_splits_are_by_document(smoke_run):
    run, _ = smoke_run
    ledger = json.loads((run / "data/ledger.json").read_text())
    assert ledger["balanced"] and ledger["in"] == ledger["kept"] + ledger["rejected"]
    ids = {s: set(v["ids"] or []) for s, v in ledger["splits"].items()}
    assert ids["val"] and ids["test"] and not ids["val"] & ids["test"]
    assert all(v["documents"] > 0 for v in ledger["splits"].values())


def test_tokens_match_the_tokenizer(smoke_run):
    run, _ = smoke_run
    meta = json.loads((run / "tokens/meta.json").read_text())
    tok = Tokenizer.from_file(str(run / "tokenizer/tokenizer.json"))
    assert meta["dtype"] == "uint16" and meta["vocab_size"] == tok.get_vocab_size()
    val = np.fromfile(run / "tokens/val.bin", dtype=np.uint16)
    assert len(val) == meta["splits"]["val"]["tokens"]
    assert int(val[-1]) == meta["eos_id"]  # every document ends with EOS
    text = tok.decode(val[:50].tolist())
    assert len(text) > 50  # byte-level BPE: several characters per token


def test_metrics_and_learning(smoke_run):
    run, _ = smoke_run
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train"]
    assert {"step", "loss", "lr", "grad_norm", "tokens_per_s"} <= set(train[0])
    assert train[-1]["loss"] < train[0]["loss"] - 0.5
    ev = json.loads((run / "eval.json").read_text())
    for split in ("val", "test"):
        s = ev["splits"][split]
        assert s["bits_per_byte"] > 0 and abs(s["perplexity"] - np.exp(s["loss"])) < 1e-6 * s["perplexity"]
    # smoke shows learning: well below the untrained model on the same tokens
    assert ev["splits"]["val"]["bits_per_byte"] < ev["untrained"]["val"]["bits_per_byte"] - 0.5
    assert ev["samples"] and ev["samples"][0]["text"].startswith("ROMEO:")


def test_checkpoint_loads_safely(smoke_run):
    run, _ = smoke_run
    last = max((run / "checkpoints").glob("step-*"), key=lambda p: int(p.name[5:]))
    weights = load_file(str(last / "model.safetensors"))
    assert "tok_emb.weight" in weights
    optim = torch.load(last / "optimizer.pt", weights_only=True)
    assert "state" in optim


def test_report_shows_the_run(smoke_run):
    run, _ = smoke_run
    html = (run / "report/index.html").read_text()
    for needle in ["Data ledger", "bits per byte", "loss.png", "ROMEO:", "Config"]:
        assert needle in html


def test_rerun_skips_unchanged_stages_and_reruns_changed(smoke_run):
    run, _ = smoke_run
    again = lmforge("run", "--preset", "smoke", "-o", str(run))
    assert again.returncode == 0
    out = again.stderr + again.stdout
    for stage in ("data", "tokenize", "train", "eval", "report"):
        assert f"{stage}: unchanged" in out, out
    changed = lmforge("run", "--preset", "smoke", "-o", str(run), "eval.samples=1")
    out = changed.stderr + changed.stdout
    assert changed.returncode == 0
    assert "train: unchanged" in out and "eval: running" in out and "report: running" in out
    assert len(json.loads((run / "eval.json").read_text())["samples"]) == 1


def test_stage_commands_one_by_one(tmp_path):
    run = tmp_path / "steps"
    overrides = ["train.steps=20", "train.eval_interval=10", "train.checkpoint_interval=10", "eval.samples=1"]
    assert lmforge("data", str(run), "--preset", "smoke").returncode == 0
    assert (run / "data/ledger.json").is_file() and not (run / "tokens").exists()
    early = lmforge("train", str(run))
    assert early.returncode == 2 and "lmforge tokenize" in early.stderr and "Traceback" not in early.stderr
    for stage in ("tokenize", "train", "eval", "report"):
        proc = lmforge(stage, str(run), *overrides)
        assert proc.returncode == 0, proc.stderr
    assert (run / "report/index.html").is_file()
    gen = lmforge("generate", str(run), "--prompt", "To be", "--max-tokens", "10", "--seed", "3")
    assert gen.returncode == 0 and gen.stdout.startswith("To be")
    again = lmforge("generate", str(run), "--prompt", "To be", "--max-tokens", "10", "--seed", "3")
    assert again.stdout == gen.stdout  # seeded sampling is repeatable


def test_report_has_no_broken_image_and_renders_in_chromium(smoke_run, tmp_path):
    """The page is self-contained (every figure a data URI that decodes as a PNG), the Markdown
    twin's figures exist, and headless Chromium draws it on a phone-wide window: not blank, with
    figures (coloured pixels) in it."""
    import base64
    import re

    from tests.helpers.browser import ink, screenshot

    run, _ = smoke_run
    html = (run / "report/index.html").read_text()
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert len(srcs) >= 4
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for needle in ["Figure 1. the training flow of this run", "Data ledger", "Tokens", "Evaluation", "Samples"]:
        assert needle in html
    md = (run / "report/index.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert "flow.png" in links and all((run / "report" / link).is_file() for link in links)
    shot = screenshot(run / "report/index.html", tmp_path / "report.png")
    assert ink(shot) > 0.02, "the screenshot is blank"
    colour = (shot.max(axis=-1).astype(int) - shot.min(axis=-1)) > 60
    assert colour.mean() > 0.001, "no figure drawn"


def test_chinese_report_renders_in_chromium(smoke_run, tmp_path):
    """`lmforge report --lang zh` on a copy of the smoke run: Chinese titles, and the page draws."""
    import re
    import shutil

    from tests.helpers.browser import ink, screenshot

    run, _ = smoke_run
    copy = tmp_path / "zh"
    shutil.copytree(run, copy)
    proc = lmforge("report", str(copy), "--lang", "zh")
    assert proc.returncode == 0, proc.stderr
    html = (copy / "report/index.html").read_text()
    assert "<h2>数据账本</h2>" in html and "<h2>流程</h2>" in html and "@font-face" in html
    with_font = screenshot(copy / "report/index.html", tmp_path / "zh.png")
    assert ink(with_font) > 0.02
    # the page's own CJK font is what draws its Chinese: without it the same page looks different
    bare = copy / "report/bare.html"
    bare.write_text(re.sub(r"@font-face\{[^}]*\}", "", html))
    without = screenshot(bare, tmp_path / "bare.png")
    assert (np.abs(with_font[:300].astype(int) - without[:300]).max(axis=-1) > 60).mean() > 0.005


def test_make_runs_quick_preset_end_to_end_shrunk(tmp_path):
    """What `make run` runs (the quick preset: LLaMA block, time budget), made small: it plans its
    steps, re-plans them while it trains, ends with the LR at zero and beats the untrained model."""
    import yaml

    run = tmp_path / "quick"
    proc = lmforge("run", "--preset", "quick", "-o", str(run), "data.max_docs=6", "tokenizer.vocab_size=300",
                   "model.n_layer=1", "model.n_embd=32", "train.time_budget=12", "train.warmup_steps=10",
                   "train.eval_interval=100", "train.log_interval=1", "eval.max_tokens=1500", "eval.samples=0",
                   "eval.tasks=[]", "eval.bootstrap_rounds=0", "monitor.stats_interval=0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    train = recorded["train"]
    assert recorded["model"]["family"] == "llama"
    replans = train["budget_replans"]
    assert len(replans) >= 3 and replans[0][0] == 0 and replans[1][0] == 10
    assert train["steps"] == train["budget_steps"] == replans[-1][1]
    ev = json.loads((run / "eval.json").read_text())
    assert ev["training"]["steps"] == train["steps"] and "re-planned" in ev["training"]["budget"]["why"]
    assert ev["splits"]["val"]["bits_per_byte"] < ev["untrained"]["val"]["bits_per_byte"]
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in logged if "lr" in r and "loss" in r]
    assert lrs[-1] == pytest.approx(0.0, abs=1e-9) and max(lrs) == pytest.approx(3e-3)
