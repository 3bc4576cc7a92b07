"""Document attention masks: a position never sees tokens of an earlier document in its window."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lmforge.config.schema import ModelConfig
from lmforge.errors import LmforgeError
from lmforge.models.registry import build_model
from lmforge.monitor import build_callbacks
from lmforge.tokens.loader import document_mask
from lmforge.train.stage import run_train
from tests.helpers.runs import make_tokens, tiny_config


@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_mask_hides_the_previous_document(family: str):
    torch.manual_seed(0)
    model = build_model(ModelConfig(family=family, n_layer=2, n_head=2, n_embd=32, block_size=16), 50).eval()
    x = torch.randint(1, 50, (1, 16))
    changed = x.clone()
    changed[0, :6] = torch.randint(1, 50, (6,))  # rewrite the first document (positions 0-5)
    mask = document_mask(np.array([0]), 16, np.array([0, 6]))  # documents start at 0 and 6
    with torch.no_grad():
        same = model(x, attn_mask=mask)[0, 6:], model(changed, attn_mask=mask)[0, 6:]
        leaky = model(x)[0, 6:], model(changed)[0, 6:]
    assert torch.allclose(*same, atol=1e-5)  # the second document cannot see the first
    assert not torch.allclose(*leaky, atol=1e-3)  # without the mask it can


def test_full_mask_equals_causal():
    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16), 50).eval()
    x = torch.randint(0, 50, (2, 16))
    mask = document_mask(np.array([0, 16]), 16, np.array([0]))  # one document: plain causal
    with torch.no_grad():
        assert torch.allclose(model(x), model(x, attn_mask=mask), atol=1e-5)


def _with_documents(root: Path):
    run = make_tokens(root)
    n = int(np.fromfile(run.token_file("train"), dtype=np.uint16).size)
    np.save(run.tokens / "train.docs.npy", np.arange(0, n, 40, dtype=np.int64), allow_pickle=False)
    return run


def test_training_with_document_masks_learns(tmp_path: Path):
    run = _with_documents(tmp_path / "run")
    cfg = tiny_config("train.doc_mask=true", "train.steps=30")
    summary = run_train(run, cfg, show_progress=False, callbacks=build_callbacks)  # metrics.jsonl, as `lmforge train`
    losses = [line for line in run.metrics.read_text().splitlines() if '"kind": "train"' in line]
    assert summary["step"] == 30 and len(losses) == 30

    first, last = json.loads(losses[0])["loss"], json.loads(losses[-1])["loss"]
    assert last < first


def test_doc_mask_refused_for_recurrent_models(tmp_path: Path):
    run = _with_documents(tmp_path / "run")
    with pytest.raises(LmforgeError, match="doc_mask"):
        run_train(run, tiny_config("train.doc_mask=true", "model.family=lstm"), show_progress=False)
