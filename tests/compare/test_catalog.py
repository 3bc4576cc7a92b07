"""`lmforge compare --list`: the fifteen course topics, each naming a command that exists."""

from __future__ import annotations

from typer.testing import CliRunner

from lmforge.cli import app, compare_app
from lmforge.compare.catalog import OTHER_COMPARISONS, TOPICS
from lmforge.errors import LmforgeError


def test_list_names_every_topic_and_only_commands_that_exist() -> None:
    out = CliRunner().invoke(app, ["compare", "--list"])
    assert out.exit_code == 0, out.output
    assert [t.number for t in TOPICS] == list(range(1, 16))
    commands = {c.name for c in compare_app.registered_commands}
    for t in TOPICS:
        assert f"{t.number:>2}  {t.subject}" in out.output
        assert t.command in commands | {"", "run"}, f"topic {t.number} names a missing command {t.command!r}"
    assert set(OTHER_COMPARISONS) <= commands


def test_a_mistyped_comparison_gets_the_closest_name() -> None:
    res = CliRunner().invoke(app, ["compare", "archtectures"])
    assert isinstance(res.exception, LmforgeError)
    assert "did you mean 'architectures'" in res.exception.message and "--list" in (res.exception.hint or "")
