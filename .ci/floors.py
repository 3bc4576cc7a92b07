"""Print pip constraints that pin every dependency of pyproject.toml to its declared floor.

`make test-floors` installs lmforge under them into .venv-floors and runs the quick tests, so a
floor that is too low (an API the code uses that the oldest allowed release lacks) fails there,
not on a user's machine. torch stays at the Makefile's pinned build: older CPU wheels are not on
every package index, and a plain `torch==X` would fetch a multi-GB CUDA build.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

SKIP = {"torch"}


def floors(pyproject: Path, extras: tuple[str, ...]) -> list[str]:
    meta = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(meta["dependencies"]) + [r for e in extras for r in meta["optional-dependencies"][e]]
    pins = {}
    for req in reqs:
        m = re.match(r"^\s*([A-Za-z0-9_.-]+)(?:\[[^]]*\])?\s*([^;]*)", req)
        name, spec = m.group(1).lower(), m.group(2)
        low = re.search(r">=\s*([0-9][^,\s]*)", spec)
        if low and name not in SKIP:
            pins[name] = f"{name}=={low.group(1)}"
    return sorted(pins.values())


if __name__ == "__main__":
    print("\n".join(floors(Path(__file__).resolve().parent.parent / "pyproject.toml", tuple(sys.argv[1:]))))
