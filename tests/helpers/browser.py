"""Headless Chromium for the report tests: found on PATH, else installed with apt-get (Debian's
`chromium` package) when the tests run as root; a test skips, saying why, only when neither works."""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

import numpy as np
import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome")


@cache
def _find_or_install() -> tuple[str | None, str]:
    for name in NAMES:
        if shutil.which(name):
            return shutil.which(name), ""
    if not shutil.which("apt-get"):
        return None, "no chromium on PATH and no apt-get to install it"
    if os.geteuid() != 0:
        return None, "no chromium on PATH, and installing it with apt-get needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
        if proc.returncode != 0:
            return None, f"`{' '.join(cmd)}` failed: {(proc.stderr or proc.stdout).strip()[-300:]}"
    found = shutil.which("chromium")
    return found, "" if found else "apt-get installed chromium but it is not on PATH"


def chromium() -> str:
    """The browser's path, or skip the test with the reason."""
    path, why = _find_or_install()
    if path is None:
        pytest.skip(f"headless Chromium unavailable: {why}")
    return path


def screenshot(page: Path, out: Path, width: int = 412, height: int = 2400) -> np.ndarray:
    """A headless Chromium screenshot of `page` (a phone-wide window by default), as an RGB array."""
    from PIL import Image

    proc = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--window-size={width},{height}", f"--screenshot={out}", page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    assert out.is_file(), proc.stderr[-2000:]
    return np.asarray(Image.open(out).convert("RGB"))


def ink(image: np.ndarray) -> float:
    """Share of pixels that are not near-white: 0 for a blank page."""
    return float((image.min(axis=-1) < 200).mean())
