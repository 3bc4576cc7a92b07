"""`lmforge export RUN --format hf OUT` on a small run: the folder loads with AutoModelForCausalLM,
gives our logits, generates, and its tokenizer encodes like ours."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from typer.testing import CliRunner

from lmforge.cli import app
from lmforge.config.load import dump_config, load_config
from lmforge.errors import LmforgeError
from lmforge.export import export_run
from lmforge.models.registry import build_model
from lmforge.rundir import RunDir
from lmforge.tokens.tokenizer import build_and_train
from lmforge.train import checkpoint as ckpt

TEXT = [("To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer "
         "the slings and arrows of outrageous fortune.")] * 20


def make_run(root, family: str, tokenizer: tuple[str, ...] = ()) -> tuple[RunDir, torch.nn.Module]:
    run = RunDir(root)
    run.root.mkdir(parents=True)
    cfg = load_config(None, "smoke", [f"model.family={family}", "model.n_layer=2", "model.n_head=2",
                                      "model.n_embd=32", "model.block_size=32", "tokenizer.vocab_size=300",
                                      *tokenizer])
    run.config.write_text(dump_config(cfg))
    tok = build_and_train(TEXT, cfg.tokenizer)
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


@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_export_names_the_runs_bos_and_pad_tokens(family: str, tmp_path) -> None:
    """A run packed with <s> before each document exports with that BOS (and its PAD) in config.json
    and the tokenizer, not with GPT-2's bos = eos or LLaMA's none."""
    run, _ = make_run(tmp_path / "run", family, ("tokenizer.bos_token=<s>", "tokenizer.pad_token=<pad>"))
    export_run(run.root, tmp_path / "hf")
    config = transformers.AutoConfig.from_pretrained(str(tmp_path / "hf"))
    tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<s>", "<|endoftext|>", "<pad>")
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (
        tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)


def test_export_to_a_file_is_a_clear_error(tmp_path) -> None:
    target = tmp_path / "model.bin"
    target.write_text("keep me")
    res = CliRunner().invoke(app, ["export", str(tmp_path / "run"), str(target)])
    assert isinstance(res.exception, LmforgeError) and "is a file" in res.exception.message
    assert target.read_text() == "keep me"


def test_export_keeps_a_folder_that_is_not_empty_unless_forced(tmp_path) -> None:
    run, _ = make_run(tmp_path / "run", "gpt")
    out = tmp_path / "hf"
    out.mkdir()
    (out / "config.json").write_text("mine")
    res = CliRunner().invoke(app, ["export", str(run.root), str(out)])
    assert isinstance(res.exception, LmforgeError) and "not empty" in res.exception.message
    assert [p.name for p in out.iterdir()] == ["config.json"] and (out / "config.json").read_text() == "mine"
    res = CliRunner().invoke(app, ["export", str(run.root), str(out), "--force"])
    assert res.exit_code == 0, res.output
    assert (out / "model.safetensors").is_file() and (out / "config.json").read_text() != "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "run"]  # no temporary folder left
