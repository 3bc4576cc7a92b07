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

from lmforge.config.schema import ModelConfig
from lmforge.errors import LmforgeError
from lmforge.models.registry import build_model
from lmforge.rundir import member

ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_new"}
# "gelu_new", "gelu_pytorch_tanh" and "gelu_fast" are the same tanh curve to float precision
ACT_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}


def require_transformers() -> Any:
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


def hf_config(cfg: ModelConfig, vocab_size: int, eos_id: int | None = None, bos_id: int | None = None,
              pad_id: int | None = None) -> Any:
    """The transformers config equal to our model section (GPT2Config or LlamaConfig)."""
    tf = require_transformers()
    if cfg.family == "gpt":
        return tf.GPT2Config(vocab_size=vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd,
                             n_layer=cfg.n_layer, n_head=cfg.n_head, n_inner=cfg.mlp_dim,
                             activation_function=ACT_TO_HF[cfg.activation], resid_pdrop=cfg.dropout,
                             embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout, layer_norm_epsilon=cfg.norm_eps,
                             initializer_range=cfg.init_std, bos_token_id=bos_id if bos_id is not None else eos_id,
                             eos_token_id=eos_id, pad_token_id=pad_id, tie_word_embeddings=cfg.tie_embeddings)
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
                              bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id)
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
        _need(hf, "hidden_act", "silu", "our SwiGLU MLP gates with silu")
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


def to_hf(model: nn.Module, eos_id: int | None = None, bos_id: int | None = None, pad_id: int | None = None) -> Any:
    """A transformers model (float32, eval mode) with our model's weights."""
    tf = require_transformers()
    cfg: ModelConfig = model.cfg
    hcfg = hf_config(cfg, model.vocab_size, eos_id, bos_id, pad_id)
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
    load_mapped(model, hf.state_dict(), "the Hugging Face model")
    return model.eval()


# tensors some checkpoints carry that are not weights: GPT-2's causal-mask buffers, old RoPE tables
NOT_WEIGHTS = (".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")


def load_mapped(model: nn.Module, theirs: dict[str, torch.Tensor], source: str) -> None:
    """Copy Hugging Face-named tensors into our model; any tensor missing, left over or of another
    shape is an error naming `source`, since it means the config does not describe the weights."""
    cfg: ModelConfig = model.cfg
    ours = model.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    wrong: list[str] = []
    left: list[str] = []
    for mine, name, transpose in _pairs(cfg):
        if mine not in ours:
            continue  # a bias our bias-free layers do not have
        if name not in theirs:
            if not (mine == "head.weight" and cfg.tie_embeddings):
                left.append(name)
            continue
        t, need = theirs[name], tuple(ours[mine].shape)[::-1 if transpose else 1]  # in the file's layout
        if tuple(t.shape) != need:
            wrong.append(f"{name} has shape {tuple(t.shape)}, the config needs {need}")
            continue
        t = t.detach().float()
        loaded[mine] = t.t().contiguous() if transpose else t
    used = {name for mine, name, _ in _pairs(cfg) if mine in loaded}
    extra = sorted(k for k in set(theirs) - used if not k.endswith(NOT_WEIGHTS))
    if cfg.tie_embeddings and "lm_head.weight" in extra:
        extra.remove("lm_head.weight")  # a tied head saved anyway (it equals the embedding)
    for problem, names in (("tensors of the wrong shape", wrong), ("missing tensors", left),
                           ("tensors the config does not describe", extra)):
        if names:
            raise LmforgeError(f"{source}: {problem}: {'; '.join(names[:4])}{' ...' if len(names) > 4 else ''}",
                               "the folder's config.json does not describe its weights; re-save it with "
                               "save_pretrained")
    model.load_state_dict(loaded, strict=False)


