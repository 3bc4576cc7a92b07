"""Paraphrase augmentation with a trained lmforge model: the share of words it rewrites, the text
it keeps, determinism per seed, the augment stage (labels kept, held-out splits untouched, the
model recorded) and the errors for a model that is missing."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from lmforge.augment.ops import WORD, Resources, apply
from lmforge.augment.stage import resources
from lmforge.config.load import load_config
from lmforge.config.schema import AugmentConfig
from lmforge.errors import LmforgeError
from lmforge.pipeline import STAGES, run_stage, stage_identity, write_config
from lmforge.rundir import RunDir, file_sha256, read_jsonl_gz
from tests.helpers.documents import write_run
from tests.helpers.finetune import make_base

TEXT = "abc de fgh ij abbe cad jif hg ee aba cd bde gh fij ja cab dig gi hid bad"
# a one-layer, 16-wide model: each sampled token is one forward pass
SMALL = ("model.n_layer=1", "model.n_head=1", "model.n_embd=16", "model.block_size=16")


def model_resources(base: RunDir, mode: str = "spans") -> Resources:
    cfg = AugmentConfig.model_validate({"operations": [{"name": "paraphrase", "rate": 0.3}],
                                        "paraphrase": {"model": str(base.root), "mode": mode}})
    return resources(cfg, [])


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    return make_base(tmp_path_factory.mktemp("paraphrase") / "base", *SMALL)


def spy(res: Resources) -> list[tuple[str, str, str]]:
    """Record each call of the model's rewriter: (text before, words replaced, words written)."""
    calls: list[tuple[str, str, str]] = []
    inner = res.rewriter
    assert inner is not None

    def record(before: str, words: str, seed: int) -> str:
        calls.append((before, words, inner(before, words, seed)))
        return calls[-1][2]

    res.rewriter = record
    return calls


@pytest.mark.parametrize("rate", [0.1, 0.4])
def test_spans_rewrite_the_configured_share_and_keep_the_rest(base: RunDir, rate: float) -> None:
    res = model_resources(base)
    calls = spy(res)
    out = apply("paraphrase", TEXT, rate, random.Random(3), res)
    n = len(WORD.findall(TEXT))
    assert sum(len(WORD.findall(words)) for _, words, _ in calls) == round(rate * n)
    assert out != TEXT
    # everything outside the rewritten spans is kept, in place: each span was written after the
    # text before it, and what follows the last span is the original's end
    for before, _, written in calls:
        assert out.startswith(before + written)
    last_words = calls[-1][1]
    assert out.endswith(TEXT[TEXT.rindex(last_words) + len(last_words):])


@pytest.mark.parametrize("text", [TEXT, " ".join([TEXT] * 8)])  # the second is longer than the model's window
def test_continue_keeps_the_prefix_and_writes_the_end(base: RunDir, text: str) -> None:
    res = model_resources(base, mode="continue")
    calls = spy(res)
    n = len(WORD.findall(text))
    rate = 3 / n
    out = apply("paraphrase", text, rate, random.Random(0), res)
    prefix = text[: [m.end() for m in WORD.finditer(text)][n - 3 - 1]]
    assert len(calls) == 1 and calls[0][0] == prefix
    assert len(WORD.findall(calls[0][1])) == 3
    assert calls[0][2].strip()  # the model wrote something in their place
    assert out == prefix + calls[0][2] and out != text


def test_deterministic_for_a_seed(base: RunDir) -> None:
    res = model_resources(base)
    first = [apply("paraphrase", TEXT, 0.1, random.Random(s), res) for s in range(3)]
    again = [apply("paraphrase", TEXT, 0.1, random.Random(s), model_resources(base)) for s in range(3)]
    assert first == again
    assert len(set(first)) > 1  # another seed, another paraphrase


def letter_docs(n: int) -> list[dict]:
    rng = random.Random(0)
    return [{"id": f"d{i}", "author": "a" if i % 2 else "b",
             "text": " ".join("".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 6))) for _ in range(12))}
            for i in range(n)]


def test_stage_keeps_labels_records_the_model_and_never_touches_held_out_splits(base: RunDir, tmp_path: Path) -> None:
    docs = letter_docs(8)
    run = write_run(tmp_path / "r", {"train": docs[:4], "val": docs[4:6], "test": docs[6:]})
    held = {s: file_sha256(run.split_file(s)) for s in ("val", "test")}
    cfg = load_config(None, "smoke", ["augment.operations=[{name: paraphrase, rate: 0.2}]",
                                      f"augment.paraphrase.model={base.root}"])
    write_config(run, cfg)
    assert run_stage(run, cfg, "augment")
    out = list(read_jsonl_gz(run.documents("train")))
    originals = {d["id"]: d for d in docs[:4]}
    copies = [r for r in out if "augmented_from" in r]
    assert len(copies) == len(originals)
    step = json.loads((base.checkpoints / "step-10" / "state.json").read_text())
    for c in copies:
        orig = originals[c["augmented_from"]]  # a training record, never a held-out one
        assert c["author"] == orig["author"] and c["text"] != orig["text"]
        assert c["operation"] == "paraphrase" and c["origin"] == "paraphrase"
        assert c["paraphrase_model"]["run"] == str(base.root.resolve())
        assert c["paraphrase_model"]["checkpoint"] == "step-10"
        assert c["paraphrase_model"]["weights_sha256"] == step["files"]["model.safetensors"]
    assert {s: file_sha256(run.split_file(s)) for s in ("val", "test")} == held
    assert sorted(p.name for p in (run.root / "augment").glob("*.jsonl.gz")) == ["train.jsonl.gz"]
    assert run.documents("val") == run.split_file("val") and run.documents("test") == run.split_file("test")
    # a new checkpoint of the model is a new input: the stage runs again
    before = stage_identity(run, cfg, STAGES["augment"])
    shutil.copytree(base.checkpoints / "step-10", base.checkpoints / "step-20")
    try:
        assert stage_identity(run, cfg, STAGES["augment"]) != before
    finally:
        shutil.rmtree(base.checkpoints / "step-20")


def test_a_missing_model_is_a_clear_error_naming_the_command(base: RunDir, tmp_path: Path) -> None:
    with pytest.raises(LmforgeError, match=r"augment.*paraphrase.model"):
        load_config(None, "smoke", ["augment.operations=[{name: paraphrase, rate: 0.2}]"])
    run = write_run(tmp_path / "r", {"train": letter_docs(4)})
    empty = tmp_path / "untrained"
    shutil.copytree(base.root, empty, ignore=shutil.ignore_patterns("checkpoints"))
    (tmp_path / "other").mkdir()
    cases = [(tmp_path / "nowhere", r"(?s)does not exist.*lmforge run -o"),
             (empty, r"(?s)no valid checkpoint.*lmforge train"),
             (tmp_path / "other", r"neither an lmforge run")]
    for model, message in cases:
        cfg = load_config(None, "smoke", ["augment.operations=[{name: paraphrase, rate: 0.2}]",
                                          f"augment.paraphrase.model={model}"])
        write_config(run, cfg)
        with pytest.raises(LmforgeError, match=message) as err:
            run_stage(run, cfg, "augment")
        assert "augment.paraphrase.model" in str(err.value)
        assert not (run.root / "augment" / "train.jsonl.gz").exists()  # nothing written
