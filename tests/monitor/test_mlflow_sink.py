"""MLflow on its local SQLite store, read back with MLflow's own client. Slow: MLflow builds its
database schema on first use (~15 s on 2 busy cores)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lmforge.config.load import load_config
from lmforge.rundir import RunDir
from lmforge.train.loop import Callback
from lmforge.train.stage import run_train
from tests.helpers.runs import make_token_run, monitored, read_jsonl, train


def _client(run: RunDir) -> tuple[Any, str]:
    """MLflow's own client on the run's SQLite store (mlflow is optional), and the experiment id."""
    mlflow = pytest.importorskip("mlflow", reason="pip install 'lmforge[mlflow]'")
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{run.root / 'mlflow.db'}")
    return client, client.get_experiment_by_name("lmforge").experiment_id


@pytest.mark.slow
def test_mlflow_local_store_holds_the_metrics(tmp_path) -> None:
    pytest.importorskip("mlflow", reason="pip install 'lmforge[mlflow]'")
    run = make_token_run(tmp_path / "run", ["train.steps=20", "train.log_interval=5", "train.eval_interval=10",
                                            "monitor.tensorboard=false", "monitor.mlflow=true"])
    train(run)
    client, exp = _client(run)
    (mlrun,) = client.search_runs([exp])
    assert mlrun.info.status == "FINISHED"
    assert mlrun.data.params["train.steps"] == "20"
    hist = {m.step: m.value for m in client.get_metric_history(mlrun.info.run_id, "train/loss")}
    jsonl = {r["step"]: r["loss"] for r in read_jsonl(run.metrics) if r["kind"] == "train"}
    assert hist.keys() == jsonl.keys() == {5, 10, 15, 20}
    assert all(abs(hist[s] - jsonl[s]) < 1e-6 for s in hist)
    val = [m.value for m in client.get_metric_history(mlrun.info.run_id, "val/loss")]
    assert len(val) == 2


class _StopAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer: Any, metrics: dict) -> None:
        if trainer.step == self.step:
            trainer.should_stop = True


@pytest.mark.slow
def test_mlflow_resume_continues_the_same_run_and_a_fresh_run_starts_another(tmp_path) -> None:
    pytest.importorskip("mlflow", reason="pip install 'lmforge[mlflow]'")
    run = make_token_run(tmp_path / "run", ["train.steps=20", "train.log_interval=5", "train.eval_interval=10",
                                            "train.checkpoint_interval=10", "monitor.tensorboard=false",
                                            "monitor.stats_interval=0", "monitor.mlflow=true"])
    run_train(run, load_config(run.config), show_progress=False, callbacks=monitored(_StopAt(10)))  # ctl stop
    kept = json.loads((run.root / "trackers.json").read_text())["mlflow"]
    run_train(run, load_config(run.config), resume=True, show_progress=False, callbacks=monitored())
    client, exp = _client(run)
    assert [r.info.run_id for r in client.search_runs([exp])] == [kept]
    assert client.get_run(kept).info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(kept, "train/loss")) == [5, 10, 15, 20]
    run_train(run, load_config(run.config), show_progress=False, callbacks=monitored())  # fresh: a new MLflow run
    fresh = json.loads((run.root / "trackers.json").read_text())["mlflow"]
    assert fresh != kept and {r.info.run_id for r in client.search_runs([exp])} == {kept, fresh}
