"""`lmforge export RUN --format hf OUT` on a small run: the folder loads with AutoModelForCausalLM,
gives our logits, generates, and its tokenizer encodes like ours."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from typer.testing import CliRunner

from lmforge.cli import app
from lmforge.config import TokenizerConfig, dump_config, load_config
from lmforge.errors import LmforgeError
from lmforge.models.hf import export_run
from lmforge.models.registry import build_model
from lmforge.rundir import RunDir
from lmforge.tokens.tokenizer import build_and_train
from lmforge.train import checkpoint as ckpt

TEXT = [("To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer "
         "the slings and arrows of outrageous fortune.")] * 20


def make_run(root, family: str) -> tuple[RunDir, torch.nn.Module]:
    run = RunDir(root)
    run.root.mkdir(parents=True)
    cfg = load_config(None, "smoke", [f"model.family={family}", "model.n_layer=2", "model.n_head=2",
                                      "model.n_embd=32", "model.block_size=32", "tokenizer.vocab_size=300"])
    run.config.write_text(dump_config(cfg))
    tok = build_and_train(TEXT, TokenizerConfig(kind="bytelevel_bpe", vocab_size=300))
    run.tokenizer.parent.mkdir(parents=True)
    tok.save(str(run.tokenizer))
    torch.manual_seed(0)
    model = build_model(cfg.model, tok.get_vocab_size(with_added_tokens=True)).eval()
    ckpt.save_checkpoint(run.checkpoints, 1, model, None, {}, {"torch": torch.get_rng_state()}, 1)
    return run, model


@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_export_run_loads_in_transformers(family: str, tmp_path) -> None:
    run, model = make_run(tmp_path / "run", family)
    out = tmp_path / "hf"
    result = CliRunner().invoke(app, ["export", str(run.root), "--format", "hf", str(out)])
    assert result.exit_code == 0, result.output
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(out))
    ids = tok("To be, or not to be", return_tensors="pt").input_ids
    with torch.no_grad():
        assert (hf(ids).logits - model(ids)).abs().max() < 1e-4
    gen = hf.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=tok.eos_token_id)
    assert gen.shape == (1, ids.shape[1] + 5)
    # greedy decoding agrees with ours, token by token
    x = ids
    with torch.no_grad():
        for _ in range(5):
            x = torch.cat([x, model(x)[:, -1:].argmax(-1)], 1)
    assert torch.equal(gen, x)


def test_export_refuses_other_families_and_formats(tmp_path) -> None:
    run, _ = make_run(tmp_path / "run", "gru")
    with pytest.raises(LmforgeError, match="no Hugging Face equivalent"):
        export_run(run.root, tmp_path / "out")
    result = CliRunner().invoke(app, ["export", str(run.root), "--format", "gguf", str(tmp_path / "o")])
    assert result.exit_code != 0 and "unknown export format" in str(result.exception)
