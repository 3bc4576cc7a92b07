"""Fine-tuning and retraining on top of a pretrained base: sequence classification (full,
frozen-k, layer-wise LR decay, LoRA) and continual training (docs/finetune.md)."""
