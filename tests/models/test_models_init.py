"""Each init scheme produces the statistics its source prescribes."""

from __future__ import annotations

import math

import pytest
import torch

from lmforge.config.load import model_config
from lmforge.config.schema import ModelConfig
from lmforge.errors import LmforgeError
from lmforge.models.registry import build_model

D, L = 256, 6


def gpt(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(family="gpt", n_layer=L, n_head=4, n_embd=D, block_size=16, **kw), 300)


def rel(a: float, b: float) -> float:
    return abs(a - b) / b


def test_gpt2_scheme_scales_residual_outputs() -> None:
    m = gpt()
    assert rel(m.blocks[0].attn.qkv.weight.std().item(), 0.02) < 0.02
    assert rel(m.blocks[2].mlp.proj.weight.std().item(), 0.02 / math.sqrt(2 * L)) < 0.03
    assert m.blocks[0].ln1.weight.eq(1).all()


def test_normal_does_not_scale() -> None:
    m = gpt(init="normal", init_std=0.05)
    assert rel(m.blocks[2].mlp.proj.weight.std().item(), 0.05) < 0.03


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming_normal_uses_the_fan_mode(mode: str) -> None:
    m = gpt(init="kaiming_normal", init_fan_mode=mode)
    w = m.blocks[0].mlp.fc.weight  # (4D, D): fan_in D, fan_out 4D
    fan = D if mode == "fan_in" else 4 * D
    assert rel(w.std().item(), math.sqrt(2 / fan)) < 0.03


def test_kaiming_uniform_bound() -> None:
    w = gpt(init="kaiming_uniform").blocks[0].mlp.fc.weight
    bound = math.sqrt(2) * math.sqrt(3 / D)
    assert w.abs().max() <= bound and w.abs().max() > 0.98 * bound


def test_xavier_uniform_and_normal() -> None:
    w = gpt(init="xavier_uniform").blocks[0].mlp.fc.weight
    bound = math.sqrt(6 / (D + 4 * D))
    assert w.abs().max() <= bound and w.abs().max() > 0.98 * bound
    w = gpt(init="xavier_normal").blocks[0].mlp.fc.weight
    assert rel(w.std().item(), math.sqrt(2 / (D + 4 * D))) < 0.03


def test_small_init() -> None:
    w = gpt(init="small").blocks[0].attn.qkv.weight
    assert rel(w.std().item(), math.sqrt(2 / (5 * D))) < 0.03


def test_zero_residual() -> None:
    m = gpt(init="zero_residual")
    assert m.blocks[1].attn.proj.weight.abs().max() == 0 and m.blocks[1].mlp.proj.weight.abs().max() == 0
    assert m.blocks[1].attn.qkv.weight.std() > 0.015


def test_torch_scheme_keeps_pytorch_defaults() -> None:
    w = gpt(init="torch").blocks[0].mlp.fc.weight
    bound = 1 / math.sqrt(D)  # nn.Linear: kaiming_uniform(a=sqrt(5)) -> U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert w.abs().max() <= bound and w.abs().max() > 0.98 * bound


def test_rnn_default_orthogonal_recurrent_and_forget_bias() -> None:
    torch.manual_seed(0)
    m = build_model(ModelConfig(family="lstm", n_layer=1, n_embd=64), 50)
    whh = m.blocks[0].weight_hh_l0  # (4H, H): orthogonal columns
    torch.testing.assert_close(whh.T @ whh, torch.eye(64), atol=1e-5, rtol=0)
    b = m.blocks[0].bias_hh_l0
    assert b[64:128].eq(1).all() and b[:64].eq(0).all()


def test_overrides_last_match_wins_and_unknown_pattern_is_an_error() -> None:
    m = gpt(init_overrides={"blocks.*.mlp.fc.weight": "orthogonal", "blocks.0.mlp.fc.weight": "zero"})
    assert m.blocks[0].mlp.fc.weight.abs().max() == 0
    w = m.blocks[1].mlp.fc.weight
    torch.testing.assert_close(w.T @ w, torch.eye(D), atol=1e-4, rtol=0)
    with pytest.raises(LmforgeError, match="match no parameter"):
        gpt(init_overrides={"blocks.*.nonexistent": "zero"})
    with pytest.raises(LmforgeError, match="needs a matrix"):
        gpt(init_overrides={"blocks.0.ln1.weight": "orthogonal"})


def test_rnn_embeddings_start_larger_than_transformers() -> None:
    torch.manual_seed(0)
    m = build_model(ModelConfig(family="gru", n_layer=1, n_embd=128), 500)
    assert rel(m.tok_emb.weight.std().item(), 0.1) < 0.03


def test_the_override_hints_params_listing_exists() -> None:
    """The unmatched-pattern error points at `model info --params`; that listing must exist and show
    every name a glob can match, with its shape and scheme."""
    from typer.testing import CliRunner

    from lmforge.cli import app

    with pytest.raises(LmforgeError) as err:
        build_model(model_config(family="gpt", size="tiny", init_overrides={"nomatch*": "zero"}), 50)
    assert "--params" in (err.value.hint or "")
    result = CliRunner().invoke(app, ["model", "info", "--params", "model.family=llama", "model.size=tiny",
                                      "model.tie_embeddings=false", "--vocab", "50"])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    assert ["tok_emb.weight", "(50,", "64)", "normal"] in rows
    assert ["blocks.1.attn.proj.weight", "(64,", "64)", "scaled"] in rows
    assert ["head.weight", "(50,", "64)", "normal"] in rows
