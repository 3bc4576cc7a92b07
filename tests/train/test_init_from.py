"""Starting a run from a local Hugging Face folder (model.init_from, tokenizer.kind=pretrained):
step-0 logits equal the HF model's (max abs diff < 1e-4, float32), training runs, export round-trips,
and every bad folder or mismatch is a clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from lmforge.config.load import load_config
from lmforge.config.schema import Config
from lmforge.errors import LmforgeError
from lmforge.evaluate.score import load_trained
from lmforge.export import export_run
from lmforge.models.hf import load_hf_folder
from lmforge.pipeline import run_stage, write_config
from lmforge.rundir import RunDir, write_jsonl_gz
from lmforge.train.stage import build_trainer

transformers = pytest.importorskip("transformers")

EOS = {"gpt2": "<|endoftext|>", "llama": "</s>"}
ARCH = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM"}
WORDS = ["the", "king", "queen", "lord", "lady", "sword", "crown", "night", "day", "love", "death", "heart", "hand",
         "eye", "blood", "sweet", "fair"]
PAD_ROWS = 5  # the model's vocabulary is a little larger than the tokenizer's, as in many checkpoints
FAST = ["train.steps=3", "train.batch_size=4", "train.warmup_steps=1", "train.eval_interval=3",
        "train.eval_batches=1", "train.checkpoint_interval=3", "train.log_interval=1", "train.threads=1",
        "train.device=cpu", "train.dtype=float32", "monitor.tensorboard=false", "monitor.console=none",
        "monitor.stats_interval=0", "monitor.control=false"]


def _tokenizer(kind: str, texts: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=[EOS[kind]], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return tok


def _hf_model(kind: str, vocab: int) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=vocab, n_positions=32, n_embd=32, n_layer=2, n_head=2,
                                      activation_function="gelu_new", eos_token_id=0, bos_token_id=0)
        model = transformers.GPT2LMHeadModel(cfg)
    else:
        cfg = transformers.LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                                       tie_word_embeddings=False, eos_token_id=0)
        model = transformers.LlamaForCausalLM(cfg)
    with torch.no_grad():  # norm gains and biases off their neutral values, so a mis-mapped one shows
        for p in model.parameters():
            if p.ndim == 1:
                p.normal_(0.5, 0.3)
    return model.float().eval()


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def folder(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A save_pretrained folder with a tokenizer.json, as a user would download it."""
    kind = request.param
    out = tmp_path_factory.mktemp(kind) / "hf"
    tok = _tokenizer(kind, _docs(20, seed=1))
    _hf_model(kind, tok.get_vocab_size(with_added_tokens=True) + PAD_ROWS).save_pretrained(str(out))
    tok.save(str(out / "tokenizer.json"))
    return out


