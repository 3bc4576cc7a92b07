"""`lmforge compare splits`: holdout against k-fold estimates on a tiny hand-made run, their table,
figure and the too-few-documents refusal."""

from __future__ import annotations

import numpy as np
import pytest

from lmforge.compare.splits import run_compare_splits, table
from lmforge.errors import LmforgeError
from tests.helpers.runs import doc_run_config, make_doc_run


def test_compare_splits_writes_table_and_figure(tmp_path):
    run = make_doc_run(tmp_path / "run", n_docs=8)
    result = run_compare_splits(run, doc_run_config(), ks=[2], repeats=2, steps=2, doc_tokens=64)
    assert set(result["methods"]) == {"holdout 2/3", "2-fold", "stratified 2-fold"}
    for m in result["methods"].values():
        assert len(m["estimates"]) == 2
        assert m["bias"] == pytest.approx(np.mean(m["estimates"]) - result["truth"])
    assert result["methods"]["2-fold"]["trainings"] == 4
    assert "| 2-fold |" in table(result)
    for ext in ("json", "md", "png"):
        assert (run.root / "compare" / f"splits.{ext}").is_file()
    with pytest.raises(LmforgeError, match="too few for K=5"):
        run_compare_splits(run, doc_run_config(), ks=[5], repeats=2, steps=2, doc_tokens=64)
