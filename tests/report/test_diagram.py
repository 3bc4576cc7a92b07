"""Figure 4: the diagram is read from the model's own modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.config.load import model_config
from lmforge.models.registry import build_model
from lmforge.report.diagram import architecture_figure, layout


@pytest.mark.parametrize("family", ["gpt", "llama", "lstm", "cnn"])
def test_layout_follows_the_model(family: str, tmp_path: Path) -> None:
    model = build_model(model_config(family=family, size="tiny", n_layer=3), 50)
    steps = layout(model)
    names = [label.split(":")[0] for label, _, _ in steps]
    assert names[0] == "tok_emb" and names[-1] == "head" and "blocks" in names
    blocks = steps[names.index("blocks")]
    assert blocks[2] == 3 and blocks[1], "the repeated block is opened up, with its count"
    assert "tied to tok_emb" in steps[-1][0] or model.head.weight is not model.tok_emb.weight
    assert architecture_figure(model, tmp_path / "a.png", family).stat().st_size > 5000
