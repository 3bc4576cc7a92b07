"""MLflow on its local SQLite store, read back with MLflow's own client. Slow: MLflow builds its
database schema on first use (~15 s on 2 busy cores)."""

from __future__ import annotations

import pytest

from tests.helpers.runs import make_token_run, read_jsonl, train


@pytest.mark.slow
def test_mlflow_local_store_holds_the_metrics(tmp_path) -> None:
    MlflowClient = pytest.importorskip("mlflow", reason="pip install 'lmforge[mlflow]'").MlflowClient

    run = make_token_run(tmp_path / "run", ["train.steps=20", "train.log_interval=5", "train.eval_interval=10",
                                            "monitor.tensorboard=false", "monitor.mlflow=true"])
    train(run)
    client = MlflowClient(tracking_uri=f"sqlite:///{run.root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("lmforge")
    (mlrun,) = client.search_runs([exp.experiment_id])
    assert mlrun.info.status == "FINISHED"
    assert mlrun.data.params["train.steps"] == "20"
    hist = {m.step: m.value for m in client.get_metric_history(mlrun.info.run_id, "train/loss")}
    jsonl = {r["step"]: r["loss"] for r in read_jsonl(run.metrics) if r["kind"] == "train"}
    assert hist.keys() == jsonl.keys() == {5, 10, 15, 20}
    assert all(abs(hist[s] - jsonl[s]) < 1e-6 for s in hist)
    val = [m.value for m in client.get_metric_history(mlrun.info.run_id, "val/loss")]
    assert len(val) == 2
