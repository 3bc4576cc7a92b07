"""The loop's plug points for other objectives: penalties (EWC, L2-SP, L1), layer-wise LR decay."""

from __future__ import annotations

import pytest
import torch

from lmforge.config.load import model_config
from lmforge.config.schema import TrainConfig
from lmforge.models.loss import lm_loss
from lmforge.models.registry import build_model
from lmforge.train.optim import build_optimizer, param_groups
from lmforge.train.penalty import AnchorPenalty, L1Penalty, fisher_diagonal, trainable_state


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(model_config(n_layer=3, n_head=2, n_embd=16, block_size=8), 12)


def test_ewc_penalty_is_zero_at_the_anchor_and_grows_away_from_it() -> None:
    model = _model()
    x = torch.randint(0, 12, (4, 8))
    fisher = fisher_diagonal(model, [(x, torch.roll(x, -1, 1))], lambda out, y: lm_loss(out, y))
    assert all((f >= 0).all() for f in fisher.values()) and any(f.sum() > 0 for f in fisher.values())
    ewc = AnchorPenalty(trainable_state(model), strength=10.0, weights=fisher)
    at_anchor = ewc(model)
    assert at_anchor.item() == 0.0
    at_anchor.backward()
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    moved = ewc(model).item()
    expected = 0.5 * 10.0 * sum(float((f * 0.01 ** 2).sum()) for f in fisher.values())
    assert moved == pytest.approx(expected, rel=1e-3)


def test_l2_to_start_and_l1_values() -> None:
    model = _model()
    l2sp = AnchorPenalty(trainable_state(model), strength=2.0)
    with torch.no_grad():
        model.blocks[0].mlp.fc.weight.add_(0.5)
    n = model.blocks[0].mlp.fc.weight.numel()
    assert l2sp(model).item() == pytest.approx(0.5 * 2.0 * n * 0.25, rel=1e-5)
    l1 = L1Penalty(0.1)(model).item()
    mats = [p for name, p in model.named_parameters() if p.ndim >= 2 and "emb" not in name]
    assert l1 == pytest.approx(0.1 * sum(float(p.detach().abs().sum()) for p in mats), rel=1e-5)


def test_layer_decay_scales_each_depth() -> None:
    model = _model()
    groups = param_groups(model, 0.1, layer_decay=0.5)
    mult = {g["name"]: g["lr_mult"] for g in groups}
    # 3 blocks: top (final norm) 1, block 2 -> 0.5, block 1 -> 0.25, block 0 -> 0.125, embeddings 0.0625
    assert mult["norm_bias.4"] == 1.0
    assert mult["matrix.3"] == 0.5 and mult["matrix.2"] == 0.25 and mult["matrix.1"] == 0.125
    assert mult["embedding.0"] == 0.0625
    assert sum(len(g["params"]) for g in groups) == len({id(p) for p in model.parameters()})
    assert [g["name"] for g in param_groups(model, 0.1)] == ["matrix", "embedding", "norm_bias"]


def test_frozen_parameters_stay_out_of_the_optimizer() -> None:
    model = _model()
    model.blocks[0].requires_grad_(False)
    opt = build_optimizer(model, TrainConfig(fused="off"))
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not any(id(p) in held for p in model.blocks[0].parameters())
