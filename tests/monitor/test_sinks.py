"""Every sink, read back with its own library: TensorBoard's event reader and the W&B offline run
file (MLflow: test_mlflow_sink.py). One short real training feeds them all."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lmforge.config.load import load_config
from lmforge.train.loop import Callback
from lmforge.train.stage import run_train
from tests.helpers.runs import add_tokenizer, make_token_run, monitored, read_jsonl, train
from tests.helpers.wandb_records import history, records


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    run = make_token_run(tmp_path_factory.mktemp("sinks") / "run", [
        "train.steps=40", "train.log_interval=10", "train.eval_interval=20",
        "monitor.stats_interval=20", "monitor.histogram_interval=20",
        "monitor.wandb=true", "monitor.sample_tokens=8"])
    add_tokenizer(run)
    train(run)
    return run


def _accumulator(logdir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_metrics_jsonl_keeps_its_schema(run) -> None:
    lines = read_jsonl(run.metrics)
    train_lines = [r for r in lines if r["kind"] == "train"]
    assert [r["step"] for r in train_lines] == [10, 20, 30, 40]
    for key in ("loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s", "mfu", "eta_s"):
        assert all(key in r for r in train_lines), key
    assert [r["step"] for r in lines if r["kind"] == "eval"] == [20, 40]
    assert all(r["kind"] in ("train", "eval") for r in lines)  # statistics live in stats.jsonl


def test_tensorboard_scalars_match_metrics_jsonl(run) -> None:
    acc = _accumulator(run.tb)
    tags = acc.Tags()["scalars"]
    for tag in ("train/loss", "train/lr", "train/grad_norm", "train/tokens_per_s", "val/loss",
                "stats/grad_norm/global", "stats/update_ratio/global", "stats/attn_entropy/blocks.0",
                "stats/act_zero/blocks.1"):
        assert tag in tags, tag
    jsonl = {r["step"]: r["loss"] for r in read_jsonl(run.metrics) if r["kind"] == "train"}
    tb = {e.step: e.value for e in acc.Scalars("train/loss")}
    assert tb.keys() == jsonl.keys()
    assert all(abs(tb[s] - jsonl[s]) < 1e-5 * max(1.0, abs(jsonl[s])) for s in tb)


def test_tensorboard_histograms(run) -> None:
    acc = _accumulator(run.tb)
    hists = acc.Tags()["histograms"]
    assert "weights/blocks.0.attn.qkv.weight" in hists
    assert "grads/blocks.0.attn.qkv.weight" in hists
    assert [e.step for e in acc.Histograms("weights/blocks.0.attn.qkv.weight")] == [20, 40]


def test_tensorboard_text_samples_at_each_eval(run) -> None:
    from tensorboard.util import tensor_util

    acc = _accumulator(run.tb)
    assert "samples/text_summary" in acc.Tags()["tensors"]
    events = acc.Tensors("samples/text_summary")
    assert [e.step for e in events] == [20, 40]
    text = tensor_util.make_ndarray(events[0].tensor_proto).item().decode()
    assert len(text.split()) > 8  # the prompt plus 8 sampled tokens


def test_tensorboard_hparams_plugin_holds_final_metrics(run) -> None:
    acc = _accumulator(run.tb / "hparams")
    assert acc.PluginTagToContent("hparams"), "the hparams plugin summary is missing"
    final = {e.step: e.value for e in acc.Scalars("final/val_loss")}
    evals = [r for r in read_jsonl(run.metrics) if r["kind"] == "eval"]
    assert abs(next(iter(final.values())) - evals[-1]["val_loss"]) < 1e-5


def test_wandb_offline_run_holds_the_metrics(run) -> None:
    files = list((run.root / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, "exactly one offline run, nothing synced"
    rows = history(_completed(files[0]))
    logged = {r["_step"]: r["train/loss"] for r in rows if "train/loss" in r}
    jsonl = {r["step"]: r["loss"] for r in read_jsonl(run.metrics) if r["kind"] == "train"}
    assert logged.keys() == jsonl.keys()
    assert all(abs(logged[s] - jsonl[s]) < 1e-6 for s in logged)
    assert any("val/loss" in r for r in rows)
    assert any("stats/grad_norm/global" in r for r in rows)


def test_tensorboard_fresh_run_clears_and_resume_purges(tmp_path) -> None:
    from lmforge.monitor.sinks import TensorBoardSink

    logdir = tmp_path / "tb"
    first = TensorBoardSink(logdir)
    for step in (10, 20, 30):
        first.log("train", step, {"loss": 1.0})
    first.close({}, {})
    # TensorBoard orders event files by name: whole seconds, then a per-process counter that sorts
    # as text (".10" before ".9"); a real resume is another process, seconds later
    time.sleep(1.1)
    resumed = TensorBoardSink(logdir, resume_step=20)  # the checkpoint was at 20; 30 is logged again
    resumed.log("train", 30, {"loss": 0.5})
    resumed.close({}, {})
    assert [(e.step, e.value) for e in _accumulator(logdir).Scalars("train/loss")] == [(10, 1.0), (20, 1.0), (30, 0.5)]
    fresh = TensorBoardSink(logdir)
    fresh.log("train", 10, {"loss": 2.0})
    fresh.close({}, {})
    assert [(e.step, e.value) for e in _accumulator(logdir).Scalars("train/loss")] == [(10, 2.0)]


def test_resume_drops_a_line_torn_by_the_crash(tmp_path) -> None:
    """The killed run's metrics.jsonl may end mid-line; resuming must not crash on it."""
    from lmforge.monitor.sinks import JsonlSink

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"kind": "train", "step": 10, "loss": 2.0}\n{"kind": "train", "step": 20, "loss": 1.5}\n'
                    '{"kind": "train", "step": 30, "lo')
    sink = JsonlSink(path, resume_step=20)
    sink.log("train", 30, {"loss": 1.0})
    assert [r["step"] for r in read_jsonl(path)] == [10, 20, 30]


