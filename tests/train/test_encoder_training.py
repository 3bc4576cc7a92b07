"""The encoder trains through the one train stage with the masked-LM objective, and the eval
stage scores its masked-LM loss."""

from __future__ import annotations

import json
from pathlib import Path

from lmforge.config.load import load_config
from lmforge.evaluate.stage import run_eval
from lmforge.train.mlm import MaskedWindows
from lmforge.train.stage import new_trainer, run_train
from tests.helpers.runs import add_tokenizer, make_token_run


def test_encoder_trains_by_masked_lm_and_is_evaluated(tmp_path: Path) -> None:
    run = make_token_run(tmp_path / "run", ["model.family=encoder", "train.steps=60", "train.lr=3e-3",
                                           "train.eval_interval=20", "train.checkpoint_interval=60",
                                           "eval.max_tokens=2000", "eval.bootstrap_rounds=0", "eval.splits=[val]"])
    add_tokenizer(run)
    cfg = load_config(run.config)
    assert isinstance(new_trainer(run, cfg).loader, MaskedWindows)
    summary = run_train(run, cfg, show_progress=False)
    assert summary["val_loss"] is not None
    run_eval(run, cfg)
    scored = json.loads(run.eval.read_text())
    trained = scored["splits"]["val"]["masked_lm_loss"]
    assert trained < scored["untrained"]["val"]["masked_lm_loss"] - 0.15
