"""Hugging Face interop (optional extra `hf`): our GPT as GPT2LMHeadModel, our LLaMA as
LlamaForCausalLM, and back, with the same logits (tests/models/test_hf.py holds us to 1e-4).

Weight names map one to one; the only reshaping is GPT-2's Conv1D, which stores (in, out) where
nn.Linear stores (out, in). Our bias-free GPT exports with zero biases, since GPT-2 always has them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmforge.config import ModelConfig
from lmforge.errors import LmforgeError
from lmforge.models.registry import build_model

ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_new"}
# "gelu_new", "gelu_pytorch_tanh" and "gelu_fast" are the same tanh curve to float precision
ACT_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise LmforgeError("Hugging Face interop needs the `transformers` library",
                           "install the extra: pip install 'lmforge[hf]'") from None
    return transformers


# ------------------------------------------------------------------ name maps


def _gpt2_pairs(cfg: ModelConfig) -> list[tuple[str, str, bool]]:
    """(ours, theirs, transpose) for every tensor of a GPT-2 model."""
    pairs = [("tok_emb.weight", "transformer.wte.weight", False),
             ("pos_emb.weight", "transformer.wpe.weight", False),
             ("ln_f.weight", "transformer.ln_f.weight", False), ("ln_f.bias", "transformer.ln_f.bias", False),
             ("head.weight", "lm_head.weight", False)]
    for i in range(cfg.n_layer):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        for a, b, t in [("ln1", "ln_1", False), ("ln2", "ln_2", False), ("attn.qkv", "attn.c_attn", True),
                        ("attn.proj", "attn.c_proj", True), ("mlp.fc", "mlp.c_fc", True),
                        ("mlp.proj", "mlp.c_proj", True)]:
            pairs += [(f"{ours}{a}.weight", f"{theirs}{b}.weight", t), (f"{ours}{a}.bias", f"{theirs}{b}.bias", False)]
    return pairs


def _llama_pairs(cfg: ModelConfig) -> list[tuple[str, str, bool]]:
    pairs = [("tok_emb.weight", "model.embed_tokens.weight", False), ("norm_f.weight", "model.norm.weight", False),
             ("head.weight", "lm_head.weight", False)]
    for i in range(cfg.n_layer):
        ours, theirs = f"blocks.{i}.", f"model.layers.{i}."
        pairs += [(f"{ours}norm1.weight", f"{theirs}input_layernorm.weight", False),
                  (f"{ours}norm2.weight", f"{theirs}post_attention_layernorm.weight", False)]
        for a, b in [("attn.q", "self_attn.q_proj"), ("attn.k", "self_attn.k_proj"), ("attn.v", "self_attn.v_proj"),
                     ("attn.proj", "self_attn.o_proj"), ("mlp.gate", "mlp.gate_proj"), ("mlp.up", "mlp.up_proj"),
                     ("mlp.proj", "mlp.down_proj")]:
            pairs += [(f"{ours}{a}.weight", f"{theirs}{b}.weight", False), (f"{ours}{a}.bias", f"{theirs}{b}.bias", False)]
    return pairs


def _pairs(cfg: ModelConfig) -> list[tuple[str, str, bool]]:
    return _gpt2_pairs(cfg) if cfg.family == "gpt" else _llama_pairs(cfg)


# ------------------------------------------------------------------ configs


def hf_config(cfg: ModelConfig, vocab_size: int, eos_id: int | None = None, bos_id: int | None = None) -> Any:
    """The transformers config equal to our model section (GPT2Config or LlamaConfig)."""
    tf = _transformers()
    if cfg.family == "gpt":
        return tf.GPT2Config(vocab_size=vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd,
                             n_layer=cfg.n_layer, n_head=cfg.n_head, n_inner=cfg.mlp_dim,
                             activation_function=ACT_TO_HF[cfg.activation], resid_pdrop=cfg.dropout,
                             embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout, layer_norm_epsilon=cfg.norm_eps,
                             initializer_range=cfg.init_std, bos_token_id=bos_id if bos_id is not None else eos_id,
                             eos_token_id=eos_id, tie_word_embeddings=cfg.tie_embeddings)
    if cfg.family == "llama":
        if cfg.qk_norm:
            raise LmforgeError("LlamaForCausalLM has no QK-norm, so a model with model.qk_norm=true cannot be "
                               "exported as LLaMA", "train with model.qk_norm=false to export, or keep lmforge's format")
        return tf.LlamaConfig(vocab_size=vocab_size, hidden_size=cfg.n_embd, intermediate_size=cfg.mlp_dim,
                              num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head,
                              num_key_value_heads=cfg.kv_heads, head_dim=cfg.n_embd // cfg.n_head,
                              max_position_embeddings=cfg.block_size, rms_norm_eps=cfg.norm_eps,
                              rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
                              attention_bias=cfg.bias, mlp_bias=cfg.bias, attention_dropout=cfg.dropout,
                              tie_word_embeddings=cfg.tie_embeddings, initializer_range=cfg.init_std,
                              bos_token_id=bos_id, eos_token_id=eos_id)
    raise LmforgeError(f"model family '{cfg.family}' has no Hugging Face equivalent to export to",
                       "export works for family gpt (GPT2LMHeadModel) and llama (LlamaForCausalLM)")


def _need(hf: Any, key: str, ok: Any, what: str) -> None:
    value = getattr(hf, key, None)
    if value not in ok if isinstance(ok, (tuple, list, set)) else value != ok:
        raise LmforgeError(f"cannot import this checkpoint: {key}={value!r} ({what})",
                           "lmforge imports plain GPT-2 and LLaMA checkpoints only")


def model_config_from_hf(hf: Any) -> tuple[ModelConfig, int]:
    """Our model section and vocabulary size for a GPT2Config or LlamaConfig."""
    if hf.model_type == "gpt2":
        _need(hf, "activation_function", tuple(ACT_FROM_HF), "activation")
        _need(hf, "scale_attn_by_inverse_layer_idx", False, "attention scaling by layer")
        _need(hf, "reorder_and_upcast_attn", False, "attention upcast ordering")
        _need(hf, "scale_attn_weights", True, "unscaled attention")
        cfg = ModelConfig(family="gpt", n_layer=hf.n_layer, n_head=hf.n_head, n_embd=hf.n_embd,
                          ffn_dim=hf.n_inner or 4 * hf.n_embd, block_size=hf.n_positions, bias=True,
                          activation=ACT_FROM_HF[hf.activation_function], norm_eps=hf.layer_norm_epsilon,
                          dropout=0.0, tie_embeddings=bool(hf.tie_word_embeddings))
    elif hf.model_type == "llama":
        rope = getattr(hf, "rope_parameters", None) or {"rope_type": "default", "rope_theta": 10000.0}
        if rope.get("rope_type", "default") != "default":
            raise LmforgeError(f"cannot import this checkpoint: rope_type={rope.get('rope_type')!r}",
                               "only plain rotary embeddings (rope_type 'default') are supported")
        if hf.head_dim * hf.num_attention_heads != hf.hidden_size:
            raise LmforgeError(f"cannot import this checkpoint: head_dim {hf.head_dim} × heads "
                               f"{hf.num_attention_heads} != hidden_size {hf.hidden_size}")
        if hf.attention_bias != hf.mlp_bias:
            raise LmforgeError("cannot import this checkpoint: attention_bias and mlp_bias differ",
                               "lmforge's model.bias covers both")
        cfg = ModelConfig(family="llama", n_layer=hf.num_hidden_layers, n_head=hf.num_attention_heads,
                          n_kv_head=hf.num_key_value_heads, n_embd=hf.hidden_size, ffn_dim=hf.intermediate_size,
                          block_size=hf.max_position_embeddings, bias=bool(hf.attention_bias),
                          norm_eps=hf.rms_norm_eps, rope_theta=float(rope["rope_theta"]), dropout=0.0,
                          tie_embeddings=bool(hf.tie_word_embeddings))
    else:
        raise LmforgeError(f"cannot import a '{hf.model_type}' checkpoint", "supported: gpt2 and llama")
    return cfg, hf.vocab_size


# ------------------------------------------------------------------ weights


def to_hf(model: nn.Module, eos_id: int | None = None, bos_id: int | None = None) -> Any:
    """A transformers model (float32, eval mode) with our model's weights."""
    tf = _transformers()
    cfg: ModelConfig = model.cfg
    hcfg = hf_config(cfg, model.vocab_size, eos_id, bos_id)
    cls = tf.GPT2LMHeadModel if cfg.family == "gpt" else tf.LlamaForCausalLM
    hf = cls(hcfg).float().eval()
    ours = model.state_dict()
    target = hf.state_dict()
    out: dict[str, torch.Tensor] = {}
    for mine, theirs, transpose in _pairs(cfg):
        if theirs not in target:
            continue
        if mine in ours:
            t = ours[mine].detach().float()
            out[theirs] = t.t().contiguous() if transpose else t.clone()
        elif theirs.endswith(".bias"):
            out[theirs] = torch.zeros_like(target[theirs])  # our bias-free layers: zero bias is the same map
        elif theirs.endswith(("ln_1.weight", "ln_2.weight")):
            out[theirs] = torch.ones_like(target[theirs])
    missing, unexpected = hf.load_state_dict(out, strict=False)
    left = [k for k in missing if not (k == "lm_head.weight" and cfg.tie_embeddings)]
    if left or unexpected:
        raise LmforgeError(f"export mapping incomplete: missing {left}, unexpected {unexpected}")
    if cfg.tie_embeddings:
        hf.tie_weights()
    return hf


