"""model info figures against published counts; the signal check; the `model info` command."""

from __future__ import annotations

import math

import torch
from typer.testing import CliRunner

from lmforge.cli import app
from lmforge.config.load import model_config
from lmforge.config.schema import ModelConfig
from lmforge.models.info import flops_per_token, memory_estimate
from lmforge.models.registry import build_model, count_parameters
from lmforge.models.signal import signal_check, verdict


def test_gpt2_124m_parameter_count() -> None:
    cfg = model_config(family="gpt", size="gpt2-124m")
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = build_model(cfg, 50257)
    assert count_parameters(model)["total"] == 124_439_808  # GPT-2 small, tied head


def test_llama_1b_parameter_count() -> None:
    with torch.device("meta"):
        model = build_model(model_config(family="llama", size="llama-1b"), 128256)
    assert count_parameters(model)["total"] == 1_235_814_400  # Llama 3.2 1B


def test_flops_match_nanogpt_formula() -> None:
    cfg = ModelConfig(family="gpt", n_layer=4, n_head=4, n_embd=128, block_size=64)
    model = build_model(cfg, 84)
    assert abs(flops_per_token(model, cfg) - 5.18e6) < 0.01e6  # nanoGPT's 6N + 12·L·H·Q·T for its CPU shape
    mem = memory_estimate(model, cfg, 84, batch=12)
    assert mem["optimizer"] == 2 * mem["weights"] and mem["total"] > 16 * count_parameters(model)["total"]


def test_signal_check_rows_and_no_side_effects() -> None:
    torch.manual_seed(0)
    model = build_model(model_config(family="gpt", size="tiny", block_size=16), 50).train()
    x = torch.randint(0, 50, (4, 16))
    before = [p.detach().clone() for p in model.parameters()]
    result = signal_check(model, x, x)
    assert [r["layer"] for r in result["rows"]] == ["embedding", "block 0", "block 1"]
    assert all(math.isfinite(r["act_std"]) and r["param_grad_norm"] > 0 for r in result["rows"])
    assert result["status"] == "healthy"
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_verdict_rules() -> None:
    def rows(first: float, last: float) -> list[dict]:
        return [{"layer": "embedding", "act_std": 1.0, "param_grad_norm": 1.0},
                {"layer": "block 0", "act_std": 1.0, "param_grad_norm": first},
                {"layer": "block 1", "act_std": 1.0, "param_grad_norm": last}]
    assert verdict(rows(1e-5, 1.0))["status"] == "vanishing"
    assert verdict(rows(100.0, 1.0))["status"] == "exploding"
    assert verdict(rows(1.0, 1.0))["status"] == "healthy"
    assert verdict(rows(math.nan, 1.0))["status"] == "exploding"


def test_model_info_command(tmp_path) -> None:
    fig = tmp_path / "signal.png"
    result = CliRunner().invoke(app, ["model", "info", "model.family=cnn", "model.size=tiny", "--vocab", "64",
                                      "--signal", "--figure", str(fig), "--tokens-per-s", "1000",
                                      "--peak-gflops", "100"])
    assert result.exit_code == 0, result.output
    assert "receptive field" in result.output and "verdict: healthy" in result.output
    assert "MFU" in result.output and fig.stat().st_size > 1000


def test_signal_on_a_run_too_short_for_one_window_is_a_clear_error(tmp_path) -> None:
    """`--signal --run RUN` with a block_size longer than RUN's splits names the key, not a numpy traceback."""
    import json

    import numpy as np

    from lmforge.errors import LmforgeError
    from lmforge.report.model_info import real_batch

    tokens = tmp_path / "run" / "tokens"
    tokens.mkdir(parents=True)
    (tokens / "meta.json").write_text(json.dumps({"dtype": "uint16", "vocab_size": 64}))
    for split, n in (("train", 40), ("val", 10)):
        np.arange(n, dtype=np.uint16).tofile(tokens / f"{split}.bin")
    xy, _ = real_batch(tmp_path / "run", 64, 2, 38)  # 39 tokens per window: the train split has them
    assert xy.shape == (2, 39)
    for context in (39, 64):
        try:
            real_batch(tmp_path / "run", 64, 2, context)
        except LmforgeError as exc:
            assert f"model.block_size={context}" in exc.message
        else:
            raise AssertionError("expected an LmforgeError")


def test_vocab_smaller_than_the_runs_is_a_clear_error(tmp_path) -> None:
    """`--vocab` below the run's vocabulary would index past the embedding (an IndexError traceback)."""
    import json

    import numpy as np

    tokens = tmp_path / "run" / "tokens"
    tokens.mkdir(parents=True)
    (tokens / "meta.json").write_text(json.dumps({"dtype": "uint16", "vocab_size": 64}))
    for split in ("train", "val"):
        (np.arange(200, dtype=np.uint16) % 64).tofile(tokens / f"{split}.bin")
    base = ["model", "info", "model.size=tiny", "--signal", "--run", str(tmp_path / "run")]
    assert CliRunner().invoke(app, [*base, "--vocab", "64"]).exit_code == 0
    result = CliRunner().invoke(app, [*base, "--vocab", "10"])
    assert "--vocab 10 is smaller than the vocabulary" in str(result.exception)


def test_signal_figure_must_be_a_png(tmp_path) -> None:
    """matplotlib raised a ValueError traceback for another suffix and silently wrote NAME.png for none."""
    for bad, better in (("out.xyz", "out.png"), ("figs", "figs.png")):
        result = CliRunner().invoke(app, ["model", "info", "model.size=tiny", "--vocab", "64", "--signal",
                                          "--figure", str(tmp_path / bad)])
        assert "name a .png file" in str(result.exception) and better in result.exception.hint
    assert not list(tmp_path.iterdir())