def folder_config(folder: Path) -> Any:
    """A local folder's GPT2Config or LlamaConfig, read from config.json alone (nothing downloaded)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LmforgeError(f"Hugging Face folder not found: {folder}", "give a local folder (nothing is downloaded)")
    if not (folder / "config.json").is_file():
        raise LmforgeError(f"{folder} holds no config.json",
                           "give a local folder written by save_pretrained (config.json + model.safetensors)")
    try:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    except (json.JSONDecodeError, AttributeError) as exc:
        raise LmforgeError(f"{folder / 'config.json'} is not a JSON object ({exc})") from None
    if model_type not in ("gpt2", "llama"):
        raise LmforgeError(f"{folder / 'config.json'}: cannot import a '{model_type}' checkpoint",
                           "supported: gpt2 (GPT2LMHeadModel) and llama (LlamaForCausalLM)")
    return require_transformers().AutoConfig.from_pretrained(str(folder), local_files_only=True)


def folder_model_keys(folder: Path) -> dict[str, Any]:
    """The model section's keys that a folder's config.json decides (its shape and vocabulary)."""
    cfg, vocab = model_config_from_hf(folder_config(folder))
    keys = cfg.model_dump(exclude_unset=True, exclude={"dropout"})
    return {**keys, "vocab_size": vocab}


def _indexed_files(folder: Path, index: Path) -> list[Path]:
    """The shard files a weight index names; a name leading outside the folder is refused."""
    try:
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LmforgeError(f"{index} is not a weight index lmforge can read ({exc})",
                           "export the model again with save_pretrained(folder)") from exc
    files = [member(folder, str(name)) for name in names]
    if None in files:
        bad = [n for n, f in zip(names, files) if f is None]
        raise LmforgeError(f"{index} names files outside {folder}: {bad}",
                           "a weight index may only name files in its own folder; use a folder you trust")
    return [f for f in files if f is not None]


def folder_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """The weights of a folder, from safetensors only (one file or an index of shards): a pickle
    (pytorch_model.bin) can run code when loaded, so it is never read."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not folder.is_dir():
        raise LmforgeError(f"Hugging Face folder not found: {folder} (model.init_from)",
                           "put the folder back, resume from a checkpoint with --resume, or drop model.init_from")
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        files = [single]
    elif index.is_file():
        files = _indexed_files(folder, index)
    else:
        found = ", ".join(sorted(p.name for p in folder.iterdir() if p.is_file())) or "nothing"
        raise LmforgeError(f"{folder} has no model.safetensors (it holds: {found})",
                           "lmforge reads safetensors only, never pickled .bin files; convert with "
                           "AutoModelForCausalLM.from_pretrained(folder).save_pretrained(folder)")
    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            tensors.update(load_file(str(f)))
        except Exception as exc:  # noqa: BLE001 -- safetensors raises its own error types for bad files
            raise LmforgeError(f"{f} is not a readable safetensors file: {exc}") from None
    return tensors


def _with_prefix(tensors: dict[str, torch.Tensor], model_type: str) -> dict[str, torch.Tensor]:
    """Base-model files (GPT2Model, LlamaModel: e.g. the original `gpt2` upload) name tensors
    without the causal-LM wrapper's prefix; add it so one name map serves both."""
    prefix = "transformer." if model_type == "gpt2" else "model."
    if any(k.startswith(prefix) for k in tensors):
        return tensors
    return {k if k.startswith("lm_head.") else prefix + k: v for k, v in tensors.items()}


def load_folder_weights(model: nn.Module, folder: Path) -> None:
    """Load a local Hugging Face folder's safetensors weights into our model of the folder's shape."""
    folder = Path(folder)
    model_type = "gpt2" if model.cfg.family == "gpt" else "llama"
    tensors = _with_prefix(folder_tensors(folder), model_type)
    wpe = tensors.get("transformer.wpe.weight")
    if wpe is not None and wpe.shape[0] > model.cfg.block_size:  # model.block_size set shorter than the folder's
        tensors["transformer.wpe.weight"] = wpe[: model.cfg.block_size]
    with torch.no_grad():
        load_mapped(model, tensors, str(folder / "model.safetensors"))


def load_hf_folder(folder: Path) -> nn.Module:
    """Our model (float32, eval mode) from a local Hugging Face folder: config.json + safetensors."""
    keys = folder_model_keys(Path(folder))
    vocab = keys.pop("vocab_size")
    model = build_model(ModelConfig(**keys), vocab)
    load_folder_weights(model, Path(folder))
    return model.eval()
