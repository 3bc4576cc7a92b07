"""Multiple-choice scoring with lm-evaluation-harness semantics, checked by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from torch import nn

from lmforge.errors import LmforgeError
from lmforge.evaluate import tasks
from lmforge.evaluate.tasks import MCItem


def char_tokenizer(chars: str) -> Tokenizer:
    vocab = {"<eos>": 0, **{c: i + 1 for i, c in enumerate(chars)}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return tok


class Unigram(nn.Module):
    """Ignores its input: every position predicts the same fixed distribution."""

    def __init__(self, probs: list[float]) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.log(torch.tensor(probs)))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(idx.shape[0], idx.shape[1], -1)


def test_acc_and_acc_norm_by_hand():
    tok = char_tokenizer("ab ")
    # p(<eos>)=0, p(a)=.5, p(b)=.25, p(' ')=.25 (a tiny epsilon keeps log finite)
    model = Unigram([1e-9, 0.5, 0.25, 0.25])
    item = MCItem(context="a", choices=["ab", "b"], gold=0)  # continuations " ab" and " b"
    lls = tasks.score_items(model, tok, [item], block_size=16, eos_id=0)
    want = [math.log(0.25) + math.log(0.5) + math.log(0.25), 2 * math.log(0.25)]
    np.testing.assert_allclose(lls[0], want, rtol=1e-5)
    m = tasks.task_metrics([item], lls, rounds=0)
    # raw: " b" (-2.77) beats " ab" (-3.47), wrong; per character: ab -1.73 vs b -2.77, right
    assert m["acc"] == 0.0 and m["acc_norm"] == 1.0
    assert m["chance"] == 0.5


def test_encode_pair_moves_trailing_space():
    tok = char_tokenizer("Qx y:")
    ctx, cont = tasks.encode_pair(tok, "Q: x ", "y", eos_id=0)
    assert tok.decode(ctx) == "Q: x" and tok.decode(cont) == " y"
    ctx, cont = tasks.encode_pair(tok, "", "xy", eos_id=0)
    assert ctx == [0] and tok.decode(cont) == "xy"


def test_batched_loglikelihoods_match_one_at_a_time():
    from lmforge.config.schema import ModelConfig
    from lmforge.models.gpt import GPT

    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8), vocab_size=11).eval()
    rng = np.random.default_rng(0)
    pairs = [(rng.integers(1, 11, rng.integers(1, 12)).tolist(), rng.integers(1, 11, rng.integers(1, 4)).tolist())
             for _ in range(7)]
    batched = tasks.continuation_loglikelihoods(model, pairs, block_size=8, batch_size=4)
    for (ctx, cont), got in zip(pairs, batched):
        whole = (ctx + cont)[-9:]
        with torch.no_grad():
            logp = F.log_softmax(model(torch.tensor([whole[:-1]])), -1)[0]
        n = len(cont)
        want = sum(float(logp[len(whole) - 1 - n + j, whole[len(whole) - n + j]]) for j in range(n))
        assert got == pytest.approx(want, abs=1e-4)


def test_next_line_task_is_seeded_and_valid():
    text = "\n".join(f"line number {i} of the passage, long enough" for i in range(200))
    a = tasks.next_line_task([text, text.replace("line", "verse")], n_items=20, n_choices=4, seed=3)
    b = tasks.next_line_task([text, text.replace("line", "verse")], n_items=20, n_choices=4, seed=3)
    assert a == b and len(a) == 20
    for it in a:
        assert len(it.choices) == 4 and len(set(it.choices)) == 4
        assert it.context.endswith("\n") and it.delimiter == ""
    assert len({it.gold for it in a}) > 1  # the true line is not always in the same place


@pytest.mark.parametrize("record, message", [
    ({"choices": ["a", "b"], "gold": 0}, "key 'context': missing"),
    ({"context": "c", "choices": ["a"], "gold": 0}, "key 'choices'"),
    ({"context": "c", "choices": ["a", "b"], "gold": 2}, "key 'gold': index 2 is out of range"),
    ({"context": "c", "choices": ["a", "b"], "gold": "0"}, "key 'gold': must be an integer"),
])
def test_bad_task_files_name_file_line_and_key(tmp_path, record, message):
    path = tmp_path / "task.jsonl"
    good = {"context": "c", "choices": ["a", "b"], "gold": 1}
    path.write_text(json.dumps(good) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(LmforgeError, match=message) as err:
        tasks.load_task(path)
    assert f"{path}:2:" in err.value.message


def test_missing_task_file(tmp_path):
    with pytest.raises(LmforgeError, match="task file not found"):
        tasks.load_task(tmp_path / "nope.jsonl")


def test_next_line_task_without_enough_distinct_lines():
    text = "\n".join(["the very same line repeated again"] * 80)
    with pytest.raises(LmforgeError, match="too few distinct lines"):
        tasks.next_line_task([text], n_items=5, n_choices=4)


def test_task_file_that_is_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    good = json.dumps({"context": "c", "choices": ["a", "b"], "gold": 1})
    path.write_bytes(good.encode() + b"\n" + '{"context": "caf\xe9", "choices": ["a", "b"], "gold": 0}\n'.encode("latin-1"))
    with pytest.raises(LmforgeError, match="not UTF-8") as err:
        tasks.load_task(path)
    assert f"{path}:2:" in err.value.message


def test_tasks_whose_names_clash_are_refused():
    """Two files with one stem (or a task listed twice) would overwrite each other in eval.json."""
    assert tasks.task_names(["next_line", "a/qa.jsonl"]) == {"next_line": "next_line", "qa": "a/qa.jsonl"}
    with pytest.raises(LmforgeError, match="'b/qa.jsonl' and 'a/qa.jsonl' would both be reported as 'qa'"):
        tasks.task_names(["a/qa.jsonl", "b/qa.jsonl"])
    with pytest.raises(LmforgeError, match="next_line"):
        tasks.task_names(["next_line", "next_line"])
