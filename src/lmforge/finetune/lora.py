"""LoRA adapters through the `peft` library (Hu et al. 2021): low-rank updates on the attention
and MLP projections, the base weights frozen, the classification head trained in full; and the
merge that folds the adapters back into plain weights (peft's merge_and_unload)."""

from __future__ import annotations

from torch import nn

from lmforge.config.schema import FinetuneConfig
from lmforge.errors import LmforgeError

# every linear projection inside the blocks (peft matches a name or its last dotted parts)
TARGETS = {"gpt": ["qkv", "proj", "fc"], "encoder": ["qkv", "proj", "fc"],
           "llama": ["q", "k", "v", "proj", "gate", "up"]}
HEAD = "classifier"


def add_lora(model: nn.Module, family: str, cfg: FinetuneConfig) -> nn.Module:
    """`model` wrapped by peft: only the adapters and the head train."""
    from peft import LoraConfig, get_peft_model

    targets = cfg.lora_targets or TARGETS.get(family)
    if not targets:
        raise LmforgeError(f"finetune.lora: no default target modules for family '{family}'",
                           "name them in finetune.lora_targets")
    config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules=targets, modules_to_save=[HEAD])
    try:
        return get_peft_model(model, config)
    except ValueError as exc:  # peft: a target name that matches no module
        raise LmforgeError(f"finetune.lora_targets {targets}: {exc}", "name linear layers of the blocks") from None


def merge(model: nn.Module) -> nn.Module:
    """The plain model with every adapter added into its base weight (peft's merge_and_unload)."""
    return model.merge_and_unload()  # type: ignore[operator]


def is_peft(model: nn.Module) -> bool:
    return hasattr(model, "merge_and_unload")
