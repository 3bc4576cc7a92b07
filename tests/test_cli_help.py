"""What a new user meets first: every command's --help says what its arguments are (the text of
`[CONFIG] [section.key=value ...]` was once eaten as rich markup), flags carry no `<bool>`, and
`lmforge --version` answers."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version

import pytest
import typer
from typer.testing import CliRunner

from lmforge.cli import app

runner = CliRunner()
STAGES = ("run", "data", "tokenize", "train", "eval", "report")


def _commands(group, path=()):
    """(path, command) of every command and group under the root, the root included."""
    yield path, group
    for name, sub in sorted(getattr(group, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def _help(path: tuple[str, ...]) -> str:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


def _flat(text: str) -> str:
    """The help as one line of words: table borders and the wrapping of cells removed."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _takes_overrides(command) -> bool:
    """A command that takes section.key=value overrides has an argument that collects a list."""
    return any(p.param_type_name == "argument" and p.nargs == -1 for p in command.params)


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) or "lmforge" for p, _ in COMMANDS])
def test_help_shows_every_text_it_was_given(path, command):
    out = _help(path)
    flat = _flat(out)
    for param in command.params:
        if getattr(param, "help", None):
            assert " ".join(param.help.split()) in flat, f"help of {param.name} is not shown verbatim"
    if _takes_overrides(command):
        assert "section.key=value" in flat, f"`lmforge {' '.join(path)} --help` does not say how to override"
    assert "<bool>" not in out, "a flag takes no value; its help must not show a type"


GROUPS = [(p, c) for p, c in COMMANDS if getattr(c, "commands", None)]


@pytest.mark.parametrize("path,group", GROUPS, ids=[" ".join(p) or "lmforge" for p, _ in GROUPS])
def test_command_summaries_are_not_broken_where_the_docstring_wraps(path, group):
    """On a terminal wide enough, each command's summary sits on its row whole: the table once broke
    the doctor's summary after "gradients," because its docstring's line ended there."""
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"})
    rows = {ln.split()[1]: " ".join(ln.strip("│ ").split()[1:]) for ln in result.output.splitlines()
            if ln.startswith("│ ") and len(ln.split()) > 1}
    for name, sub in group.commands.items():
        summary = (sub.short_help or sub.help or "").split("\n\n")[0]
        assert rows.get(name) == " ".join(summary.split()), f"`{name}`'s summary is broken or cut"


def test_commands_with_overrides_are_found():
    """The test above checks the commands it should: the ones named in the issue among them."""
    with_overrides = {" ".join(p) for p, c in COMMANDS if _takes_overrides(c)}
    assert {"run", "lr plot", "lr-find", "model info", "compare architectures", "compare init", "data",
            "train", "eval", "ctl"} <= with_overrides


def test_run_help_names_config_and_overrides():
    flat = _flat(_help(("run",)))
    assert "an optional YAML config file, then overrides as section.key=value, e.g. train.steps=500" in flat
    assert "[CONFIG|KEY=VALUE]" in flat  # typer 0.29 adds "..." after it, 0.26 does not


@pytest.mark.parametrize("stage", STAGES)
def test_run_and_stage_commands_take_quiet(stage):
    assert "--quiet" in _flat(_help((stage,)))


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"lmforge {version('lmforge')}\n"
    assert "--version" in _flat(_help(()))


def test_version_from_the_installed_command():
    proc = subprocess.run([sys.executable, "-m", "lmforge", "--version"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0 and re.fullmatch(r"lmforge \d+\.\d+\.\d+\S*\n", proc.stdout), proc
