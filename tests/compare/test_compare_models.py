"""`lmforge compare architectures` trains its arms through the train stage's trainer factory, so
the `train.*` keys mean there what they mean in `lmforge train` (the arms once wired their own
trainer and silently ignored train.loader, train.batch_tokens and train.doc_mask)."""

from __future__ import annotations

import json
from pathlib import Path

from lmforge.compare.models import compare

TINY = ["data.max_docs=3", "train.steps=4", "train.warmup_steps=1", "eval.max_tokens=600"]


def test_architecture_arms_honour_loader_batch_tokens_and_doc_mask(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    keys = ["train.loader=epoch", "train.batch_tokens=256", "train.doc_mask=true"]
    compare("architectures", None, TINY + keys, out, only=["gpt"])
    arm = json.loads((out / "compare.json").read_text())["results"][0]
    assert arm["loader"] == "EpochWindows"
    assert arm["batch"]["rows"] == 256 // 64  # batch_tokens / block_size (64 in every arm)
    assert arm["tokens"] == 4 * 256 and arm["steps"] == 4
    assert arm["doc_mask"] is True
    assert arm["val_bpb"] > 0 and arm["signal"]["status"] in ("healthy", "vanishing", "exploding")
    assert (out / "architecture-gpt.png").is_file() and "[gpt](architecture-gpt.png)" in (out / "compare.md").read_text()
