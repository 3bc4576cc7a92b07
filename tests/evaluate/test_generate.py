"""Sampling: seeded, and top-k = 1 / tiny top-p reduce to greedy decoding."""

from __future__ import annotations

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

from lmforge.config.schema import ModelConfig
from lmforge.evaluate.generate import sample
from lmforge.models.gpt import GPT


def _setup():
    chars = "abcdefgh "
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(chars)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    torch.manual_seed(0)
    return GPT(ModelConfig(n_layer=1, n_head=1, n_embd=8, block_size=8), len(chars)), tok


def _greedy(model, tok, prompt, n):
    ids = tok.encode(prompt).ids
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(torch.tensor([ids[-8:]]))[0, -1].argmax()))
    return tok.decode(ids)


def test_sampling_is_seeded_and_truncation_gives_greedy():
    model, tok = _setup()
    a = sample(model, tok, "ab", 12, temperature=1.0, seed=5, block_size=8)
    assert a == sample(model, tok, "ab", 12, temperature=1.0, seed=5, block_size=8)
    assert a.startswith("ab") and len(a) == 14
    greedy = _greedy(model, tok, "ab", 12)
    assert sample(model, tok, "ab", 12, temperature=1.0, top_k=1, seed=1, block_size=8) == greedy
    assert sample(model, tok, "ab", 12, temperature=1.0, top_p=1e-6, seed=2, block_size=8) == greedy


def test_padded_rows_are_never_drawn_and_the_prompt_comes_back_as_typed():
    chars = "abcdefgh "
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(chars)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(["<eos>"])
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, n_head=1, n_embd=8, block_size=8), 40)  # 30 rows beyond the tokenizer
    with torch.no_grad():
        model.head.weight[len(chars) + 1:] += 5.0  # make the padded rows the likeliest
    for seed in range(5):  # every drawn id has text: one character, or <eos>
        assert len(sample(model, tok, "ab", 10, temperature=2.0, seed=seed, block_size=8).replace("<eos>", "#")) == 12
    empty = sample(model, tok, "", 6, seed=1, block_size=8, start_token="<eos>")
    assert "<eos>" not in empty[:5] and len(empty.replace("<eos>", "")) <= 6
    assert sample(model, tok, "azb", 3, seed=1, block_size=8).startswith("azb")  # z has no token