def from_hf(hf: Any) -> nn.Module:
    """Our model (float32) with the weights of a GPT2LMHeadModel or LlamaForCausalLM."""
    cfg, vocab = model_config_from_hf(hf.config)
    model = build_model(cfg, vocab)
    theirs = {k: v.detach().float() for k, v in hf.state_dict().items()}
    ours = model.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    for mine, name, transpose in _pairs(cfg):
        if mine in ours and name in theirs:
            t = theirs[name]
            loaded[mine] = t.t().contiguous() if transpose else t.clone()
    for mine, t in loaded.items():
        if ours[mine].shape != t.shape:
            raise LmforgeError(f"checkpoint tensor for '{mine}' has shape {tuple(t.shape)}, "
                               f"the model expects {tuple(ours[mine].shape)}",
                               "the folder's config.json does not describe its weights")
    missing, _unexpected = model.load_state_dict(loaded, strict=False)
    left = [k for k in missing if not (k == "head.weight" and cfg.tie_embeddings)]
    if left:
        raise LmforgeError(f"the checkpoint lacks tensors for {left[:5]}{' ...' if len(left) > 5 else ''}")
    return model.eval()


def load_hf_folder(folder: Path) -> nn.Module:
    """Our model from a local Hugging Face folder (config.json + safetensors); nothing is downloaded."""
    tf = _transformers()
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise LmforgeError(f"{folder} holds no config.json", "give a local folder written by save_pretrained")
    model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    if model_type not in ("gpt2", "llama"):
        raise LmforgeError(f"{folder}: cannot import a '{model_type}' checkpoint", "supported: gpt2 and llama")
    hf = tf.AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
    return from_hf(hf)


# ------------------------------------------------------------------ a run, exported


def export_run(run_dir: Path, out: Path) -> dict[str, Any]:
    """Write the newest checkpoint of a run as a Hugging Face folder: config.json, model.safetensors,
    tokenizer files. Returns a summary for the CLI."""
    from lmforge.config import load_config
    from lmforge.evaluate.stage import load_trained
    from lmforge.rundir import RunDir

    tf = _transformers()
    run = RunDir(run_dir)
    if not run.config.is_file():
        raise LmforgeError(f"{run_dir} is not a run directory (no config.yaml)", "train a model first: lmforge run")
    cfg = load_config(run.config)
    model, tok, latest = load_trained(run, cfg)
    model = model.float().cpu()
    eos = tok.token_to_id(cfg.tokenizer.eos_token)
    hf = to_hf(model, eos_id=eos)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(str(out))
    fast = tf.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=cfg.tokenizer.eos_token,
                                      model_max_length=cfg.model.block_size)
    fast.save_pretrained(str(out))
    return {"checkpoint": latest.name, "architecture": type(hf).__name__, "out": str(out)}