class _StopAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer, metrics) -> None:
        if trainer.step == self.step:
            trainer.should_stop = True


def _completed(path: Path) -> Path:
    """`path` once W&B's service has written the run's last record (it writes after `finish`
    returns, so a file read at once may lack the last rows)."""
    deadline = time.time() + 60
    while "exit" not in (kinds := [r.WhichOneof("record_type") for r in records(path)]):
        assert time.time() < deadline, f"{path} was never completed: {kinds}"
        time.sleep(0.2)
    return path


def _offline_runs(run) -> dict[str, tuple[str, list[dict]]]:
    """Each offline-run folder's W&B run id and logged rows."""
    out = {}
    for path in sorted((run.root / "wandb").glob("offline-run-*/run-*.wandb")):
        rec = next(r for r in records(_completed(path)) if r.WhichOneof("record_type") == "run")
        out[path.parent.name] = (rec.run.run_id, history(path))
    return out


def test_wandb_resume_continues_the_same_run_and_a_fresh_run_starts_another(tmp_path) -> None:
    run = make_token_run(tmp_path / "run", ["train.steps=20", "train.log_interval=5", "train.eval_interval=10",
                                            "train.checkpoint_interval=10", "monitor.tensorboard=false",
                                            "monitor.stats_interval=0", "monitor.wandb=true"])
    run_train(run, load_config(run.config), show_progress=False, callbacks=monitored(_StopAt(10)))  # ctl stop
    time.sleep(1.1)  # offline-run folders are named by the second
    run_train(run, load_config(run.config), resume=True, show_progress=False, callbacks=monitored())
    kept = json.loads((run.root / "trackers.json").read_text())["wandb"]
    runs = _offline_runs(run)
    assert len(runs) == 2 and {rid for rid, _ in runs.values()} == {kept}
    steps = sorted(r["_step"] for _, rows in runs.values() for r in rows if "train/loss" in r)
    assert steps == [5, 10, 15, 20]  # the last row before the stop is kept too
    time.sleep(1.1)
    run_train(run, load_config(run.config), show_progress=False, callbacks=monitored())  # fresh: a new W&B run
    fresh = json.loads((run.root / "trackers.json").read_text())["wandb"]
    assert fresh != kept and {rid for rid, _ in _offline_runs(run).values()} == {kept, fresh}
