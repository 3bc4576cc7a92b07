"""Every family: shapes, causality, bad input, truncated BPTT state, and training through the one Trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmforge.config.load import load_config, model_config
from lmforge.config.schema import ModelConfig
from lmforge.errors import LmforgeError
from lmforge.models.registry import build_model
from lmforge.tokens.stream import StreamWindows

FAMILIES = ["gpt", "llama", "lstm", "gru", "cnn"]
VOCAB = 61


def tiny(family: str, **kw) -> ModelConfig:
    return ModelConfig(**{"family": family, "size": "tiny", "block_size": 32, **kw})


@pytest.mark.parametrize("family", FAMILIES)
def test_shapes_and_causality(family: str) -> None:
    torch.manual_seed(0)
    model = build_model(tiny(family), VOCAB).eval()
    x = torch.randint(0, VOCAB, (3, 24))
    logits = model(x)
    assert logits.shape == (3, 24, VOCAB)
    cut = 11
    x2 = x.clone()
    x2[:, cut:] = torch.randint(0, VOCAB, (3, 24 - cut))  # perturb only the future
    assert not torch.equal(x2[:, cut:], x[:, cut:])
    out2 = model(x2)
    torch.testing.assert_close(out2[:, :cut], logits[:, :cut], rtol=0, atol=1e-5)
    assert (out2[:, cut:] - logits[:, cut:]).abs().max() > 1e-4  # the future does change later positions


@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_transformers_reject_overlong_input(family: str) -> None:
    model = build_model(tiny(family), VOCAB)
    with pytest.raises(ValueError, match="block_size=32"):
        model(torch.zeros(1, 33, dtype=torch.long))


def test_llama_gqa_qknorm_untied() -> None:
    cfg = ModelConfig(family="llama", n_layer=2, n_head=4, n_kv_head=2, n_embd=64, block_size=16,
                      qk_norm=True, tie_embeddings=False)
    model = build_model(cfg, VOCAB)
    assert model.blocks[0].attn.k.weight.shape == (32, 64)  # 2 KV heads of width 16
    assert model.head.weight is not model.tok_emb.weight
    assert model(torch.randint(0, VOCAB, (2, 16))).shape == (2, 16, VOCAB)


def test_cnn_receptive_field_is_respected() -> None:
    model = build_model(ModelConfig(family="cnn", n_layer=2, n_embd=32, kernel_size=3, dilation_cycle=4), VOCAB).eval()
    rf = model.receptive_field  # 1 + 2·1 + 2·2 = 7
    assert rf == 7
    x = torch.randint(0, VOCAB, (1, 20))
    x2 = x.clone()
    x2[0, 0] = (x[0, 0] + 1) % VOCAB
    diff = (model(x2) - model(x))[0].abs().amax(-1)
    assert diff[rf - 1] > 0 and diff[rf:].max() == 0  # position rf-1 still sees token 0, rf does not


@pytest.mark.parametrize("bad,match", [
    ({"family": "gpt", "n_embd": 100, "n_head": 3}, "divisible by n_head"),
    ({"family": "llama", "n_head": 4, "n_kv_head": 3}, "divisible by n_kv_head"),
    ({"family": "lstm", "size": "gpt2-124m"}, "unknown size 'gpt2-124m' for family 'lstm'"),
    ({"family": "transformer"}, "model.family"),
])
def test_bad_model_sections_are_clear(tmp_path, bad: dict, match: str) -> None:
    overrides = [f"model.{k}={v}" for k, v in bad.items()]
    with pytest.raises(LmforgeError, match=match):
        load_config(None, "smoke", overrides)


def test_size_preset_fills_only_unset_keys() -> None:
    cfg = model_config(family="llama", size="llama-1b", n_layer=2)
    assert (cfg.n_layer, cfg.n_embd, cfg.kv_heads, cfg.mlp_dim) == (2, 2048, 8, 8192)


def test_stream_windows_rows_continue() -> None:
    data = np.arange(1000, dtype=np.uint16)
    loader = StreamWindows(data, block_size=10, batch_size=4, seed=3)
    x1, y1 = loader.next()
    x2, _ = loader.next()
    assert torch.equal(x2[:, 0], y1[:, -1])  # row i resumes right after where it stopped
    assert torch.equal(y1[:, :-1], x1[:, 1:])
    state = loader.state_dict()
    x3, _ = loader.next()
    again = StreamWindows(data, block_size=10, batch_size=4, seed=3)
    again.load_state_dict(state)
    assert torch.equal(again.next()[0], x3)  # resume draws exactly the next batch


@pytest.mark.parametrize("family", ["lstm", "gru"])
def test_rnn_carries_state_only_when_training(family: str) -> None:
    torch.manual_seed(0)
    model = build_model(tiny(family), VOCAB)
    x = torch.randint(0, VOCAB, (2, 8))
    model.train()
    first = model(x)
    second = model(x)  # starts from the state the first call left
    assert (first - second).abs().max() > 1e-6
    model.reset_state()
    torch.testing.assert_close(model(x), first)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    off = build_model(tiny(family, tbptt=False), VOCAB).train()
    torch.testing.assert_close(off(x), off(x))


def _trainer(model, data, tmp_path, loader_cls, steps=60):
    from lmforge.config.schema import TrainConfig
    from lmforge.train.loop import Trainer
    from lmforge.train.optim import build_optimizer

    cfg = TrainConfig(steps=steps, batch_size=8, lr=1e-2, min_lr=1e-3, warmup_steps=5, eval_interval=steps,
                      eval_batches=2, log_interval=10, checkpoint_interval=10_000, threads=0)
    loader = loader_cls(data, model.cfg.block_size, cfg.batch_size, 0)
    return Trainer(model, build_optimizer(model, cfg), loader, cfg, data[:400], tmp_path / "ckpt")


@pytest.mark.parametrize("family", ["lstm", "cnn", "llama"])
def test_models_learn_through_the_trainer(family: str, tmp_path) -> None:
    from lmforge.tokens.loader import RandomWindows
    from lmforge.train.loop import estimate_loss

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    period = rng.integers(0, VOCAB, 7)
    data = np.tile(period, 400).astype(np.uint16)  # a repeating pattern: learnable from context
    model = build_model(tiny(family, block_size=16), VOCAB)
    before = estimate_loss(model, data[:400], 16, 8, 2, torch.device("cpu"), "float32")
    trainer = _trainer(model, data, tmp_path, StreamWindows if family == "lstm" else RandomWindows)
    trainer.fit()
    assert trainer.last_val is not None and trainer.last_val < 0.5 * before


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gpt", "llama", "cnn"])
def test_compiles_with_torch_compile(family: str) -> None:
    torch.manual_seed(0)
    model = build_model(tiny(family), VOCAB).eval()
    x = torch.randint(0, VOCAB, (2, 16))
    compiled = torch.compile(model)
    torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kv_heads", [4, 2])
@pytest.mark.parametrize("with_mask", [False, True])
def test_explicit_attention_matches_sdpa(kv_heads: int, with_mask: bool) -> None:
    """The bf16-on-CPU attention path computes what SDPA computes (checked in fp32, where both run)."""
    import torch.nn.functional as F

    from lmforge.models.common import _explicit_attention

    torch.manual_seed(0)
    q = torch.randn(2, 4, 10, 8)
    k, v = torch.randn(2, kv_heads, 10, 8), torch.randn(2, kv_heads, 10, 8)
    mask = None
    if with_mask:  # two documents per row: 0-3 and 4-9
        doc = torch.tensor([0] * 4 + [1] * 6)
        mask = ((doc[:, None] == doc[None, :]) & torch.ones(10, 10, dtype=torch.bool).tril()).expand(2, 10, 10)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=mask is None,
                                         attn_mask=None if mask is None else mask[:, None], enable_gqa=kv_heads != 4)
    torch.testing.assert_close(_explicit_attention(q, k, v, mask, 0.0), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_bf16_cpu_forward_close_to_fp32(family: str) -> None:
    """Under bf16 autocast on CPU (the explicit attention path) logits stay near the fp32 ones."""
    torch.manual_seed(0)
    model = build_model(tiny(family), VOCAB).eval()
    x = torch.randint(0, VOCAB, (2, 32))
    ref = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x).float()
    assert (low - ref).abs().max() < 0.1 * ref.abs().max()


@pytest.mark.parametrize("t", [64, 300])
def test_bf16_attention_on_both_sides_of_the_explicit_cutoff(t: int) -> None:
    """bf16 on CPU: explicit form up to EXPLICIT_MAX_LEN, SDPA beyond; both near the fp32 result."""
    import torch.nn.functional as F

    from lmforge.models.common import EXPLICIT_MAX_LEN, causal_attention

    assert (t <= EXPLICIT_MAX_LEN) == (t == 64)
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, t, 16) for _ in range(3))
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    low = causal_attention(q.bfloat16(), k.bfloat16(), v.bfloat16()).float()
    assert (low - ref).abs().max() < 0.05
