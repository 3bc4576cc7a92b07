"""LoRA through peft: only adapters and the head train, and the merge gives the adapter model's logits."""

from __future__ import annotations

import torch

from lmforge.config.load import model_config
from lmforge.config.schema import FinetuneConfig
from lmforge.finetune.lora import add_lora, merge
from lmforge.models.classifier import PAD, SequenceClassifier
from lmforge.models.registry import build_model


def _adapted(family: str) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = model_config(family=family, n_layer=2, n_head=2, n_embd=32, block_size=16)
    clf = SequenceClassifier(build_model(cfg, 20), 3, "mean")
    model = add_lora(clf, family, FinetuneConfig(lora=True, lora_r=4))
    with torch.no_grad():  # peft starts B at zero (a no-op adapter); make the adapters do something
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.2)
    return model


def test_only_adapters_and_head_train() -> None:
    model = _adapted("gpt")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "classifier" in n for n in trainable)
    assert any("lora_A" in n for n in trainable) and any("classifier" in n for n in trainable)


def test_merged_logits_equal_adapter_logits() -> None:
    for family in ("gpt", "llama"):
        model = _adapted(family).eval()
        x = torch.randint(0, 20, (5, 16))
        x[1, 9:] = PAD
        with torch.no_grad():
            with_adapters = model(x)
            with model.disable_adapter():
                without = model(x)
            plain = merge(model)
            merged = plain(x)
        assert (with_adapters - without).abs().max() > 1e-3  # the adapters matter
        assert isinstance(plain, SequenceClassifier)
        assert not any("lora_" in n for n, _ in plain.named_parameters())
        torch.testing.assert_close(merged, with_adapters, atol=1e-5, rtol=1e-5)
