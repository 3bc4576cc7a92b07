"""Sampling text from a trained model (temperature, top-k, top-p, seeded)."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer
from torch import nn


@torch.no_grad()
def sample(model: nn.Module, tok: Tokenizer, prompt: str, max_tokens: int, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, seed: int = 0,
           block_size: int | None = None, start_token: str | None = None) -> str:
    """Continue `prompt` by max_tokens tokens; returns prompt + continuation as text. The prompt
    comes back as typed, even where the tokenizer could not encode it all. An empty prompt starts
    from `start_token` (the run's EOS: a document boundary), which is not part of the text."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    ids = tok.encode(prompt).ids
    start = tok.token_to_id(start_token) if start_token else None
    lead = [] if ids else [start if start is not None else 0]
    idx = torch.tensor([lead + ids], dtype=torch.long, device=device)
    block = block_size or idx.shape[1] + max_tokens
    vocab = tok.get_vocab_size(with_added_tokens=True)
    for _ in range(max_tokens):
        logits = model(idx[:, -block:])[0, -1].float().cpu() / temperature
        logits[vocab:] = float("-inf")  # rows beyond the tokenizer (a padded vocab_size) have no text
        if top_k is not None:
            kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
            logits[logits < kth] = float("-inf")
        probs = torch.softmax(logits, dim=-1)
        if top_p is not None and top_p < 1.0:
            sorted_p, order = probs.sort(descending=True)
            # keep the smallest set of likeliest tokens whose mass reaches top_p (Holtzman et al. 2020);
            # the likeliest token always stays, so top_p near 0 is greedy decoding
            cut = sorted_p.cumsum(0) - sorted_p >= top_p
            cut[0] = False
            sorted_p[cut] = 0.0
            probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
            probs /= probs.sum()
        nxt = torch.multinomial(probs, 1, generator=gen)
        idx = torch.cat([idx, nxt.view(1, 1).to(device)], dim=1)
    model.train(was_training)
    out = idx[0].tolist()[len(lead):]
    text, echoed = tok.decode(out, skip_special_tokens=False), tok.decode(ids, skip_special_tokens=False)
    return prompt + text[len(echoed):] if text.startswith(echoed) else text
