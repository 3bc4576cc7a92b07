"""Recurrent language models: stacked LSTM (Hochreiter & Schmidhuber 1997) or GRU (Cho et al. 2014),
with dropout between layers (Zaremba et al. 2014) and tied input/output embeddings (Press & Wolf 2017).

Truncated backpropagation through time: while training with `model.tbptt`, the final hidden
state of one window is kept (detached, so gradients stop at the window edge) and starts the
next window. That is only right when row i of the next batch continues row i of this one, so
the trainer draws batches from `StreamWindows` for models with `carries_state` (tokens/stream.py),
and calls `reset_state()` when training starts. A checkpoint holds the carried state
(`carried_state`), so a resumed run continues it exactly. In eval mode every window starts from a
zero state, like the transformers' fixed context, and leaves the training state alone.
"""

from __future__ import annotations

import torch
from torch import nn

from lmforge.config.schema import ModelConfig
from lmforge.models.common import LanguageModel, output_head
from lmforge.models.init import initialize

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def _detach(state: State) -> State:
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def _batch(state: State) -> int:
    return (state[0] if isinstance(state, tuple) else state).shape[1]


class RNNLM(LanguageModel):
    """Token ids (batch, time) in, logits (batch, time, vocab) out; any length (no position table)."""

    max_len_is_hard = False

    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__(cfg, vocab_size)
        cell = nn.LSTM if cfg.family == "lstm" else nn.GRU
        self.tok_emb = nn.Embedding(vocab_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        # one module per layer, so the signal check sees each layer and dropout sits between them
        self.blocks = nn.ModuleList(cell(cfg.n_embd, cfg.n_embd, batch_first=True, bias=True)
                                    for _ in range(cfg.n_layer))
        self.head = output_head(cfg, vocab_size, self.tok_emb)
        self._state: list[State] | None = None
        self.init_report = initialize(self, cfg)

    @property
    def carries_state(self) -> bool:
        return self.cfg.tbptt

    def residual_outputs(self) -> list[str]:
        return []  # no residual branches

    def reset_state(self) -> None:
        self._state = None

    def carried_state(self) -> dict[str, torch.Tensor]:
        """The hidden state carried into the next training window, by name (empty when none), so a
        checkpoint can hold it and a resumed run continues the same streams bit for bit."""
        out: dict[str, torch.Tensor] = {}
        for i, state in enumerate(self._state or []):
            parts = state if isinstance(state, tuple) else (state,)
            out.update({f"layer.{i}.{n}": t.detach().cpu() for n, t in zip("hc", parts)})
        return out

    def load_carried_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Put back what `carried_state` returned (an empty dict means a zero start)."""
        if not tensors:
            self._state = None
            return
        device = self.tok_emb.weight.device
        layers = []
        for i in range(len(self.blocks)):
            h = tensors[f"layer.{i}.h"].to(device)
            layers.append((h, tensors[f"layer.{i}.c"].to(device)) if f"layer.{i}.c" in tensors else h)
        self._state = layers

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        self.check_length(idx)
        keep = self.training and self.cfg.tbptt
        carried = self._state if keep and self._state and _batch(self._state[0]) == idx.shape[0] else None
        x = self.drop(self.tok_emb(idx))
        new_state: list[State] = []
        for i, layer in enumerate(self.blocks):
            x, state = layer(x, carried[i] if carried else None)
            x = self.drop(x)
            new_state.append(_detach(state))
        if self.training:  # evaluation between steps must not wipe the training streams' state
            self._state = new_state if keep else None
        return self.head(x)
