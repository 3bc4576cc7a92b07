"""Random input files through the whole data stage: no traceback, and a ledger that accounts for
every input (each record kept, or rejected with its rule and reason)."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmforge.config.schema import DataConfig
from lmforge.data.stage import run_data
from lmforge.errors import LmforgeError
from lmforge.rundir import RunDir, read_jsonl_gz
from tests.helpers.texts import AUSTEN

_TEXT = st.text(st.characters(codec="utf-8"), max_size=400)
_JSON_VALUE = st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), _TEXT, st.booleans())


@st.composite
def jsonl(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.one_of(
        st.fixed_dictionaries({"text": _TEXT}, optional={"id": _JSON_VALUE, "x": _JSON_VALUE}).map(json.dumps),
        _TEXT.map(lambda t: t.replace("\n", " ")),  # junk lines
        st.integers(2000, 30_000).map(lambda n: json.dumps({"text": "w " * n})),  # a line past max_doc_chars
    ), max_size=8))
    return "\n".join(lines).encode("utf-8")


@st.composite
def encoded_text(draw: st.DrawFn) -> bytes:
    text = draw(_TEXT)
    return text.encode(draw(st.sampled_from(["utf-8", "utf-16", "gb18030", "cp1252"])), errors="replace")


@st.composite
def input_file(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["bytes", "text", "jsonl", "csv"]))
    if kind == "bytes":
        data, suffix = draw(st.binary(max_size=3000)), ".txt"
    elif kind == "text":
        data, suffix = draw(encoded_text()), ".txt"
    elif kind == "jsonl":
        data, suffix = draw(jsonl()), ".jsonl"
    else:
        data = draw(st.lists(_TEXT.map(lambda t: t.replace("\n", " ")), max_size=6)).__iter__()
        data, suffix = ("id,text\n" + "\n".join(f"{i},{t}" for i, t in enumerate(data))).encode(), ".csv"
    packing = draw(st.sampled_from(["", ".gz", ".zst"]))
    if packing == ".gz":
        data = gzip.compress(data, mtime=0)
    elif packing == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    if packing and draw(st.booleans()):  # a truncated archive
        data = data[: draw(st.integers(0, len(data)))]
    return suffix + packing, data


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=st.lists(input_file(), min_size=1, max_size=3))
def test_random_inputs_are_all_accounted_for(files: list[tuple[str, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "good.txt").write_text(AUSTEN, encoding="utf-8")
        paths = [str(root / "good.txt")]
        for i, (suffix, data) in enumerate(files):
            path = root / f"in{i}{suffix}"
            path.write_bytes(data)
            paths.append(str(path))
        run = RunDir(root / "run")
        cfg = DataConfig(corpus="none", paths=paths, min_chars=1, max_doc_chars=2000, val_fraction=0,
                         test_fraction=0, min_val_docs=0, min_test_docs=0)
        try:
            ledger = run_data(run, cfg)
        except LmforgeError as exc:  # a clear message is fine; a traceback (any other error) is not
            raise AssertionError(f"good.txt alone should survive: {exc}") from None
        assert ledger["balanced"] and ledger["in"] == ledger["kept"] + ledger["rejected"]
        for path in paths:  # every input shows up, and balances on its own
            src = ledger["sources"][path]
            assert src["in"] >= 1 and src["in"] == src["kept"] + src["rejected"]
        rejected = list(read_jsonl_gz(run.rejected / "rejected.jsonl.gz"))
        assert len(rejected) == ledger["rejected"] and all(r["rule"] and r["reason"] for r in rejected)
        kept = sum(1 for _ in read_jsonl_gz(run.split_file("train")))
        assert kept == ledger["kept"]
