"""Hugging Face interop: export and import give the same logits (max abs diff < 1e-4, float32)."""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from lmforge.config.load import model_config
from lmforge.config.schema import ModelConfig
from lmforge.errors import LmforgeError
from lmforge.models.hf import from_hf, load_hf_folder, to_hf
from lmforge.models.registry import build_model

V = 97
CONFIGS = {
    "gpt": model_config(family="gpt", size="tiny", block_size=32),
    "gpt-bias-tanh-untied": model_config(family="gpt", size="tiny", block_size=32, bias=True,
                                        activation="gelu_tanh", tie_embeddings=False),
    "llama": model_config(family="llama", size="tiny", block_size=32),
    "llama-gqa-untied": ModelConfig(family="llama", n_layer=2, n_head=4, n_kv_head=2, n_embd=64, block_size=32,
                                    tie_embeddings=False, rope_theta=500000.0),
}


def randomised(cfg: ModelConfig) -> torch.nn.Module:
    """Norm gains and biases off their neutral values, so a mis-mapped one shows up."""
    torch.manual_seed(0)
    m = build_model(cfg, V).eval()
    with torch.no_grad():
        for p in m.parameters():
            if p.ndim == 1:
                p.normal_(0.5, 0.3)
    return m


@pytest.mark.parametrize("name", list(CONFIGS))
def test_export_then_import_same_logits(name: str, tmp_path) -> None:
    ours = randomised(CONFIGS[name])
    x = torch.randint(0, V, (2, 32))
    hf = to_hf(ours)
    hf.save_pretrained(tmp_path)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path), dtype=torch.float32).eval()
    with torch.no_grad():
        ref = ours(x)
        assert (loaded(x).logits - ref).abs().max() < 1e-4
        back = load_hf_folder(tmp_path)
        assert (back(x) - ref).abs().max() < 1e-4


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_import_from_a_hf_model_built_locally(kind: str) -> None:
    torch.manual_seed(1)
    if kind == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=V, n_positions=24, n_embd=48, n_layer=2, n_head=3,
                                      activation_function="gelu_new")
        hf = transformers.GPT2LMHeadModel(cfg)
    else:
        cfg = transformers.LlamaConfig(vocab_size=V, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=24)
        hf = transformers.LlamaForCausalLM(cfg)
    hf.eval()
    with torch.no_grad():
        for p in hf.parameters():
            if p.ndim == 1:
                p.normal_(0.5, 0.3)
    ours = from_hf(hf)
    x = torch.randint(0, V, (2, 24))
    with torch.no_grad():
        assert (ours(x) - hf(x).logits).abs().max() < 1e-4
    # and a wrong weight would show: the test can fail
    with torch.no_grad():
        ours.blocks[1].mlp.proj.weight.mul_(1.5)
        assert (ours(x) - hf(x).logits).abs().max() > 1e-3


def test_unsupported_exports_and_imports_are_clear(tmp_path) -> None:
    with pytest.raises(LmforgeError, match="no Hugging Face equivalent"):
        to_hf(build_model(model_config(family="lstm", size="tiny"), V))
    with pytest.raises(LmforgeError, match="QK-norm"):
        to_hf(build_model(model_config(family="llama", size="tiny", qk_norm=True), V))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(LmforgeError, match="'bert'"):
        load_hf_folder(tmp_path)
    with pytest.raises(LmforgeError, match="folder not found"):
        load_hf_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LmforgeError, match="no config.json"):
        load_hf_folder(tmp_path / "empty")


def test_llama_with_another_mlp_activation_is_refused() -> None:
    """Our SwiGLU gates with silu; a LLaMA config with another hidden_act would import silently
    with other logits, so it is refused, naming the key."""
    hf = transformers.LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                  num_attention_heads=2, hidden_act="gelu", max_position_embeddings=16)
    with pytest.raises(LmforgeError, match="hidden_act='gelu'"):
        from_hf(transformers.LlamaForCausalLM(hf))
