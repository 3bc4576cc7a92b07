"""Config: presets, overrides, and errors that name the key, its line and the nearest valid key."""

from pathlib import Path

import pytest

from lmforge.config.load import apply_overrides, dump_config, load_config, parse_override, preset_names
from lmforge.errors import LmforgeError


def test_presets_exist_and_validate():
    assert {"smoke", "default"} <= set(preset_names())
    for name in preset_names():
        cfg = load_config(preset=name)
        assert cfg.name == name


def test_quick_is_the_default_run_on_a_time_budget():
    quick, default = load_config(preset="quick"), load_config(preset="default")
    assert quick.train.time_budget and quick.train.schedule == "linear" and quick.train.min_lr == 0
    assert quick.data == default.data and quick.tokenizer == default.tokenizer and quick.eval == default.eval
    assert quick.model.family == "llama" and default.model.family == "gpt"
    same_size = {"block_size": default.model.block_size, "family": default.model.family}
    assert quick.model.model_copy(update=same_size) == default.model


def test_default_when_nothing_given_is_the_default_preset():
    assert load_config() == load_config(preset="default")


def test_override_parses_yaml_scalars_and_nests():
    assert parse_override("train.lr=1e-3") == (["train", "lr"], 0.001)
    assert parse_override("data.paths=[a.txt, b.txt]") == (["data", "paths"], ["a.txt", "b.txt"])
    cfg = load_config(preset="smoke", overrides=["train.steps=7", "model.n_embd=32", "model.n_head=4"])
    assert (cfg.train.steps, cfg.model.n_embd, cfg.model.n_head) == (7, 32, 4)
    assert apply_overrides({}, ["a.b.c=1"]) == {"a": {"b": {"c": 1}}}


def test_unknown_key_names_path_line_and_suggestion(tmp_path: Path):
    f = tmp_path / "cfg.yaml"
    f.write_text("train:\n  steps: 10\n  lerning_rate: 0.1\n")
    with pytest.raises(LmforgeError) as exc:
        load_config(f)
    msg = str(exc.value)
    assert "train.lerning_rate" in msg and f"{f}:3" in msg


def test_unknown_key_suggests_nearest(tmp_path: Path):
    f = tmp_path / "cfg.yaml"
    f.write_text("model:\n  n_layers: 2\n")
    with pytest.raises(LmforgeError, match=r"did you mean 'model.n_layer'"):
        load_config(f)


def test_unknown_section_suggests_nearest():
    with pytest.raises(LmforgeError, match=r"did you mean 'train'"):
        load_config(overrides=["trian.steps=3"])


def test_bad_value_says_allowed_range():
    with pytest.raises(LmforgeError, match=r"train.steps.*greater than or equal to 1"):
        load_config(overrides=["train.steps=0"])
    with pytest.raises(LmforgeError, match=r"tokenizer.kind"):
        load_config(overrides=["tokenizer.kind=sentencepiece"])


def test_heads_must_divide_width():
    with pytest.raises(LmforgeError, match=r"divisible"):
        load_config(overrides=["model.n_embd=130", "model.n_head=4"])


def test_malformed_yaml_points_at_line(tmp_path: Path):
    f = tmp_path / "bad.yaml"
    f.write_text("train:\n  steps: 10\n lr: [1,\n")
    with pytest.raises(LmforgeError, match=r"malformed YAML at .*bad.yaml:\d+"):
        load_config(f)


def test_missing_file_and_unknown_preset():
    with pytest.raises(LmforgeError, match="config file not found"):
        load_config(Path("/nonexistent/x.yaml"))
    with pytest.raises(LmforgeError, match=r"(?s)unknown preset 'smok'.*did you mean 'smoke'"):
        load_config(preset="smok")


def test_user_file_layers_on_preset(tmp_path: Path):
    f = tmp_path / "mine.yaml"
    f.write_text("train:\n  steps: 42\n")
    cfg = load_config(f, preset="smoke")
    assert cfg.train.steps == 42 and cfg.model.n_embd == load_config(preset="smoke").model.n_embd


def test_dump_round_trips_every_default(tmp_path: Path):
    cfg = load_config(preset="smoke", overrides=["train.lr=0.002"])
    f = tmp_path / "resolved.yaml"
    f.write_text(dump_config(cfg))
    again = load_config(f)
    assert again == cfg
    assert "weight_decay" in f.read_text()  # defaults are written out


def test_yaml_python_tags_are_not_executed(tmp_path: Path):
    marker = tmp_path / "pwned"
    f = tmp_path / "evil.yaml"
    f.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(LmforgeError):
        load_config(f)
    assert not marker.exists()


def test_on_and_off_stay_words_though_yaml_reads_them_as_booleans(tmp_path: Path):
    f = tmp_path / "switches.yaml"
    f.write_text("train:\n  fused: off\n  compile_loss: on\n")
    cfg = load_config(f)
    assert (cfg.train.fused, cfg.train.compile_loss) == ("off", "on")
    cfg = load_config(None, "smoke", ["train.fused=off", "train.compile_loss=off"])
    assert (cfg.train.fused, cfg.train.compile_loss) == ("off", "off")


def test_eval_needs_at_least_one_split():
    """eval.splits=[] was accepted and ended in an IndexError after the model was loaded."""
    with pytest.raises(LmforgeError, match=r"eval.splits"):
        load_config(overrides=["eval.splits=[]"])


def test_errors_name_the_override_that_set_the_value():
    with pytest.raises(LmforgeError) as err:
        load_config(preset="default", overrides=["model.n_head=3"])
    text = str(err.value)
    assert "override model.n_head=3: model: n_embd (128) must be divisible by n_head (3)" in text
    assert "got {" not in text and "preset 'default'" not in text  # not the preset, not the whole section
    with pytest.raises(LmforgeError, match=r"override train.lr=-3: train.lr: .*greater than 0 \(got -3\)"):
        load_config(preset="smoke", overrides=["train.lr=-3"])


def test_a_config_that_is_not_utf8_names_the_spot(tmp_path: Path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("train:\n  steps: 20\n# café\n".encode("latin-1"))
    with pytest.raises(LmforgeError) as err:
        load_config(path)
    assert f"{path}:3:6: not UTF-8 text (byte 0xe9)" in err.value.message and "UTF-8" in err.value.hint


def test_keys_that_leave_the_process_are_named_with_their_values():
    from lmforge.config.load import outside_effects
    from lmforge.config.schema import OUTSIDE_KEYS

    assert outside_effects(load_config()) == []  # the default flow runs nothing and sends nothing
    cfg = load_config(None, None, ["data.executor=slurm", "data.slurm.partition=p",
                                   "data.slurm.env_command=source /opt/env.sh", "monitor.wandb=true",
                                   "monitor.wandb_mode=online", "monitor.mlflow=true",
                                   "monitor.mlflow_uri=http://tracker:5000"])
    lines = outside_effects(cfg)
    assert [line.split("=")[0] for line in lines] == ["data.executor", "data.slurm.env_command",
                                                      "monitor.wandb_mode", "monitor.mlflow_uri"]
    assert "source /opt/env.sh" in lines[1] and "http://tracker:5000" in lines[3]
    assert [line.split("=")[0] for line in outside_effects(cfg, ("monitor",))] == ["monitor.wandb_mode",
                                                                                   "monitor.mlflow_uri"]
    assert set(OUTSIDE_KEYS) >= {line.split("=")[0] for line in lines}