def _docs(n: int, seed: int = 0) -> list[str]:
    """Documents of 20 ten-word lines."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(len(WORDS), (n, 20, 10), generator=g).tolist()
    return ["\n".join(" ".join(WORDS[i] for i in line).capitalize() + "." for line in doc) for doc in ids]


def _run(root: Path) -> RunDir:
    """data/{train,val,test}.jsonl.gz as the data stage writes them."""
    run = RunDir(root)
    run.create()
    docs = _docs(24)
    for split, part in (("train", docs[:20]), ("val", docs[20:22]), ("test", docs[22:])):
        write_jsonl_gz(run.split_file(split), [{"id": f"{split}{i}", "text": t} for i, t in enumerate(part)])
    return run


def _config(folder: Path, *extra: str) -> Config:
    kind = json.loads((folder / "config.json").read_text())["model_type"]
    return load_config(None, "smoke", [f"model.init_from={folder}", "tokenizer.kind=pretrained",
                                       f"tokenizer.eos_token={EOS[kind]}", *FAST, *extra])


def _hf_logits(folder: Path, x: torch.Tensor) -> torch.Tensor:
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    with torch.no_grad():
        return hf(x).logits


def test_a_run_starts_from_the_folder_trains_and_exports(folder: Path, tmp_path: Path) -> None:
    cfg = _config(folder)
    hf_cfg = json.loads((folder / "config.json").read_text())
    assert cfg.model.vocab_size == hf_cfg["vocab_size"] and cfg.model.block_size == 32 and cfg.model.n_layer == 2
    assert cfg.tokenizer.path == str(folder)  # the folder's tokenizer, not a trained one
    run = _run(tmp_path / "run")
    write_config(run, cfg)
    run_stage(run, cfg, "tokenize")
    assert run.tokenizer.read_text() == Tokenizer.from_file(str(folder / "tokenizer.json")).to_str()
    trainer = build_trainer(run, cfg, resume=False, show_progress=False)
    x = torch.randint(0, hf_cfg["vocab_size"] - PAD_ROWS, (2, 32))
    with torch.no_grad():
        start = trainer.raw_model.eval()(x)
    assert (start - _hf_logits(folder, x)).abs().max() < 1e-4
    trainer.fit()
    assert trainer.step == 3
    model, _, _ = load_trained(run, cfg)
    with torch.no_grad():
        trained = model(x)
    assert (trained - start).abs().max() > 1e-3  # the steps changed the weights
    out = tmp_path / "export"
    assert export_run(run.root, out)["architecture"] == ARCH[hf_cfg["model_type"]]
    assert (_hf_logits(out, x) - trained).abs().max() < 1e-4
    assert (load_hf_folder(out)(x) - trained).abs().max() < 1e-4


@pytest.mark.parametrize("folder", ["gpt2"], indirect=True)
def test_cli_tokenize_then_train_from_a_folder(folder: Path, tmp_path: Path) -> None:
    """The resolved config.yaml (shape keys written out, init_from kept) reloads and trains."""
    keys = dict(k.split("=", 1) for k in FAST)
    cfg = {"model": {"init_from": str(folder)},
           "tokenizer": {"kind": "pretrained", "path": str(folder / "tokenizer.json")},
           "train": {k.split(".")[1]: v for k, v in keys.items() if k.startswith("train.")}}
    (tmp_path / "ft.yaml").write_text(json.dumps(cfg))  # JSON is YAML
    run = _run(tmp_path / "run").root
    mon = [k + "=" + v for k, v in keys.items() if k.startswith("monitor.")]
    for args in (["tokenize", str(run), "-c", str(tmp_path / "ft.yaml"), *mon], ["train", str(run)]):
        proc = subprocess.run([sys.executable, "-m", "lmforge", *args], check=False, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    assert (run / "checkpoints/step-3/model.safetensors").is_file()
    assert f"starting from {folder}" in (run / "events.jsonl").read_text()


@pytest.mark.parametrize("folder", ["gpt2"], indirect=True)
def test_bad_folders_are_clear_errors(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(LmforgeError, match="Hugging Face folder not found: .*nowhere"):
        load_config(None, "smoke", [f"model.init_from={tmp_path / 'nowhere'}"])
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(LmforgeError, match="cannot import a 'bert' checkpoint"):
        load_config(None, "smoke", [f"model.init_from={bert}"])
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((folder / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded, ever")
    with pytest.raises(LmforgeError, match=r"no model.safetensors \(it holds: config.json, pytorch_model.bin\)"):
        load_hf_folder(pickled)


def _edited(folder: Path, tmp_path: Path, **changes: object) -> Path:
    """A copy of the folder whose config.json no longer describes its weights."""
    out = tmp_path / "edited"
    out.mkdir()
    (out / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    hf_cfg = json.loads((folder / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**hf_cfg, **changes}))
    return out


@pytest.mark.parametrize(("folder", "changes", "message"), [
    ("gpt2", {"n_layer": 1}, r"tensors the config does not describe: transformer\.h\.1\."),
    ("gpt2", {"n_layer": 3}, r"missing tensors: transformer\.h\.2\."),
    ("gpt2", {"n_inner": 64}, r"transformer\.h\.0\.mlp\.c_fc\.weight has shape \(32, 128\), the config needs \(32, 64\)"),
    ("llama", {"num_key_value_heads": 4}, r"self_attn\.k_proj\.weight has shape \(16, 32\), the config needs \(32, 32\)"),
], indirect=["folder"])
def test_weights_that_do_not_match_the_config_are_named(folder: Path, tmp_path: Path, changes: dict,
                                                         message: str) -> None:
    edited = _edited(folder, tmp_path, **changes)
    with pytest.raises(LmforgeError, match=message) as err:
        load_hf_folder(edited)
    assert str(edited / "model.safetensors") in str(err.value)


@pytest.mark.parametrize("folder", ["gpt2"], indirect=True)
def test_config_conflicts_are_clear_errors(folder: Path) -> None:
    with pytest.raises(LmforgeError, match=r"model.n_layer=3 conflicts with .*config.json has n_layer 2"):
        _config(folder, "model.n_layer=3")
    with pytest.raises(LmforgeError, match="model.size='tiny' and model.init_from"):
        _config(folder, "model.size=tiny")
    assert _config(folder, "model.n_layer=2", "model.dropout=0.1").model.dropout == 0.1  # agreeing keys are fine
    with pytest.raises(LmforgeError, match="needs tokenizer.path"):
        load_config(None, "smoke", ["tokenizer.kind=pretrained"])


@pytest.mark.parametrize("folder", ["gpt2"], indirect=True)
def test_the_tokenizer_must_fit_the_model(folder: Path, tmp_path: Path) -> None:
    from lmforge.config.schema import ModelConfig
    from lmforge.models.registry import build_model
    from lmforge.tokens.pack import run_tokenize

    run = _run(tmp_path / "run")
    cfg = _config(folder)
    with pytest.raises(LmforgeError, match="has 300 tokens but the model's vocabulary .* is 100"):
        run_tokenize(run, cfg.tokenizer, model_vocab=100)
    with pytest.raises(LmforgeError, match=r"(?s)tokenizer.eos_token='</s>' is not in the vocabulary .*<\|endoftext\|>"):
        run_tokenize(run, _config(folder, "tokenizer.eos_token=</s>").tokenizer)
    with pytest.raises(LmforgeError, match="the tokenizer has 300 tokens but the model has 100 rows"):
        build_model(ModelConfig(n_layer=1, n_embd=32, n_head=2, vocab_size=100), 300)


@pytest.mark.parametrize("folder", ["gpt2"], indirect=True)
def test_changed_folder_files_rerun_their_stages(folder: Path, tmp_path: Path) -> None:
    """tokenize and train read files outside the run: a changed file changes the stage identity."""
    import shutil

    from lmforge.pipeline import STAGES, stage_identity

    copy = tmp_path / "hf"
    shutil.copytree(folder, copy)
    cfg, run = _config(copy), _run(tmp_path / "run")
    before = {s: stage_identity(run, cfg, STAGES[s]) for s in ("tokenize", "train")}
    assert before == {s: stage_identity(run, cfg, STAGES[s]) for s in ("tokenize", "train")}  # stable
    (copy / "tokenizer.json").write_text((copy / "tokenizer.json").read_text() + "\n")
    assert stage_identity(run, cfg, STAGES["tokenize"]) != before["tokenize"]
    assert stage_identity(run, cfg, STAGES["train"]) == before["train"]
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes())
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert stage_identity(run, cfg, STAGES["train"]) != before["train"]


@pytest.mark.parametrize("folder", ["gpt2", "llama"], indirect=True)
def test_a_shorter_context_keeps_the_first_positions(folder: Path, tmp_path: Path) -> None:
    cfg = _config(folder, "model.block_size=16")
    assert cfg.model.block_size == 16
    run = _run(tmp_path / "run")
    write_config(run, cfg)
    run_stage(run, cfg, "tokenize")
    trainer = build_trainer(run, cfg, resume=False, show_progress=False)
    x = torch.randint(0, cfg.model.vocab_size - PAD_ROWS, (2, 16))
    with torch.no_grad():  # causal: the first 16 positions see what they would in the full model
        assert (trainer.raw_model.eval()(x) - _hf_logits(folder, x)).abs().max() < 1e-4
    trainer.fit()
    assert trainer.step == 3
    with pytest.raises(LmforgeError, match="model.block_size=64 conflicts with .*has block_size 32"):
        _config(folder, "model.block_size=64")


@pytest.mark.parametrize("folder", ["gpt2"], indirect=True)
def test_a_trained_tokenizer_with_pretrained_weights_is_refused(folder: Path) -> None:
    with pytest.raises(LmforgeError, match="tokenizer.kind=bpe would train a new tokenizer"):
        load_config(None, "smoke", [f"model.init_from={folder}", "tokenizer.kind=bpe"])


@pytest.mark.parametrize("folder", ["gpt2"], indirect=True)
def test_a_run_outlives_its_init_folder(folder: Path, tmp_path: Path) -> None:
    """The run's config.yaml holds the folder's shape: once the folder is gone, the checkpoints still
    load, resume and export; only a fresh start, which needs the weights, is refused."""
    import shutil

    source = tmp_path / "hf"
    shutil.copytree(folder, source)
    run = _run(tmp_path / "run")
    write_config(run, _config(source))
    run_stage(run, _config(source), "tokenize")
    build_trainer(run, _config(source), resume=False, show_progress=False).fit()
    shutil.rmtree(source)
    cfg = load_config(run.config, None, ["train.steps=4"])
    assert cfg.model.init_from == str(source) and cfg.model.n_layer == 2
    load_trained(run, cfg)
    trainer = build_trainer(run, cfg, resume=True, show_progress=False)
    assert trainer.step == 3
    assert export_run(run.root, tmp_path / "export")["checkpoint"] == "step-3"
    with pytest.raises(LmforgeError, match="folder not found"):
        build_trainer(run, cfg, resume=False, show_progress=False)
