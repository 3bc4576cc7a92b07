"""The BERT-style encoder: bidirectional attention, [MASK]/[CLS] ids, and the 80/10/10 masking rule."""

from __future__ import annotations

import torch

from lmforge.config.load import model_config
from lmforge.models.loss import IGNORE_INDEX
from lmforge.models.registry import build_model
from lmforge.tokens.loader import RandomWindows
from lmforge.train.mlm import MaskedWindows, mask_tokens, with_cls


def test_masking_follows_80_10_10() -> None:
    vocab, mask_id = 50, 50
    x = with_cls(torch.randint(0, vocab, (400, 250)), 51)
    inputs, targets = mask_tokens(x, mask_id, vocab, torch.Generator().manual_seed(0))
    chosen = targets != IGNORE_INDEX
    n = int(chosen.sum())
    assert abs(n / chosen[:, 1:].numel() - 0.15) < 0.005  # 15% of the positions
    assert not chosen[:, 0].any() and (inputs[:, 0] == 51).all()  # [CLS] is never chosen
    assert torch.equal(targets[chosen], x[chosen]) and torch.equal(inputs[~chosen], x[~chosen])
    as_mask = (inputs[chosen] == mask_id).float().mean().item()
    changed = inputs[chosen] != x[chosen]
    as_random = (changed & (inputs[chosen] != mask_id)).float().mean().item()
    kept = (~changed).float().mean().item()
    assert abs(as_mask - 0.8) < 0.01 and abs(kept - 0.1 - 0.1 / vocab) < 0.01
    assert abs(as_random - 0.1 * (1 - 1 / vocab)) < 0.01  # a random token may draw the same token


def test_encoder_sees_both_ways_and_the_decoder_does_not() -> None:
    torch.manual_seed(0)
    enc = build_model(model_config(family="encoder", n_layer=2, n_head=2, n_embd=16, block_size=8), 10).eval()
    dec = build_model(model_config(family="gpt", n_layer=2, n_head=2, n_embd=16, block_size=8), 10).eval()
    assert enc.tok_emb.weight.shape[0] == 12 and (enc.mask_id, enc.cls_id) == (10, 11)
    x = torch.randint(0, 10, (1, 8))
    y = x.clone()
    y[0, -1] = (x[0, -1] + 1) % 10  # change the last token only
    with torch.no_grad():
        assert not torch.allclose(enc(x)[0, 0], enc(y)[0, 0])  # position 0 sees the end
        torch.testing.assert_close(dec(x)[0, 0], dec(y)[0, 0])


def test_masked_windows_start_with_cls_and_fill_the_context() -> None:
    import numpy as np

    inner = RandomWindows(np.arange(300, dtype=np.uint16) % 10, 7, 4, 0)
    loader = MaskedWindows(inner, mask_id=10, cls_id=11, vocab=10)
    x, y = loader.next()
    assert x.shape == y.shape == (4, 8) and loader.block_size == 8 and (x[:, 0] == 11).all()
    assert (y[:, 0] == IGNORE_INDEX).all()
