"""A BERT-style encoder (Devlin et al. 2019): the GPT blocks of models/gpt.py with bidirectional
attention, trained by masked-language modelling (train/mlm.py) instead of next-token prediction.

Two ids are added after the tokenizer's vocabulary, so any tokenizer serves: [MASK] (what the
masking rule writes) and [CLS] (put before every window; its hidden state is what a
classification head reads, models/classifier.py pooling `cls`). Unlike BERT the blocks are
pre-norm, as in the decoders here, so the two families differ in attention and objective only.
"""

from __future__ import annotations

from lmforge.config.schema import ModelConfig
from lmforge.models.gpt import GPT

EXTRA_TOKENS = 2  # [MASK], [CLS]


class Encoder(GPT):
    """Token ids (batch, T) in, logits (batch, T, vocab + 2) out; every position sees every other."""

    bidirectional = True
    objective = "masked"

    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__(cfg, vocab_size + EXTRA_TOKENS)
        self.text_vocab = vocab_size
        self.mask_id, self.cls_id = vocab_size, vocab_size + 1
