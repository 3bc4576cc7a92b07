"""Size presets per family, from tiny CPU shapes up to published ones.

Pure data (no lmforge imports) so the config can resolve `model.size` before any model code
loads. A preset fills only the keys the user did not set, so `size: small` plus `n_layer: 6`
is a deeper "small".
"""

from __future__ import annotations

from typing import Any

SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "gpt": {
        "tiny": {"n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 64},
        # nanoGPT's CPU recipe shape (4 layers, 4 heads, width 128, context 64)
        "small": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64},
        "base": {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256},
        # Radford et al. 2019, GPT-2 small: 124M parameters with the 50257 vocabulary
        "gpt2-124m": {"n_layer": 12, "n_head": 12, "n_embd": 768, "block_size": 1024,
                      "bias": True, "activation": "gelu_tanh"},
        "gpt2-350m": {"n_layer": 24, "n_head": 16, "n_embd": 1024, "block_size": 1024,
                      "bias": True, "activation": "gelu_tanh"},
    },
    "llama": {
        "tiny": {"n_layer": 2, "n_head": 2, "n_kv_head": 1, "n_embd": 64, "block_size": 64},
        "small": {"n_layer": 4, "n_head": 4, "n_kv_head": 2, "n_embd": 128, "block_size": 64},
        "base": {"n_layer": 6, "n_head": 6, "n_kv_head": 2, "n_embd": 384, "block_size": 256},
        # the Llama 3.2 1B shape (Meta, 2024): 16 layers, width 2048, 32 heads, 8 KV heads
        "llama-1b": {"n_layer": 16, "n_head": 32, "n_kv_head": 8, "n_embd": 2048, "ffn_dim": 8192,
                     "block_size": 2048, "rope_theta": 500000.0, "tie_embeddings": True},
    },
    "lstm": {
        "tiny": {"n_layer": 1, "n_embd": 64, "block_size": 64},
        "small": {"n_layer": 2, "n_embd": 192, "block_size": 64},
        # Zaremba et al. 2014 medium and large PTB models (2 layers, 650 / 1500 units, 35 steps)
        "zaremba-medium": {"n_layer": 2, "n_embd": 650, "block_size": 35, "dropout": 0.5},
        "zaremba-large": {"n_layer": 2, "n_embd": 1500, "block_size": 35, "dropout": 0.65},
    },
    "gru": {
        "tiny": {"n_layer": 1, "n_embd": 64, "block_size": 64},
        "small": {"n_layer": 2, "n_embd": 224, "block_size": 64},
        "medium": {"n_layer": 2, "n_embd": 650, "block_size": 35, "dropout": 0.5},
    },
    "cnn": {
        "tiny": {"n_layer": 2, "n_embd": 64, "block_size": 64, "kernel_size": 3},
        "small": {"n_layer": 4, "n_embd": 128, "block_size": 64, "kernel_size": 3},
        # in the spirit of Dauphin et al. 2017's GCNN-8 (width 900 there; kernel 4)
        "gcnn-8": {"n_layer": 8, "n_embd": 512, "block_size": 256, "kernel_size": 4},
    },
}


def size_names(family: str) -> list[str]:
    return list(SIZES.get(family, {}))
